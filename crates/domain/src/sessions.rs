//! Session management and breach response: a user sees and ends their sessions; a user (for themself) or an
//! administrator rotates one user's tokens; an administrator rotates everyone's, with a grace period.
//!
//! Revocation takes effect on the next request on every instance, because every authenticated request reads
//! its session, user and the global token settings in one indexed query (see `AuthService::authenticate`):
//! there is no cache that could serve a revoked session.

use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;

use crate::audit::{AuditAction, AuditEvent, AuditLog, AuditOutcome};
use crate::auth::Principal;
use crate::clock::Clock;
use crate::context::RequestContext;
use crate::ids::UserId;
use crate::ports::{GlobalRotation, Store, StoreError};
use crate::session::{Session, SessionEndReason, SessionId};
use crate::user::{Role, SecurityConfig};

/// How many characters a user rotation's reason may have (it is recorded in the audit log).
pub const USER_ROTATION_REASON_CHARS: RangeInclusive<usize> = 10..=500;
/// How many characters a global rotation's reason may have.
pub const GLOBAL_ROTATION_REASON_CHARS: RangeInclusive<usize> = 20..=1000;
/// The longest grace period of a global rotation, in seconds: one hour.
pub const MAX_GRACE_SECONDS: u64 = 3600;

/// Whether a rotation reason, trimmed, has a length in `allowed`.
pub fn reason_length_fits(reason: &str, allowed: &RangeInclusive<usize>) -> bool {
    allowed.contains(&reason.trim().chars().count())
}

/// Why a session or rotation request was refused.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// No such session or user among those the caller may see (never says which).
    #[error("not found")]
    NotFound,
    /// The caller's own session must be ended by logging out.
    #[error("cannot revoke the current session")]
    CannotRevokeCurrent,
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A live session as its owner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionView {
    /// The session.
    pub session: Session,
    /// Whether the request came through it.
    pub is_current: bool,
}

/// What a user rotation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRotation {
    /// Whose tokens.
    pub user_id: UserId,
    /// The version before.
    pub old_version: i64,
    /// The version now.
    pub new_version: i64,
    /// Sessions ended.
    pub sessions_revoked: u64,
    /// Why.
    pub reason: String,
    /// When.
    pub rotated_at: OffsetDateTime,
}

/// What a global rotation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlobalRotationOutcome {
    /// The version before.
    pub old_version: i64,
    /// The version now.
    pub new_version: i64,
    /// Live sessions it retires (at once, or when the grace period ends).
    pub sessions_revoked: u64,
    /// Users those belong to.
    pub users_affected: u64,
    /// The grace period asked for.
    pub grace_period: Duration,
    /// When older tokens stop working.
    pub enforced_at: OffsetDateTime,
    /// Why.
    pub reason: String,
    /// Who started it (`None` for the command line).
    pub initiated_by: Option<UserId>,
    /// When.
    pub rotated_at: OffsetDateTime,
}

/// Sessions and breach response.
#[derive(Debug)]
pub struct SessionService {
    store: Arc<dyn Store>,
    audit: Arc<AuditLog>,
    clock: Arc<dyn Clock>,
}

impl SessionService {
    /// A service over `store`.
    pub fn new(store: Arc<dyn Store>, audit: Arc<AuditLog>, clock: Arc<dyn Clock>) -> Self {
        Self { store, audit, clock }
    }

    /// The caller's live sessions, most recently active first.
    pub async fn list(&self, principal: &Principal) -> Result<Vec<SessionView>, SessionError> {
        let sessions = self.store.live_sessions(principal.user_id, self.clock.now()).await?;
        Ok(sessions
            .into_iter()
            .map(|session| SessionView { is_current: session.id == principal.session_id, session })
            .collect())
    }

