//! The composition root: picks SQLite or PostgreSQL and in-process or Redis shared state from the
//! configuration, wires the ports into the HTTP application, and serves it until shut down.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use dashtam_adapters::access_tokens::AccessTokens;
use dashtam_adapters::audit_seal::HmacChainSealer;
use dashtam_adapters::device::UserAgentGeoResolver;
use dashtam_adapters::mail::{
    DEFAULT_SEND_TIMEOUT, MailTransport, OutboxOptions, OutboxWaker, OutboxWorker, TemplateComposer,
};
use dashtam_adapters::password_hashing::{Argon2PasswordHasher, PasswordHashingOptions};
use dashtam_adapters::providers::{AlpacaConnector, AlpacaSettings, HttpTimeouts, SchwabConnector, SchwabSettings};
use dashtam_adapters::rate_limit::{MemoryRateLimiter, RedisRateLimiter};
use dashtam_adapters::{MemorySharedState, RedisSharedState};
use dashtam_api::client_ip::TrustedProxies;
use dashtam_api::metrics::Metrics;
use dashtam_api::rate_limit::{RateLimitSettings, RateLimiting};
use dashtam_api::{AppState, HttpSettings};
use dashtam_domain::Clock;
use dashtam_domain::SystemClock;
use dashtam_domain::audit::AuditLog;
use dashtam_domain::auth::{AuthPorts, AuthService, AuthSettings, OutboxSignal};
use dashtam_domain::context::RequestContext;
use dashtam_domain::imports::ImportService;
use dashtam_domain::ports::{SharedState, Store};
use dashtam_domain::providers::{ProviderCatalog, ProviderDeps, ProviderKey, ProviderService};
use dashtam_domain::rate_limit::RateLimiter;
use dashtam_domain::sessions::SessionService;
use dashtam_domain::sync::{SyncSchedule, SyncService};
use dashtam_domain::tokens::{AccessTokenCodec, OpaqueTokenIssuer};
use dashtam_sandbox::{Sandbox, SandboxConfig};
use dashtam_store::{Database, PoolOptions};
use secrecy::{ExposeSecret, SecretString};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use url::Url;

use crate::config::Config;

/// Opens the configured database (creating a SQLite file when needed).
pub async fn open_database(config: &Config) -> anyhow::Result<Database> {
    let options = PoolOptions {
        max_connections: config.database.max_connections,
        acquire_timeout: config.database.acquire_timeout,
    };
    Database::connect(config.database_url().expose_secret(), &options)
        .await
        .context("DASHTAM_DATABASE_URL: cannot open the database")
}

/// The shared-state backend: Redis when `DASHTAM_REDIS_URL` is set, else in-process.
pub fn shared_state(config: &Config) -> anyhow::Result<Arc<dyn SharedState>> {
    Ok(match &config.redis_url {
        Some(url) => {
            Arc::new(RedisSharedState::new(url.expose_secret(), config.redis_timeout).context("DASHTAM_REDIS_URL")?)
        }
        None => Arc::new(MemorySharedState::default()),
    })
}

/// The rate limiter: Redis when `DASHTAM_REDIS_URL` is set (one limit across instances), else in-process.
fn rate_limiting(
    config: &Config,
    clock: &Arc<dyn Clock>,
    store: &Arc<dyn Store>,
    audit: &Arc<AuditLog>,
    metrics: &Arc<Metrics>,
) -> anyhow::Result<RateLimiting> {
    let settings = &config.rate_limit;
    let limiter: Arc<dyn RateLimiter> = match &config.redis_url {
        Some(url) => Arc::new(
            RedisRateLimiter::new(url.expose_secret(), settings.redis_timeout, &settings.redis_key_prefix)
                .context("DASHTAM_REDIS_URL")?,
        ),
        None => Arc::new(MemoryRateLimiter::new(clock.clone(), settings.max_keys)),
    };
    let rules = settings
        .effective_rules()
        .map_err(|problems| anyhow::anyhow!("DASHTAM_RATE_LIMIT__RULES (rate_limit.rules): {}", problems.join("; ")))?;
    let http_settings = RateLimitSettings {
        enabled: settings.enabled,
        failure_policy: settings.failure_policy,
        rules,
        ..RateLimitSettings::default()
    };
    Ok(RateLimiting::new(http_settings, limiter, store.clone(), audit.clone(), metrics))
}

