//! The embedded backend: one SQLite file in WAL mode.

use std::ops::{Deref, DerefMut};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use dashtam_domain::audit::{ChainPoint, FIRST_CHAIN, PendingAuditEntry};
use dashtam_domain::ports::{StoreBackend, StoreError};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, SqlitePool};
use tokio::sync::{Mutex, Notify, OwnedMutexGuard, watch};
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
    /// The one connection every write transaction of this process goes through.
    writer: WriterHandle,
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

/// The writer connection, shared by the write transactions of this process, which take turns on it.
///
/// Write transactions are grouped (group commit): each runs inside a savepoint of a *batch*, one physical
/// transaction, and is released into it; the batch commits once, when no other writer is waiting or when a
/// member that stepped back to wait for the COMMIT gets the writer again and finds its batch still open. A page
/// that several transactions change (the newest page of a table or index, the audit chain head) then goes to
/// the WAL once per batch instead of once per transaction. Every member waits for the batch's COMMIT, and a
/// failed COMMIT fails them all; a transaction that fails or is dropped rolls back its savepoint only.
#[derive(Debug, Clone)]
struct WriterHandle {
    writer: Arc<Mutex<Writer>>,
    /// Write transactions waiting to begin: a hint that decides whether a transaction released into its batch
    /// commits it at once or leaves it open for them to join.
    waiting_to_begin: Arc<AtomicUsize>,
}

#[derive(Debug)]
struct Writer {
    /// A connection of its own, not a pool's: it stays inside the batch between transactions. With one
    /// connection writing, its page cache also stays warm: a connection drops its whole cache when it finds
    /// that another connection wrote since it last looked.
    connection: SqliteConnection,
    /// The open batch, if any.
    batch: Option<Batch>,
    /// Whether a write transaction's savepoint is open. Whoever takes the writer and finds one open takes it
    /// as abandoned (its transaction was dropped without committing) and rolls it back first.
    savepoint_open: bool,
    /// The audit chain as of the last COMMIT on this connection, so that a batch with audit entries need not
    /// read it: one round trip fewer while holding the writer. Only a hint, as another process (the CLI) may
    /// have written since; the database refuses to move the head from anywhere else (see
    /// [`audit_entries_and_commit`]).
    audit_chain: Option<RememberedChain>,
    /// Told after every COMMIT; wakes the `checkpoints` task.
    committed: Arc<Notify>,
    /// Set by `close`: no new write transactions.
    closed: bool,
}

/// What the writer remembers of the audit chain between batches.
#[derive(Debug)]
struct RememberedChain {
    head: ChainPoint,
    /// `audit_chain.lookup_seq`: the newest entry copied into `audit_log_lookup`.
    lookup_seq: i64,
}

/// How many entries `audit_log_lookup` may lag behind the log before an audited batch copies them in. The
/// lookup's five B-trees then take a few pages per copy instead of a page each per COMMIT, while queries scan
/// at most this many entries (plus one batch's) without an index.
const AUDIT_LOOKUP_LAG: i64 = 256;

/// Copies the entries past `lookup_seq` into `audit_log_lookup` and moves `lookup_seq` to the newest. It
/// reads both from the database, not from what the writer remembers, so it is right whoever wrote last.
const CATCH_UP_AUDIT_LOOKUP: &str = "INSERT INTO audit_log_lookup (seq, occurred_at, action, user_id, request_id) \
     SELECT seq, occurred_at, action, user_id, request_id FROM audit_log \
     WHERE seq > (SELECT lookup_seq FROM audit_chain WHERE id = 1); \
     UPDATE audit_chain SET lookup_seq = head_seq WHERE id = 1";

/// One physical transaction holding the work of the write transactions released into it.
#[derive(Debug)]
struct Batch {
    members: usize,
    /// The audit entries of the members, in the order they were released: written, linked onto the chain
    /// head, just before the COMMIT.
    audit: Vec<PendingAuditEntry>,
    /// Set when the batch ends; each member subscribes to learn how.
    outcome: watch::Sender<Option<BatchResult>>,
}

/// How a batch ended: committed, or rolled back after the error.
type BatchResult = Result<(), Arc<sqlx::Error>>;

