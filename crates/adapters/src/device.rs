//! Describes a session's device: the user agent parsed by `woothee`, and the client address placed with an
//! optional offline MaxMind DB file (GeoLite2 or DB-IP Lite, City or Country), read into memory once.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use dashtam_domain::device::{Device, DeviceResolver, truncate_user_agent};
use maxminddb::{MaxMindDbError, Reader};
use serde::Deserialize;

/// The GeoIP database named in configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DeviceResolverError {
    /// The file could not be read (missing, unreadable, a directory).
    #[error("cannot read the GeoIP database {}", path.display())]
    Read {
        /// The configured path.
        path: PathBuf,
        /// Why reading failed.
        #[source]
        source: std::io::Error,
    },
    /// The file was read but is not a MaxMind DB database.
    #[error("the GeoIP database {} is not a valid MaxMind DB (.mmdb) file", path.display())]
    Invalid {
        /// The configured path.
        path: PathBuf,
        /// What the reader found wrong.
        #[source]
        source: MaxMindDbError,
    },
}

/// [`DeviceResolver`] from the `User-Agent` header (woothee) and, when a database is configured, the client
/// address (MaxMind DB).
pub struct UserAgentGeoResolver {
    geo: Option<GeoDatabase>,
}

/// An opened database and where it came from, for `Debug` and logs.
struct GeoDatabase {
    path: PathBuf,
    reader: Reader<Vec<u8>>,
}

impl fmt::Debug for UserAgentGeoResolver {
    // The reader holds the whole database in memory; printing it would be useless and huge.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("UserAgentGeoResolver");
        match &self.geo {
            Some(geo) => {
                debug.field("database", &geo.path).field("database_type", &geo.reader.metadata().database_type).finish()
            }
            None => debug.field("database", &None::<PathBuf>).finish(),
        }
    }
}

impl UserAgentGeoResolver {
    /// A resolver that places addresses with the MaxMind DB file at `mmdb_path`, or gives no locations when
    /// it is `None`. The file is read into memory here, once; a file that is missing, unreadable or not a
    /// MaxMind DB is an error naming the path, so a misconfiguration stops start-up instead of silently
    /// losing locations.
    pub fn new(mmdb_path: Option<&Path>) -> Result<Self, DeviceResolverError> {
        let geo = match mmdb_path {
            None => None,
            Some(path) => {
                let bytes = std::fs::read(path)
                    .map_err(|source| DeviceResolverError::Read { path: path.to_owned(), source })?;
                let reader = Reader::from_source(bytes)
                    .map_err(|source| DeviceResolverError::Invalid { path: path.to_owned(), source })?;
                Some(GeoDatabase { path: path.to_owned(), reader })
            }
        };
        Ok(Self { geo })
    }

    /// Whether a database is loaded.
    pub fn has_database(&self) -> bool {
        self.geo.is_some()
    }

    /// "City, Country", "Country" (or "City" alone) for `ip`; `None` for addresses that are not on the public
    /// internet, addresses the database does not know, and when there is no database.
    pub fn locate(&self, ip: IpAddr) -> Option<String> {
        let geo = self.geo.as_ref()?;
        // An IPv4 client on a dual-stack socket shows up as ::ffff:a.b.c.d, which databases file under IPv4.
        let ip = ip.to_canonical();
        if !is_publicly_routed(ip) {
            return None;
        }
        let record = match geo.reader.lookup(ip).and_then(|found| found.decode::<GeoRecord<'_>>()) {
            Ok(record) => record?,
            Err(error) => {
                // A miss is `Ok(None)`; an error means an odd database or an IPv6 address in an IPv4-only one.
                // Neither is worth failing a login over, and logging every request would flood the log.
                tracing::debug!(%ip, %error, "GeoIP lookup failed");
                return None;
            }
        };
        let city = record.city.and_then(Place::english_name);
        let country = record.country.and_then(Place::english_name);
        match (city, country) {
            (Some(city), Some(country)) => Some(format!("{city}, {country}")),
            (Some(one), None) | (None, Some(one)) => Some(one.to_owned()),
            (None, None) => None,
        }
    }
}

impl DeviceResolver for UserAgentGeoResolver {
    fn describe(&self, user_agent: Option<&str>, ip: Option<IpAddr>) -> Device {
        let mut device = user_agent.map(describe_user_agent).unwrap_or_default();
        device.location = ip.and_then(|ip| self.locate(ip));
        device
    }
}

