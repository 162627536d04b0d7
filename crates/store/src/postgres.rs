//! The scaled backend: a PostgreSQL server shared by every instance.

use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};

use dashtam_domain::audit::{ChainPoint, PendingAuditEntry};
use dashtam_domain::ports::{StoreBackend, StoreError};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres, Transaction};

use crate::database::{ConnectError, PoolOptions};
use crate::import_queries::impl_import_ports;
use crate::ledger_queries::impl_ledger_ports;
use crate::provider_queries::impl_provider_ports;
use crate::queries::{bind_audit_entry, bind_refresh_token_rotation, impl_store_ports};

#[derive(Debug)]
pub(crate) struct PgStore {
    pub(crate) pool: PgPool,
    /// The audit chains no transaction of this instance holds, each with the head this instance committed on
    /// it last.
    free_chains: FreeChains,
}

/// How many audit chains there are (migration 000016 makes them).
const AUDIT_CHAINS: i16 = 16;

/// A stack: the chain returned last is taken first, as its remembered head is the likeliest to be current.
type FreeChains = Arc<Mutex<Vec<ChainLease>>>;

/// A chain this instance hands to one transaction at a time, with the head it committed there last: only a
/// hint, as other instances append too, which [`APPEND_AFTER_HEAD`] checks.
#[derive(Debug)]
struct ChainLease {
    chain: i16,
    head: Option<ChainPoint>,
}

/// A lease out of the free chains, which goes back when the transaction holding it ends, however it ends.
#[derive(Debug)]
struct HeldChain {
    lease: ChainLease,
    free_chains: FreeChains,
}

impl HeldChain {
    /// The free chain returned last; with none free (more audited transactions at once than chains), a chain
    /// at random with no head remembered.
    fn take(free_chains: &FreeChains) -> Self {
        let taken = free_chains.lock().unwrap_or_else(PoisonError::into_inner).pop();
        let lease = taken.unwrap_or_else(|| ChainLease { chain: rand::random_range(1..=AUDIT_CHAINS), head: None });
        Self { lease, free_chains: Arc::clone(free_chains) }
    }
}

impl Drop for HeldChain {
    fn drop(&mut self) {
        let lease = ChainLease { chain: self.lease.chain, head: self.lease.head.take() };
        let mut free = self.free_chains.lock().unwrap_or_else(PoisonError::into_inner);
        // A chain can be free here and held too, when a transaction appended to a chain that was not the one
        // it took (another instance had moved that one on, or none was free): keep one lease, the newer head.
        match free.iter_mut().find(|free| free.chain == lease.chain) {
            Some(free)
                if free.head.as_ref().is_none_or(|head| lease.head.as_ref().is_some_and(|new| new.seq > head.seq)) =>
            {
                free.head = lease.head;
            }
            Some(_) => {}
            None => free.push(lease),
        }
    }
}

pub(crate) struct PgTx {
    tx: Transaction<'static, Postgres>,
    free_chains: FreeChains,
    /// The chain this transaction appends to, held from its first entry: it then holds the chain's head row
    /// until it ends, so its entries all go on that chain.
    chain: Option<HeldChain>,
    /// The newest entry this transaction appended.
    appended: Option<ChainPoint>,
    /// The transaction's first entry, linked after the head this instance remembers for its chain and not yet
    /// sent: it goes with the transaction's refresh-token rotation, if it has one, in that statement (saving
    /// the hottest audited write a round trip), else by itself before the `COMMIT`.
    deferred: Option<(PendingAuditEntry, ChainPoint)>,
}

/// Moves chain `$1`'s head onto an entry at position `$2` (hash `$20`, seal `$21`), only if the head is still
/// the point the entry was linked after (hash `$22`). The `UPDATE` takes the head row's lock until the
/// transaction ends, which orders the chain's writers in every instance; if another writer moved the head first,
/// it updates nothing. Another instance holding the chain makes it wait for that transaction's end (the append
/// comes last in a transaction, so briefly); `FOR UPDATE SKIP LOCKED` would spare that rare wait but costs every
/// append a row-lock record in the WAL (about 4 % of refresh throughput, docs/benchmarks.md).
macro_rules! move_audit_head {
    () => {
        "UPDATE audit_chain SET head_seq = $2, head_hash = $20, head_seal = $21 \
         WHERE id = $1 AND head_seq = $2 - 1 AND head_hash = $22"
    };
}

/// Inserts the entry (`$1` its chain, `$2` its position, `$3`…`$20` what it says) once for each row of `moved`,
/// the CTE holding [`move_audit_head`]: only if the head moved onto it.
macro_rules! insert_moved_audit_entry {
    () => {
        concat!(
            "INSERT INTO audit_log (chain, chain_seq, ",
            crate::queries::audit_content_columns!(),
            ") SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20 \
             FROM moved"
        )
    };
}

