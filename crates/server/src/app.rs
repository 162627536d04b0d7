//! The composition root: picks SQLite or PostgreSQL and in-process or Redis shared state from the
//! configuration, wires the ports into the HTTP application, and serves it until shut down.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use dashtam_adapters::{MemorySharedState, RedisSharedState};
use dashtam_api::metrics::Metrics;
use dashtam_api::{AppState, HttpSettings};
use dashtam_domain::SystemClock;
use dashtam_domain::ports::SharedState;
use dashtam_store::{Database, PoolOptions};
use secrecy::ExposeSecret;
use tokio::net::TcpListener;
use tokio::sync::Notify;

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
        None => Arc::new(MemorySharedState),
    })
}

/// The application state over an open database.
pub fn app_state(config: &Config, database: &Database) -> anyhow::Result<AppState> {
    Ok(AppState {
        store: database.store(),
        shared_state: shared_state(config)?,
        clock: Arc::new(SystemClock),
        metrics: Metrics::new(),
        settings: Arc::new(HttpSettings {
            request_timeout: config.server.request_timeout,
            readiness_timeout: config.server.readiness_timeout,
            json_body_limit: config.server.json_body_limit,
        }),
    })
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
