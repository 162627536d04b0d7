//! The embedded backend: one SQLite file in WAL mode.

use std::borrow::Cow;
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use dashtam_domain::audit::{ChainPoint, PendingAuditEntry};
use dashtam_domain::ports::{StoreBackend, StoreError};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool, Transaction};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::AbortHandle;

use crate::database::{ConnectError, PoolOptions};
use crate::import_queries::impl_import_ports;
use crate::ledger_queries::impl_ledger_ports;
use crate::provider_queries::impl_provider_ports;
use crate::queries::{bind_audit_entry, impl_store_ports};

/// How long a writer waits for another writer's lock before giving up with "database is locked".
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug)]
pub(crate) struct SqliteStore {
    /// Connections for reads.
    pub(crate) pool: SqlitePool,
    /// The one connection every write transaction of this process uses. A connection drops its whole page
    /// cache when it finds that another connection wrote since it last looked; with one writer, the writer's
    /// cache stays warm, and the b-tree pages a write needs are not read again under the write lock.
    writer_pool: SqlitePool,
    /// SQLite allows one writer at a time. Writers queue here, in FIFO order and without sleeping, instead of
    /// colliding on the file lock, where SQLite's busy handler backs off in sleeps of up to 100 ms.
    writer: Arc<Semaphore>,
    /// The audit chain head this process committed last, so that an audited write transaction need not read
    /// it: one round trip fewer while holding the write lock. Only a hint, as another process (the CLI) may
    /// have written since; the `audit_log_follows_head` trigger refuses an entry linked onto a stale one.
    audit_head: Arc<Mutex<Option<ChainPoint>>>,
    /// Told after every commit; wakes the `checkpoints` task.
    committed: Arc<Notify>,
    checkpointer: AbortHandle,
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.checkpointer.abort();
    }
}

/// How long the `checkpoints` task lets commits gather before it copies them back into the database file.
const CHECKPOINT_DELAY: Duration = Duration::from_millis(100);

/// Copies committed WAL pages back into the database file, on a read connection, shortly after commits: a
/// PASSIVE checkpoint runs beside the writer instead of stopping it, and a page written many times in the
/// meantime is copied once.
async fn checkpoints(pool: SqlitePool, committed: Arc<Notify>) {
    loop {
        committed.notified().await;
        tokio::time::sleep(CHECKPOINT_DELAY).await;
        if let Err(error) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&pool).await {
            if pool.is_closed() {
                return;
            }
            tracing::warn!(%error, "checkpointing the SQLite WAL failed; the next commit tries again");
        }
    }
}

pub(crate) struct SqliteTx {
    tx: Transaction<'static, Sqlite>,
    /// Held until the transaction commits or is dropped.
    _writer: OwnedSemaphorePermit,
    audit_head: Arc<Mutex<Option<ChainPoint>>>,
    /// The audit entries of this transaction, linked and written when it commits.
    pending_audit: Vec<PendingAuditEntry>,
    committed: Arc<Notify>,
}

/// What the `audit_log_follows_head` trigger answers to an entry linked onto a point that is no longer the
/// chain head (a head remembered while another process wrote).
const STALE_AUDIT_HEAD: &str = "audit entry does not follow the chain head";

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
            .pragma("cache_size", "-16384")
            // Checkpoints (copying the WAL back into the file, with two fsyncs) are the job of the `checkpoints`
            // task, off the write path. By default the writer runs one itself after the commit that takes the
            // WAL past 1,000 pages: every ~70 refreshes, each copying mostly the same few hot pages again,
            // while the next writers wait for the writer connection. This threshold only bounds the WAL
            // (40 MiB) should that task fall behind.
            .pragma("wal_autocheckpoint", "10000");
        if let Some(parent) = connect_options.get_filename().parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent)
                .map_err(|source| ConnectError::CreateDirectory { path: parent.to_path_buf(), source })?;
        }
        let pool_options = |max_connections| {
            SqlitePoolOptions::new()
                // sqlx pings a connection each time it leaves the pool. A SQLite connection is a thread of this
                // process with the file open; the ping cannot find anything wrong, yet costs a round trip to
                // that thread (two context switches), which was a fifth of the work of a /me request.
                .test_before_acquire(false)
                .max_connections(max_connections)
                .acquire_timeout(options.acquire_timeout)
        };
        let pool = pool_options(options.max_connections)
            .connect_with(connect_options.clone())
            .await
            .map_err(ConnectError::Unreachable)?;
        let writer_pool = pool_options(1).connect_with(connect_options).await.map_err(ConnectError::Unreachable)?;
        let committed = Arc::new(Notify::new());
        let checkpointer = tokio::spawn(checkpoints(pool.clone(), Arc::clone(&committed))).abort_handle();
        Ok(Self {
            pool,
            writer_pool,
            writer: Arc::new(Semaphore::new(1)),
            audit_head: Arc::default(),
            committed,
            checkpointer,
        })
    }

    async fn close_pools(&self) {
        self.writer_pool.close().await;
        self.pool.close().await;
    }

    /// Writers take the lock up front: a deferred transaction that reads and then writes can fail with
    /// SQLITE_BUSY mid-way, which `busy_timeout` cannot retry.
    async fn begin_write(&self) -> Result<SqliteTx, sqlx::Error> {
        let writer = Arc::clone(&self.writer).acquire_owned().await.map_err(|_| sqlx::Error::PoolClosed)?;
        let pool = self.writer_pool.clone();
        let tx = crate::database::uncancellable(async move { pool.begin_with("BEGIN IMMEDIATE").await }).await?;
        Ok(SqliteTx {
            tx,
            _writer: writer,
            audit_head: Arc::clone(&self.audit_head),
            pending_audit: Vec::new(),
            committed: Arc::clone(&self.committed),
        })
    }
}

