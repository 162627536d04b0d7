//! The embedded backend: one SQLite file in WAL mode.

use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use dashtam_domain::audit::{AuditEntry, ChainPoint};
use dashtam_domain::ports::{StoreBackend, StoreError};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool, Transaction};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::database::{ConnectError, PoolOptions};
use crate::import_queries::impl_import_ports;
use crate::ledger_queries::impl_ledger_ports;
use crate::provider_queries::impl_provider_ports;
use crate::queries::{bind_audit_entry, impl_store_ports};

/// How long a writer waits for another writer's lock before giving up with "database is locked".
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug)]
pub(crate) struct SqliteStore {
    pub(crate) pool: SqlitePool,
    /// SQLite allows one writer at a time. Writers queue here, in FIFO order and without sleeping, instead of
    /// colliding on the file lock, where SQLite's busy handler backs off in sleeps of up to 100 ms.
    writer: Arc<Semaphore>,
    /// The audit chain head this process wrote last, so that an audited write transaction need not read it
    /// back: one statement fewer while holding the write lock. Only a hint, checked by the insert that
    /// follows it (another process may have written since, or the transaction that wrote it rolled back).
    audit_head: Arc<Mutex<Option<ChainPoint>>>,
}

pub(crate) struct SqliteTx {
    tx: Transaction<'static, Sqlite>,
    /// Held until the transaction commits or is dropped.
    _writer: OwnedSemaphorePermit,
    audit_head: Arc<Mutex<Option<ChainPoint>>>,
    /// The head the pending audit entry was built on, which the insert checks is still the head.
    claimed_audit_head: Option<ChainPoint>,
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
            .busy_timeout(BUSY_TIMEOUT)
            // 16 MiB of page cache per connection (SQLite's default is 2 MiB): a large import touches the table
            // and three indexes, and with the default cache it spills pages to the WAL mid-transaction — a
            // 100,000-row import took 2.0 s instead of 1.4 s. The cache only grows as pages are used.
            .pragma("cache_size", "-16384");
        if let Some(parent) = connect_options.get_filename().parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent)
                .map_err(|source| ConnectError::CreateDirectory { path: parent.to_path_buf(), source })?;
        }
        let pool = SqlitePoolOptions::new()
            // sqlx pings a connection each time it leaves the pool. A SQLite connection is a thread of this
            // process with the file open; the ping cannot find anything wrong, yet costs a round trip to that
            // thread (two context switches), which was a fifth of the work of a /me request.
            .test_before_acquire(false)
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect_options)
            .await
            .map_err(ConnectError::Unreachable)?;
        Ok(Self { pool, writer: Arc::new(Semaphore::new(1)), audit_head: Arc::default() })
    }

    /// Writers take the lock up front: a deferred transaction that reads and then writes can fail with
    /// SQLITE_BUSY mid-way, which `busy_timeout` cannot retry.
    async fn begin_write(&self) -> Result<SqliteTx, sqlx::Error> {
        let writer = Arc::clone(&self.writer).acquire_owned().await.map_err(|_| sqlx::Error::PoolClosed)?;
        let pool = self.pool.clone();
        let tx = crate::database::uncancellable(async move { pool.begin_with("BEGIN IMMEDIATE").await }).await?;
        Ok(SqliteTx { tx, _writer: writer, audit_head: Arc::clone(&self.audit_head), claimed_audit_head: None })
    }
}

impl SqliteTx {
    /// The remembered head, else the stored one. A plain read is enough: `BEGIN IMMEDIATE` already made this
    /// transaction the only writer of the file.
    async fn claim_audit_head(&mut self) -> Result<ChainPoint, StoreError> {
        let remembered = self.audit_head.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let head = match remembered {
            Some(head) => head,
            None => {
                let (seq, hash): (i64, String) =
                    sqlx::query_as("SELECT head_seq, head_hash FROM audit_chain WHERE id = 1")
                        .fetch_one(&mut *self.tx)
                        .await
                        .map_err(crate::errors::store_error)?;
                ChainPoint { seq, hash, seal: None }
            }
        };
        self.claimed_audit_head = Some(head.clone());
        Ok(head)
    }

    /// Inserts the entry only if the claimed head is still the stored head; the `audit_log_moves_head`
    /// trigger then moves the head to it. Anonymous `?` placeholders: SQLite looks `$n` ones up by name.
    async fn store_audit_entry(&mut self, entry: &AuditEntry, head_seal: &str) -> Result<bool, StoreError> {
        let Some(claimed) = self.claimed_audit_head.take() else {
            return Ok(false);
        };
        let query = sqlx::query(concat!(
            "INSERT INTO audit_log (",
            crate::queries::audit_columns!(),
            ", head_seal) SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ? \
             WHERE EXISTS (SELECT 1 FROM audit_chain WHERE id = 1 AND head_seq = ? AND head_hash = ?)"
        ));
        let inserted = bind_audit_entry!(query, entry, head_seal)
            .bind(claimed.seq)
            .bind(&claimed.hash)
            .execute(&mut *self.tx)
            .await
            .map_err(crate::errors::store_error)?
            .rows_affected()
            == 1;
        let mut remembered = self.audit_head.lock().unwrap_or_else(PoisonError::into_inner);
        *remembered = inserted.then(|| ChainPoint { seq: entry.seq, hash: entry.hash.clone(), seal: None });
        Ok(inserted)
    }
}

impl_store_ports!(SqliteStore, SqliteTx, |tx| tx);
impl_provider_ports!(SqliteStore, SqliteTx);
impl_import_ports!(SqliteStore, SqliteTx);
impl_ledger_ports!(SqliteStore, SqliteTx, sqlx::Sqlite);
