//! Provider row shapes and their conversion into domain values (see [`crate::rows`]).

use dashtam_domain::UserId;
use dashtam_domain::ports::StoreError;
use dashtam_domain::providers::{
    Alias, CredentialKind, Provider, ProviderId, ProviderKey, ProviderSort, ProviderStatus, StoredCredentials,
};
use time::OffsetDateTime;
use uuid::Uuid;

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct ProviderRow {
    id: Uuid,
    user_id: Uuid,
    provider_key: String,
    alias: String,
    status: String,
    connected_at: Option<OffsetDateTime>,
    last_sync_at: Option<OffsetDateTime>,
    last_sync_error: Option<String>,
    refresh_failures: i32,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
    accounts_count: i64,
}

impl TryFrom<ProviderRow> for Provider {
    type Error = StoreError;

    fn try_from(row: ProviderRow) -> Result<Self, Self::Error> {
        let corrupt = |what: &str| StoreError::Corrupt(format!("provider {}: {what}", row.id));
        Ok(Provider {
            id: ProviderId::from_uuid(row.id),
            user_id: UserId::from_uuid(row.user_id),
            provider_key: ProviderKey::parse(&row.provider_key).ok_or_else(|| corrupt("provider_key"))?,
            alias: Alias::parse(&row.alias).map_err(|_| corrupt("alias"))?,
            status: ProviderStatus::parse(&row.status).ok_or_else(|| corrupt("status"))?,
            connected_at: row.connected_at,
            last_sync_at: row.last_sync_at,
            last_sync_error: row.last_sync_error,
            refresh_failures: row.refresh_failures,
            accounts_count: row.accounts_count,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct CredentialsRow {
    provider_id: Uuid,
    kind: String,
    secret: Vec<u8>,
    access_expires_at: Option<OffsetDateTime>,
    has_refresh_token: bool,
    scope: Option<String>,
    connected_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

impl TryFrom<CredentialsRow> for StoredCredentials {
    type Error = StoreError;

    fn try_from(row: CredentialsRow) -> Result<Self, Self::Error> {
        Ok(StoredCredentials {
            provider_id: ProviderId::from_uuid(row.provider_id),
            kind: CredentialKind::parse(&row.kind)
                .ok_or_else(|| StoreError::Corrupt(format!("credentials {}: kind", row.provider_id)))?,
            secret: row.secret,
            access_expires_at: row.access_expires_at,
            has_refresh_token: row.has_refresh_token,
            scope: row.scope,
            connected_at: row.connected_at,
            updated_at: row.updated_at,
        })
    }
}

/// The `ORDER BY` of a provider list; ties break on the id so pages never overlap.
pub(crate) fn provider_order(sort: ProviderSort, descending: bool) -> &'static str {
    match (sort, descending) {
        (ProviderSort::CreatedAt, false) => "p.created_at ASC, p.id ASC",
        (ProviderSort::CreatedAt, true) => "p.created_at DESC, p.id DESC",
        (ProviderSort::UpdatedAt, false) => "p.updated_at ASC, p.id ASC",
        (ProviderSort::UpdatedAt, true) => "p.updated_at DESC, p.id DESC",
        (ProviderSort::Alias, false) => "lower(p.alias) ASC, p.id ASC",
        (ProviderSort::Alias, true) => "lower(p.alias) DESC, p.id DESC",
        (ProviderSort::ProviderKey, false) => "p.provider_key ASC, p.id ASC",
        (ProviderSort::ProviderKey, true) => "p.provider_key DESC, p.id DESC",
    }
}