impl Batch {
    fn new() -> Self {
        Self { members: 0, audit: Vec::new(), outcome: watch::Sender::new(None) }
    }
}

/// The savepoint each write transaction runs in, inside its batch.
const BEGIN_IN_BATCH: &str = "SAVEPOINT write";
/// Writers take the file's write lock up front: a deferred transaction that reads and then writes can fail
/// with SQLITE_BUSY mid-way, which `busy_timeout` cannot retry.
const BEGIN_BATCH: &str = "BEGIN IMMEDIATE; SAVEPOINT write";
const RELEASE_INTO_BATCH: &str = "RELEASE write";

impl WriterHandle {
    /// Waits for the writer, in FIFO order and without sleeping (not on the file lock, where SQLite's busy
    /// handler backs off in sleeps of up to 100 ms), and rolls back a savepoint left abandoned.
    async fn lock(&self) -> OwnedMutexGuard<Writer> {
        let mut writer = Arc::clone(&self.writer).lock_owned().await;
        if writer.savepoint_open {
            writer.roll_back_savepoint().await;
        }
        writer
    }

    /// [`Self::lock`] for a transaction about to begin, counted as waiting to begin meanwhile.
    async fn lock_to_begin(&self) -> OwnedMutexGuard<Writer> {
        self.waiting_to_begin.fetch_add(1, Ordering::Relaxed);
        let writer = self.lock().await;
        self.waiting_to_begin.fetch_sub(1, Ordering::Relaxed);
        writer
    }

    fn transactions_waiting_to_begin(&self) -> bool {
        self.waiting_to_begin.load(Ordering::Relaxed) > 0
    }
}

impl Writer {
    /// Undoes the work of the write transaction in the savepoint and keeps the rest of the batch; a batch
    /// with no member left is rolled back whole, so that it does not hold the file's write lock.
    async fn roll_back_savepoint(&mut self) {
        self.savepoint_open = false;
        let members = self.batch.as_ref().map_or(0, |batch| batch.members);
        let statement = if members == 0 { "ROLLBACK" } else { "ROLLBACK TO write; RELEASE write" };
        match sqlx::query(statement).execute(&mut self.connection).await {
            Ok(_) if members == 0 => self.end_batch(&Ok(())),
            Ok(_) => {}
            // Its members learn of it from the batch's outcome.
            Err(error) => drop(self.abort_batch(error).await),
        }
    }

    /// COMMITs the batch, with its audit entries, and tells its members how that went.
    async fn commit_batch(&mut self) -> BatchResult {
        let audit = self.batch.as_mut().map(|batch| std::mem::take(&mut batch.audit)).unwrap_or_default();
        match self.write_audit_entries_and_commit(audit).await {
            Ok(_) => {
                self.committed.notify_one();
                self.end_batch(&Ok(()));
                Ok(())
            }
            Err(error) => self.abort_batch(error).await,
        }
    }

    /// Ends the batch after `error`, whatever state it left the connection in: SQLite rolls a transaction back
    /// by itself after some errors (a full disk, an I/O error), hence the error of this ROLLBACK is ignored.
    async fn abort_batch(&mut self, error: sqlx::Error) -> BatchResult {
        tracing::error!(%error, "a batch of SQLite write transactions failed and is rolled back");
        let _ = sqlx::query("ROLLBACK").execute(&mut self.connection).await;
        self.audit_chain = None;
        let outcome = Err(Arc::new(error));
        self.end_batch(&outcome);
        outcome
    }

