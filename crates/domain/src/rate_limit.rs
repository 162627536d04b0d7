//! Rate limiting: the rules (which routes, keyed by what, how many), the bucket arithmetic both backends
//! share, and the [`RateLimiter`] port the in-process and Redis backends implement.
//!
//! The algorithm is GCRA (the generic cell rate algorithm), a token bucket stored as one number: the
//! *theoretical arrival time* (TAT), the instant at which the bucket would be full again. A bucket of `burst`
//! tokens refilled one token every `interval` admits a request at `now` when `max(TAT, now) + interval −
//! burst·interval ≤ now`, and then moves its TAT forward by one interval. A refused request changes nothing.
//! Everything is integer arithmetic on nanoseconds (the Redis script uses microseconds, the resolution of
//! Redis `TIME`, because Lua numbers are doubles), so no rounding ever lets an extra request through.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::ports::BoxError;

const NANOS_PER_SECOND: u64 = 1_000_000_000;

/// The largest bucket (burst × interval) accepted: about 146 years, far beyond any sensible rule, and small
/// enough that `now + capacity` cannot overflow a `u64` of Unix nanoseconds (nor a double of microseconds in
/// the Redis script).
const MAX_CAPACITY_NANOS: u64 = 1 << 62;

/// What a rule counts requests by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RateLimitScope {
    /// The client's address (the socket peer, or what trusted proxies report).
    Ip,
    /// The user of a verified access token; anonymous requests are counted by address instead.
    User,
    /// The user together with the provider named in the path (`{id}` or `{provider_id}`).
    UserProvider,
    /// Everyone together: one bucket for the whole installation.
    Global,
    /// The account a request targets: the (normalised, hashed) `email` of its JSON body. Used for login and
    /// the email-sending endpoints, so many addresses cannot gang up on one account.
    Account,
}

impl RateLimitScope {
    /// The name used in configuration, logs and the violations table.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ip => "ip",
            Self::User => "user",
            Self::UserProvider => "user_provider",
            Self::Global => "global",
            Self::Account => "account",
        }
    }

    /// The scope with this name (as stored and configured).
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Ip, Self::User, Self::UserProvider, Self::Global, Self::Account]
            .into_iter()
            .find(|scope| scope.as_str() == name)
    }
}

impl fmt::Display for RateLimitScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happens when the shared backend (Redis) cannot be asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailurePolicy {
    /// Let the request through unlimited (the default: an outage of Redis is not an outage of the API).
    #[default]
    Open,
    /// Refuse the request with `503`.
    Closed,
}

/// Why a bucket's size or rate was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// A bucket must hold at least one request.
    #[error("burst must be at least 1")]
    ZeroBurst,
    /// The refill must add at least one token in a non-zero period.
    #[error("rate must be at least one request per non-zero period")]
    ZeroRate,
    /// The bucket would take longer than a century to refill.
    #[error("burst × (period / count) is too large")]
    TooLarge,
}

/// A bucket's size and refill speed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BucketPolicy {
    burst: u32,
    interval_nanos: u64,
}

impl BucketPolicy {
    /// A bucket of `burst` tokens that regains `count` tokens every `period`. The time per token is
    /// rounded up to a whole nanosecond, which can only make the limit (imperceptibly) stricter.
    pub fn new(burst: u32, count: u32, period: Duration) -> Result<Self, PolicyError> {
        if burst == 0 {
            return Err(PolicyError::ZeroBurst);
        }
        let period_nanos = u64::try_from(period.as_nanos()).map_err(|_| PolicyError::TooLarge)?;
        if count == 0 || period_nanos == 0 {
            return Err(PolicyError::ZeroRate);
        }
        let interval_nanos = period_nanos.div_ceil(u64::from(count));
        match interval_nanos.checked_mul(u64::from(burst)) {
            Some(capacity) if capacity <= MAX_CAPACITY_NANOS => Ok(Self { burst, interval_nanos }),
            _ => Err(PolicyError::TooLarge),
        }
    }

    /// How many requests a full bucket admits at once (`X-RateLimit-Limit`).
    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// The time one token takes to come back, in nanoseconds.
    pub fn interval_nanos(&self) -> u64 {
        self.interval_nanos
    }

