//! The audit log: every security event with its request context, written in the transaction of the change it
//! records, and chained so that any edit, deletion, insertion or reordering is detectable.
//!
//! Each entry is on one hash chain, at a position without gaps, with
//! `hash = SHA-256(previous hash ‖ canonical encoding of the entry)`. Each chain's newest position and hash (its
//! head) are kept in their own row, sealed with a keyed MAC, so removing the newest entries is detected too; the
//! heads are also logged periodically for outside anchoring. Purging old entries moves each chain's sealed
//! checkpoint (its last purged hash) forward, so the rest still verifies.
//!
//! SQLite writes one chain. PostgreSQL writes several side by side ([`FIRST_CHAIN`] and more): a chain's head
//! stays locked from an entry's append until its transaction ends, and with one chain every audited
//! transaction of every instance would commit in turn.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::clock::Clock;
use crate::context::{Actor, RequestContext};
use crate::ids::UserId;
use crate::ports::{Store, StoreError, StoreTx};
use crate::session::SessionId;

/// The chain every entry was on before there were several: its entries and seals keep their original encoding.
pub const FIRST_CHAIN: i16 = 1;

/// The hash before the first entry.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// How an audited action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditOutcome {
    /// It happened.
    Success,
    /// It was attempted and failed (wrong password, provider error).
    Failure,
    /// A rule refused it (lockout, rate limit, someone else's resource, missing role).
    Denied,
}

impl AuditOutcome {
    /// The stored and serialised form.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditOutcome::Success => "success",
            AuditOutcome::Failure => "failure",
            AuditOutcome::Denied => "denied",
        }
    }

    /// Parses the stored form.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "success" => Some(AuditOutcome::Success),
            "failure" => Some(AuditOutcome::Failure),
            "denied" => Some(AuditOutcome::Denied),
            _ => None,
        }
    }
}

