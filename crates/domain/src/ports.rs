//! Ports: the traits through which domain services reach storage and shared state. Adapters implement
//! them; services hold them as `Arc<dyn …>` so one compiled handler serves every backend.

use std::error::Error as StdError;
use std::fmt::Debug;
use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::audit::{AuditEntry, AuditQuery, ChainPoint, ChainState, PendingAuditEntry};
use crate::device::Device;
use crate::ids::UserId;
use crate::imports::{ImportReads, ImportWrites};
use crate::ledger::{LedgerReads, LedgerWrites};
use crate::mail::{OutgoingEmail, QueuedEmail};
use crate::providers::store::{ProviderReads, ProviderWrites};
use crate::rate_limit::RateLimitViolation;
use crate::session::{
    NewSession, OneTimePurpose, OneTimeToken, RefreshTokenRecord, RefreshTokenState, Session, SessionAuthState,
    SessionEndReason, SessionId, TokenDigest,
};
use crate::user::{Email, NewUser, Role, SecurityConfig, User, UserName};

/// Any error from a backend library, kept for logs but never shown to clients.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// What can go wrong in storage, in terms a service can act on.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached in time (down, pool exhausted, network).
    #[error("database unavailable")]
    Unavailable(#[source] BoxError),
    /// A uniqueness rule was broken (a taken email, a duplicate alias). The operation that hit it knows
    /// which rule it can break; the source says which one did, for logs.
    #[error("unique constraint violated")]
    Conflict(#[source] BoxError),
    /// A stored value could not be turned back into a domain value: the data is damaged.
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    /// Anything else the database reported.
    #[error("database error")]
    Other(#[source] BoxError),
}

/// Which database a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreBackend {
    /// An embedded SQLite file.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

impl StoreBackend {
    /// The name used in logs, metrics and `/ready`.
    pub fn as_str(self) -> &'static str {
        match self {
            StoreBackend::Sqlite => "sqlite",
            StoreBackend::Postgres => "postgres",
        }
    }
}

/// A snapshot of the connection pool, for `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    /// Connections currently open.
    pub open: u32,
    /// Open connections not in use.
    pub idle: u32,
    /// The most the pool will open.
    pub max: u32,
}

/// Durable storage. Reads run on the pool; every change runs inside a [`StoreTx`] so a use case and its
/// audit entry commit together.
#[async_trait]
pub trait Store: ProviderReads + LedgerReads + ImportReads + Send + Sync + Debug {
    /// Which database this is.
    fn backend(&self) -> StoreBackend;

    /// Proves the database answers a query (used by `/ready`).
    async fn ping(&self) -> Result<(), StoreError>;

    /// Current pool usage.
    fn pool_stats(&self) -> PoolStats;

    /// Closes every connection; later calls fail with [`StoreError::Unavailable`]. Used at shutdown.
    async fn close(&self);

    /// Starts a write transaction. Dropping it without [`StoreTx::commit`] rolls everything back.
    async fn begin(&self) -> Result<Box<dyn StoreTx>, StoreError>;

    /// [`Store::begin`] for a transaction that writes much (an import, a provider sync, a purge). SQLite commits
    /// concurrent transactions together, each waiting for the group's commit; a long transaction does not join
    /// a group, so that the short ones before it are not held up for as long as it takes.
    async fn begin_bulk(&self) -> Result<Box<dyn StoreTx>, StoreError>;

    /// The user with this id.
    async fn user_by_id(&self, id: UserId) -> Result<Option<User>, StoreError>;

    /// The user with this (normalised) address.
    async fn user_by_email(&self, email: &Email) -> Result<Option<User>, StoreError>;

    /// The installation-wide token settings.
    async fn security_config(&self) -> Result<SecurityConfig, StoreError>;

    /// The session with this id, live or not.
    async fn session_by_id(&self, id: SessionId) -> Result<Option<Session>, StoreError>;

    /// The state an authenticated request checks: session, user and global token version, in one query.
    async fn session_auth_state(&self, id: SessionId) -> Result<Option<SessionAuthState>, StoreError>;

    /// The refresh token with this id, current or rotated.
    async fn refresh_token_by_id(&self, id: Uuid) -> Result<Option<RefreshTokenRecord>, StoreError>;

    /// The refresh token with this digest, current or rotated, with the state of its session — one query, as
    /// every refresh needs both.
    async fn refresh_token_by_digest(&self, digest: &TokenDigest) -> Result<Option<RefreshTokenState>, StoreError>;

    /// The user's live sessions (not ended, not expired, not retired by a global rotation), most recently
    /// active first.
    async fn live_sessions(&self, user_id: UserId, now: OffsetDateTime) -> Result<Vec<Session>, StoreError>;

    /// How many sessions the user has ever had, and how many of them from `device` (same description and
    /// location): a login from a device never seen before is worth telling the owner about.
    async fn device_history(&self, user_id: UserId, device: &Device) -> Result<DeviceHistory, StoreError>;

