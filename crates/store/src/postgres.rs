//! The scaled backend: a PostgreSQL server shared by every instance.

use std::str::FromStr;

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
}

pub(crate) struct PgTx {
    tx: Transaction<'static, Postgres>,
}

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
        Ok(Self { pool })
    }

    async fn close_pools(&self) {
        self.pool.close().await;
    }

    /// PostgreSQL commits each transaction on its own, bulk or not.
    async fn begin_write(&self, _bulk: bool) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
        let pool = self.pool.clone();
        crate::database::uncancellable(async move { pool.begin().await }).await
    }
}

impl PgTx {
    /// Claims the head with an UPDATE, not a SELECT: it takes the head row's lock until the transaction ends,
    /// which orders the writers of every instance, and RETURNING sees the hash not yet replaced, i.e. the
    /// previous entry's. The `audit_log_moves_head` trigger then makes the inserted entry the sealed head.
    async fn link_audit_entry(&mut self, mut pending: PendingAuditEntry) -> Result<(), StoreError> {
        let (seq, hash): (i64, String) = sqlx::query_as(
            "UPDATE audit_chain SET head_seq = head_seq + 1 WHERE id = 1 RETURNING head_seq - 1, head_hash",
        )
        .fetch_one(&mut *self.tx)
        .await
        .map_err(crate::errors::store_error)?;
        pending.link_after(&ChainPoint { seq, hash, seal: None });
        let query = sqlx::query(concat!(
            "INSERT INTO audit_log (",
            crate::queries::audit_columns!(),
            ", head_seal) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, \
             $19, $20)"
        ));
        bind_audit_entry!(query, pending.entry())
            .bind(pending.head_seal())
            .execute(&mut *self.tx)
            .await
            .map(drop)
            .map_err(crate::errors::store_error)
    }

    async fn commit_writes(self) -> Result<(), StoreError> {
        self.tx.commit().await.map_err(crate::errors::store_error)
    }
}

impl_store_ports!(PgStore, PgTx, |tx| PgTx { tx });
impl_provider_ports!(PgStore, PgTx);
impl_import_ports!(PgStore, PgTx);
impl_ledger_ports!(PgStore, PgTx, sqlx::Postgres);
