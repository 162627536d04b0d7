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
use crate::queries::{bind_audit_entry, impl_store_ports};

#[derive(Debug)]
pub(crate) struct PgStore {
    pub(crate) pool: PgPool,
    /// The audit chain head as of this instance's newest audited COMMIT: the point the next entry most likely
    /// follows. Only a hint, as other instances append too; [`APPEND_AFTER_HEAD`] checks it.
    audit_head: RememberedHead,
}

type RememberedHead = Arc<Mutex<Option<ChainPoint>>>;

pub(crate) struct PgTx {
    tx: Transaction<'static, Postgres>,
    remembered_head: RememberedHead,
    /// The newest entry this transaction appended. From the first, the transaction holds the head row's lock,
    /// so the next one follows it.
    appended: Option<ChainPoint>,
}

/// Appends an entry and moves the chain head onto it, in one statement, only if the head is still the point the
/// entry was linked after: `$1`…`$19` are the entry's columns, `$20` the head seal, `$21` the previous hash.
/// The `UPDATE` takes the head row's lock until the transaction ends, which orders the writers of every
/// instance; if another writer moved the head first, it updates nothing, and nothing is inserted.
const APPEND_AFTER_HEAD: &str = concat!(
    "WITH moved AS (UPDATE audit_chain SET head_seq = $1, head_hash = $19, head_seal = $20 \
     WHERE id = 1 AND head_seq = $1 - 1 AND head_hash = $21 RETURNING 1) \
     INSERT INTO audit_log (",
    crate::queries::audit_columns!(),
    ", head_seal) SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, \
     $20 FROM moved"
);

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
        Ok(Self { pool, audit_head: RememberedHead::default() })
    }

    async fn close_pools(&self) {
        self.pool.close().await;
    }

    /// PostgreSQL commits each transaction on its own, bulk or not.
    async fn begin_write(&self, _bulk: bool) -> Result<(Transaction<'static, Postgres>, RememberedHead), sqlx::Error> {
        let pool = self.pool.clone();
        let tx = crate::database::uncancellable(async move { pool.begin().await }).await?;
        Ok((tx, Arc::clone(&self.audit_head)))
    }
}

impl PgTx {
    /// Links the entry after the head this transaction or instance appended last and appends it: one statement
    /// when that is still the head. Otherwise (another writer appended since) it locks the head row, reads it,
    /// links the entry again and appends it after that.
    async fn link_audit_entry(&mut self, mut pending: PendingAuditEntry) -> Result<(), StoreError> {
        let likely_head = match &self.appended {
            Some(point) => Some(point.clone()),
            None => self.remembered_head.lock().unwrap_or_else(PoisonError::into_inner).clone(),
        };
        if let Some(previous) = likely_head
            && self.append_after(&mut pending, &previous).await?
        {
            return Ok(());
        }
        let (seq, hash): (i64, String) =
            sqlx::query_as("SELECT head_seq, head_hash FROM audit_chain WHERE id = 1 FOR UPDATE")
                .fetch_one(&mut *self.tx)
                .await
                .map_err(crate::errors::store_error)?;
        if self.append_after(&mut pending, &ChainPoint { seq, hash, seal: None }).await? {
            Ok(())
        } else {
            Err(StoreError::Corrupt(format!("the audit chain head moved from entry {seq} while its row was locked")))
        }
    }

    /// Whether the entry, linked after `previous`, was appended: only if `previous` is the head.
    async fn append_after(
        &mut self,
        pending: &mut PendingAuditEntry,
        previous: &ChainPoint,
    ) -> Result<bool, StoreError> {
        pending.link_after(previous);
        let appended = bind_audit_entry!(sqlx::query(APPEND_AFTER_HEAD), pending.entry())
            .bind(pending.head_seal())
            .bind(&previous.hash)
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

    /// Commits, and remembers the newest entry it appended as the head the next audited transaction follows.
    async fn commit_writes(self) -> Result<(), StoreError> {
        self.tx.commit().await.map_err(crate::errors::store_error)?;
        if let Some(appended) = self.appended {
            let mut remembered = self.remembered_head.lock().unwrap_or_else(PoisonError::into_inner);
            // Transactions committing at once may get here out of order; keep the newest.
            if remembered.as_ref().is_none_or(|head| head.seq < appended.seq) {
                *remembered = Some(appended);
            }
        }
        Ok(())
    }
}

impl_store_ports!(PgStore, PgTx, |(tx, remembered_head)| PgTx { tx, remembered_head, appended: None });
impl_provider_ports!(PgStore, PgTx);
impl_import_ports!(PgStore, PgTx);
impl_ledger_ports!(PgStore, PgTx, sqlx::Postgres);