    /// The time one token takes to come back, in whole microseconds rounded up (the Redis script's unit).
    pub fn interval_micros(&self) -> u64 {
        self.interval_nanos.div_ceil(1_000)
    }

    /// The time an empty bucket takes to fill up, in nanoseconds.
    pub fn capacity_nanos(&self) -> u64 {
        // Bounded by MAX_CAPACITY_NANOS at construction.
        self.interval_nanos * u64::from(self.burst)
    }

    /// One GCRA step at `now` (Unix nanoseconds) against the bucket's stored TAT (`None` for a bucket never
    /// used or forgotten, which is the same as a full one). Returns the decision and, when the request is
    /// admitted, the TAT to store.
    pub fn check(&self, stored_tat: Option<u64>, now: u64) -> (RateLimitDecision, Option<u64>) {
        let interval = self.interval_nanos;
        let capacity = self.capacity_nanos();
        let tat = stored_tat.map_or(now, |stored| stored.max(now));
        let new_tat = tat.saturating_add(interval);
        // The earliest instant this request could be admitted.
        let allow_at = new_tat.saturating_sub(capacity);
        if now < allow_at {
            let decision = RateLimitDecision::from_bucket(self, Verdict::Denied, tat - now, allow_at - now, 1);
            return (decision, None);
        }
        let decision = RateLimitDecision::from_bucket(self, Verdict::Admitted, new_tat - now, 0, 1);
        (decision, Some(new_tat))
    }
}

/// Whether a request was admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// It may proceed; a token was taken.
    Admitted,
    /// It must be refused; nothing was taken.
    Denied,
}

/// The outcome of one check against one bucket, with what the `X-RateLimit-*` and `Retry-After` headers say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitDecision {
    /// Admitted or denied.
    pub verdict: Verdict,
    /// The bucket's size (`X-RateLimit-Limit`).
    pub limit: u32,
    /// Requests that would still be admitted right now (`X-RateLimit-Remaining`).
    pub remaining: u32,
    /// Whole seconds, rounded up, until the bucket is full again (`X-RateLimit-Reset`).
    pub reset_seconds: u64,
    /// For a denied request, whole seconds, rounded up and never below 1, until a retry can succeed
    /// (`Retry-After`); `None` when admitted.
    pub retry_after_seconds: Option<u64>,
}

impl RateLimitDecision {
    /// Builds a decision from a bucket's raw figures, each in units of `unit_nanos` nanoseconds (1 for the
    /// in-process backend, 1 000 for Redis): `until_full` is TAT − now after the check, `retry_in` how long
    /// until a denied request could be admitted.
    pub fn from_bucket(
        policy: &BucketPolicy,
        verdict: Verdict,
        until_full: u64,
        retry_in: u64,
        unit_nanos: u64,
    ) -> Self {
        let interval = if unit_nanos == 1 { policy.interval_nanos() } else { policy.interval_micros() };
        let capacity = interval.saturating_mul(u64::from(policy.burst));
        let remaining = match verdict {
            Verdict::Admitted => capacity.saturating_sub(until_full) / interval.max(1),
            Verdict::Denied => 0,
        };
        let to_seconds = |units: u64| units.saturating_mul(unit_nanos).div_ceil(NANOS_PER_SECOND);
        Self {
            verdict,
            limit: policy.burst,
            remaining: u32::try_from(remaining).unwrap_or(policy.burst).min(policy.burst),
            reset_seconds: to_seconds(until_full),
            retry_after_seconds: match verdict {
                Verdict::Admitted => None,
                Verdict::Denied => Some(to_seconds(retry_in).max(1)),
            },
        }
    }

    /// Whether the request may proceed.
    pub fn is_admitted(&self) -> bool {
        self.verdict == Verdict::Admitted
    }
}

/// Counts requests in buckets: in-process for one instance, Redis for many.
#[async_trait]
pub trait RateLimiter: Send + Sync + fmt::Debug {
    /// `memory` or `redis`, for logs and metrics.
    fn backend(&self) -> &'static str;

    /// Takes a token from the bucket `key` (created full on first use) if one is there, atomically.
    async fn check(&self, key: &str, policy: &BucketPolicy) -> Result<RateLimitDecision, BoxError>;
}