    /// Writes the batch's audit entries linked onto the head this connection remembers, and COMMITs, in one
    /// round trip to the connection's thread. Written here, outside the members' savepoints, the pages they
    /// change are not copied into a savepoint's journal first, and a batch moves the chain head once.
    async fn write_audit_entries_and_commit(&mut self, mut audit: Vec<PendingAuditEntry>) -> Result<(), sqlx::Error> {
        if audit.is_empty() {
            return sqlx::query("COMMIT").execute(&mut self.connection).await.map(drop);
        }
        // Taken, not read: whatever goes wrong below, the next batch reads the chain from the database.
        let mut chain = match self.audit_chain.take() {
            Some(chain) => chain,
            None => self.stored_audit_chain().await?,
        };
        if chain.head.seq - chain.lookup_seq >= AUDIT_LOOKUP_LAG {
            sqlx::query(CATCH_UP_AUDIT_LOOKUP).execute(&mut self.connection).await?;
            chain.lookup_seq = chain.head.seq;
        }
        chain.head = match self.send_audit_entries_and_commit(&mut audit, &chain.head).await {
            // Another process appended since this connection last did; the batch is still open.
            Err(error) if is_stale_audit_head(&error) => {
                chain = self.stored_audit_chain().await?;
                self.send_audit_entries_and_commit(&mut audit, &chain.head).await?
            }
            sent => sent?,
        };
        self.audit_chain = Some(chain);
        Ok(())
    }

    /// A plain read is enough: `BEGIN IMMEDIATE` made this batch the only writer of the file.
    async fn stored_audit_chain(&mut self) -> Result<RememberedChain, sqlx::Error> {
        let (seq, hash, lookup_seq): (i64, String, i64) =
            sqlx::query_as("SELECT head_seq, head_hash, lookup_seq FROM audit_chain WHERE id = 1")
                .fetch_one(&mut self.connection)
                .await?;
        Ok(RememberedChain { head: ChainPoint::unsealed(FIRST_CHAIN, seq, hash), lookup_seq })
    }

    /// Links the entries (at least one) onto `head` and sends them with the COMMIT as one multi-statement
    /// query, returning the new head. A failing statement stops the query there, before the COMMIT (a trigger
    /// refusal undoes only its own statement). Anonymous `?` placeholders number on across the statements.
    async fn send_audit_entries_and_commit(
        &mut self,
        audit: &mut [PendingAuditEntry],
        head: &ChainPoint,
    ) -> Result<ChainPoint, sqlx::Error> {
        let mut previous = head.clone();
        for pending in audit.iter_mut() {
            pending.link_after(&previous);
            previous = pending.point();
        }
        let newest_seal = audit.last().map(PendingAuditEntry::head_seal);
        let statement = audit_entries_and_commit(audit.len());
        let mut query =
            sqlx::query(&statement).bind(head.seq).bind(previous.seq).bind(&previous.hash).bind(newest_seal);
        for pending in audit.iter() {
            // One chain: an entry's position on it is its sequence number.
            query = bind_audit_entry!(query.bind(pending.entry().chain_seq), pending.entry());
        }
        query.execute(&mut self.connection).await?;
        Ok(previous)
    }

    fn end_batch(&mut self, outcome: &BatchResult) {
        if let Some(batch) = self.batch.take() {
            batch.outcome.send_replace(Some(outcome.clone()));
        }
    }
}

/// One write transaction: the writer, held from `begin` until it is released into its batch.
pub(crate) struct SqliteTx {
    tx: WriterGuard,
    /// The audit entries of this transaction, handed to the batch when it is released.
    pending_audit: Vec<PendingAuditEntry>,
}

struct WriterGuard {
    writer: OwnedMutexGuard<Writer>,
    handle: WriterHandle,
}

impl Deref for WriterGuard {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        &self.writer.connection
    }
}

impl DerefMut for WriterGuard {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        &mut self.writer.connection
    }
}

impl Drop for WriterGuard {
    /// A transaction dropped without committing leaves its savepoint open; a task takes the writer next and
    /// rolls it back (unless a waiting writer does first), so that it holds up neither its batch nor other
    /// processes for longer than it takes. Without a runtime (at shutdown), the next writer does.
    fn drop(&mut self) {
        if self.writer.savepoint_open
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let handle = self.handle.clone();
            runtime.spawn(async move { drop(handle.lock().await) });
        }
    }
}

/// What the `audit_chain_head_moves_on` trigger answers to a batch whose entries are linked onto a point that
/// is no longer the chain head (a head remembered while another process wrote).
const STALE_AUDIT_HEAD: &str = "audit entries do not follow the chain head";

