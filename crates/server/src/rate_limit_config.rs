//! `[rate_limit]`: on/off, the failure policy, the backend's bounds and the rules table.
//!
//! The built-in rules ([`default_rules`], documented in `docs/rate-limiting.md`) cover every route class.
//! `[[rate_limit.rules]]` entries in the TOML file change them by name — only the fields given change, so
//! `{ name = "login-ip", burst = 50 }` raises one burst — or, with a new name, add a rule (then every field
//! but `enabled` is required).

use std::time::Duration;

use dashtam_domain::rate_limit::{BucketPolicy, FailurePolicy, RateLimitRule, RateLimitScope, RoutePattern};
use serde::{Deserialize, Serialize};

/// `[rate_limit]`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    /// `DASHTAM_RATE_LIMIT__ENABLED`.
    pub enabled: bool,
    /// `DASHTAM_RATE_LIMIT__FAILURE_POLICY`: `open` (let requests through) or `closed` (answer 503) while
    /// Redis cannot be reached.
    pub failure_policy: FailurePolicy,
    /// `DASHTAM_RATE_LIMIT__REDIS_TIMEOUT`: the longest a request waits for a rate-limit check in Redis.
    #[serde(with = "humantime_serde")]
    pub redis_timeout: Duration,
    /// `DASHTAM_RATE_LIMIT__REDIS_KEY_PREFIX`: bucket keys are `<prefix>:rl:{…}`.
    pub redis_key_prefix: String,
    /// `DASHTAM_RATE_LIMIT__MAX_KEYS`: the most buckets the in-process backend holds.
    pub max_keys: usize,
    /// `[[rate_limit.rules]]`: changes to, and additions to, the built-in rules.
    pub rules: Vec<RuleConfig>,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            failure_policy: FailurePolicy::Open,
            redis_timeout: Duration::from_millis(100),
            redis_key_prefix: "dashtam".to_owned(),
            max_keys: dashtam_adapters::rate_limit::DEFAULT_MAX_KEYS,
            rules: Vec::new(),
        }
    }
}

/// One `[[rate_limit.rules]]` entry. Fields left out keep the built-in rule's value.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// The rule's name: 1–64 of `a-z 0-9 - _`.
    pub name: String,
    /// `METHOD /route/template` (method `*` for any; a path ending in `/*` for a prefix).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routes: Option<Vec<String>>,
    /// `ip`, `user`, `user_provider`, `global` or `account`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Requests a full bucket admits at once (≥ 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
    /// The refill: `count/period` such as `5/min`, `100/s`, `1/10m`, `20/hour`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<String>,
    /// Off: the rule is ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// A built-in rule.
fn rule(name: &str, routes: &[&str], scope: RateLimitScope, burst: u32, rate: &str) -> RuleConfig {
    RuleConfig {
        name: name.to_owned(),
        routes: Some(routes.iter().map(|route| (*route).to_owned()).collect()),
        scope: Some(scope.as_str().to_owned()),
        burst: Some(burst),
        rate: Some(rate.to_owned()),
        enabled: Some(true),
    }
}

