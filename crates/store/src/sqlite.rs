//! The embedded backend: one SQLite file in WAL mode.

use std::str::FromStr;
use std::time::Duration;

use dashtam_domain::ports::StoreBackend;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool, Transaction};

use crate::database::{ConnectError, PoolOptions};
use crate::queries::impl_store_ports;

/// How long a writer waits for another writer's lock before giving up with "database is locked".
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug)]
pub(crate) struct SqliteStore {
    pub(crate) pool: SqlitePool,
}

pub(crate) struct SqliteTx {
    tx: Transaction<'static, Sqlite>,
}

impl SqliteStore {
    const BACKEND: StoreBackend = StoreBackend::Sqlite;

    pub(crate) async fn connect(url: &str, options: &PoolOptions) -> Result<Self, ConnectError> {
        let connect_options = SqliteConnectOptions::from_str(url)
            .map_err(ConnectError::InvalidUrl)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // NORMAL is durable across application crashes in WAL mode; only a power loss can drop the
            // last transactions, never corrupt the file.
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        if let Some(parent) = connect_options.get_filename().parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent)
                .map_err(|source| ConnectError::CreateDirectory { path: parent.to_path_buf(), source })?;
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect_options)
            .await
            .map_err(ConnectError::Unreachable)?;
        Ok(Self { pool })
    }

    /// Writers take the lock up front: a deferred transaction that reads and then writes can fail with
    /// SQLITE_BUSY mid-way, which `busy_timeout` cannot retry.
    async fn begin_write(&self) -> Result<Transaction<'static, Sqlite>, sqlx::Error> {
        self.pool.begin_with("BEGIN IMMEDIATE").await
    }
}

impl_store_ports!(SqliteStore, SqliteTx);
