//! Who is calling, by address: the socket peer, or — only when that peer is one of the configured trusted
//! proxies — the address the proxies report in `X-Forwarded-For`.
//!
//! Each proxy appends the address it received the request from, so the header reads `client, proxy1,
//! proxy2` and only its right end was written by machines we trust. Walking it from the right, the first
//! hop that is not a trusted proxy is the client; everything to its left was written by the client itself
//! and is never believed. A malformed hop on that walk means the header cannot be read reliably, and the
//! peer is used instead.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use ipnet::IpNet;

use crate::state::AppState;

/// The header proxies append client addresses to.
pub const FORWARDED_FOR: &str = "x-forwarded-for";

/// The most hops read from `X-Forwarded-For`; a longer chain is not a real proxy path and is not followed
/// further (the peer is used), so a huge header costs nothing.
const MAX_HOPS: usize = 32;

/// The client's address, in the request's extensions for the rate limiter, sessions and audit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientIp(pub IpAddr);

/// The proxies whose `X-Forwarded-For` is believed (`DASHTAM_TRUSTED_PROXIES`).
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Arc<[IpNet]>);

impl TrustedProxies {
    /// Trust these networks.
    pub fn new(networks: impl IntoIterator<Item = IpNet>) -> Self {
        Self(networks.into_iter().collect())
    }

    /// Whether `address` is one of them. IPv4 addresses seen through an IPv6 socket (`::ffff:10.0.0.1`)
    /// count as the IPv4 address.
    pub fn contains(&self, address: IpAddr) -> bool {
        let address = address.to_canonical();
        self.0.iter().any(|network| network.contains(&address))
    }

    /// Whether no proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The client's address for a request from `peer` with these headers.
    pub fn client_address(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = peer.to_canonical();
        if self.is_empty() || !self.contains(peer) {
            return peer;
        }
        let values: Option<Vec<&str>> =
            headers.get_all(FORWARDED_FOR).iter().map(|value| value.to_str().ok()).collect();
        match values {
            // Several header lines are one list, in order (RFC 9110 §5.3).
            Some(values) => client_from_forwarded_for(peer, values.iter().copied(), self),
            None => peer,
        }
    }
}

/// The client named by the `X-Forwarded-For` lines `values` (in order) of a request whose peer is the
/// trusted proxy `peer`: the rightmost hop that is not a trusted proxy; the leftmost hop when every hop is
/// trusted; the peer when the header is absent, malformed along the way, or longer than [`MAX_HOPS`].
pub fn client_from_forwarded_for<'a>(
    peer: IpAddr,
    values: impl DoubleEndedIterator<Item = &'a str>,
    trusted: &TrustedProxies,
) -> IpAddr {
    let mut last_trusted = None;
    let hops = values.rev().flat_map(|value| value.rsplit(','));
    for (index, hop) in hops.enumerate() {
        if index == MAX_HOPS {
            return peer;
        }
        let Ok(address) = hop.trim().parse::<IpAddr>() else {
            return peer;
        };
        let address = address.to_canonical();
        if !trusted.contains(address) {
            return address;
        }
        last_trusted = Some(address);
    }
    last_trusted.unwrap_or(peer)
}

/// Puts the [`ClientIp`] of every request into its extensions (nothing when the server was started without
/// connection info, as in-process tests may be).
pub async fn resolve_client_ip(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    if let Some(ConnectInfo(peer)) = request.extensions().get::<ConnectInfo<SocketAddr>>() {
        let client = state.settings.trusted_proxies.client_address(peer.ip(), request.headers());
        request.extensions_mut().insert(ClientIp(client));
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn proxies(networks: &[&str]) -> TrustedProxies {
        TrustedProxies::new(networks.iter().map(|network| network.parse::<IpNet>().expect("network")))
    }

    fn client(trusted: &TrustedProxies, peer: &str, lines: &[&str]) -> String {
        let mut headers = HeaderMap::new();
        for line in lines {
            headers.append(FORWARDED_FOR, HeaderValue::from_str(line).expect("header"));
        }
        trusted.client_address(peer.parse().expect("peer"), &headers).to_string()
    }

    #[test]
    fn untrusted_peers_are_believed_about_nothing() {
        let trusted = proxies(&["10.0.0.0/8"]);
        assert_eq!(client(&trusted, "203.0.113.9", &["198.51.100.1"]), "203.0.113.9");
        assert_eq!(client(&TrustedProxies::default(), "10.0.0.1", &["198.51.100.1"]), "10.0.0.1");
    }

    #[test]
    fn the_rightmost_untrusted_hop_is_the_client() {
        let trusted = proxies(&["10.0.0.0/8", "::1/128"]);
        assert_eq!(client(&trusted, "10.0.0.2", &["198.51.100.1"]), "198.51.100.1");
        // The client prepended a fake address; the proxies' own entries are on the right.
        assert_eq!(client(&trusted, "10.0.0.2", &["1.2.3.4, 198.51.100.1, 10.0.0.3"]), "198.51.100.1");
        assert_eq!(client(&trusted, "10.0.0.2", &["1.2.3.4", "198.51.100.1 ,10.0.0.3"]), "198.51.100.1");
        assert_eq!(client(&trusted, "::ffff:10.0.0.2", &["2001:db8::7"]), "2001:db8::7");
        assert_eq!(client(&trusted, "10.0.0.2", &["10.0.0.9, 10.0.0.3"]), "10.0.0.9");
        assert_eq!(client(&trusted, "10.0.0.2", &[]), "10.0.0.2");
    }

    #[test]
    fn malformed_hops_fall_back_to_the_peer() {
        let trusted = proxies(&["10.0.0.0/8"]);
        for line in ["", "unknown", "198.51.100.1:443", "198.51.100.1,, 10.0.0.3", "[2001:db8::7]", "1.2.3"] {
            assert_eq!(client(&trusted, "10.0.0.2", &[line]), "10.0.0.2", "{line:?}");
        }
        // Garbage the walk never reaches (left of the client) does not matter.
        assert_eq!(client(&trusted, "10.0.0.2", &["garbage, 198.51.100.1"]), "198.51.100.1");
        let long = vec!["10.0.0.5"; MAX_HOPS + 1].join(",");
        assert_eq!(client(&trusted, "10.0.0.2", &[&long]), "10.0.0.2");
    }
}