/// The built-in rules table. A request is governed by the rules whose route matches it most specifically,
/// so the general `api-reads` / `api-writes` rules apply only where no named rule does.
pub fn default_rules() -> Vec<RuleConfig> {
    use RateLimitScope::{Account, Ip, User, UserProvider};
    const LOGIN: &str = "POST /api/v1/auth/login";
    const RESEND: &str = "POST /api/v1/auth/resend-verification";
    const RESET_REQUEST: &str = "POST /api/v1/auth/request-password-reset";
    vec![
        rule("login-ip", &[LOGIN], Ip, 20, "5/min"),
        rule("login-account", &[LOGIN], Account, 20, "5/min"),
        rule("register", &["POST /api/v1/auth/register"], Ip, 10, "10/hour"),
        rule("verify-email", &["POST /api/v1/auth/verify-email"], Ip, 20, "10/min"),
        rule("resend-verification-ip", &[RESEND], Ip, 5, "5/hour"),
        rule("resend-verification-account", &[RESEND], Account, 3, "3/hour"),
        rule("password-reset-request-ip", &[RESET_REQUEST], Ip, 5, "5/hour"),
        rule("password-reset-request-account", &[RESET_REQUEST], Account, 3, "3/hour"),
        rule("password-reset", &["POST /api/v1/auth/reset-password"], Ip, 10, "10/hour"),
        rule("password-change", &["POST /api/v1/auth/change-password"], User, 5, "5/hour"),
        rule("refresh", &["POST /api/v1/auth/refresh"], Ip, 60, "60/min"),
        rule(
            "sessions",
            &[
                "GET /api/v1/auth/sessions",
                "DELETE /api/v1/auth/sessions/{id}",
                "DELETE /api/v1/auth/sessions/others/revoke",
                "DELETE /api/v1/auth/sessions/all/revoke",
            ],
            User,
            30,
            "30/min",
        ),
        rule(
            "token-rotation",
            &["POST /api/v1/users/{user_id}/token-rotations", "POST /api/v1/admin/token-rotations"],
            User,
            10,
            "10/hour",
        ),
        rule("provider-create", &["POST /api/v1/providers"], User, 10, "10/hour"),
        rule(
            "provider-authorize",
            &[
                "POST /api/v1/providers/{id}/authorization",
                "PATCH /api/v1/providers/{id}/authorization",
                "POST /api/v1/providers/{id}/credentials",
            ],
            UserProvider,
            10,
            "10/hour",
        ),
        rule("provider-callback", &["GET /api/v1/oauth/{provider_key}/callback"], Ip, 20, "10/min"),
        rule("provider-sync", &["POST /api/v1/providers/{id}/sync"], UserProvider, 5, "12/hour"),
        rule("imports", &["POST /api/v1/imports"], User, 10, "30/hour"),
        rule("api-reads", &["GET /api/v1/*"], User, 300, "300/min"),
        rule(
            "api-writes",
            &["POST /api/v1/*", "PUT /api/v1/*", "PATCH /api/v1/*", "DELETE /api/v1/*"],
            User,
            60,
            "60/min",
        ),
    ]
}

/// Parses `count/period`: `5/min`, `5/1m`, `100/s`, `1/10m`, `20/hour`, `3/day`.
pub fn parse_rate(text: &str) -> Result<(u32, Duration), String> {
    let (count, period) =
        text.split_once('/').ok_or_else(|| format!("rate {text:?} is not count/period (such as 5/min)"))?;
    let count: u32 = count.trim().parse().map_err(|_| format!("rate {text:?}: the count must be a whole number"))?;
    let period = period.trim();
    let with_amount =
        if period.starts_with(|c: char| c.is_ascii_digit()) { period.to_owned() } else { format!("1{period}") };
    let period = humantime::parse_duration(&with_amount)
        .map_err(|_| format!("rate {text:?}: the period must be a duration such as s, min, hour, 10m"))?;
    if count == 0 || period.is_zero() {
        return Err(format!("rate {text:?} must be more than zero"));
    }
    Ok((count, period))
}

impl RateLimitConfig {
    /// The effective rules table: the built-in rules changed and extended by `rules`, without the disabled
    /// ones. Every broken entry is reported.
    pub fn effective_rules(&self) -> Result<Vec<RateLimitRule>, Vec<String>> {
        let mut table = default_rules();
        let mut problems = Vec::new();
        for (position, change) in self.rules.iter().enumerate() {
            if self.rules[..position].iter().any(|earlier| earlier.name == change.name) {
                problems.push(format!("rule {:?} is given twice", change.name));
                continue;
            }
            match table.iter_mut().find(|rule| rule.name == change.name) {
                Some(rule) => {
                    let RuleConfig { name: _, routes, scope, burst, rate, enabled } = change.clone();
                    rule.routes = routes.or(rule.routes.take());
                    rule.scope = scope.or(rule.scope.take());
                    rule.burst = burst.or(rule.burst);
                    rule.rate = rate.or(rule.rate.take());
                    rule.enabled = enabled.or(rule.enabled);
                }
                None => table.push(change.clone()),
            }
        }
        let mut rules = Vec::new();
        for entry in &table {
            match compile(entry) {
                Ok(Some(rule)) => rules.push(rule),
                Ok(None) => {}
                Err(problem) => problems.push(format!("rule {:?}: {problem}", entry.name)),
            }
        }
        if problems.is_empty() { Ok(rules) } else { Err(problems) }
    }