/// A batch's COMMIT failed, failing each transaction in it.
#[derive(Debug, thiserror::Error)]
#[error("committing a batch of write transactions failed")]
struct BatchFailed(#[source] Arc<sqlx::Error>);

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
        let pool = SqlitePoolOptions::new()
            // sqlx pings a connection each time it leaves the pool. A SQLite connection is a thread of this
            // process with the file open; the ping cannot find anything wrong, yet costs a round trip to that
            // thread (two context switches), which was a fifth of the work of a /me request.
            .test_before_acquire(false)
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect_options.clone())
            .await
            .map_err(ConnectError::Unreachable)?;
        let connection = connect_options
            // Each write transaction runs in a savepoint, and SQLite copies every page it changes there first (into
            // the sub-journal), to be able to roll the savepoint back. By default that copy spills to a temporary
            // file past 64 KiB, and a refresh then cost some 40 write calls; in memory, it costs a memcpy.
            .pragma("temp_store", "memory")
            .connect()
            .await
            .map_err(ConnectError::Unreachable)?;
        let committed = Arc::new(Notify::new());
        let checkpointer = tokio::spawn(checkpoints(pool.clone(), Arc::clone(&committed))).abort_handle();
        let writer =
            Writer { connection, batch: None, savepoint_open: false, audit_chain: None, committed, closed: false };
        Ok(Self {
            pool,
            writer: WriterHandle { writer: Arc::new(Mutex::new(writer)), waiting_to_begin: Arc::default() },
            checkpointer,
        })
    }

    /// Stops new write transactions (those under way still commit) and closes the read connections. The
    /// writer connection closes when the store is dropped.
    async fn close_pools(&self) {
        self.writer.lock().await.closed = true;
        self.pool.close().await;
    }

    /// Takes the writer and opens a savepoint for the transaction, in a new batch or the open one; a `bulk`
    /// transaction commits the open batch first and starts one of its own. Run as its own task: cancelled
    /// half-way, the writer could be left inside a savepoint nobody knows of.
    async fn begin_write(&self, bulk: bool) -> Result<SqliteTx, sqlx::Error> {
        let handle = self.writer.clone();
        crate::database::uncancellable(async move {
            let mut writer = handle.lock_to_begin().await;
            if writer.closed {
                return Err(sqlx::Error::PoolClosed);
            }
            if bulk && writer.batch.is_some() {
                // A failed COMMIT fails the batch's members, not this transaction.
                let _ = writer.commit_batch().await;
            }
            if writer.batch.is_some() {
                sqlx::query(BEGIN_IN_BATCH).execute(&mut writer.connection).await?;
            } else {
                if let Err(error) = sqlx::query(BEGIN_BATCH).execute(&mut writer.connection).await {
                    // The BEGIN may have succeeded and the SAVEPOINT not; nothing is in the transaction.
                    let _ = sqlx::query("ROLLBACK").execute(&mut writer.connection).await;
                    return Err(error);
                }
                writer.batch = Some(Batch::new());
            }
            writer.savepoint_open = true;
            Ok(SqliteTx { tx: WriterGuard { writer, handle }, pending_audit: Vec::new() })
        })
        .await
    }
}

impl SqliteTx {
    /// Never: the transaction's audit entries go with its batch's `COMMIT`, so the plain rotation serves.
    async fn rotate_refresh_token_with_audit(
        &mut self,
        _id: uuid::Uuid,
        _successor: uuid::Uuid,
        _session_id: uuid::Uuid,
        _digest: &[u8],
        _now: time::OffsetDateTime,
    ) -> Result<Option<bool>, StoreError> {
        Ok(None)
    }

    async fn link_audit_entry(&mut self, pending: PendingAuditEntry) -> Result<(), StoreError> {
        self.pending_audit.push(pending);
        Ok(())
    }