/// Declares the audited actions with their stored names, so the list is written once.
macro_rules! audit_actions {
    ($($(#[$meta:meta])* $variant:ident => $name:literal,)*) => {
        /// What happened. The stored name (`auth.login`) is stable; clients filter on it.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum AuditAction {
            $($(#[$meta])* $variant,)*
        }

        impl AuditAction {
            /// Every action, for documentation and validation.
            pub const ALL: &'static [AuditAction] = &[$(AuditAction::$variant,)*];

            /// The stored name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(AuditAction::$variant => $name,)*
                }
            }

            /// The action with this stored name.
            pub fn parse(name: &str) -> Option<Self> {
                match name {
                    $($name => Some(AuditAction::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

audit_actions! {
    /// An account was registered (or registration was tried with a taken address).
    UserRegistered => "user.registered",
    /// An operator created an account.
    UserCreated => "user.created",
    /// An email address was verified.
    EmailVerified => "user.email_verified",
    /// A new verification link was sent.
    VerificationResent => "user.verification_resent",
    /// A display name changed.
    ProfileUpdated => "user.profile_updated",
    /// A role changed.
    RoleChanged => "user.role_changed",
    /// An account was disabled.
    AccountDisabled => "user.disabled",
    /// A login attempt, with its outcome and reason.
    Login => "auth.login",
    /// An account was locked after repeated failed logins.
    AccountLocked => "auth.lockout",
    /// A refresh token was exchanged.
    TokenRefreshed => "auth.refresh",
    /// A rotated refresh token was presented again and its session ended.
    RefreshTokenReused => "auth.refresh_token_reuse",
    /// A session was ended by its owner.
    Logout => "auth.logout",
    /// A password-reset link was requested.
    PasswordResetRequested => "auth.password_reset_requested",
    /// A password was reset with an emailed link.
    PasswordReset => "auth.password_reset",
    /// A password was changed by its owner.
    PasswordChanged => "auth.password_changed",
    /// One session was revoked.
    SessionRevoked => "session.revoked",
    /// Every other session of a user was revoked.
    OtherSessionsRevoked => "session.others_revoked",
    /// Every session of a user was revoked.
    AllSessionsRevoked => "session.all_revoked",
    /// One user's tokens were rotated.
    UserTokensRotated => "tokens.user_rotated",
    /// Every user's tokens were rotated.
    GlobalTokensRotated => "tokens.global_rotated",
    /// A request was refused by a rate limit.
    RateLimitDenied => "rate_limit.denied",
    /// A request was refused for lack of a role or for naming someone else's resource.
    AccessDenied => "access.denied",
    /// Stored secrets were re-encrypted under the active key.
    KeysRotated => "keys.rotated",
    /// Entries older than the retention period were purged.
    AuditPurged => "audit.purged",
    /// A provider connection was created.
    ProviderCreated => "provider.created",
    /// A provider connection was renamed.
    ProviderRenamed => "provider.renamed",
    /// A provider connection was deleted (with its credentials and data; never its audit entries).
    ProviderDeleted => "provider.deleted",
    /// An OAuth connect flow was started.
    ProviderAuthorizationStarted => "provider.authorization_started",
    /// A connect flow or API key ended (success, or failure with the reason).
    ProviderConnected => "provider.connected",
    /// A provider token refresh (with how the refresh token was handled), or its failure.
    ProviderTokenRefreshed => "provider.token_refreshed",
    /// A provider's credentials were erased at the user's request.
    ProviderDisconnected => "provider.disconnected",
    /// A connection was marked as needing reconnection.
    ProviderNeedsReconnection => "provider.needs_reconnection",
    /// A sync of a provider's data finished (with counts) or failed (with the reason).
    ProviderSynced => "provider.synced",
    /// A statement file was imported (with counts) or refused (with the reason).
    StatementImported => "import.completed",
}

/// One event to record; the request context supplies the rest.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    action: AuditAction,
    outcome: AuditOutcome,
    user_id: Option<UserId>,
    session_id: Option<SessionId>,
    /// Who acted, when the use case learnt it: otherwise the context's actor.
    actor: Option<Actor>,
    resource: Option<(&'static str, String)>,
    details: Map<String, Value>,
}

impl AuditEvent {
    /// An event about nobody in particular yet.
    pub fn new(action: AuditAction, outcome: AuditOutcome) -> Self {
        Self { action, outcome, user_id: None, session_id: None, actor: None, resource: None, details: Map::new() }
    }

    /// The user the event is about (who may differ from the actor: an admin disabling an account).
    pub fn user(mut self, user_id: UserId) -> Self {
        self.user_id = Some(user_id);
        self
    }

    /// The session the event is about, when it is not the caller's (a login's new session).
    pub fn session(mut self, session_id: SessionId) -> Self {
        self.session_id = Some(session_id);
        self
    }

    /// `user` proved who they are in this very request (a login's password, a refresh token), which came
    /// without an access token: the entry names them as the actor, not `anonymous`.
    pub fn signed_in_as(mut self, user: UserId, session: SessionId) -> Self {
        self.user_id = Some(user);
        self.session_id = Some(session);
        self.actor = Some(Actor::User(user));
        self
    }

    /// The resource acted on.
    pub fn resource(mut self, resource_type: &'static str, resource_id: impl ToString) -> Self {
        self.resource = Some((resource_type, resource_id.to_string()));
        self
    }

    /// Adds a detail. Never pass secrets, tokens, passwords or full account numbers.
    pub fn detail(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.details.insert(key.to_owned(), value.into());
        self
    }

    /// The action.
    pub fn action(&self) -> AuditAction {
        self.action
    }
}

/// A stored entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Where the entry sits in the log: the order entries are listed in, and the cursor. It rises along every
    /// chain; with one chain it is the chain position.
    pub seq: i64,
    /// The hash chain the entry is on.
    pub chain: i16,
    /// Position in its chain, from 1, without gaps.
    pub chain_seq: i64,
    /// Its id.
    pub id: Uuid,
    /// When it was recorded.
    pub occurred_at: OffsetDateTime,
    /// The action's stored name.
    pub action: String,
    /// How it ended.
    pub outcome: AuditOutcome,
    /// The user it is about.
    pub user_id: Option<Uuid>,
    /// Who acted: a user id, `anonymous`, `operator` or `system`.
    pub actor: String,
    /// The kind of resource acted on.
    pub resource_type: Option<String>,
    /// Its id.
    pub resource_id: Option<String>,
    /// The request's `X-Request-ID`.
    pub request_id: Option<String>,
    /// The session involved.
    pub session_id: Option<Uuid>,
    /// HTTP method, or `CLI`.
    pub method: Option<String>,
    /// Route template or command.
    pub route: Option<String>,
    /// Concrete path.
    pub path: Option<String>,
    /// Client address.
    pub ip_address: Option<String>,
    /// Client `User-Agent`.
    pub user_agent: Option<String>,
    /// OpenTelemetry trace id.
    pub trace_id: Option<String>,
    /// A JSON object of further facts, stored as the exact text that was hashed.
    pub details: String,
    /// `SHA-256(previous hash ‖ this entry)`, lower-case hex.
    pub hash: String,
}

impl AuditEntry {
    /// The hash this entry must carry when it follows an entry whose hash is `previous`.
    pub fn chain_hash(&self, previous: &str) -> String {
        let mut hasher = Sha256::new();
        if self.chain == FIRST_CHAIN {
            hasher.update(b"dashtam-audit-v1");
        } else {
            hasher.update(b"dashtam-audit-v2");
            hasher.update(self.chain.to_be_bytes());
        }
        put(&mut hasher, previous.as_bytes());
        hasher.update(self.chain_seq.to_be_bytes());
        hasher.update(self.id.as_bytes());
        hasher.update(self.occurred_at.unix_timestamp_nanos().to_be_bytes());
        put(&mut hasher, self.action.as_bytes());
        put(&mut hasher, self.outcome.as_str().as_bytes());
        put_optional_uuid(&mut hasher, self.user_id);
        put(&mut hasher, self.actor.as_bytes());
        put_optional(&mut hasher, self.resource_type.as_deref());
        put_optional(&mut hasher, self.resource_id.as_deref());
        put_optional(&mut hasher, self.request_id.as_deref());
        put_optional_uuid(&mut hasher, self.session_id);
        put_optional(&mut hasher, self.method.as_deref());
        put_optional(&mut hasher, self.route.as_deref());
        put_optional(&mut hasher, self.path.as_deref());
        put_optional(&mut hasher, self.ip_address.as_deref());
        put_optional(&mut hasher, self.user_agent.as_deref());
        put_optional(&mut hasher, self.trace_id.as_deref());
        put(&mut hasher, self.details.as_bytes());
        hex::encode(hasher.finalize())
    }
}

/// Length-prefixed, so no two different field lists encode alike.
fn put(hasher: &mut Sha256, bytes: &[u8]) {
    hasher.update((bytes.len() as u64).to_be_bytes());
    hasher.update(bytes);
}

fn put_optional(hasher: &mut Sha256, value: Option<&str>) {
    match value {
        None => hasher.update([0]),
        Some(text) => {
            hasher.update([1]);
            put(hasher, text.as_bytes());
        }
    }
}

/// An id as its hyphenated lower-case text, the form the hash has always covered (without allocating it).
fn put_optional_uuid(hasher: &mut Sha256, id: Option<Uuid>) {
    let mut text = Uuid::encode_buffer();
    put_optional(hasher, id.map(|id| &*id.hyphenated().encode_lower(&mut text)));
}

/// A point of a chain: a position and the hash of the entry there, sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainPoint {
    /// The chain.
    pub chain: i16,
    /// The position on it (0 before the first entry).
    pub seq: i64,
    /// The entry's hash ([`GENESIS_HASH`] at 0).
    pub hash: String,
    /// The seal over `seq` and `hash`; `None` only at the untouched genesis.
    pub seal: Option<String>,
}

impl ChainPoint {
    /// A point as read from an entry or a head, before anyone sealed it.
    pub fn unsealed(chain: i16, seq: i64, hash: String) -> Self {
        Self { chain, seq, hash, seal: None }
    }

    /// The message a seal of this point as `kind` (`head` or `checkpoint`) covers.
    fn sealed_message(&self, kind: &str) -> Vec<u8> {
        let Self { chain, seq, hash, .. } = self;
        if *chain == FIRST_CHAIN {
            format!("dashtam-audit-{kind}-v1:{seq}:{hash}").into_bytes()
        } else {
            format!("dashtam-audit-{kind}-v2:{chain}:{seq}:{hash}").into_bytes()
        }
    }
}

/// An audit entry waiting for its place on a chain. The store links it onto the head it finds when it writes
/// it — at once on PostgreSQL, at commit on SQLite — so nothing has to know the head before then.
#[derive(Debug)]
pub struct PendingAuditEntry {
    entry: AuditEntry,
    sealer: Arc<dyn ChainSealer>,
}

impl PendingAuditEntry {
    /// Makes the entry the link after `previous` (its chain, position and hash). Linking again, onto another
    /// point, replaces all three.
    pub fn link_after(&mut self, previous: &ChainPoint) {
        self.entry.chain = previous.chain;
        self.entry.chain_seq = previous.seq + 1;
        self.entry.hash = self.entry.chain_hash(&previous.hash);
    }

    /// The seal its chain's head carries while this entry, as last linked, is the newest. Entries appended
    /// together need only the last one's.
    pub fn head_seal(&self) -> String {
        self.sealer.seal(&self.point().sealed_message("head"))
    }

    /// The entry as last linked.
    pub fn entry(&self) -> &AuditEntry {
        &self.entry
    }

    /// The point the entry is, as last linked.
    pub fn point(&self) -> ChainPoint {
        ChainPoint::unsealed(self.entry.chain, self.entry.chain_seq, self.entry.hash.clone())
    }
}

/// A chain's state as stored: its head (newest entry) and its checkpoint (newest purged entry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainState {
    /// The newest entry.
    pub head: ChainPoint,
    /// The newest purged entry (seq 0 when nothing was purged).
    pub checkpoint: ChainPoint,
}

/// Seals chain points with a server secret, so someone with only database access cannot forge the head.
pub trait ChainSealer: Send + Sync + Debug {
    /// A seal over `message`.
    fn seal(&self, message: &[u8]) -> String;

    /// Whether `seal` is the seal over `message` (compared in constant time).
    fn verify(&self, message: &[u8], seal: &str) -> bool;
}

/// Filters for reading the log, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Entries about this user.
    pub user_id: Option<UserId>,
    /// Entries with this action name.
    pub action: Option<String>,
    /// Entries at or after this time.
    pub from: Option<OffsetDateTime>,
    /// Entries before this time.
    pub to: Option<OffsetDateTime>,
    /// Entries of this request.
    pub request_id: Option<String>,
    /// Entries older than this sequence number (the cursor).
    pub before_seq: Option<i64>,
    /// At most this many.
    pub limit: u32,
}

/// Where and why the chains do not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainBreak {
    /// An entry's hash does not match its content and predecessor (edited, inserted or reordered).
    #[error("entry {seq} does not match its hash: it was edited, inserted or moved")]
    HashMismatch {
        /// The first bad entry.
        seq: i64,
    },
    /// A position of a chain is missing (an entry was deleted).
    #[error("entry {expected} of chain {chain} is missing (found {found} next): entries were deleted")]
    Gap {
        /// The chain.
        chain: i16,
        /// The position expected.
        expected: i64,
        /// The position found instead.
        found: i64,
    },
    /// An entry names a chain that has no head (it was inserted, or its chain number changed).
    #[error("entry {seq} is on chain {chain}, which has no head: it was inserted or changed")]
    UnknownChain {
        /// The entry.
        seq: i64,
        /// The chain it names.
        chain: i16,
    },
    /// A chain's newest entry is not its recorded head (entries were removed from or added to the end).
    #[error("chain {chain} ends at entry {last} but its head records entry {head}: the newest entries were changed")]
    HeadMismatch {
        /// The chain.
        chain: i16,
        /// The last position found.
        last: i64,
        /// The head's position.
        head: i64,
    },
    /// A head or checkpoint seal does not verify (rewritten without the key, or the key changed).
    #[error("the {which} seal of chain {chain} does not verify: it was rewritten, or keys.token_hash changed")]
    BadSeal {
        /// `head` or `checkpoint`.
        which: &'static str,
        /// The chain.
        chain: i16,
    },
}

/// What a successful verification checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainReport {
    /// Entries walked.
    pub entries: u64,
    /// Each chain's start (its checkpoint) and end (its head), by chain.
    pub chains: Vec<ChainState>,
}

/// Verifying failed.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The chain is broken.
    #[error(transparent)]
    Broken(#[from] ChainBreak),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Entries read per page while verifying.
const VERIFY_PAGE: u32 = 1_000;

/// Writes and checks the audit log.
#[derive(Debug)]
pub struct AuditLog {
    store: Arc<dyn Store>,
    sealer: Arc<dyn ChainSealer>,
    clock: Arc<dyn Clock>,
}

impl AuditLog {
    /// An audit log over `store`.
    pub fn new(store: Arc<dyn Store>, sealer: Arc<dyn ChainSealer>, clock: Arc<dyn Clock>) -> Self {
        Self { store, sealer, clock }
    }

    /// Appends `event` inside `tx`, so it commits (or rolls back) with the change it records. The store links
    /// it onto the chain when it writes it: on SQLite with the batch's `COMMIT`; on PostgreSQL a transaction's
    /// first entry with its refresh-token rotation if it has one, else just before its `COMMIT`, and any later
    /// entry at once. From then until the transaction ends it holds its chain's head, so nothing slow should
    /// follow the append.
    pub async fn append(
        &self,
        tx: &mut Box<dyn StoreTx>,
        context: &RequestContext,
        event: AuditEvent,
    ) -> Result<(), StoreError> {
        // Before the entry is made: a build without auditing does none of its work.
        if cfg!(feature = "benchmark-without-audit") {
            return Ok(());
        }
        let (resource_type, resource_id) = match event.resource {
            Some((kind, id)) => (Some(kind.to_owned()), Some(id)),
            None => (None, None),
        };
        let entry = AuditEntry {
            // All three are the store's to set, when it links the entry.
            seq: 0,
            chain: FIRST_CHAIN,
            chain_seq: 0,
            id: Uuid::now_v7(),
            occurred_at: self.clock.now(),
            action: event.action.as_str().to_owned(),
            outcome: event.outcome,
            user_id: event.user_id.or(context.user_id()).map(|id| id.as_uuid()),
            actor: event.actor.unwrap_or(context.actor).to_stored(),
            resource_type,
            resource_id,
            request_id: context.request_id.clone(),
            session_id: event.session_id.or(context.session_id).map(|id| id.as_uuid()),
            method: context.method.clone(),
            route: context.route.clone(),
            path: context.path.clone(),
            ip_address: context.ip_address.clone(),
            user_agent: context.user_agent.clone(),
            trace_id: context.trace_id.clone(),
            details: Value::Object(event.details).to_string(),
            hash: String::new(),
        };
        tx.append_audit_entry(PendingAuditEntry { entry, sealer: Arc::clone(&self.sealer) }).await
    }

    /// Records `event` in a transaction of its own: for failures whose business transaction rolls back (or
    /// never began), which must still be on record.
    pub async fn record(&self, context: &RequestContext, event: AuditEvent) -> Result<(), StoreError> {
        let mut tx = self.store.begin().await?;
        self.append(&mut tx, context, event).await?;
        tx.commit().await
    }

    /// Walks the log in order, checking every link of every chain from its checkpoint to its head, and both
    /// seals of each. Along each chain `seq` rises with the position, so one pass in `seq` order meets every
    /// chain's entries in their chain's order.
    ///
    /// The server may append while this runs: an entry past the head read before the walk counts only if a
    /// sealed head read after it reaches that far, so entries forged past a head that no writer moved are
    /// still caught, and the entry at the first head's position must be the one that head sealed.
    pub async fn verify(&self) -> Result<ChainReport, VerifyError> {
        let chains = self.store.audit_chain_states().await?;
        // Per chain: the entry reached so far (from the checkpoint) and the head read before the walk.
        let mut walks = BTreeMap::new();
        for state in &chains {
            self.check_seal("checkpoint", &state.checkpoint)?;
            self.check_seal("head", &state.head)?;
            walks.insert(state.head.chain, (state.checkpoint.clone(), &state.head));
        }
        let mut after_seq = 0;
        let mut entries = 0_u64;
        loop {
            let page = self.store.audit_entries_after(after_seq, VERIFY_PAGE).await?;
            let Some(last) = page.last().map(|entry| entry.seq) else { break };
            for entry in &page {
                let Some((previous, head)) = walks.get_mut(&entry.chain) else {
                    return Err(ChainBreak::UnknownChain { seq: entry.seq, chain: entry.chain }.into());
                };
                let expected = previous.seq + 1;
                if entry.chain_seq != expected {
                    return Err(ChainBreak::Gap { chain: entry.chain, expected, found: entry.chain_seq }.into());
                }
                let sealed_as_head = entry.chain_seq == head.seq && entry.hash != head.hash;
                if sealed_as_head || entry.chain_hash(&previous.hash) != entry.hash {
                    return Err(ChainBreak::HashMismatch { seq: entry.seq }.into());
                }
                *previous = ChainPoint::unsealed(entry.chain, entry.chain_seq, entry.hash.clone());
                entries += 1;
            }
            after_seq = last;
        }
        let appended_meanwhile = walks.values().any(|(reached, head)| reached.seq > head.seq);
        let heads_now: BTreeMap<i16, ChainPoint> = if appended_meanwhile {
            let mut heads = BTreeMap::new();
            for state in self.store.audit_chain_states().await? {
                self.check_seal("head", &state.head)?;
                heads.insert(state.head.chain, state.head);
            }
            heads
        } else {
            BTreeMap::new()
        };
        for (&chain, (reached, first_head)) in &walks {
            // Walked past the head read first: the entries met meanwhile are checked against the head as it is now.
            let walked_past = reached.seq > first_head.seq;
            let head = if walked_past { heads_now.get(&chain).unwrap_or(first_head) } else { first_head };
            let ends_at_head = reached.seq == head.seq && reached.hash == head.hash;
            let head_reaches_past = walked_past && head.seq > reached.seq;
            if !ends_at_head && !head_reaches_past {
                return Err(ChainBreak::HeadMismatch { chain, last: reached.seq, head: head.seq }.into());
            }
        }
        Ok(ChainReport { entries, chains })
    }

    fn check_seal(&self, which: &'static str, point: &ChainPoint) -> Result<(), ChainBreak> {
        let valid = match &point.seal {
            // Only the untouched start of a chain is unsealed.
            None => point.seq == 0 && point.hash == GENESIS_HASH,
            Some(seal) => self.sealer.verify(&point.sealed_message(which), seal),
        };
        if valid { Ok(()) } else { Err(ChainBreak::BadSeal { which, chain: point.chain }) }
    }

    /// Deletes entries recorded before `cutoff`, moving each chain's sealed checkpoint to its newest deleted
    /// entry so the rest of every chain still verifies; the purge itself is audited. Returns how many were
    /// deleted.
    pub async fn purge_before(&self, cutoff: OffsetDateTime, context: &RequestContext) -> Result<u64, StoreError> {
        let Some(last) = self.store.last_audit_entry_before(cutoff).await? else { return Ok(0) };
        let checkpoints: Vec<ChainPoint> = (self.store.audit_chain_points_through(last.seq).await?.into_iter())
            .map(|point| ChainPoint { seal: Some(self.sealer.seal(&point.sealed_message("checkpoint"))), ..point })
            .collect();
        let mut tx = self.store.begin_bulk().await?;
        let deleted = tx.purge_audit_through(last.seq, &checkpoints).await?;
        let event = AuditEvent::new(AuditAction::AuditPurged, AuditOutcome::Success)
            .detail("deleted", deleted)
            .detail("through_seq", last.seq)
            .detail("cutoff", cutoff.unix_timestamp());
        self.append(&mut tx, context, event).await?;
        tx.commit().await?;
        Ok(deleted)
    }

    /// Reads entries, newest first.
    pub async fn query(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError> {
        self.store.audit_entries(query).await
    }

    /// Every chain's current head, for periodic logging (outside anchoring).
    pub async fn heads(&self) -> Result<Vec<ChainPoint>, StoreError> {
        Ok(self.store.audit_chain_states().await?.into_iter().map(|state| state.head).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> AuditEntry {
        AuditEntry {
            seq: 1,
            chain: FIRST_CHAIN,
            chain_seq: 1,
            id: Uuid::nil(),
            occurred_at: time::macros::datetime!(2026-11-28 10:00:00.123_456 UTC),
            action: "auth.login".to_owned(),
            outcome: AuditOutcome::Success,
            user_id: None,
            actor: "anonymous".to_owned(),
            resource_type: None,
            resource_id: None,
            request_id: Some("r1".to_owned()),
            session_id: None,
            method: Some("POST".to_owned()),
            route: None,
            path: None,
            ip_address: None,
            user_agent: None,
            trace_id: None,
            details: "{}".to_owned(),
            hash: String::new(),
        }
    }

    #[test]
    fn every_field_and_the_predecessor_change_the_hash() {
        let base = entry().chain_hash(GENESIS_HASH);
        assert_eq!(base.len(), 64);
        assert_eq!(base, entry().chain_hash(GENESIS_HASH), "deterministic");
        assert_ne!(base, entry().chain_hash(&"1".repeat(64)));
        let changed = [
            AuditEntry { chain_seq: 2, ..entry() },
            AuditEntry { chain: 2, ..entry() },
            AuditEntry { outcome: AuditOutcome::Failure, ..entry() },
            AuditEntry { request_id: None, ..entry() },
            AuditEntry { request_id: Some(String::new()), ..entry() },
            AuditEntry { route: Some("POST".to_owned()), method: None, ..entry() },
            AuditEntry { details: "{\"a\":1}".to_owned(), ..entry() },
            AuditEntry { occurred_at: entry().occurred_at + time::Duration::microseconds(1), ..entry() },
        ];
        for variant in changed {
            assert_ne!(variant.chain_hash(GENESIS_HASH), base, "{variant:?}");
        }
    }

    /// `seq` only orders the listing: on PostgreSQL it is drawn after the hash is made.
    #[test]
    fn the_listing_order_is_outside_the_hash() {
        assert_eq!(AuditEntry { seq: 7, ..entry() }.chain_hash(GENESIS_HASH), entry().chain_hash(GENESIS_HASH));
    }

    /// Seals name the chain, so one chain's sealed head cannot stand in for another's; the first chain keeps
    /// the message its seals had before there were several.
    #[test]
    fn seals_cover_the_chain() {
        let point = |chain| ChainPoint::unsealed(chain, 3, "ab".to_owned());
        assert_eq!(point(FIRST_CHAIN).sealed_message("head"), b"dashtam-audit-head-v1:3:ab");
        assert_eq!(point(2).sealed_message("head"), b"dashtam-audit-head-v2:2:3:ab");
        assert_ne!(point(2).sealed_message("head"), point(3).sealed_message("head"));
        assert_ne!(point(2).sealed_message("head"), point(2).sealed_message("checkpoint"));
    }

    /// The hash is part of the stored data: chains written by earlier versions must still verify. The value
    /// was computed independently of this code, with Python's hashlib over the same encoding.
    #[test]
    fn the_hash_of_an_entry_is_stable_across_versions() {
        let entry = AuditEntry {
            user_id: Some(Uuid::from_u128(0x0192f3a4_5b6c_7d8e_9f00_112233445566)),
            session_id: Some(Uuid::from_u128(0x0192f3a4_5b6c_7d8e_9f00_aabbccddeeff)),
            ..entry()
        };
        let expected = "fe9eb8a0e2ab8511bd710a6748ab976a300f16c1edc68a153b8d237ec2427797"; // pragma: allowlist secret
        assert_eq!(entry.chain_hash(GENESIS_HASH), expected);
    }

    #[test]
    fn action_names_round_trip_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for action in AuditAction::ALL {
            assert_eq!(AuditAction::parse(action.as_str()), Some(*action));
            assert!(seen.insert(action.as_str()), "duplicate {}", action.as_str());
        }
        assert_eq!(AuditAction::parse("nope"), None);
        for outcome in [AuditOutcome::Success, AuditOutcome::Failure, AuditOutcome::Denied] {
            assert_eq!(AuditOutcome::parse(outcome.as_str()), Some(outcome));
        }
    }
}