    /// Every broken `[rate_limit]` setting, as (key path, message).
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        if self.redis_timeout.is_zero() || self.redis_timeout > Duration::from_secs(5) {
            problems.push(("rate_limit.redis_timeout", "must be between 1ms and 5s: requests wait this long".into()));
        }
        let prefix_ok = !self.redis_key_prefix.is_empty()
            && self.redis_key_prefix.len() <= 64
            && !self.redis_key_prefix.contains(['{', '}', ' ']);
        if !prefix_ok {
            problems.push(("rate_limit.redis_key_prefix", "must be 1-64 characters without braces or spaces".into()));
        }
        if self.max_keys < 1_000 {
            problems.push(("rate_limit.max_keys", "must be at least 1000".into()));
        }
        if let Err(rules) = self.effective_rules() {
            problems.extend(rules.into_iter().map(|problem| ("rate_limit.rules", problem)));
        }
        problems
    }
}

/// A table entry as a rule; `None` when disabled.
fn compile(entry: &RuleConfig) -> Result<Option<RateLimitRule>, String> {
    let name_ok = (1..=64).contains(&entry.name.len())
        && entry
            .name
            .bytes()
            .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || matches!(byte, b'-' | b'_'));
    if !name_ok {
        return Err("the name must be 1-64 characters of a-z 0-9 - _".into());
    }
    let missing = |field: &str| format!("{field} is required for a rule that is not built in");
    let routes = entry.routes.as_ref().ok_or_else(|| missing("routes"))?;
    if routes.is_empty() {
        return Err("routes must name at least one route".into());
    }
    let routes = routes
        .iter()
        .map(|route| RoutePattern::parse(route).map_err(|error| error.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    let scope_name = entry.scope.as_deref().ok_or_else(|| missing("scope"))?;
    let scope = RateLimitScope::from_name(scope_name)
        .ok_or_else(|| format!("unknown scope {scope_name:?} (use ip, user, user_provider, global or account)"))?;
    let burst = entry.burst.ok_or_else(|| missing("burst"))?;
    let (count, period) = parse_rate(entry.rate.as_deref().ok_or_else(|| missing("rate"))?)?;
    let policy = BucketPolicy::new(burst, count, period).map_err(|error| error.to_string())?;
    if entry.enabled == Some(false) {
        return Ok(None);
    }
    Ok(Some(RateLimitRule { name: entry.name.clone(), routes, scope, policy }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(name: &str) -> RuleConfig {
        RuleConfig { name: name.to_owned(), routes: None, scope: None, burst: None, rate: None, enabled: None }
    }

    #[test]
    fn the_built_in_table_is_valid_and_login_is_20_then_5_a_minute_per_address() {
        let rules = RateLimitConfig::default().effective_rules().expect("valid defaults");
        let login = rules.iter().find(|rule| rule.name == "login-ip").expect("login rule");
        assert_eq!(login.scope, RateLimitScope::Ip);
        assert_eq!(login.policy, BucketPolicy::new(20, 5, Duration::from_secs(60)).expect("policy"));
        assert!(rules.iter().any(|rule| rule.scope == RateLimitScope::Account));
    }

    #[test]
    fn rates_read_like_people_write_them() {
        assert_eq!(parse_rate("5/min"), Ok((5, Duration::from_secs(60))));
        assert_eq!(parse_rate("5/1m"), Ok((5, Duration::from_secs(60))));
        assert_eq!(parse_rate("100/s"), Ok((100, Duration::from_secs(1))));
        assert_eq!(parse_rate(" 1 / 10m "), Ok((1, Duration::from_secs(600))));
        assert_eq!(parse_rate("20/hour"), Ok((20, Duration::from_secs(3_600))));
        for bad in ["5", "0/min", "5/0s", "-1/min", "5/fortnight", "x/min"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn changes_apply_by_name_and_new_rules_need_every_field() {
        let config = RateLimitConfig {
            rules: vec![
                RuleConfig { burst: Some(50), ..change("login-ip") },
                RuleConfig { enabled: Some(false), ..change("api-reads") },
                RuleConfig {
                    routes: Some(vec!["POST /api/v1/auth/register".into()]),
                    scope: Some("global".into()),
                    burst: Some(100),
                    rate: Some("100/hour".into()),
                    ..change("register-global")
                },
            ],
            ..RateLimitConfig::default()
        };
        let rules = config.effective_rules().expect("valid");
        assert_eq!(rules.iter().find(|rule| rule.name == "login-ip").map(|rule| rule.policy.burst()), Some(50));
        assert!(rules.iter().all(|rule| rule.name != "api-reads"));
        assert!(rules.iter().any(|rule| rule.name == "register-global" && rule.scope == RateLimitScope::Global));
    }

    #[test]
    fn rules_come_from_toml_and_the_policy_from_the_environment() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("dashtam.toml");
        std::fs::write(
            &path,
            "[rate_limit]\nredis_timeout = \"50ms\"\n\n[[rate_limit.rules]]\nname = \"login-ip\"\nburst = 50\n\n\
             [[rate_limit.rules]]\nname = \"register-global\"\nroutes = [\"POST /api/v1/auth/register\"]\n\
             scope = \"global\"\nburst = 100\nrate = \"100/hour\"\n",
        )
        .expect("write");
        let environment = [("DASHTAM_RATE_LIMIT__FAILURE_POLICY".to_owned(), "closed".to_owned())];
        let config = crate::Config::load_from(Some(&path), environment).expect("valid");
        assert_eq!(config.rate_limit.failure_policy, FailurePolicy::Closed);
        assert_eq!(config.rate_limit.redis_timeout, Duration::from_millis(50));
        let rules = config.rate_limit.effective_rules().expect("valid rules");
        assert_eq!(rules.iter().find(|rule| rule.name == "login-ip").map(|rule| rule.policy.burst()), Some(50));
        assert!(rules.iter().any(|rule| rule.name == "register-global"));

        std::fs::write(&path, "[[rate_limit.rules]]\nname = \"login-ip\"\nscope = \"galaxy\"\n").expect("write");
        let refused = crate::Config::load_from(Some(&path), []).expect_err("refused");
        assert!(
            refused
                .problems()
                .iter()
                .any(|problem| problem.starts_with("DASHTAM_RATE_LIMIT__RULES (rate_limit.rules): ")
                    && problem.contains("galaxy")),
            "{:?}",
            refused.problems()
        );
    }

    #[test]
    fn broken_rules_are_each_named() {
        let config = RateLimitConfig {
            rules: vec![
                RuleConfig { burst: Some(0), ..change("login-ip") },
                RuleConfig { scope: Some("planet".into()), ..change("refresh") },
                RuleConfig { routes: Some(vec!["/api/v1/x".into()]), ..change("imports") },
                RuleConfig { rate: Some("0/min".into()), ..change("sessions") },
                change("brand-new"),
                change("Bad Name"),
                change("refresh"),
            ],
            ..RateLimitConfig::default()
        };
        let problems = config.effective_rules().expect_err("refused");
        let joined = problems.join("\n");
        for needle in ["login-ip", "planet", "/api/v1/x", "0/min", "brand-new", "Bad Name", "given twice"] {
            assert!(joined.contains(needle), "{needle} missing from:\n{joined}");
        }
    }
}