    /// The unused, unexpired one-time token of `purpose` with this digest (a read: using it is
    /// [`StoreTx::consume_one_time_token`]).
    async fn usable_one_time_token(
        &self,
        digest: &TokenDigest,
        purpose: OneTimePurpose,
        now: OffsetDateTime,
    ) -> Result<Option<OneTimeToken>, StoreError>;

    /// Every audit chain's head and checkpoint, by chain.
    async fn audit_chain_states(&self) -> Result<Vec<ChainState>, StoreError>;

    /// Up to `limit` audit entries after `after_seq`, in `seq` order (for verification).
    async fn audit_entries_after(&self, after_seq: i64, limit: u32) -> Result<Vec<AuditEntry>, StoreError>;

    /// The newest audit entry recorded before `cutoff` (the last one a purge would delete).
    async fn last_audit_entry_before(&self, cutoff: OffsetDateTime) -> Result<Option<AuditEntry>, StoreError>;

    /// The newest entry at or before `seq` of each chain that has one, unsealed: where a purge through `seq`
    /// leaves each chain's checkpoint.
    async fn audit_chain_points_through(&self, seq: i64) -> Result<Vec<ChainPoint>, StoreError>;

    /// Audit entries matching `query`, newest first.
    async fn audit_entries(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError>;
    /// The newest `limit` recorded rate-limit violations, newest first.
    async fn recent_rate_limit_violations(&self, limit: i64) -> Result<Vec<RateLimitViolation>, StoreError>;
}

/// One write transaction.
#[async_trait]
pub trait StoreTx: ProviderWrites + LedgerWrites + ImportWrites + Send {
    /// Creates an account; a taken address is [`StoreError::Conflict`].
    async fn insert_user(&mut self, user: &NewUser) -> Result<User, StoreError>;

    /// Changes a display name; `None` when there is no such user.
    async fn update_user_name(
        &mut self,
        id: UserId,
        name: &UserName,
        now: OffsetDateTime,
    ) -> Result<Option<User>, StoreError>;

    /// Changes a role; `None` when there is no such user.
    async fn set_user_role(&mut self, id: UserId, role: Role, now: OffsetDateTime) -> Result<Option<User>, StoreError>;

    /// Starts a session.
    async fn insert_session(&mut self, session: &NewSession) -> Result<Session, StoreError>;