    /// Ends one of the caller's other sessions. Someone else's session, or one already ended, is
    /// [`SessionError::NotFound`] (and the attempt on someone else's is audited as denied).
    pub async fn revoke(
        &self,
        principal: &Principal,
        id: SessionId,
        context: &RequestContext,
    ) -> Result<(), SessionError> {
        if id == principal.session_id {
            return Err(SessionError::CannotRevokeCurrent);
        }
        let now = self.clock.now();
        let Some(session) = self.store.session_by_id(id).await? else { return Err(SessionError::NotFound) };
        if session.user_id != principal.user_id {
            let event = AuditEvent::new(AuditAction::AccessDenied, AuditOutcome::Denied)
                .resource("session", id)
                .detail("reason", "not_owner");
            self.audit.record(context, event).await?;
            return Err(SessionError::NotFound);
        }
        if !session.is_live(now) {
            return Err(SessionError::NotFound);
        }
        let mut tx = self.store.begin().await?;
        if !tx.end_session(id, SessionEndReason::Revoked, now).await? {
            return Err(SessionError::NotFound);
        }
        let event = AuditEvent::new(AuditAction::SessionRevoked, AuditOutcome::Success).resource("session", id);
        self.audit.append(&mut tx, context, event).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Ends every session of the caller except the current one; returns how many ended.
    pub async fn revoke_others(&self, principal: &Principal, context: &RequestContext) -> Result<u64, SessionError> {
        self.end_sessions(principal, Some(principal.session_id), AuditAction::OtherSessionsRevoked, context).await
    }

    /// Ends every session of the caller, the current one included; returns how many ended.
    pub async fn revoke_all(&self, principal: &Principal, context: &RequestContext) -> Result<u64, SessionError> {
        self.end_sessions(principal, None, AuditAction::AllSessionsRevoked, context).await
    }

    async fn end_sessions(
        &self,
        principal: &Principal,
        keep: Option<SessionId>,
        action: AuditAction,
        context: &RequestContext,
    ) -> Result<u64, SessionError> {
        let mut tx = self.store.begin().await?;
        let ended = tx.end_user_sessions(principal.user_id, keep, SessionEndReason::Revoked, self.clock.now()).await?;
        let event = AuditEvent::new(action, AuditOutcome::Success).detail("revoked_count", ended);
        self.audit.append(&mut tx, context, event).await?;
        tx.commit().await?;
        Ok(ended)
    }

    /// Rotates one user's tokens: every access token they hold fails with `token_rotated` and every session
    /// ends. An administrator may name anyone; a user only themself (anyone else is [`SessionError::NotFound`]).
    pub async fn rotate_user(
        &self,
        caller: Option<(&Principal, Role)>,
        user_id: UserId,
        reason: &str,
        context: &RequestContext,
    ) -> Result<UserRotation, SessionError> {
        if let Some((principal, role)) = caller
            && role != Role::Admin
            && principal.user_id != user_id
        {
            let event = AuditEvent::new(AuditAction::AccessDenied, AuditOutcome::Denied)
                .resource("user", user_id)
                .detail("reason", "not_self");
            self.audit.record(context, event).await?;
            return Err(SessionError::NotFound);
        }
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        let new_version = tx.rotate_user_tokens(user_id, now).await?.ok_or(SessionError::NotFound)?;
        let ended = tx.end_user_sessions(user_id, None, SessionEndReason::TokenRotation, now).await?;
        let event = AuditEvent::new(AuditAction::UserTokensRotated, AuditOutcome::Success)
            .user(user_id)
            .detail("reason", reason)
            .detail("new_version", new_version)
            .detail("sessions_revoked", ended);
        self.audit.append(&mut tx, context, event).await?;
        tx.commit().await?;
        Ok(UserRotation {
            user_id,
            old_version: new_version - 1,
            new_version,
            sessions_revoked: ended,
            reason: reason.to_owned(),
            rotated_at: now,
        })
    }

    /// Rotates every user's tokens. Sessions started before it keep working until `grace_period` has passed,
    /// never after; with no grace they end at once.
    pub async fn rotate_global(
        &self,
        initiated_by: Option<UserId>,
        reason: &str,
        grace_period: Duration,
        context: &RequestContext,
    ) -> Result<GlobalRotationOutcome, SessionError> {
        let now = self.clock.now();
        let grace = time::Duration::try_from(grace_period).unwrap_or(time::Duration::MAX);
        let rotation =
            GlobalRotation { now, reason: reason.to_owned(), initiated_by, enforced_at: now.saturating_add(grace) };
        let mut tx = self.store.begin().await?;
        let counts = tx.rotate_global_tokens(&rotation).await?;
        let event = AuditEvent::new(AuditAction::GlobalTokensRotated, AuditOutcome::Success)
            .detail("reason", reason)
            .detail("new_version", counts.new_version)
            .detail("grace_period_seconds", grace_period.as_secs())
            .detail("sessions_revoked", counts.sessions)
            .detail("users_affected", counts.users);
        self.audit.append(&mut tx, context, event).await?;
        tx.commit().await?;
        Ok(GlobalRotationOutcome {
            old_version: counts.new_version - 1,
            new_version: counts.new_version,
            sessions_revoked: counts.sessions,
            users_affected: counts.users,
            grace_period,
            enforced_at: counts.enforced_at,
            reason: reason.to_owned(),
            initiated_by,
            rotated_at: now,
        })
    }

    /// The installation-wide token settings.
    pub async fn security_config(&self) -> Result<SecurityConfig, SessionError> {
        Ok(self.store.security_config().await?)
    }
}
