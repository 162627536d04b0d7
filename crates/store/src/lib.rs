//! SQLite and PostgreSQL implementations of the domain's [`Store`](dashtam_domain::ports::Store) port.
//!
//! Both backends run the same SQL where the dialects agree (see [`queries`]); connection set-up, write
//! transactions and migrations are per backend. Behaviour is pinned by the contract suite in
//! `crates/testkit/tests/store_contract.rs`, which runs unchanged against both.

mod database;
mod errors;
mod import_queries;
mod import_rows;
mod ledger_queries;
mod ledger_rows;
mod migrations;
mod postgres;
mod provider_queries;
mod provider_rows;
mod queries;
mod rows;
mod sqlite;

pub use database::{ConnectError, Database, PoolOptions};
pub use migrations::SchemaVersion;
pub use migrations::{MigrationError, MigrationState, MigrationStatus};