/// The connectors this configuration enables: Schwab when its client credentials are set, Alpaca always
/// (users bring their own keys), and the sandbox — the real Schwab connector pointed at `/sandbox` — when the
/// sandbox is served.
fn provider_catalog(config: &Config, sandbox_secret: &SecretString) -> anyhow::Result<ProviderCatalog> {
    let timeouts = HttpTimeouts {
        connect: config.http.connect_timeout,
        read: config.http.read_timeout,
        total: config.http.total_timeout,
    };
    let mut catalog = ProviderCatalog::new();
    if let (Some(client_id), Some(client_secret)) = (&config.schwab.client_id, &config.schwab.client_secret) {
        let settings = SchwabSettings {
            base_url: config.schwab.base_url.clone(),
            client_id: client_id.clone(),
            client_secret: client_secret.clone(),
            // Schwab documents no PKCE support; its flow relies on the confidential client's secret.
            use_pkce: false,
        };
        let connector = SchwabConnector::new(settings, &timeouts).context("DASHTAM_SCHWAB__*")?;
        catalog = catalog.with_connector(ProviderKey::Schwab, Arc::new(connector));
    }
    let alpaca = AlpacaConnector::new(AlpacaSettings { base_url: config.alpaca.base_url.clone() }, &timeouts)
        .context("DASHTAM_ALPACA__BASE_URL")?;
    catalog = catalog.with_connector(ProviderKey::Alpaca, Arc::new(alpaca));
    if config.sandbox_enabled() {
        let base_url = Url::parse(&format!("{}{SANDBOX_PATH}", public_base(config))).context("DASHTAM_PUBLIC_URL")?;
        let settings = SchwabSettings {
            base_url,
            client_id: SANDBOX_CLIENT_ID.to_owned(),
            client_secret: sandbox_secret.clone(),
            use_pkce: true,
        };
        let connector = SchwabConnector::new(settings, &timeouts).context("the sandbox connector")?;
        catalog = catalog.with_connector(ProviderKey::Sandbox, Arc::new(connector));
    }
    Ok(catalog)
}

/// Everything the server runs: the HTTP state, the mail delivery worker and, when enabled, the sandbox
/// brokerage.
#[derive(Debug)]
pub struct Application {
    /// What handlers share.
    pub state: AppState,
    /// Delivers queued mail; run it beside the server.
    pub outbox: OutboxWorker,
    /// The sandbox brokerage, served under `/sandbox` (section 9 of the API contract).
    pub sandbox: Option<Sandbox>,
}

impl Application {
    /// The HTTP routes: `api` (the API router, usually [`dashtam_api::router`]) plus the sandbox when enabled.
    pub fn router(&self, api: Router) -> Router {
        match &self.sandbox {
            // The sandbox plays an outside brokerage, so it sits beside the API's middleware, not behind it.
            Some(sandbox) => api.nest(SANDBOX_PATH, sandbox.router()),
            None => api,
        }
    }
}

/// Where the sandbox brokerage is served.
const SANDBOX_PATH: &str = "/sandbox";
/// The OAuth client id the `sandbox` provider uses with the sandbox brokerage.
const SANDBOX_CLIENT_ID: &str = "dashtam-sandbox";

/// The sandbox brokerage for this configuration, and the client secret the connector presents to it.
fn sandbox(config: &Config, client_secret: &SecretString, clock: &Arc<dyn Clock>) -> Option<Sandbox> {
    config.sandbox_enabled().then(|| {
        Sandbox::new(SandboxConfig {
            client_id: SANDBOX_CLIENT_ID.to_owned(),
            client_secret: client_secret.clone(),
            redirect_uris: vec![format!("{}/api/v1/oauth/sandbox/callback", public_base(config))],
            clock: clock.clone(),
        })
    })
}

/// The public URL without its trailing slash, which OAuth redirect URIs and the sandbox hang off.
fn public_base(config: &Config) -> String {
    config.public_url().as_str().trim_end_matches('/').to_owned()
}

/// Lets the authentication service wake the mail worker after a commit.
#[derive(Debug)]
struct WakeOutbox(OutboxWaker);

impl OutboxSignal for WakeOutbox {
    fn mail_queued(&self) {
        self.0.wake();
    }
}