/// Browser, OS, device type and summary from a `User-Agent` header; no location.
fn describe_user_agent(user_agent: &str) -> Device {
    let user_agent = truncate_user_agent(user_agent);
    // woothee unwraps regex captures internally; the input is attacker-controlled, and a login must not fail
    // because a cosmetic parser tripped, so a panic there counts as "unknown".
    let parsed = catch_unwind(AssertUnwindSafe(|| {
        woothee::parser::Parser::new()
            .parse(user_agent)
            .map(|result| (known(result.name), known(result.os), device_type(result.category).map(str::to_owned)))
    }));
    let Ok(Some((browser, os, device_type))) = parsed else {
        return Device::default();
    };
    let device_info = Device::info_from(browser.as_deref(), os.as_deref());
    Device { browser, os, device_type, device_info, location: None }
}

/// woothee's value, or `None` for its "UNKNOWN" placeholder (and for empty text). woothee names a Windows
/// whose version it cannot read "Windows UNKNOWN Ver"; the family is still worth showing, so that becomes
/// "Windows".
fn known(value: &str) -> Option<String> {
    let value = value.trim();
    let value = value.strip_suffix(" UNKNOWN Ver").unwrap_or(value).trim_end();
    (!value.is_empty() && value != woothee::woothee::VALUE_UNKNOWN).then(|| value.to_owned())
}

/// woothee's category as one of the domain's device types.
fn device_type(category: &str) -> Option<&'static str> {
    match category {
        "pc" => Some(Device::DESKTOP),
        "smartphone" | "mobilephone" => Some(Device::MOBILE),
        "crawler" => Some(Device::BOT),
        "appliance" | "misc" => Some(Device::OTHER),
        _ => None,
    }
}

/// Whether a GeoIP database could know where `ip` is: not loopback, private, link-local, shared (CGNAT),
/// multicast or unspecified. Documentation ranges are deliberately not excluded: the test fixture uses them.
fn is_publicly_routed(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => !is_local_v4(ip),
        IpAddr::V6(ip) => !is_local_v6(ip),
    }
}

fn is_local_v4(ip: Ipv4Addr) -> bool {
    let [first, second, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_multicast()
        || ip.is_broadcast()
        // 100.64.0.0/10, carrier-grade NAT (RFC 6598).
        || (first == 100 && (second & 0b1100_0000) == 0b0100_0000)
        // 0.0.0.0/8, "this network".
        || first == 0
}

fn is_local_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        // fc00::/7, unique local addresses.
        || (first & 0xfe00) == 0xfc00
        // fe80::/10, link-local.
        || (first & 0xffc0) == 0xfe80
}

/// The part of a GeoLite2 / DB-IP City or Country record that is read. Every other field is ignored, so
/// variations between vendors' layouts do not matter.
#[derive(Deserialize)]
struct GeoRecord<'a> {
    #[serde(borrow, default)]
    city: Option<Place<'a>>,
    #[serde(borrow, default)]
    country: Option<Place<'a>>,
}

#[derive(Deserialize)]
struct Place<'a> {
    #[serde(borrow, default)]
    names: Option<Names<'a>>,
}

#[derive(Deserialize)]
struct Names<'a> {
    #[serde(borrow, default)]
    en: Option<&'a str>,
}

impl<'a> Place<'a> {
    fn english_name(self) -> Option<&'a str> {
        self.names?.en.map(str::trim).filter(|name| !name.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    const FIREFOX_LINUX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
    const SAFARI_IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 \
                                 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1";
    const GOOGLEBOT: &str = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";

    fn fixture_path() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/geo-fixture.mmdb")
    }