/// Which routes a rule covers: `METHOD /path`, where the method may be `*` (any) and the path is a route
/// template (`/api/v1/providers/{id}/sync`) or a prefix ending in `/*` (`/api/v1/*`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RoutePattern {
    method: Option<String>,
    path: PathPattern,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum PathPattern {
    Template(String),
    Prefix(String),
}

/// A route pattern that is not `METHOD /path`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{pattern:?} is not a route such as \"POST /api/v1/auth/login\": {reason}")]
pub struct RoutePatternError {
    pattern: String,
    reason: &'static str,
}

/// How closely a pattern matches a route; a greater value is more specific.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Specificity {
    /// An exact template beats any prefix; a longer prefix beats a shorter one.
    path: usize,
    /// A named method beats `*`.
    method: bool,
}

const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

impl RoutePattern {
    /// Parses `METHOD /path`.
    pub fn parse(text: &str) -> Result<Self, RoutePatternError> {
        let refuse = |reason| RoutePatternError { pattern: text.to_owned(), reason };
        let (method, path) = text.trim().split_once(' ').ok_or_else(|| refuse("expected METHOD and path"))?;
        let path = path.trim();
        let method = match method {
            "*" => None,
            named if METHODS.contains(&named) => Some(named.to_owned()),
            _ => return Err(refuse("the method must be an upper-case HTTP method or *")),
        };
        if !path.starts_with('/') {
            return Err(refuse("the path must start with /"));
        }
        if path.chars().any(|c| c.is_whitespace() || c.is_control() || matches!(c, '?' | '#')) {
            return Err(refuse("the path must not contain spaces, a query or a fragment"));
        }
        if path.len() > 1 && path.ends_with('/') {
            return Err(refuse("the path must not end with / (templates never do)"));
        }
        let (body, prefix) = match path.strip_suffix("/*") {
            Some(stem) => (stem, true),
            None => (path, false),
        };
        for segment in body.split('/').skip(1) {
            let braces = segment.matches(['{', '}']).count();
            let is_parameter = segment.starts_with('{') && segment.ends_with('}') && segment.len() > 2;
            if segment.contains('*') || (braces > 0 && !(is_parameter && braces == 2)) {
                return Err(refuse("segments are literal, {name}, or a final /* for a prefix"));
            }
            if segment.is_empty() && !(prefix && body.is_empty()) {
                return Err(refuse("empty path segment"));
            }
        }
        let path =
            if prefix { PathPattern::Prefix(format!("{body}/")) } else { PathPattern::Template(path.to_owned()) };
        Ok(Self { method, path })
    }

    /// How specifically this pattern covers `method` on the route `template`, or `None` when it does not.
    /// `HEAD` is answered by `GET` handlers, so a `GET` pattern covers it too.
    pub fn matches(&self, method: &str, template: &str) -> Option<Specificity> {
        let method_matches = match &self.method {
            None => true,
            Some(named) => named == method || (named == "GET" && method == "HEAD"),
        };
        if !method_matches {
            return None;
        }
        let path = match &self.path {
            PathPattern::Template(exact) => (exact == template).then_some(usize::MAX)?,
            PathPattern::Prefix(prefix) => template.starts_with(prefix.as_str()).then_some(prefix.len())?,
        };
        Some(Specificity { path, method: self.method.is_some() })
    }
}

impl fmt::Display for RoutePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let method = self.method.as_deref().unwrap_or("*");
        match &self.path {
            PathPattern::Template(path) => write!(f, "{method} {path}"),
            PathPattern::Prefix(prefix) => write!(f, "{method} {prefix}*"),
        }
    }
}

/// One rate-limit rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitRule {
    /// A short unique name (`login-ip`), used in bucket keys, metrics and violation records.
    pub name: String,
    /// The routes it covers. A request is governed by the rules whose pattern matches it most specifically,
    /// so `POST /api/v1/auth/login` rules replace, rather than add to, a general `POST /api/v1/*` rule.
    pub routes: Vec<RoutePattern>,
    /// What it counts by.
    pub scope: RateLimitScope,
    /// Bucket size and refill.
    pub policy: BucketPolicy,
}

impl RateLimitRule {
    /// How specifically this rule covers the request, if at all.
    pub fn specificity(&self, method: &str, template: &str) -> Option<Specificity> {
        self.routes.iter().filter_map(|route| route.matches(method, template)).max()
    }
}

