//! What every handler can reach.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRef;
use dashtam_domain::Clock;
use dashtam_domain::audit::AuditLog;
use dashtam_domain::auth::AuthService;
use dashtam_domain::imports::ImportService;
use dashtam_domain::ledger_service::LedgerService;
use dashtam_domain::ports::{SharedState, Store};
use dashtam_domain::providers::ProviderService;
use dashtam_domain::sessions::SessionService;
use dashtam_domain::sync::SyncService;
use dashtam_domain::tokens::AccessTokenCodec;

use crate::client_ip::TrustedProxies;
use crate::metrics::Metrics;
use crate::rate_limit::RateLimiting;

/// HTTP-level limits, from configuration.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// A request still running after this is answered `503 request_timeout` and abandoned.
    pub request_timeout: Duration,
    /// How long `/ready` waits for each dependency before calling it unavailable.
    pub readiness_timeout: Duration,
    /// The largest JSON body accepted.
    pub json_body_limit: usize,
    /// Proxies whose `X-Forwarded-For` names the client.
    pub trusted_proxies: TrustedProxies,
    /// Where a finished OAuth connect flow sends the browser (`303`), instead of showing a page.
    pub oauth_success_redirect: Option<String>,
    /// The largest statement file accepted by `POST /imports`.
    pub import_max_bytes: usize,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(30),
            readiness_timeout: Duration::from_secs(2),
            json_body_limit: 64 * 1024,
            trusted_proxies: TrustedProxies::default(),
            oauth_success_redirect: None,
            import_max_bytes: 10 * 1024 * 1024,
        }
    }
}

/// Shared application state: ports and settings, cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    /// Durable storage.
    pub store: Arc<dyn Store>,
    /// Short-lived state shared between instances.
    pub shared_state: Arc<dyn SharedState>,
    /// Authentication.
    pub auth: Arc<AuthService>,
    /// The audit log.
    pub audit: Arc<AuditLog>,
    /// Sessions and breach response.
    pub sessions: Arc<SessionService>,
    /// Provider connections.
    pub providers: Arc<ProviderService>,
    /// Syncs provider data.
    pub sync: Arc<SyncService>,
    /// Statement imports.
    pub imports: Arc<ImportService>,
    /// Reading financial data.
    pub ledger: Arc<LedgerService>,
    /// The source of "now".
    pub clock: Arc<dyn Clock>,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// HTTP limits.
    pub settings: Arc<HttpSettings>,
    /// Rate limiting: backend, rules and violation recording.
    pub rate_limit: Arc<RateLimiting>,
    /// Access-token signature and expiry checks without a database (the rate limiter's `user` scope).
    pub access_tokens: Arc<dyn AccessTokenCodec>,
}

impl FromRef<AppState> for Arc<Metrics> {
    fn from_ref(state: &AppState) -> Self {
        state.metrics.clone()
    }
}