    /// Releases the transaction into its batch and waits for the batch's COMMIT. Run as its own task: a
    /// member cancelled while waiting could leave its batch without anyone to commit it.
    async fn commit_writes(self) -> Result<(), StoreError> {
        match crate::database::uncancellable(self.release_and_commit()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(batch_error)) => Err(StoreError::Unavailable(Box::new(BatchFailed(batch_error)))),
            Err(error) => Err(crate::errors::store_error(error)),
        }
    }

    /// The outer error is this transaction's own (it is rolled back); the inner one its batch's COMMIT's.
    async fn release_and_commit(mut self) -> Result<BatchResult, sqlx::Error> {
        if let Err(error) = sqlx::query(RELEASE_INTO_BATCH).execute(&mut *self.tx).await {
            self.tx.writer.roll_back_savepoint().await;
            return Err(error);
        }
        // Released: the work is the batch's now, and so are the audit entries, written with its COMMIT.
        let writer = &mut self.tx.writer;
        writer.savepoint_open = false;
        let batch = writer.batch.get_or_insert_with(Batch::new);
        batch.members += 1;
        batch.audit.append(&mut self.pending_audit);
        let mut outcome = batch.outcome.subscribe();
        if !self.tx.handle.transactions_waiting_to_begin() {
            return Ok(writer.commit_batch().await);
        }
        // Step back for the transactions waiting to begin: they join the batch, and it commits when this one gets
        // the writer again, unless a later member found nobody waiting and committed it meanwhile (or a bulk
        // transaction did before it began).
        let handle = self.tx.handle.clone();
        drop(self);
        let writer = tokio::select! {
            _ = outcome.wait_for(Option::is_some) => None,
            writer = handle.lock() => Some(writer),
        };
        let ended = outcome.borrow().clone();
        match (ended, writer) {
            (Some(ended), _) => Ok(ended),
            // Not ended, so it is still the open batch.
            (None, Some(mut writer)) => Ok(writer.commit_batch().await),
            // Waiting for the end stops early only when the batch is dropped, which the writer (kept alive by
            // `handle`) does not do.
            (None, None) => Err(sqlx::Error::WorkerCrashed),
        }
    }
}

/// Entries per INSERT statement: 19 parameters each, well under SQLite's limit of 32,766 per statement.
const AUDIT_ENTRIES_PER_INSERT: usize = 500;

/// Moves the chain head over a batch's `entries` entries, appends them and COMMITs:
/// `UPDATE audit_chain …; INSERT INTO audit_log … VALUES (…), (…), …; COMMIT`.
///
/// The head moves once per batch, not once per entry, and only from where the batch linked its first entry:
/// the parameters are that point's sequence number, then the newest entry's sequence number, hash and head
/// seal. From anywhere else the `CASE` yields NULL, which the `audit_chain_head_moves_on` trigger refuses,
/// stopping the query before the entries and the COMMIT. `BEGIN IMMEDIATE` keeps other writers out until then.
fn audit_entries_and_commit(entries: usize) -> String {
    const MOVE_HEAD: &str = "UPDATE audit_chain SET head_seq = CASE head_seq WHEN ? THEN ? END, head_hash = ?, \
                             head_seal = ? WHERE id = 1; ";
    // OR ROLLBACK: a row that breaks a constraint fails the whole batch anyway, and without a statement that
    // could stop half-way (ABORT, the default) SQLite keeps no statement journal, which would copy every page
    // the INSERT changes before changing it.
    // `chain` and `chain_seq` are generated columns (migration 000016).
    const INSERT: &str =
        concat!("INSERT OR ROLLBACK INTO audit_log (seq, ", crate::queries::audit_content_columns!(), ") VALUES ");
    const ROW: &str = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
    let mut statement = String::with_capacity(MOVE_HEAD.len() + entries * (ROW.len() + 2) + INSERT.len() + 16);
    statement.push_str(MOVE_HEAD);
    let mut left = entries;
    while left > 0 {
        let rows = left.min(AUDIT_ENTRIES_PER_INSERT);
        statement.push_str(INSERT);
        for row in 0..rows {
            if row > 0 {
                statement.push_str(", ");
            }
            statement.push_str(ROW);
        }
        statement.push_str("; ");
        left -= rows;
    }
    statement.push_str("COMMIT");
    statement
}

fn is_stale_audit_head(error: &sqlx::Error) -> bool {
    error.as_database_error().is_some_and(|error| error.message().contains(STALE_AUDIT_HEAD))
}

impl_store_ports!(SqliteStore, SqliteTx, |tx| tx);
impl_provider_ports!(SqliteStore, SqliteTx);
impl_import_ports!(SqliteStore, SqliteTx);
impl_ledger_ports!(SqliteStore, SqliteTx, sqlx::Sqlite);