/// Appends an entry and moves its chain's head onto it, in one statement, only if the head is still the point
/// the entry was linked after; otherwise nothing is inserted. Parameters as [`append_query`] binds them.
const APPEND_AFTER_HEAD: &str =
    concat!("WITH moved AS (", move_audit_head!(), " RETURNING 1) ", insert_moved_audit_entry!());

/// [`APPEND_AFTER_HEAD`] and the refresh-token rotation (`rotate_refresh_token` in `impl_store_ports`) in one
/// statement: `$1`…`$22` as the append, then the rotation's `$1`…`$5` numbered on as `$23`…`$27`. The entry
/// goes in only with the rotation, and only onto the head it was linked after; the statement answers whether
/// the token was rotated and whether the entry was appended.
const ROTATE_REFRESH_TOKEN_AND_APPEND: &str = concat!(
    "WITH rotated AS (UPDATE refresh_tokens SET rotated_at = $27, replaced_by = $24 \
       WHERE id = $23 AND rotated_at IS NULL RETURNING id), \
     successor AS (INSERT INTO refresh_tokens (id, session_id, token_hash, created_at) \
       SELECT $24, $25, $26, $27 FROM rotated RETURNING 1), \
     moved AS (",
    move_audit_head!(),
    " AND EXISTS (SELECT 1 FROM rotated) RETURNING 1), appended AS (",
    insert_moved_audit_entry!(),
    // `EXISTS`, not `count(*)`: aggregates cost every execution an `Agg` node to set up (docs/benchmarks.md).
    " RETURNING 1) SELECT EXISTS (SELECT FROM successor), EXISTS (SELECT FROM appended)"
);

/// `statement` with an append's parameters bound: the entry as last linked, after `previous`.
fn append_query<'q>(
    statement: &'q str,
    pending: &'q PendingAuditEntry,
    previous: &'q ChainPoint,
) -> sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments> {
    let entry = pending.entry();
    bind_audit_entry!(sqlx::query(statement).bind(entry.chain).bind(entry.chain_seq), entry)
        .bind(pending.head_seal())
        .bind(&previous.hash)
}

/// Locks and reads the head of chain `$1` if no other transaction holds it, else of another chain nobody
/// holds, else nothing.
const CLAIM_FREE_CHAIN: &str = "SELECT id, head_seq, head_hash FROM audit_chain ORDER BY id <> $1, random() LIMIT 1 \
                                FOR UPDATE SKIP LOCKED";

impl PgStore {
    const BACKEND: StoreBackend = StoreBackend::Postgres;

    pub(crate) async fn connect(url: &str, options: &PoolOptions) -> Result<Self, ConnectError> {
        let connect_options =
            PgConnectOptions::from_str(url).map_err(ConnectError::InvalidUrl)?.application_name("dashtam");
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect_options)
            .await
            .map_err(ConnectError::Unreachable)?;
        // Chain 1 on top: one writer at a time keeps to it, as the log did before it had several. Instances
        // that meet there part at once: the one that finds it held appends to another and keeps to that.
        let chains = (1..=AUDIT_CHAINS).rev().map(|chain| ChainLease { chain, head: None }).collect();
        Ok(Self { pool, free_chains: Arc::new(Mutex::new(chains)) })
    }

    async fn close_pools(&self) {
        self.pool.close().await;
    }

    /// PostgreSQL commits each transaction on its own, bulk or not.
    async fn begin_write(&self, _bulk: bool) -> Result<(Transaction<'static, Postgres>, FreeChains), sqlx::Error> {
        let pool = self.pool.clone();
        let tx = crate::database::uncancellable(async move { pool.begin().await }).await?;
        Ok((tx, Arc::clone(&self.free_chains)))
    }
}

impl PgTx {
    /// Links the entry after the head of this transaction's chain. The first entry takes a chain from the free
    /// ones; when this instance remembers that chain's head, the entry is linked after it and deferred (see
    /// [`PgTx::deferred`]). Otherwise, and for every entry after the first, it is appended now.
    async fn link_audit_entry(&mut self, mut pending: PendingAuditEntry) -> Result<(), StoreError> {
        self.append_deferred().await?;
        if let Some(previous) = self.appended.clone() {
            return self.append_onto_locked_head(&mut pending, &previous).await;
        }
        let free_chains = &self.free_chains;
        let held = self.chain.get_or_insert_with(|| HeldChain::take(free_chains));
        match held.lease.head.clone() {
            Some(remembered) => {
                pending.link_after(&remembered);
                self.deferred = Some((pending, remembered));
                Ok(())
            }
            None => self.claim_chain_and_append(pending).await,
        }
    }

