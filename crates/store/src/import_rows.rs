//! The import record row and its conversion (see [`crate::rows`]).

use dashtam_domain::UserId;
use dashtam_domain::imports::{ImportFormat, ImportId, ImportRecord};
use dashtam_domain::ports::StoreError;
use time::OffsetDateTime;
use uuid::Uuid;

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct ImportRow {
    id: Uuid,
    user_id: Uuid,
    file_name: String,
    format: String,
    accounts_created: i64,
    accounts_updated: i64,
    transactions_created: i64,
    transactions_duplicate: i64,
    holdings_created: i64,
    holdings_updated: i64,
    warnings: String,
    created_at: OffsetDateTime,
}

impl TryFrom<ImportRow> for ImportRecord {
    type Error = StoreError;

    fn try_from(row: ImportRow) -> Result<Self, Self::Error> {
        let corrupt = |what: &str| StoreError::Corrupt(format!("import {}: {what}", row.id));
        let count = |value: i64| u64::try_from(value).map_err(|_| corrupt("count"));
        Ok(ImportRecord {
            id: ImportId::from_uuid(row.id),
            user_id: UserId::from_uuid(row.user_id),
            format: ImportFormat::parse(&row.format).ok_or_else(|| corrupt("format"))?,
            accounts_created: count(row.accounts_created)?,
            accounts_updated: count(row.accounts_updated)?,
            transactions_created: count(row.transactions_created)?,
            transactions_duplicate: count(row.transactions_duplicate)?,
            holdings_created: count(row.holdings_created)?,
            holdings_updated: count(row.holdings_updated)?,
            warnings: serde_json::from_str(&row.warnings).map_err(|_| corrupt("warnings"))?,
            file_name: row.file_name,
            created_at: row.created_at,
        })
    }
}
