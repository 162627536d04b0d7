//! The rate-limit middleware (API.md §0): every request to a limited route takes a token from the bucket of
//! each rule that governs it, chosen by the router's route template and the method — never by the raw path,
//! so a trailing slash, a different case or a query string cannot reach a route around its rule.
//!
//! Admitted responses carry `X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset` of the
//! tightest bucket; a refused request is `429 rate_limit_exceeded` with `Retry-After` (whole seconds, at
//! least 1) and `retry_after` in the body, and is recorded in the violations table by a background writer.
//! When the backend cannot be asked, the failure policy decides: let the request through (open) or answer
//! `503` (closed); either way the failure is counted and logged at most once per [`FAILURE_LOG_INTERVAL`].

mod violations;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{FromRequestParts, MatchedPath, RawPathParams, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use dashtam_domain::Email;
use dashtam_domain::audit::AuditLog;
use dashtam_domain::ports::{BoxError, Store};
use dashtam_domain::rate_limit::{
    FailurePolicy, RateLimitDecision, RateLimitRule, RateLimitScope, RateLimitViolation, RateLimiter, governing_rules,
};
use prometheus_client::metrics::counter::Counter;
use serde::Deserialize;
use sha2::{Digest, Sha256};

pub use self::violations::DEFAULT_QUEUE_CAPACITY;
use self::violations::ViolationRecorder;
use crate::auth::{VerifiedAccessGrant, bearer_token_of};
use crate::client_ip::ClientIp;
use crate::metrics::Metrics;
use crate::problem::Problem;
use crate::state::AppState;

/// `X-RateLimit-Limit`: the bucket's size.
pub const LIMIT_HEADER: HeaderName = HeaderName::from_static("x-ratelimit-limit");
/// `X-RateLimit-Remaining`: requests still admitted now.
pub const REMAINING_HEADER: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
/// `X-RateLimit-Reset`: seconds until the bucket is full again.
pub const RESET_HEADER: HeaderName = HeaderName::from_static("x-ratelimit-reset");

/// A backend failure is logged at most this often; the ones in between are counted into the next line.
pub const FAILURE_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Routes that are never limited, whatever the rules say (API.md §1): monitoring must keep working while a
/// client is being throttled.
const OPERATIONS_ROUTES: [&str; 4] = ["/health", "/ready", "/metrics", "/openapi.json"];

/// How the limiter is configured.
#[derive(Debug, Clone)]
pub struct RateLimitSettings {
    /// Off: every request passes unlimited and without headers.
    pub enabled: bool,
    /// What to do when the backend cannot be asked.
    pub failure_policy: FailurePolicy,
    /// The rules, in table order.
    pub rules: Vec<RateLimitRule>,
    /// Violations waiting to be written beyond this many are dropped (and counted).
    pub violation_queue: usize,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            failure_policy: FailurePolicy::Open,
            rules: Vec::new(),
            violation_queue: DEFAULT_QUEUE_CAPACITY,
        }
    }
}

/// The rules that govern one route, by index into the rule table.
type GoverningRules = Arc<[usize]>;

/// Per route template, the rules governing each method.
type RouteRules = HashMap<Box<str>, Vec<(Method, GoverningRules)>>;

/// The rate limiter as the HTTP layer uses it: backend, rules, policy and the violation writer.
#[derive(Debug)]
pub struct RateLimiting {
    settings: RateLimitSettings,
    limiter: Arc<dyn RateLimiter>,
    /// Per route template, the rules governing each method; filled on first use (templates are finite).
    routes: RwLock<RouteRules>,
    /// Per rule, the counters of admitted and denied requests.
    decisions: Vec<(Counter, Counter)>,
    backend_failures: Counter,
    violations: ViolationRecorder,
    failure_log: FailureLog,
}

impl RateLimiting {
    /// Starts the violation writer (on the current Tokio runtime) and prepares the rules' counters.
    pub fn new(
        settings: RateLimitSettings,
        limiter: Arc<dyn RateLimiter>,
        store: Arc<dyn Store>,
        audit: Arc<AuditLog>,
        metrics: &Arc<Metrics>,
    ) -> Self {
        let decisions = settings.rules.iter().map(|rule| metrics.rate_limit_decision_counters(&rule.name)).collect();
        let backend_failures = metrics.rate_limit_backend_failures(limiter.backend());
        let violations = ViolationRecorder::start(store, audit, metrics.clone(), settings.violation_queue);
        Self {
            settings,
            limiter,
            routes: RwLock::new(HashMap::new()),
            decisions,
            backend_failures,
            violations,
            failure_log: FailureLog::new(),
        }
    }