/// The configured mail transport.
fn mail_transport(config: &Config) -> anyhow::Result<MailTransport> {
    let transport = match config.mail.transport {
        crate::config::MailTransport::File => MailTransport::file(config.mail_dir(), &config.mail.from),
        crate::config::MailTransport::Smtp => {
            let url = config.mail.smtp_url.as_ref().context("DASHTAM_MAIL__SMTP_URL is required for smtp")?;
            MailTransport::smtp(url, &config.mail.from, DEFAULT_SEND_TIMEOUT)
        }
        crate::config::MailTransport::Log => MailTransport::log(&config.mail.from),
    };
    transport.map_err(|error| anyhow::anyhow!("DASHTAM_MAIL__TRANSPORT (mail.transport): {error}"))
}

/// Builds the application over an open database: keys, password hashing, mail, authentication, audit and
/// sessions, on the wall clock.
pub fn build(config: &Config, database: &Database) -> anyhow::Result<Application> {
    build_with_clock(config, database, Arc::new(SystemClock))
}

/// [`build`] with the source of "now" given (tests move time forward instead of sleeping).
pub fn build_with_clock(config: &Config, database: &Database, clock: Arc<dyn Clock>) -> anyhow::Result<Application> {
    let store = database.store();
    let keys = crate::keys::load(config)?;
    let access_tokens = AccessTokens::new(
        &keys.signing,
        config.public_url().to_string(),
        "dashtam".to_owned(),
        config.auth.access_token_lifetime,
    )
    .map_err(|error| anyhow::anyhow!("DASHTAM_KEYS__SIGNING (keys.signing): {error}"))?;
    let access_tokens: Arc<dyn AccessTokenCodec> = Arc::new(access_tokens);
    let hasher = Argon2PasswordHasher::new(PasswordHashingOptions {
        memory_kib: config.auth.argon2_memory_kib,
        iterations: config.auth.argon2_iterations,
        parallelism: config.auth.argon2_parallelism,
        ..PasswordHashingOptions::default()
    })
    .map_err(|error| anyhow::anyhow!("DASHTAM_AUTH__ARGON2_* (auth.argon2_*): {error}"))?;
    let outbox = OutboxWorker::new(store.clone(), mail_transport(config)?, clock.clone(), OutboxOptions::default());
    let audit =
        Arc::new(AuditLog::new(store.clone(), Arc::new(HmacChainSealer::new(&keys.opaque_tokens)), clock.clone()));
    // The sandbox's client secret is derived, not stored: both ends of the sandbox flow live in this process
    // and every instance derives the same value from the same key.
    let sandbox_secret = SecretString::from(
        URL_SAFE_NO_PAD.encode(*keys.opaque_tokens.derive_key("sandbox-client-secret").expose_secret()),
    );
    let sandbox = sandbox(config, &sandbox_secret, &clock);
    let opaque_tokens: Arc<dyn OpaqueTokenIssuer> = Arc::new(keys.opaque_tokens);
    let shared_state = shared_state(config)?;
    let providers = ProviderService::new(ProviderDeps {
        store: store.clone(),
        audit: audit.clone(),
        clock: clock.clone(),
        shared_state: shared_state.clone(),
        cipher: Arc::new(keys.encryption),
        opaque_tokens: opaque_tokens.clone(),
        catalog: provider_catalog(config, &sandbox_secret)?,
        public_url: public_base(config),
    });
    let auth = AuthService::new(
        AuthPorts {
            store: store.clone(),
            hasher: Arc::new(hasher),
            access_tokens: access_tokens.clone(),
            opaque_tokens,
            composer: Arc::new(TemplateComposer::new(config.app_url().to_string(), "Dashtam")),
            outbox: Arc::new(WakeOutbox(outbox.waker())),
            clock: clock.clone(),
            audit: audit.clone(),
            devices: Arc::new(
                UserAgentGeoResolver::new(config.geoip.database.as_deref())
                    .map_err(|error| anyhow::anyhow!("DASHTAM_GEOIP__DATABASE (geoip.database): {error}"))?,
            ),
        },
        AuthSettings {
            password_policy: config.auth.password_policy.clone(),
            session_lifetime: config.auth.session_lifetime,
            refresh_retry_grace: config.auth.refresh_retry_grace,
            lockout_threshold: config.auth.lockout_threshold,
            lockout_duration: config.auth.lockout_duration,
            ..AuthSettings::default()
        },
    );
    let metrics = Metrics::new();
    let rate_limit = rate_limiting(config, &clock, &store, &audit, &metrics)?;
    let providers = Arc::new(providers);
    let schedule = SyncSchedule {
        interval: config.sync.interval,
        retry_after: config.sync.retry_after,
        ..SyncSchedule::default()
    };
    let sync = SyncService::new(
        store.clone(),
        audit.clone(),
        clock.clone(),
        shared_state.clone(),
        providers.clone(),
        schedule,
    );
    let state = AppState {
        store: store.clone(),
        shared_state,
        providers,
        sync: Arc::new(sync),
        imports: Arc::new(ImportService::new(store.clone(), audit.clone(), clock.clone())),
        auth: Arc::new(auth),
        sessions: Arc::new(SessionService::new(store.clone(), audit.clone(), clock.clone())),
        ledger: Arc::new(dashtam_domain::ledger_service::LedgerService::new(store.clone(), clock.clone())),
        audit,
        clock,
        metrics,
        settings: Arc::new(HttpSettings {
            request_timeout: config.server.request_timeout,
            readiness_timeout: config.server.readiness_timeout,
            json_body_limit: config.server.json_body_limit,
            trusted_proxies: TrustedProxies::new(config.trusted_proxies.iter().copied()),
            oauth_success_redirect: config.providers.success_redirect_url.as_ref().map(|url| url.to_string()),
            import_max_bytes: config.imports.max_file_size,
        }),
        rate_limit: Arc::new(rate_limit),
        access_tokens,
    };
    Ok(Application { state, outbox, sandbox })
}

