//! Reversible migrations, one folder per backend, embedded in the binary.

use std::collections::BTreeMap;
use std::ops::DerefMut;

use sqlx::migrate::{Migrate, MigrateError, Migrator};
use sqlx::{Database as SqlxDatabase, Pool};

pub(crate) static SQLITE: Migrator = sqlx::migrate!("migrations/sqlite");
pub(crate) static POSTGRES: Migrator = sqlx::migrate!("migrations/postgres");

/// A migration's version (its timestamp prefix).
pub type SchemaVersion = i64;

/// A migration failed; the database is left as the last successful step.
#[derive(Debug, thiserror::Error)]
#[error("migration failed: {0}")]
pub struct MigrationError(#[from] MigrateError);

/// Where one migration stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MigrationState {
    /// Applied, and the file still matches what was applied.
    Applied,
    /// Known to this binary, not yet applied.
    Pending,
    /// Applied, but the file has changed since (migrations must never be edited once applied).
    Modified,
    /// Applied by a newer binary; this one does not know it.
    Unknown,
}

impl MigrationState {
    /// Lower-case name for the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Pending => "pending",
            Self::Modified => "modified",
            Self::Unknown => "unknown",
        }
    }
}

/// One line of `dashtam migrate status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationStatus {
    /// The version.
    pub version: SchemaVersion,
    /// What it does (from the file name); empty for [`MigrationState::Unknown`].
    pub description: String,
    /// Where it stands.
    pub state: MigrationState,
}

pub(crate) async fn up<DB>(migrator: &Migrator, pool: &Pool<DB>) -> Result<Vec<SchemaVersion>, MigrationError>
where
    DB: SqlxDatabase,
    DB::Connection: Migrate,
{
    let before = applied_versions(pool).await?;
    migrator.run(pool).await?;
    let after = applied_versions(pool).await?;
    Ok(after.into_keys().filter(|version| !before.contains_key(version)).collect())
}

pub(crate) async fn down<DB>(
    migrator: &Migrator,
    pool: &Pool<DB>,
    steps: usize,
) -> Result<Vec<SchemaVersion>, MigrationError>
where
    DB: SqlxDatabase,
    DB::Connection: Migrate,
{
    let applied: Vec<SchemaVersion> = applied_versions(pool).await?.into_keys().rev().collect();
    if steps == 0 || applied.is_empty() {
        return Ok(Vec::new());
    }
    // `undo` reverts everything above the target, so the target is the newest migration that stays.
    let target = applied.get(steps).copied().unwrap_or(0);
    migrator.undo(pool, target).await?;
    Ok(applied.into_iter().take(steps).collect())
}

pub(crate) async fn status<DB>(migrator: &Migrator, pool: &Pool<DB>) -> Result<Vec<MigrationStatus>, MigrationError>
where
    DB: SqlxDatabase,
    DB::Connection: Migrate,
{
    let mut applied = applied_versions(pool).await?;
    let mut lines: Vec<MigrationStatus> = migrator
        .iter()
        .filter(|migration| migration.migration_type.is_up_migration())
        .map(|migration| {
            let state = match applied.remove(&migration.version) {
                Some(checksum) if checksum == *migration.checksum => MigrationState::Applied,
                Some(_) => MigrationState::Modified,
                None => MigrationState::Pending,
            };
            MigrationStatus { version: migration.version, description: migration.description.to_string(), state }
        })
        .collect();
    lines.extend(applied.into_keys().map(|version| MigrationStatus {
        version,
        description: String::new(),
        state: MigrationState::Unknown,
    }));
    lines.sort_by_key(|line| line.version);
    Ok(lines)
}

/// Applied versions with their checksums, oldest first. Creating the bookkeeping table is not safe to race
/// on PostgreSQL (two `CREATE TABLE IF NOT EXISTS` collide in the catalog), so it happens under the same
/// advisory lock the migrator takes. Another instance may apply migrations between this read and the
/// migrator's run; that only makes the "applied" report of `up` claim them too, never a double apply.
async fn applied_versions<DB>(pool: &Pool<DB>) -> Result<BTreeMap<SchemaVersion, Vec<u8>>, MigrationError>
where
    DB: SqlxDatabase,
    DB::Connection: Migrate,
{
    let mut connection = pool.acquire().await.map_err(MigrateError::from)?;
    let connection: &mut DB::Connection = connection.deref_mut();
    connection.lock().await?;
    let listed = async {
        connection.ensure_migrations_table().await?;
        connection.list_applied_migrations().await
    }
    .await;
    connection.unlock().await?;
    Ok(listed?.into_iter().map(|migration| (migration.version, migration.checksum.into_owned())).collect())
}