    /// Whether requests are limited at all.
    pub fn is_enabled(&self) -> bool {
        self.settings.enabled
    }

    /// The backend's name.
    pub fn backend(&self) -> &'static str {
        self.limiter.backend()
    }

    /// Indexes of the rules governing `method` on `template`.
    fn governing(&self, method: &Method, template: &str) -> GoverningRules {
        let cached = self
            .routes
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(template)
            .and_then(|methods| methods.iter().find(|(known, _)| known == method).map(|(_, rules)| rules.clone()));
        if let Some(rules) = cached {
            return rules;
        }
        let rules: GoverningRules = governing_rules(&self.settings.rules, method.as_str(), template)
            .into_iter()
            .filter_map(|rule| self.settings.rules.iter().position(|candidate| std::ptr::eq(candidate, rule)))
            .collect();
        // Only standard methods are remembered: any other name is chosen by the client, and remembering it
        // would let clients grow this map without bound.
        let standard =
            [Method::GET, Method::HEAD, Method::POST, Method::PUT, Method::PATCH, Method::DELETE, Method::OPTIONS];
        if standard.contains(method) {
            let mut routes = self.routes.write().unwrap_or_else(PoisonError::into_inner);
            let methods = routes.entry(template.into()).or_default();
            // Another request may have filled it in meanwhile.
            if !methods.iter().any(|(known, _)| known == method) {
                methods.push((method.clone(), rules.clone()));
            }
        }
        rules
    }
}

/// See the module documentation. Runs as a router layer, after routing, so the route template is known.
pub async fn limit_requests(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let limiting = &state.rate_limit;
    if !limiting.settings.enabled {
        return next.run(request).await;
    }
    let Some(matched) = request.extensions().get::<MatchedPath>().cloned() else {
        return next.run(request).await;
    };
    let template = matched.as_str();
    if OPERATIONS_ROUTES.contains(&template) || template == "/docs" || template.starts_with("/docs/") {
        return next.run(request).await;
    }
    let governing = limiting.governing(request.method(), template);
    if governing.is_empty() {
        return next.run(request).await;
    }

    let (mut parts, body) = request.into_parts();
    let mut identities = Identities::new(&parts);
    let needs_account = governing.iter().any(|&index| limiting.settings.rules[index].scope == RateLimitScope::Account);
    let body = if needs_account {
        match buffer_body(body, &parts.headers, state.settings.json_body_limit).await {
            Ok(bytes) => {
                identities.account = Some(account_of(&bytes));
                Body::from(bytes)
            }
            Err(problem) => return problem.into_response(),
        }
    } else {
        body
    };

    let mut tightest: Option<RateLimitDecision> = None;
    for &index in governing.iter() {
        let rule = &limiting.settings.rules[index];
        let Some(identifier) = identities.identify(rule.scope, &mut parts, &state).await else {
            continue;
        };
        let key = format!("{}:{identifier}", rule.name);
        match limiting.limiter.check(&key, &rule.policy).await {
            Ok(decision) if decision.is_admitted() => {
                limiting.decisions[index].0.inc();
                if tightest.is_none_or(|current| is_tighter(&decision, &current)) {
                    tightest = Some(decision);
                }
            }
            Ok(decision) => {
                limiting.decisions[index].1.inc();
                limiting.violations.record(
                    RateLimitViolation {
                        id: uuid::Uuid::now_v7(),
                        occurred_at: state.clock.now(),
                        rule: rule.name.clone(),
                        route: format!("{} {template}", parts.method),
                        scope: rule.scope,
                        identifier,
                        ip_address: identities.client_ip,
                    },
                    crate::context::request_context(&parts),
                );
                return too_many_requests(&decision);
            }
            Err(error) => {
                limiting.backend_failures.inc();
                limiting.failure_log.report(limiting.limiter.backend(), &error);
                if limiting.settings.failure_policy == FailurePolicy::Closed {
                    return Problem::unavailable()
                        .with_header(header::RETRY_AFTER, HeaderValue::from_static("1"))
                        .into_response();
                }
            }
        }
    }

    let mut response = next.run(Request::from_parts(parts, body)).await;
    if let Some(decision) = tightest {
        insert_rate_limit_headers(response.headers_mut(), &decision);
    }
    response
}