    /// Ends a live session; `false` when it does not exist or had already ended (the first reason stays).
    async fn end_session(
        &mut self,
        id: SessionId,
        reason: SessionEndReason,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError>;

    /// Records the session's first (or next) current refresh token. A session has at most one current token;
    /// inserting a second without rotating the first is a [`StoreError::Conflict`].
    async fn insert_refresh_token(
        &mut self,
        id: Uuid,
        session_id: SessionId,
        digest: &TokenDigest,
        now: OffsetDateTime,
    ) -> Result<RefreshTokenRecord, StoreError>;

    /// Rotates the refresh token `id`, if it is still current, into its successor `successor` (of the same
    /// session, with `digest`), which becomes current: both writes or neither. Only one caller can win; the
    /// rest get `false`, as does a token that was already rotated or does not exist.
    async fn rotate_refresh_token(
        &mut self,
        id: Uuid,
        successor: Uuid,
        session_id: SessionId,
        digest: &TokenDigest,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError>;

    /// Issues a one-time token, voiding every unused token of the same user and purpose.
    async fn insert_one_time_token(&mut self, token: &OneTimeToken, digest: &TokenDigest) -> Result<(), StoreError>;

    /// Uses a one-time token: succeeds once, for an unused, unexpired token of this purpose.
    async fn consume_one_time_token(
        &mut self,
        digest: &TokenDigest,
        purpose: OneTimePurpose,
        now: OffsetDateTime,
    ) -> Result<Option<OneTimeToken>, StoreError>;

    /// A successful login: clears the failure count and any lock, and records the time.
    async fn record_login_success(&mut self, id: UserId, now: OffsetDateTime) -> Result<(), StoreError>;

    /// A failed login: counts it and, when the count reaches `lock_threshold`, locks the account until
    /// `lock_until`. Returns the user as updated; `None` when there is no such user.
    async fn record_login_failure(
        &mut self,
        id: UserId,
        lock_threshold: i32,
        lock_until: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<Option<User>, StoreError>;

    /// Replaces the password hash. A new password also clears failed logins and lifts any lock.
    async fn set_password_hash(&mut self, id: UserId, hash: &str, now: OffsetDateTime) -> Result<bool, StoreError>;

    /// Marks the email address verified (keeps the first verification time); `false` when no such user.
    async fn mark_email_verified(&mut self, id: UserId, now: OffsetDateTime) -> Result<bool, StoreError>;

    /// Disables an account (keeps the first time); `None` when no such user.
    async fn disable_user(&mut self, id: UserId, now: OffsetDateTime) -> Result<Option<User>, StoreError>;

    /// Ends every live session of a user except `keep`; returns how many ended.
    async fn end_user_sessions(
        &mut self,
        user_id: UserId,
        keep: Option<SessionId>,
        reason: SessionEndReason,
        now: OffsetDateTime,
    ) -> Result<u64, StoreError>;

    /// Records activity on a session.
    async fn touch_session(&mut self, id: SessionId, now: OffsetDateTime) -> Result<(), StoreError>;

    /// Queues an email for delivery after this transaction commits.
    async fn enqueue_email(&mut self, email: &OutgoingEmail) -> Result<(), StoreError>;

    /// Claims up to `limit` undelivered emails that are due at `now`, hiding them from other workers until
    /// `lease_until` (so a worker that dies mid-send does not lose them).
    async fn claim_due_emails(
        &mut self,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: i64,
    ) -> Result<Vec<QueuedEmail>, StoreError>;

    /// Records a delivery and drops the bodies (they may hold live one-time links).
    async fn mark_email_sent(&mut self, id: Uuid, now: OffsetDateTime) -> Result<(), StoreError>;

    /// Records a failed attempt; the email is retried at `retry_at`, or never when `None` (given up).
    async fn mark_email_failed(
        &mut self,
        id: Uuid,
        error: &str,
        retry_at: Option<OffsetDateTime>,
    ) -> Result<(), StoreError>;

    /// Retires every token of a user by raising their token version; returns the new version, `None` when
    /// there is no such user. (Ending the sessions is [`StoreTx::end_user_sessions`].)
    async fn rotate_user_tokens(&mut self, user_id: UserId, now: OffsetDateTime) -> Result<Option<i64>, StoreError>;

    /// Raises the global token version: sessions started under an older one are refused once
    /// `rotation.enforced_at` has passed (and are ended at once when it is not in the future).
    async fn rotate_global_tokens(&mut self, rotation: &GlobalRotation) -> Result<GlobalRotationCounts, StoreError>;

    /// Appends `entry` to an audit chain with this transaction: the store links it onto a chain's head
    /// ([`PendingAuditEntry::link_after`]) and makes it the sealed head, and it commits or rolls back with
    /// everything else. On PostgreSQL that head row stays locked until the transaction ends, which orders the
    /// writers of that chain in every instance (a transaction's entries all go on one chain); SQLite's writers
    /// are serialised already, and it writes the entry as part of the commit.
    async fn append_audit_entry(&mut self, entry: PendingAuditEntry) -> Result<(), StoreError>;

    /// Moves each chain's checkpoint to its point in `checkpoints` and deletes the entries up to `through_seq`
    /// that those checkpoints cover; returns how many were deleted.
    async fn purge_audit_through(&mut self, through_seq: i64, checkpoints: &[ChainPoint]) -> Result<u64, StoreError>;

    /// Makes every change of this transaction durable.
    async fn commit(self: Box<Self>) -> Result<(), StoreError>;

    /// Records refused requests (written in batches, off the request path).
    async fn insert_rate_limit_violations(&mut self, violations: &[RateLimitViolation]) -> Result<(), StoreError>;
}

/// A user's device history (see [`Store::device_history`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceHistory {
    /// Sessions the user has had, live or not.
    pub earlier_sessions: i64,
    /// Of those, sessions from the same device and location.
    pub from_this_device: i64,
}

/// A global token rotation to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlobalRotation {
    /// When it happens.
    pub now: OffsetDateTime,
    /// Why.
    pub reason: String,
    /// Who started it (`None` for the command line).
    pub initiated_by: Option<UserId>,
    /// When older sessions stop working: `now` plus the grace period.
    pub enforced_at: OffsetDateTime,
}

/// What a global rotation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GlobalRotationCounts {
    /// The new minimum global version.
    pub new_version: i64,
    /// When older sessions stop working (may be sooner than asked when an earlier rotation is pending).
    pub enforced_at: OffsetDateTime,
    /// Live sessions it retires.
    pub sessions: u64,
    /// Users those sessions belong to.
    pub users: u64,
}

/// The short-lived state shared between instances (rate-limit buckets, revocations, OAuth state, locks):
/// in-process for one instance, Redis for many.
#[async_trait]
pub trait SharedState: Send + Sync + Debug {
    /// `memory` or `redis`, for logs and metrics.
    fn kind(&self) -> &'static str;

    /// Proves the backend answers (used by `/ready`).
    async fn ping(&self) -> Result<(), BoxError>;

    /// Stores `value` under `key` for `ttl`, unless the key is taken; `false` when it was.
    async fn put_ephemeral(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, BoxError>;

    /// Removes the value under `key` and returns it: of any number of concurrent callers on any instance,
    /// exactly one gets it.
    async fn take_ephemeral(&self, key: &str) -> Result<Option<Vec<u8>>, BoxError>;

    /// Takes the lock `name` for at most `ttl` (so a crashed holder cannot keep it), waiting up to `wait` for
    /// it to be free (`Duration::ZERO`: try once); `None` when it stayed taken.
    async fn lock(&self, name: &str, ttl: Duration, wait: Duration) -> Result<Option<LockToken>, BoxError>;

    /// Releases a lock taken with `token`; a lock that expired and was taken by someone else is left alone.
    async fn unlock(&self, name: &str, token: &LockToken) -> Result<(), BoxError>;
}

/// Proof of holding a lock: a random value only the holder knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockToken(pub String);
