//! The storage ports for provider connections. They are supertraits of [`crate::ports::Store`] and
//! [`crate::ports::StoreTx`], so a service reaches them through the one store and transaction it already has.

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::ids::UserId;
use crate::ports::StoreError;
use crate::providers::model::{
    Alias, NewProvider, Provider, ProviderId, ProviderListQuery, ProviderPage, ProviderStatus, StoredCredentials,
};

/// Reading connections. Every read of a user's connection names the user: ownership is part of the query.
#[async_trait]
pub trait ProviderReads: Send + Sync {
    /// The user's connection with this id (`None` when it is someone else's or does not exist).
    async fn provider(&self, user_id: UserId, id: ProviderId) -> Result<Option<Provider>, StoreError>;

    /// A page of the user's connections.
    async fn providers(&self, query: &ProviderListQuery) -> Result<ProviderPage, StoreError>;

    /// A connection's stored credentials.
    async fn provider_credentials(&self, id: ProviderId) -> Result<Option<StoredCredentials>, StoreError>;

    /// Up to `limit` active connections whose next scheduled sync is due at `now`, most overdue first.
    async fn providers_due_for_sync(&self, now: OffsetDateTime, limit: u32) -> Result<Vec<Provider>, StoreError>;

    /// Up to `limit` stored credentials with ids after `after`, in id order (for key rotation).
    async fn credentials_after(
        &self,
        after: Option<ProviderId>,
        limit: u32,
    ) -> Result<Vec<StoredCredentials>, StoreError>;
}

/// Changing connections, inside a transaction.
#[async_trait]
pub trait ProviderWrites: Send {
    /// Creates a connection; an alias the user already uses (case-insensitively) is [`StoreError::Conflict`].
    async fn insert_provider(&mut self, provider: &NewProvider) -> Result<Provider, StoreError>;

    /// Renames the user's connection; `None` when there is no such connection of theirs, a taken alias is
    /// [`StoreError::Conflict`].
    async fn rename_provider(
        &mut self,
        user_id: UserId,
        id: ProviderId,
        alias: &Alias,
        now: OffsetDateTime,
    ) -> Result<Option<Provider>, StoreError>;

    /// Deletes the user's connection with its credentials and financial data (audit entries stay);
    /// `false` when there is no such connection of theirs.
    async fn delete_provider(&mut self, user_id: UserId, id: ProviderId) -> Result<bool, StoreError>;

    /// Sets a connection's status. `connected` marks a (re)connection: it stamps `connected_at` and clears the
    /// refresh-failure count.
    async fn set_provider_status(
        &mut self,
        id: ProviderId,
        status: ProviderStatus,
        connected: bool,
        now: OffsetDateTime,
    ) -> Result<(), StoreError>;

    /// Counts a failed token refresh; returns the count of failures in a row.
    async fn count_refresh_failure(&mut self, id: ProviderId, now: OffsetDateTime) -> Result<i32, StoreError>;

    /// Clears the refresh-failure count after a refresh worked.
    async fn clear_refresh_failures(&mut self, id: ProviderId, now: OffsetDateTime) -> Result<(), StoreError>;

    /// Stores (or replaces) a connection's credentials.
    async fn put_credentials(&mut self, credentials: &StoredCredentials) -> Result<(), StoreError>;

    /// Replaces a secret only if it is still `expected` (key rotation must not overwrite a refresh that
    /// happened meanwhile); `false` when it changed.
    async fn replace_credentials_secret(
        &mut self,
        id: ProviderId,
        expected: &[u8],
        secret: &[u8],
    ) -> Result<bool, StoreError>;

    /// Records a successful sync: stamps `last_sync_at`, clears the error and failure count, schedules the next.
    async fn record_sync_success(
        &mut self,
        id: ProviderId,
        now: OffsetDateTime,
        next_sync_at: OffsetDateTime,
    ) -> Result<(), StoreError>;

    /// Records a failed sync with a secret-free reason; returns the count of failures in a row. The caller
    /// schedules the retry with [`ProviderWrites::schedule_sync`].
    async fn record_sync_failure(
        &mut self,
        id: ProviderId,
        error: &str,
        now: OffsetDateTime,
    ) -> Result<i32, StoreError>;

    /// Sets when the scheduler syncs the connection next.
    async fn schedule_sync(&mut self, id: ProviderId, next_sync_at: OffsetDateTime) -> Result<(), StoreError>;

    /// Erases a connection's credentials; `false` when there were none.
    async fn delete_credentials(&mut self, id: ProviderId) -> Result<bool, StoreError>;
}