/// Whether `candidate` leaves the client less room than `current` (fewer requests, or as few for longer).
fn is_tighter(candidate: &RateLimitDecision, current: &RateLimitDecision) -> bool {
    (candidate.remaining, std::cmp::Reverse(candidate.reset_seconds))
        < (current.remaining, std::cmp::Reverse(current.reset_seconds))
}

fn insert_rate_limit_headers(headers: &mut HeaderMap, decision: &RateLimitDecision) {
    headers.insert(LIMIT_HEADER, HeaderValue::from(decision.limit));
    headers.insert(REMAINING_HEADER, HeaderValue::from(decision.remaining));
    headers.insert(RESET_HEADER, HeaderValue::from(decision.reset_seconds));
}

/// `429 rate_limit_exceeded`.
fn too_many_requests(decision: &RateLimitDecision) -> Response {
    let retry_after = decision.retry_after_seconds.unwrap_or(1).max(1);
    let problem = Problem::new(StatusCode::TOO_MANY_REQUESTS, "rate_limit_exceeded", "Too many requests")
        .with_detail(format!("Too many requests; try again in {retry_after} second(s)."))
        .with_extension("retry_after", serde_json::Value::from(retry_after))
        .with_header(header::RETRY_AFTER, HeaderValue::from(retry_after))
        .with_header(LIMIT_HEADER, HeaderValue::from(decision.limit))
        .with_header(REMAINING_HEADER, HeaderValue::from(decision.remaining))
        .with_header(RESET_HEADER, HeaderValue::from(decision.reset_seconds));
    problem.into_response()
}

/// Who a request is, in each scope's terms, worked out once and only as far as a rule needs.
struct Identities {
    client_ip: Option<IpAddr>,
    /// `None`: not looked at yet; `Some(None)`: no verified access token.
    user: Option<Option<String>>,
    /// The target account (`account:<hash>`), when a rule needs it and the body names one.
    account: Option<Option<String>>,
}

impl Identities {
    fn new(parts: &Parts) -> Self {
        Self {
            client_ip: parts.extensions.get::<ClientIp>().map(|ClientIp(address)| *address),
            user: None,
            account: None,
        }
    }

    /// The bucket identifier for `scope`, or `None` when the request has none (no `email` in the body of an
    /// account-scoped rule: the handler refuses such a request anyway).
    async fn identify(&mut self, scope: RateLimitScope, parts: &mut Parts, state: &AppState) -> Option<String> {
        match scope {
            RateLimitScope::Ip => Some(self.address()),
            RateLimitScope::User => Some(self.user_or_address(parts, state)),
            RateLimitScope::UserProvider => {
                let caller = self.user_or_address(parts, state);
                Some(format!("{caller}:provider:{}", provider_of(parts, state).await))
            }
            RateLimitScope::Global => Some("all".to_owned()),
            RateLimitScope::Account => self.account.clone().flatten(),
        }
    }

    /// `ip:<address>`; IPv6 clients by their /64, which one subscriber usually holds whole.
    fn address(&self) -> String {
        match self.client_ip {
            Some(IpAddr::V4(address)) => format!("ip:{address}"),
            Some(IpAddr::V6(address)) => {
                let network = ipnet::Ipv6Net::new(address, 64).map_or(address, |network| network.network());
                format!("ip:{network}/64")
            }
            None => "ip:unknown".to_owned(),
        }
    }

    /// `user:<id>` for a caller with a valid (signed, unexpired) access token, else the address. The checked
    /// grant is left in the request for `AuthUser`, so the signature is not checked twice.
    fn user_or_address(&mut self, parts: &mut Parts, state: &AppState) -> String {
        let user = self.user.get_or_insert_with(|| {
            let token = bearer_token_of(&parts.headers)?;
            let grant = state.access_tokens.verify(token, state.clock.now()).ok()?;
            parts.extensions.insert(VerifiedAccessGrant(grant));
            Some(format!("user:{}", grant.user_id))
        });
        user.clone().unwrap_or_else(|| self.address())
    }
}