impl SqliteTx {
    async fn link_audit_entry(&mut self, pending: PendingAuditEntry) -> Result<(), StoreError> {
        self.pending_audit.push(pending);
        Ok(())
    }

    /// Commits. Pending audit entries are written in the same round trip to the connection's thread as the
    /// COMMIT, linked onto the head this process remembers: one round trip inside the write lock, whose
    /// length is what bounds write throughput on SQLite, instead of two. Run as its own task: cancelled
    /// half-way it could leave the connection outside the transaction sqlx thinks it holds.
    async fn commit_writes(self) -> Result<(), StoreError> {
        let committed = Arc::clone(&self.committed);
        let result = if self.pending_audit.is_empty() {
            self.tx.commit().await
        } else {
            crate::database::uncancellable(self.commit_with_audit_entries()).await
        };
        if result.is_ok() {
            committed.notify_one();
        }
        result.map_err(crate::errors::store_error)
    }

    async fn commit_with_audit_entries(mut self) -> Result<(), sqlx::Error> {
        // Taken, not read: whatever goes wrong below, the next writer reads the head from the database.
        let remembered = self.audit_head.lock().unwrap_or_else(PoisonError::into_inner).take();
        let head = match remembered {
            Some(head) => head,
            None => self.stored_audit_head().await?,
        };
        let new_head = match self.write_audit_entries_and_commit(&head).await {
            // Another process appended since this one remembered the head; the transaction is still open.
            Err(error) if is_stale_audit_head(&error) => {
                let head = self.stored_audit_head().await?;
                self.write_audit_entries_and_commit(&head).await?
            }
            written => written?,
        };
        *self.audit_head.lock().unwrap_or_else(PoisonError::into_inner) = Some(new_head);
        // sqlx still counts the transaction as open: dropping it sends a ROLLBACK, which ends the empty one
        // that the statement opened after its COMMIT (see below).
        Ok(())
    }

    /// A plain read is enough: `BEGIN IMMEDIATE` made this transaction the only writer of the file.
    async fn stored_audit_head(&mut self) -> Result<ChainPoint, sqlx::Error> {
        let (seq, hash): (i64, String) =
            sqlx::query_as("SELECT head_seq, head_hash FROM audit_chain WHERE id = 1").fetch_one(&mut *self.tx).await?;
        Ok(ChainPoint { seq, hash, seal: None })
    }

    /// Links the pending entries onto `head` and sends them with `COMMIT` as one multi-statement query,
    /// returning the new head. A failing statement stops the query there, before the COMMIT, and leaves the
    /// transaction open (a trigger refusal undoes only its own statement). After the COMMIT the query opens an
    /// empty deferred transaction, which takes no lock, so that the connection is inside a transaction again,
    /// as sqlx's bookkeeping expects. Anonymous `?` placeholders number on across the statements.
    async fn write_audit_entries_and_commit(&mut self, head: &ChainPoint) -> Result<ChainPoint, sqlx::Error> {
        macro_rules! insert_entry {
            () => {
                concat!(
                    "INSERT INTO audit_log (",
                    crate::queries::audit_columns!(),
                    ", head_seal) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?); "
                )
            };
        }
        macro_rules! commit_and_reopen {
            () => {
                "COMMIT; BEGIN"
            };
        }
        let statement: Cow<'static, str> = match self.pending_audit.len() {
            1 => Cow::Borrowed(concat!(insert_entry!(), commit_and_reopen!())),
            entries => Cow::Owned(insert_entry!().repeat(entries) + commit_and_reopen!()),
        };
        let mut previous = head.clone();
        let mut seals = Vec::with_capacity(self.pending_audit.len());
        for pending in &mut self.pending_audit {
            seals.push(pending.link_after(&previous));
            previous = pending.point();
        }
        let mut query = sqlx::query(&statement);
        for (pending, seal) in self.pending_audit.iter().zip(seals) {
            query = bind_audit_entry!(query, pending.entry(), seal);
        }
        query.execute(&mut *self.tx).await?;
        Ok(previous)
    }
}

fn is_stale_audit_head(error: &sqlx::Error) -> bool {
    error.as_database_error().is_some_and(|error| error.message().contains(STALE_AUDIT_HEAD))
}

impl_store_ports!(SqliteStore, SqliteTx, |tx| tx);
impl_provider_ports!(SqliteStore, SqliteTx);
impl_import_ports!(SqliteStore, SqliteTx);
impl_ledger_ports!(SqliteStore, SqliteTx, sqlx::Sqlite);
