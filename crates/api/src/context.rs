//! The [`Context`] extractor: what the domain records about a request (its id, route, client address and
//! user agent, and its trace id when OpenTelemetry is on) for sessions and the audit log.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath};
use axum::http::header;
use axum::http::request::Parts;
use dashtam_domain::context::{Actor, RequestContext};
use dashtam_domain::device::truncate_user_agent;

use crate::client_ip::ClientIp;
use crate::request_context::RequestId;

/// The request's context, as an anonymous caller; [`AuthUser`](crate::auth::extract::AuthUser) carries the
/// signed-in form.
#[derive(Debug, Clone)]
pub struct Context(pub RequestContext);

impl<S: Send + Sync> FromRequestParts<S> for Context {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(request_context(parts)))
    }
}

/// Reads the context of the request whose head is `parts`.
pub fn request_context(parts: &Parts) -> RequestContext {
    RequestContext {
        actor: Actor::Anonymous,
        session_id: None,
        request_id: parts.extensions.get::<RequestId>().map(|id| id.as_str().to_owned()),
        method: Some(parts.method.as_str().to_owned()),
        route: parts.extensions.get::<MatchedPath>().map(|matched| matched.as_str().to_owned()),
        path: Some(parts.uri.path().to_owned()),
        ip_address: client_ip(parts),
        user_agent: parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|value| value.to_str().ok())
            .map(|agent| truncate_user_agent(agent).to_owned()),
        trace_id: crate::telemetry::current_trace_id(),
    }
}

/// The client's address: as resolved by the trusted-proxy rule ([`ClientIp`]), else the socket's peer.
fn client_ip(parts: &Parts) -> Option<String> {
    parts
        .extensions
        .get::<ClientIp>()
        .map(|ClientIp(address)| address.to_string())
        .or_else(|| parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(peer)| peer.ip().to_string()))
}
