//! The scaled backend: a PostgreSQL server shared by every instance.

use std::str::FromStr;

use dashtam_domain::ports::StoreBackend;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres, Transaction};

use crate::database::{ConnectError, PoolOptions};
use crate::import_queries::impl_import_ports;
use crate::ledger_queries::impl_ledger_ports;
use crate::provider_queries::impl_provider_ports;
use crate::queries::impl_store_ports;

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

    async fn begin_write(&self) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
        let pool = self.pool.clone();
        crate::database::uncancellable(async move { pool.begin().await }).await
    }
}

impl_store_ports!(PgStore, PgTx, |tx| PgTx { tx });
impl_provider_ports!(PgStore, PgTx);
impl_import_ports!(PgStore, PgTx);
impl_ledger_ports!(PgStore, PgTx, sqlx::Postgres);