/// Keeps the audit log: writes the chain head to the log every `anchor_interval` (for outside anchoring) and
/// purges entries older than `retention` once a day, until `stop` completes.
pub async fn maintain_audit_log(
    audit: Arc<AuditLog>,
    clock: Arc<dyn Clock>,
    settings: &crate::config::AuditConfig,
    stop: impl Future<Output = ()>,
) {
    const PURGE_EVERY: Duration = Duration::from_secs(24 * 3600);
    let mut anchor = tokio::time::interval(settings.anchor_interval);
    let mut purge = tokio::time::interval(PURGE_EVERY);
    let retention = time::Duration::try_from(settings.retention).unwrap_or(time::Duration::MAX);
    let context = RequestContext::empty(dashtam_domain::Actor::System);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => return,
            _ = anchor.tick() => match audit.heads().await {
                // Every chain's, even the untouched ones: an outside store then holds each head's whole history.
                Ok(heads) => for head in heads {
                    tracing::info!(chain = head.chain, seq = head.seq, hash = %head.hash, "audit chain head");
                },
                Err(error) => tracing::warn!(%error, "cannot read the audit chain heads"),
            },
            _ = purge.tick() => {
                let cutoff = clock.now().saturating_sub(retention);
                match audit.purge_before(cutoff, &context).await {
                    Ok(0) => {}
                    Ok(deleted) => tracing::info!(deleted, "purged audit entries past retention"),
                    Err(error) => tracing::warn!(%error, "audit purge failed; will retry"),
                }
            }
        }
    }
}

/// Syncs due connections every `tick` until `stop` completes (see [`SyncService::run_due`]).
pub async fn schedule_syncs(sync: Arc<SyncService>, tick: Duration, stop: impl Future<Output = ()>) {
    /// Connections synced per tick at most; the rest wait for the next tick.
    const PER_TICK: u32 = 20;
    let mut ticks = tokio::time::interval(tick);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => return,
            _ = ticks.tick() => {
                if let Err(error) = sync.run_due(PER_TICK).await {
                    tracing::warn!(%error, "the sync scheduler could not look for due connections");
                }
            }
        }
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then stops accepting connections and lets
/// in-flight requests finish for at most `drain_timeout`. The caller closes the database afterwards.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    drain_timeout: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let signalled = Arc::new(Notify::new());
    let graceful = axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown({
            let signalled = signalled.clone();
            async move {
                shutdown.await;
                tracing::info!("shutting down: draining in-flight requests");
                signalled.notify_one();
            }
        });
    let drain_deadline = async {
        signalled.notified().await;
        tokio::time::sleep(drain_timeout).await;
    };
    tokio::select! {
        served = graceful => served.context("server failed")?,
        () = drain_deadline => tracing::warn!(
            timeout = ?drain_timeout,
            "requests still running at the shutdown deadline were abandoned"
        ),
    }
    Ok(())
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
}
