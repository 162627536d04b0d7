//! What a session's device looks like to its owner: browser, operating system, kind of device and a rough
//! location, derived from the user agent and client address. Only descriptive; no rule depends on it, so
//! every field may be unknown.

use std::fmt::Debug;
use std::net::IpAddr;

/// A human-readable description of the device behind a session. Every field is `None` when unknown.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Device {
    /// The browser or client name, e.g. "Firefox" or "Googlebot".
    pub browser: Option<String>,
    /// The operating system, e.g. "Linux", "Windows 10" or "iPhone".
    pub os: Option<String>,
    /// The kind of device: one of [`Device::DESKTOP`], [`Device::MOBILE`], [`Device::TABLET`],
    /// [`Device::BOT`] or [`Device::OTHER`].
    pub device_type: Option<String>,
    /// A one-line summary for people, e.g. "Firefox on Linux"; see [`Device::info_from`].
    pub device_info: Option<String>,
    /// Where the client address is, e.g. "Berlin, Germany" or just "Germany".
    pub location: Option<String>,
}

impl Device {
    /// `device_type` of desktop and laptop browsers.
    pub const DESKTOP: &'static str = "desktop";
    /// `device_type` of phones.
    pub const MOBILE: &'static str = "mobile";
    /// `device_type` of tablets.
    pub const TABLET: &'static str = "tablet";
    /// `device_type` of crawlers and other automated clients.
    pub const BOT: &'static str = "bot";
    /// `device_type` of anything recognised that is none of the above (consoles, TVs, tools).
    pub const OTHER: &'static str = "other";

    /// The `device_info` summary for a browser and OS: "<browser> on <os>" when both are known, whichever is
    /// known otherwise, and `None` when neither is. Every resolver uses this, so the summary reads the same
    /// whichever adapter produced it.
    pub fn info_from(browser: Option<&str>, os: Option<&str>) -> Option<String> {
        match (browser, os) {
            (Some(browser), Some(os)) => Some(format!("{browser} on {os}")),
            (Some(one), None) | (None, Some(one)) => Some(one.to_owned()),
            (None, None) => None,
        }
    }
}

/// The longest user agent, in characters, that is parsed or stored. Real ones are a few hundred characters;
/// the header itself may be far longer, and parsers' regular expressions should not see all of it.
pub const MAX_USER_AGENT_CHARS: usize = 512;

/// `user_agent` cut to at most [`MAX_USER_AGENT_CHARS`] characters (at a character boundary, so the result is
/// still valid UTF-8). Used both before parsing and before storing, so what is shown matches what was parsed.
pub fn truncate_user_agent(user_agent: &str) -> &str {
    match user_agent.char_indices().nth(MAX_USER_AGENT_CHARS) {
        Some((end, _)) => &user_agent[..end],
        None => user_agent,
    }
}

/// Port: describes a client from what the server sees of it. Implementations must be total: any input,
/// however malformed or large, gives a (possibly empty) description, never a panic or an error, because a
/// login must not fail over cosmetics.
pub trait DeviceResolver: Send + Sync + Debug {
    /// Describes the client that sent `user_agent` (the raw `User-Agent` header, if any) from `ip` (the
    /// client address, already resolved through trusted proxies, if known).
    fn describe(&self, user_agent: Option<&str>, ip: Option<IpAddr>) -> Device;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_joins_what_is_known() {
        assert_eq!(Device::info_from(Some("Firefox"), Some("Linux")).as_deref(), Some("Firefox on Linux"));
        assert_eq!(Device::info_from(Some("Googlebot"), None).as_deref(), Some("Googlebot"));
        assert_eq!(Device::info_from(None, Some("Android")).as_deref(), Some("Android"));
        assert_eq!(Device::info_from(None, None), None);
    }

    #[test]
    fn user_agents_are_cut_at_a_character_boundary() {
        assert_eq!(truncate_user_agent("Firefox"), "Firefox");
        let exact = "a".repeat(MAX_USER_AGENT_CHARS);
        assert_eq!(truncate_user_agent(&exact), exact);
        let long = "é".repeat(MAX_USER_AGENT_CHARS + 3);
        let cut = truncate_user_agent(&long);
        assert_eq!(cut.chars().count(), MAX_USER_AGENT_CHARS);
        assert!(cut.chars().all(|c| c == 'é'));
    }

    #[test]
    fn default_device_knows_nothing() {
        let device = Device::default();
        assert_eq!(
            (device.browser, device.os, device.device_type, device.device_info, device.location),
            (None, None, None, None, None)
        );
    }
}