    /// Appends the deferred first entry, if there is one, after the remembered head if that is still the head,
    /// else after the head it locks.
    async fn append_deferred(&mut self) -> Result<(), StoreError> {
        let Some((mut pending, remembered)) = self.deferred.take() else { return Ok(()) };
        if self.append_after(&mut pending, &remembered).await? {
            return Ok(());
        }
        self.claim_chain_and_append(pending).await
    }

    /// Locks and reads the head of this transaction's chain, or of another one nobody holds, or, with every
    /// chain held, waits for its own, and appends after that.
    async fn claim_chain_and_append(&mut self, mut pending: PendingAuditEntry) -> Result<(), StoreError> {
        let free_chains = &self.free_chains;
        let preferred = self.chain.get_or_insert_with(|| HeldChain::take(free_chains)).lease.chain;
        let claimed: Option<(i16, i64, String)> = sqlx::query_as(CLAIM_FREE_CHAIN)
            .bind(preferred)
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(crate::errors::store_error)?;
        let (chain, seq, hash) = match claimed {
            Some(head) => head,
            None => sqlx::query_as("SELECT id, head_seq, head_hash FROM audit_chain WHERE id = $1 FOR UPDATE")
                .bind(preferred)
                .fetch_one(&mut *self.tx)
                .await
                .map_err(crate::errors::store_error)?,
        };
        if chain != preferred {
            // The preferred chain goes back, with its remembered head, as this transaction did not use it.
            let lease = ChainLease { chain, head: None };
            self.chain = Some(HeldChain { lease, free_chains: Arc::clone(&self.free_chains) });
        }
        self.append_onto_locked_head(&mut pending, &ChainPoint::unsealed(chain, seq, hash)).await
    }

    /// With a deferred audit entry, rotates refresh token `id` to `successor` unless it was rotated already and
    /// appends the entry in the same statement; whether the token was rotated. If the head the entry was linked
    /// after has moved, the entry stays deferred. `None` without a deferred entry: the plain rotation serves.
    async fn rotate_refresh_token_with_audit(
        &mut self,
        id: uuid::Uuid,
        successor: uuid::Uuid,
        session_id: uuid::Uuid,
        digest: &[u8],
        now: time::OffsetDateTime,
    ) -> Result<Option<bool>, StoreError> {
        let Some((pending, previous)) = self.deferred.take() else { return Ok(None) };
        let combined = append_query(ROTATE_REFRESH_TOKEN_AND_APPEND, &pending, &previous);
        let answer = bind_refresh_token_rotation!(combined, id, successor, session_id, digest, now)
            .fetch_one(&mut *self.tx)
            .await
            .map_err(crate::errors::store_error)?;
        let (rotated, appended): (bool, bool) = sqlx::FromRow::from_row(&answer).map_err(crate::errors::store_error)?;
        if appended {
            self.appended = Some(pending.point());
        } else {
            self.deferred = Some((pending, previous));
        }
        Ok(Some(rotated))
    }

    /// Appends after a head this transaction holds the lock of, which therefore cannot have moved.
    async fn append_onto_locked_head(
        &mut self,
        pending: &mut PendingAuditEntry,
        previous: &ChainPoint,
    ) -> Result<(), StoreError> {
        if self.append_after(pending, previous).await? {
            Ok(())
        } else {
            let (chain, seq) = (previous.chain, previous.seq);
            Err(StoreError::Corrupt(format!("the head of audit chain {chain} moved from entry {seq} while locked")))
        }
    }

    /// Whether the entry, linked after `previous`, was appended: only if `previous` is its chain's head.
    async fn append_after(
        &mut self,
        pending: &mut PendingAuditEntry,
        previous: &ChainPoint,
    ) -> Result<bool, StoreError> {
        pending.link_after(previous);
        let appended = append_query(APPEND_AFTER_HEAD, pending, previous)
            .execute(&mut *self.tx)
            .await
            .map_err(crate::errors::store_error)?
            .rows_affected()
            == 1;
        if appended {
            self.appended = Some(pending.point());
        }
        Ok(appended)
    }

    /// Commits; the chain this transaction appended to goes back to the free ones with its new head.
    async fn commit_writes(mut self) -> Result<(), StoreError> {
        self.append_deferred().await?;
        self.tx.commit().await.map_err(crate::errors::store_error)?;
        if let (Some(held), Some(appended)) = (&mut self.chain, self.appended) {
            held.lease.head = Some(appended);
        }
        Ok(())
    }
}

impl_store_ports!(PgStore, PgTx, |(tx, free_chains)| PgTx {
    tx,
    free_chains,
    chain: None,
    appended: None,
    deferred: None
});
impl_provider_ports!(PgStore, PgTx);
impl_import_ports!(PgStore, PgTx);
impl_ledger_ports!(PgStore, PgTx, sqlx::Postgres);