/// The rules that govern `method` on `template`: those matching it most specifically, in table order.
pub fn governing_rules<'a>(rules: &'a [RateLimitRule], method: &str, template: &str) -> Vec<&'a RateLimitRule> {
    let matched: Vec<(Specificity, &RateLimitRule)> =
        rules.iter().filter_map(|rule| Some((rule.specificity(method, template)?, rule))).collect();
    let Some(best) = matched.iter().map(|(specificity, _)| *specificity).max() else {
        return Vec::new();
    };
    matched.into_iter().filter(|(specificity, _)| *specificity == best).map(|(_, rule)| rule).collect()
}

/// A refused request, as recorded for abuse review.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitViolation {
    /// Its id (UUIDv7).
    pub id: Uuid,
    /// When it was refused.
    pub occurred_at: OffsetDateTime,
    /// The rule that refused it.
    pub rule: String,
    /// `METHOD /route/template`.
    pub route: String,
    /// The rule's scope.
    pub scope: RateLimitScope,
    /// What the bucket was keyed by: an address, a user id, a user and provider, or an account hash.
    pub identifier: String,
    /// The client's address, when known.
    pub ip_address: Option<IpAddr>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = NANOS_PER_SECOND;
    const NOW: u64 = 1_800_000_000 * SECOND;

    fn policy(burst: u32, count: u32, period_seconds: u64) -> BucketPolicy {
        BucketPolicy::new(burst, count, Duration::from_secs(period_seconds)).expect("valid policy")
    }

    /// Runs `requests` checks at `now`, threading the stored TAT, and returns the decisions.
    fn run(policy: &BucketPolicy, tat: &mut Option<u64>, now: u64, requests: usize) -> Vec<RateLimitDecision> {
        (0..requests)
            .map(|_| {
                let (decision, new_tat) = policy.check(*tat, now);
                if new_tat.is_some() {
                    *tat = new_tat;
                }
                decision
            })
            .collect()
    }

    #[test]
    fn a_full_bucket_admits_exactly_its_burst_then_refuses() {
        let login = policy(20, 5, 60);
        let mut tat = None;
        let decisions = run(&login, &mut tat, NOW, 21);
        for (index, decision) in decisions[..20].iter().enumerate() {
            assert!(decision.is_admitted());
            assert_eq!(decision.limit, 20);
            assert_eq!(decision.remaining, 19 - u32::try_from(index).expect("small"));
        }
        let refused = decisions[20];
        assert_eq!(refused.verdict, Verdict::Denied);
        assert_eq!(refused.remaining, 0);
        // One token comes back every 12 s; the bucket is full again after 20 × 12 s.
        assert_eq!(refused.retry_after_seconds, Some(12));
        assert_eq!(refused.reset_seconds, 240);
    }

    #[test]
    fn tokens_come_back_one_interval_at_a_time() {
        let login = policy(2, 1, 10);
        let mut tat = None;
        run(&login, &mut tat, NOW, 2);
        assert!(!run(&login, &mut tat, NOW + 10 * SECOND - 1, 1)[0].is_admitted());
        let back = run(&login, &mut tat, NOW + 10 * SECOND, 2);
        assert!(back[0].is_admitted());
        assert_eq!(back[0].remaining, 0);
        assert!(!back[1].is_admitted());
        // Long idle: never more than the burst.
        let after_idle = run(&login, &mut tat, NOW + 3_600 * SECOND, 3);
        assert_eq!(after_idle.iter().filter(|decision| decision.is_admitted()).count(), 2);
    }

    #[test]
    fn refusals_take_nothing() {
        let rule = policy(1, 1, 10);
        let mut tat = None;
        run(&rule, &mut tat, NOW, 1);
        let stored = tat;
        run(&rule, &mut tat, NOW + SECOND, 100);
        assert_eq!(tat, stored);
        assert!(run(&rule, &mut tat, NOW + 10 * SECOND, 1)[0].is_admitted());
    }

    #[test]
    fn retry_after_is_never_zero_and_rounds_up() {
        let fast = policy(1, 1000, 1);
        let mut tat = None;
        run(&fast, &mut tat, NOW, 1);
        // A token returns within a millisecond, but Retry-After is whole seconds, at least 1.
        assert_eq!(run(&fast, &mut tat, NOW, 1)[0].retry_after_seconds, Some(1));
        let slow = policy(1, 2, 3);
        let mut tat = None;
        run(&slow, &mut tat, NOW, 1);
        // 1.5 s until the next token: 2 s.
        assert_eq!(run(&slow, &mut tat, NOW, 1)[0].retry_after_seconds, Some(2));
        assert_eq!(run(&slow, &mut tat, NOW + 1_499_999_999, 1)[0].retry_after_seconds, Some(1));
    }

    #[test]
    fn redis_units_give_the_same_headers() {
        let login = policy(20, 5, 60);
        let nanos = RateLimitDecision::from_bucket(&login, Verdict::Admitted, 24 * SECOND, 0, 1);
        let micros = RateLimitDecision::from_bucket(&login, Verdict::Admitted, 24_000_000, 0, 1_000);
        assert_eq!(nanos, micros);
        assert_eq!(nanos.remaining, 18);
        assert_eq!(nanos.reset_seconds, 24);
    }

    #[test]
    fn policies_refuse_empty_or_absurd_buckets() {
        assert_eq!(BucketPolicy::new(0, 1, Duration::from_secs(1)), Err(PolicyError::ZeroBurst));
        assert_eq!(BucketPolicy::new(1, 0, Duration::from_secs(1)), Err(PolicyError::ZeroRate));
        assert_eq!(BucketPolicy::new(1, 1, Duration::ZERO), Err(PolicyError::ZeroRate));
        assert_eq!(BucketPolicy::new(u32::MAX, 1, Duration::from_secs(86_400 * 365)), Err(PolicyError::TooLarge));
        // 1 per 3 ns → 3 ns; 2 per 3 ns → 2 ns (rounded up: stricter, never looser).
        assert_eq!(BucketPolicy::new(1, 2, Duration::from_nanos(3)).map(|p| p.interval_nanos()), Ok(2));
    }

    #[test]
    fn patterns_parse_and_match_by_template() {
        let login = RoutePattern::parse("POST /api/v1/auth/login").expect("valid");
        assert!(login.matches("POST", "/api/v1/auth/login").is_some());
        assert!(login.matches("GET", "/api/v1/auth/login").is_none());
        assert!(login.matches("POST", "/api/v1/auth/login/").is_none());
        let reads = RoutePattern::parse("GET /api/v1/*").expect("valid");
        assert!(reads.matches("HEAD", "/api/v1/accounts/{id}").is_some());
        assert!(reads.matches("GET", "/health").is_none());
        let sync = RoutePattern::parse("* /api/v1/providers/{id}/sync").expect("valid");
        assert!(sync.matches("POST", "/api/v1/providers/{id}/sync").is_some());
        assert_eq!(sync.to_string(), "* /api/v1/providers/{id}/sync");
        for bad in [
            "/api/v1/auth/login",
            "post /api/v1/auth/login",
            "POST api/v1",
            "POST /api/v1/",
            "POST /api/v1?x=1",
            "POST /api/*/x",
            "POST /api/{id",
            "POST /api//x",
            "FETCH /x",
        ] {
            assert!(RoutePattern::parse(bad).is_err(), "{bad} was accepted");
        }
        assert!(RoutePattern::parse("* /*").is_ok());
    }

    #[test]
    fn the_most_specific_rules_govern() {
        let rule = |name: &str, routes: &[&str]| RateLimitRule {
            name: name.to_owned(),
            routes: routes.iter().map(|route| RoutePattern::parse(route).expect("valid")).collect(),
            scope: RateLimitScope::Ip,
            policy: policy(1, 1, 1),
        };
        let rules = [
            rule("writes", &["POST /api/v1/*", "DELETE /api/v1/*"]),
            rule("any", &["* /api/*"]),
            rule("login-ip", &["POST /api/v1/auth/login"]),
            rule("login-account", &["POST /api/v1/auth/login"]),
        ];
        let names = |method, template| -> Vec<&str> {
            governing_rules(&rules, method, template).iter().map(|rule| rule.name.as_str()).collect()
        };
        assert_eq!(names("POST", "/api/v1/auth/login"), ["login-ip", "login-account"]);
        assert_eq!(names("POST", "/api/v1/auth/logout"), ["writes"]);
        assert_eq!(names("GET", "/api/v1/accounts"), ["any"]);
        assert!(names("GET", "/health").is_empty());
    }
}