/// The provider a provider route names (`{provider_id}` or `{id}`), canonical so that case cannot make a new
/// bucket; anything that is not a UUID shares one bucket (the handler refuses it anyway).
async fn provider_of(parts: &mut Parts, state: &AppState) -> String {
    let Ok(params) = RawPathParams::from_request_parts(parts, state).await else {
        return "none".to_owned();
    };
    let raw = params
        .iter()
        .find(|(name, _)| *name == "provider_id")
        .or_else(|| params.iter().find(|(name, _)| *name == "id"));
    match raw {
        Some((_, value)) => uuid::Uuid::parse_str(value).map_or_else(|_| "malformed".to_owned(), |id| id.to_string()),
        None => "none".to_owned(),
    }
}

/// Reads the whole body (bounded like every JSON body) so its `email` can be read; the handler gets the
/// same bytes.
async fn buffer_body(body: Body, headers: &HeaderMap, limit: usize) -> Result<bytes::Bytes, Problem> {
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|value| value.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(Problem::payload_too_large());
    }
    axum::body::to_bytes(body, limit).await.map_err(|error| {
        let too_large =
            std::error::Error::source(&error).is_some_and(|source| source.is::<http_body_util::LengthLimitError>());
        if too_large {
            Problem::payload_too_large()
        } else {
            Problem::new(StatusCode::BAD_REQUEST, "unreadable_body", "Unreadable body")
                .with_detail("The request body could not be read.")
        }
    })
}

/// `account:<hash>` of the body's `email`, normalised as accounts are (trimmed, lower-case), so every
/// spelling of one address shares a bucket; the address itself is never kept.
fn account_of(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct EmailField {
        email: String,
    }
    let raw = serde_json::from_slice::<EmailField>(body).ok()?.email;
    let normalised = Email::parse(&raw).map_or_else(|_| raw.trim().to_lowercase(), |email| email.as_str().to_owned());
    let digest = Sha256::digest(normalised.as_bytes());
    Some(format!("account:{}", hex::encode(&digest[..16])))
}

/// Logs backend failures at most once per interval, with how many were not logged in between.
#[derive(Debug)]
struct FailureLog {
    started: Instant,
    /// Milliseconds since `started` of the last line, plus one (0: never).
    last_logged: AtomicU64,
    suppressed: AtomicU64,
}

impl FailureLog {
    fn new() -> Self {
        Self { started: Instant::now(), last_logged: AtomicU64::new(0), suppressed: AtomicU64::new(0) }
    }

    fn report(&self, backend: &str, error: &BoxError) {
        let now = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX).saturating_add(1);
        let last = self.last_logged.load(Ordering::Relaxed);
        let interval = u64::try_from(FAILURE_LOG_INTERVAL.as_millis()).unwrap_or(u64::MAX);
        let due = last == 0 || now.saturating_sub(last) >= interval;
        if due && self.last_logged.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
            let suppressed = self.suppressed.swap(0, Ordering::Relaxed);
            tracing::warn!(backend, %error, suppressed, "rate-limit backend unavailable");
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_are_hashed_after_normalising() {
        let one = account_of(br#"{"email": "  Ada@Example.COM ", "password": "x"}"#);
        let two = account_of(br#"{"password": "y", "email": "ada@example.com"}"#);
        assert_eq!(one, two);
        let Some(one) = one else { panic!("an account") };
        assert!(one.starts_with("account:") && one.len() == "account:".len() + 32);
        assert!(!one.contains("ada"));
        assert_eq!(account_of(br#"{"password": "y"}"#), None);
        assert_eq!(account_of(b"not json"), None);
        assert_eq!(account_of(br#"{"email": 5}"#), None);
    }

    #[test]
    fn the_tightest_decision_is_the_one_with_least_room() {
        let decision = |remaining, reset_seconds| RateLimitDecision {
            verdict: dashtam_domain::rate_limit::Verdict::Admitted,
            limit: 10,
            remaining,
            reset_seconds,
            retry_after_seconds: None,
        };
        assert!(is_tighter(&decision(1, 5), &decision(2, 1)));
        assert!(is_tighter(&decision(1, 9), &decision(1, 5)));
        assert!(!is_tighter(&decision(3, 9), &decision(1, 5)));
    }
}
