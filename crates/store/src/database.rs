//! Choosing and opening a backend from a `DASHTAM_DATABASE_URL`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use dashtam_domain::ports::Store;

use crate::migrations::{self, MigrationError, MigrationStatus, SchemaVersion};
use crate::postgres::PgStore;
use crate::sqlite::SqliteStore;

/// Connection-pool settings.
#[derive(Debug, Clone)]
pub struct PoolOptions {
    /// The most connections the pool opens.
    pub max_connections: u32,
    /// How long a request waits for a free connection before failing as "unavailable".
    pub acquire_timeout: Duration,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self { max_connections: 10, acquire_timeout: Duration::from_secs(5) }
    }
}

/// Why a database could not be opened. Messages never include the URL, which may hold a password.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// Neither `sqlite:` nor `postgres:`/`postgresql:`.
    #[error("database URL must start with sqlite:// or postgres://")]
    UnsupportedScheme,
    /// The URL could not be parsed by the driver.
    #[error("database URL is invalid: {0}")]
    InvalidUrl(#[source] sqlx::Error),
    /// The directory for the SQLite file could not be created.
    #[error("cannot create database directory {path}: {source}")]
    CreateDirectory {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The server (or file) did not accept a connection.
    #[error("cannot connect to the database: {0}")]
    Unreachable(#[source] sqlx::Error),
}

/// An open database of either kind, with its migrations.
#[derive(Debug, Clone)]
pub struct Database(Backend);

#[derive(Debug, Clone)]
enum Backend {
    Sqlite(Arc<SqliteStore>),
    Postgres(Arc<PgStore>),
}

impl Database {
    /// Opens the database the URL names, creating a SQLite file (and its directory) when missing.
    pub async fn connect(url: &str, options: &PoolOptions) -> Result<Self, ConnectError> {
        let scheme = url.split_once(':').map(|(scheme, _)| scheme);
        match scheme {
            Some("sqlite") => Ok(Self(Backend::Sqlite(Arc::new(SqliteStore::connect(url, options).await?)))),
            Some("postgres" | "postgresql") => {
                Ok(Self(Backend::Postgres(Arc::new(PgStore::connect(url, options).await?))))
            }
            _ => Err(ConnectError::UnsupportedScheme),
        }
    }

    /// The store port over this database.
    pub fn store(&self) -> Arc<dyn Store> {
        match &self.0 {
            Backend::Sqlite(store) => store.clone(),
            Backend::Postgres(store) => store.clone(),
        }
    }

    /// Applies every pending migration; returns the versions applied. On PostgreSQL an advisory lock makes
    /// concurrent callers (instances starting together) wait for each other instead of colliding.
    pub async fn migrate_up(&self) -> Result<Vec<SchemaVersion>, MigrationError> {
        match &self.0 {
            Backend::Sqlite(store) => migrations::up(&migrations::SQLITE, &store.pool).await,
            Backend::Postgres(store) => migrations::up(&migrations::POSTGRES, &store.pool).await,
        }
    }

    /// Reverts the newest `steps` applied migrations; returns the versions reverted, newest first.
    pub async fn migrate_down(&self, steps: usize) -> Result<Vec<SchemaVersion>, MigrationError> {
        match &self.0 {
            Backend::Sqlite(store) => migrations::down(&migrations::SQLITE, &store.pool, steps).await,
            Backend::Postgres(store) => migrations::down(&migrations::POSTGRES, &store.pool, steps).await,
        }
    }

    /// Every migration this binary knows or the database has applied, oldest first.
    pub async fn migration_status(&self) -> Result<Vec<MigrationStatus>, MigrationError> {
        match &self.0 {
            Backend::Sqlite(store) => migrations::status(&migrations::SQLITE, &store.pool).await,
            Backend::Postgres(store) => migrations::status(&migrations::POSTGRES, &store.pool).await,
        }
    }
}

/// Runs `begin` to completion even if the caller stops waiting (a client that disconnects cancels its
/// request's future). Cancelled half-way, sqlx can hand a connection back to the pool still inside the
/// transaction it just opened, and every later `BEGIN` on it fails; run as its own task, an abandoned
/// transaction is simply dropped, which rolls it back.
pub(crate) async fn uncancellable<T: Send + 'static>(
    begin: impl Future<Output = Result<T, sqlx::Error>> + Send + 'static,
) -> Result<T, sqlx::Error> {
    tokio::spawn(begin).await.unwrap_or_else(|join_error| {
        Err(sqlx::Error::WorkerCrashed).inspect_err(|_| {
            tracing::error!(error = %join_error, "beginning a transaction panicked");
        })
    })
}