    fn with_fixture() -> UserAgentGeoResolver {
        UserAgentGeoResolver::new(Some(&fixture_path())).expect("the fixture opens")
    }

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().expect("an IP address"))
    }

    #[test]
    fn firefox_on_linux_is_a_desktop() {
        let device = UserAgentGeoResolver::new(None).expect("no database").describe(Some(FIREFOX_LINUX), None);
        assert_eq!(
            device,
            Device {
                browser: Some("Firefox".into()),
                os: Some("Linux".into()),
                device_type: Some("desktop".into()),
                device_info: Some("Firefox on Linux".into()),
                location: None,
            }
        );
    }

    #[test]
    fn safari_on_an_iphone_is_mobile() {
        let device = with_fixture().describe(Some(SAFARI_IPHONE), None);
        assert_eq!(device.device_type.as_deref(), Some("mobile"));
        assert_eq!(device.browser.as_deref(), Some("Safari"));
        assert_eq!(device.os.as_deref(), Some("iPhone"));
        assert_eq!(device.device_info.as_deref(), Some("Safari on iPhone"));
    }

    #[test]
    fn googlebot_is_a_bot() {
        let device = with_fixture().describe(Some(GOOGLEBOT), None);
        assert_eq!(device.device_type.as_deref(), Some("bot"));
        assert_eq!(device.browser.as_deref(), Some("Googlebot"));
        assert_eq!(device.os, None);
        assert_eq!(device.device_info.as_deref(), Some("Googlebot"));
    }

    #[test]
    fn windows_of_an_unknown_version_is_windows() {
        let device = with_fixture().describe(Some("Mozilla/4.0 (Windows NT 6.1"), None);
        assert_eq!(device.os.as_deref(), Some("Windows"));
        assert_eq!(device.device_type.as_deref(), Some("desktop"));
        let edge = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) \
                    Chrome/126.0.0.0 Safari/537.36 Edg/126.0.0.0";
        assert_eq!(with_fixture().describe(Some(edge), None).device_info.as_deref(), Some("Edge on Windows 10"));
    }

    #[test]
    fn empty_garbage_and_huge_user_agents_describe_nothing() {
        let resolver = with_fixture();
        let huge = "x".repeat(100 * 1024);
        let huge_multibyte = "ü€😀".repeat(30 * 1024);
        for user_agent in [
            None,
            Some(""),
            Some("-"),
            Some("   "),
            Some("\u{0}\u{1}garbage\u{7f}"),
            Some(huge.as_str()),
            Some(&huge_multibyte),
        ] {
            assert_eq!(
                resolver.describe(user_agent, None),
                Device::default(),
                "{:?}",
                user_agent.map(|ua| &ua[..ua.len().min(40)])
            );
        }
    }

    #[test]
    fn only_the_first_512_characters_are_parsed() {
        // The browser token sits past the cut, so it must not be seen.
        let padded = format!("{}{FIREFOX_LINUX}", " ".repeat(600));
        assert_eq!(with_fixture().describe(Some(&padded), None).browser, None);
        let trailing = format!("{FIREFOX_LINUX}{}", "x".repeat(100 * 1024));
        assert_eq!(with_fixture().describe(Some(&trailing), None).device_info.as_deref(), Some("Firefox on Linux"));
    }

    #[test]
    fn fixture_addresses_are_located() {
        let resolver = with_fixture();
        let location = |text: &str| resolver.describe(None, ip(text)).location;
        assert_eq!(location("203.0.113.7").as_deref(), Some("Berlin, Germany"));
        assert_eq!(location("198.51.100.9").as_deref(), Some("Canada"));
        assert_eq!(location("2001:db8::1").as_deref(), Some("Tokyo, Japan"));
        // An IPv4 client seen through a dual-stack socket.
        assert_eq!(location("::ffff:203.0.113.7").as_deref(), Some("Berlin, Germany"));
    }

    #[test]
    fn local_and_unknown_addresses_have_no_location() {
        let resolver = with_fixture();
        for text in [
            "127.0.0.1",
            "10.0.0.1",
            "192.168.1.1",
            "172.16.0.1",
            "169.254.1.1",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
            "192.0.2.1",
            "8.8.8.8",
            "2001:4860::8888",
        ] {
            assert_eq!(resolver.describe(Some(FIREFOX_LINUX), ip(text)).location, None, "{text}");
        }
    }

    #[test]
    fn without_a_database_there_is_no_location() {
        let resolver = UserAgentGeoResolver::new(None).expect("no database");
        assert!(!resolver.has_database());
        assert_eq!(resolver.describe(Some(FIREFOX_LINUX), ip("203.0.113.7")).location, None);
    }

    #[test]
    fn a_missing_database_is_an_error_naming_the_path() {
        let path = fixture_path().with_file_name("no-such-database.mmdb");
        let error = UserAgentGeoResolver::new(Some(&path)).expect_err("missing file");
        assert!(matches!(error, DeviceResolverError::Read { .. }), "{error:?}");
        assert!(error.to_string().contains(&path.display().to_string()), "{error}");
    }

    #[test]
    fn a_corrupt_database_is_an_error_naming_the_path() {
        let mut file = tempfile::NamedTempFile::new().expect("temporary file");
        file.write_all(b"this is not a MaxMind database").expect("write");
        let error = UserAgentGeoResolver::new(Some(file.path())).expect_err("corrupt file");
        assert!(matches!(error, DeviceResolverError::Invalid { .. }), "{error:?}");
        assert!(error.to_string().contains(&file.path().display().to_string()), "{error}");
        // A truncated real database is refused too, not half-used.
        let bytes = std::fs::read(fixture_path()).expect("fixture");
        std::fs::write(file.path(), &bytes[..bytes.len() / 2]).expect("write");
        let error = UserAgentGeoResolver::new(Some(file.path())).expect_err("truncated file");
        assert!(matches!(error, DeviceResolverError::Invalid { .. }), "{error:?}");
    }

    #[test]
    fn debug_names_the_database_without_dumping_it() {
        let debug = format!("{:?}", with_fixture());
        assert!(debug.contains("geo-fixture.mmdb") && debug.contains("GeoLite2-City"), "{debug}");
        assert!(debug.len() < 300, "{debug}");
    }
}
