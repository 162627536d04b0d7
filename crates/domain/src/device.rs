//! What a session's device is: browser, operating system and kind of device from the user agent, and an
//! approximate location from the address.

use std::fmt::Debug;

/// A device as described to its owner in the sessions list and in new-device alerts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Device {
    /// Browser name, e.g. `Firefox`.
    pub browser: Option<String>,
    /// Operating system, e.g. `Linux`.
    pub os: Option<String>,
    /// `desktop`, `mobile`, `tablet`, `bot` or `other`.
    pub device_type: Option<String>,
    /// A short description, e.g. `Firefox on Linux`.
    pub device_info: Option<String>,
    /// Approximate location, e.g. `Berlin, Germany`, when a location database is configured.
    pub location: Option<String>,
}

/// Describes devices from a user agent and an address.
pub trait DeviceResolver: Send + Sync + Debug {
    /// The device behind `user_agent`, at `ip`.
    fn describe(&self, user_agent: Option<&str>, ip: Option<std::net::IpAddr>) -> Device;
}
