//! Authentication: registration, verification, login with lockout, refresh-token rotation with reuse
//! detection, logout, password reset and change, and the check every authenticated request passes.
//!
//! Each use case runs in one store transaction; emails are queued in that same transaction (the outbox) and
//! the delivery worker is woken after commit, so mail goes out only for changes that happened.

use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::audit::{AuditAction, AuditEvent, AuditLog, AuditOutcome};
use crate::clock::Clock;
use crate::context::RequestContext;
use crate::device::DeviceResolver;
use crate::ids::UserId;
use crate::mail::{EmailComposer, Notification};
use crate::password::{Password, PasswordHasher, PasswordPolicy, PasswordProblem, PasswordVerification};
use crate::ports::{Store, StoreError, StoreTx};
use crate::session::{NewSession, OneTimePurpose, OneTimeToken, RefreshTokenState, SessionEndReason, SessionId};
use crate::tokens::{AccessGrant, AccessTokenCodec, AccessTokenError, OpaqueTokenIssuer};
use crate::user::{Email, NewUser, Role, User, UserName};

/// How stale a session's recorded last activity may get before a refresh updates it.
const ACTIVITY_RESOLUTION: time::Duration = time::Duration::minutes(1);

/// Tunable rules of authentication; defaults are API.md's.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// Password rules.
    pub password_policy: PasswordPolicy,
    /// The latest a session lives after login.
    pub session_lifetime: Duration,
    /// How long the immediately previous refresh token is accepted as a client retry after its rotation.
    pub refresh_retry_grace: Duration,
    /// Consecutive failed logins that lock an account.
    pub lockout_threshold: i32,
    /// How long a lock lasts.
    pub lockout_duration: Duration,
    /// How long an email-verification token lives.
    pub verification_token_lifetime: Duration,
    /// How long a password-reset token lives.
    pub reset_token_lifetime: Duration,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            password_policy: PasswordPolicy::default(),
            session_lifetime: Duration::from_secs(30 * 24 * 3600),
            refresh_retry_grace: Duration::from_secs(10),
            lockout_threshold: 10,
            lockout_duration: Duration::from_secs(3600),
            verification_token_lifetime: Duration::from_secs(24 * 3600),
            reset_token_lifetime: Duration::from_secs(15 * 60),
        }
    }
}

/// Wakes the mail delivery worker after a transaction that queued mail has committed.
pub trait OutboxSignal: Send + Sync + std::fmt::Debug {
    /// There is new mail.
    fn mail_queued(&self);
}

/// An access token and the refresh token that renews it.
#[derive(Debug)]
pub struct TokenPair {
    /// The JWT.
    pub access_token: String,
    /// The opaque refresh token (shown once).
    pub refresh_token: SecretString,
    /// Seconds until the access token expires.
    pub expires_in: u64,
}

/// Who an authenticated request is from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Principal {
    /// The user.
    pub user_id: UserId,
    /// The session the access token belongs to.
    pub session_id: SessionId,
    /// The role the token was issued with.
    pub role: Role,
}

/// Why an authentication use case refused. The API maps each to its status and code.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Wrong email or password (never says which).
    #[error("invalid credentials")]
    InvalidCredentials,
    /// The account is locked until the given time.
    #[error("account locked")]
    AccountLocked {
        /// When logins are accepted again.
        until: OffsetDateTime,
        /// Whole seconds until then, at least 1 (for `Retry-After`).
        retry_after_seconds: i64,
    },
    /// Login before the address was verified.
    #[error("email not verified")]
    EmailNotVerified,
    /// The account was disabled.
    #[error("account disabled")]
    AccountDisabled,
    /// A token that is unknown, used, expired (one-time), superseded, malformed or not ours.
    #[error("invalid token")]
    InvalidToken,
    /// An access or refresh token past its expiry.
    #[error("token expired")]
    TokenExpired,
    /// The token's session ended.
    #[error("session revoked")]
    SessionRevoked,
    /// The user's tokens were rotated after this one was issued.
    #[error("token rotated")]
    TokenRotated,
    /// An already-rotated refresh token was presented again; the session has been ended.
    #[error("refresh token reused")]
    RefreshTokenReused,
    /// The password breaks the policy; every reason is listed.
    #[error("weak password")]
    WeakPassword(Vec<PasswordProblem>),
    /// The new password equals the current one.
    #[error("password reused")]
    PasswordReused,
    /// The current password given to change it is wrong.
    #[error("wrong password")]
    WrongPassword,
    /// No account has this address (operator commands only; the API never reveals it).
    #[error("no account with this email address")]
    NoSuchUser,
    /// The address is already registered (operator commands only).
    #[error("an account with this email address already exists")]
    EmailTaken,
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Hashing, randomness or token signing failed.
    #[error("internal error: {0}")]
    Internal(String),
}

/// The authentication service.
#[derive(Debug)]
pub struct AuthService {
    store: Arc<dyn Store>,
    hasher: Arc<dyn PasswordHasher>,
    access_tokens: Arc<dyn AccessTokenCodec>,
    opaque_tokens: Arc<dyn OpaqueTokenIssuer>,
    composer: Arc<dyn EmailComposer>,
    outbox: Arc<dyn OutboxSignal>,
    clock: Arc<dyn Clock>,
    audit: Arc<AuditLog>,
    devices: Arc<dyn DeviceResolver>,
    settings: AuthSettings,
}

/// The ports the service uses.
#[derive(Debug, Clone)]
pub struct AuthPorts {
    /// Storage.
    pub store: Arc<dyn Store>,
    /// Password hashing.
    pub hasher: Arc<dyn PasswordHasher>,
    /// Access tokens.
    pub access_tokens: Arc<dyn AccessTokenCodec>,
    /// Refresh and one-time tokens.
    pub opaque_tokens: Arc<dyn OpaqueTokenIssuer>,
    /// Email rendering.
    pub composer: Arc<dyn EmailComposer>,
    /// Wakes mail delivery.
    pub outbox: Arc<dyn OutboxSignal>,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// The audit log every use case writes to.
    pub audit: Arc<AuditLog>,
    /// Describes the devices sessions are started from.
    pub devices: Arc<dyn DeviceResolver>,
}

fn after(now: OffsetDateTime, duration: Duration) -> OffsetDateTime {
    now.saturating_add(time::Duration::try_from(duration).unwrap_or(time::Duration::MAX))
}

fn internal(error: impl std::fmt::Display) -> AuthError {
    AuthError::Internal(error.to_string())
}

impl AuthService {
    /// A service over `ports`.
    pub fn new(ports: AuthPorts, settings: AuthSettings) -> Self {
        Self {
            store: ports.store,
            hasher: ports.hasher,
            access_tokens: ports.access_tokens,
            opaque_tokens: ports.opaque_tokens,
            composer: ports.composer,
            outbox: ports.outbox,
            clock: ports.clock,
            audit: ports.audit,
            devices: ports.devices,
            settings,
        }
    }

    fn check_policy(&self, password: &Password, email: &Email) -> Result<(), AuthError> {
        self.settings.password_policy.check(password, Some(email)).map_err(AuthError::WeakPassword)
    }

    async fn queue_mail(
        &self,
        tx: &mut Box<dyn StoreTx>,
        to: &Email,
        notification: Notification,
        now: OffsetDateTime,
    ) -> Result<(), AuthError> {
        let email = self.composer.compose(to, &notification, now);
        tx.enqueue_email(&email).await?;
        Ok(())
    }

    async fn issue_one_time(
        &self,
        tx: &mut Box<dyn StoreTx>,
        user_id: UserId,
        purpose: OneTimePurpose,
        now: OffsetDateTime,
    ) -> Result<SecretString, AuthError> {
        let issued = self.opaque_tokens.issue().map_err(internal)?;
        let lifetime = match purpose {
            OneTimePurpose::VerifyEmail => self.settings.verification_token_lifetime,
            OneTimePurpose::ResetPassword => self.settings.reset_token_lifetime,
        };
        let record = OneTimeToken {
            id: Uuid::now_v7(),
            user_id,
            purpose,
            created_at: now,
            expires_at: after(now, lifetime),
            used_at: None,
        };
        tx.insert_one_time_token(&record, &issued.digest).await?;
        Ok(issued.text)
    }

    /// Registers an account and emails a verification link. A taken address changes nothing and emails its
    /// owner instead; the caller answers identically either way.
    pub async fn register(
        &self,
        email: Email,
        password: Password,
        name: UserName,
        context: &RequestContext,
    ) -> Result<(), AuthError> {
        self.check_policy(&password, &email)?;
        let now = self.clock.now();
        if let Some(existing) = self.store.user_by_email(&email).await? {
            // Hash anyway so both paths cost the same and timing does not reveal the account.
            let _ = self.hasher.hash(&password).await.map_err(internal)?;
            let mut tx = self.store.begin().await?;
            let notice = Notification::AlreadyRegistered { name: existing.name.as_str().to_owned() };
            self.queue_mail(&mut tx, &existing.email, notice, now).await?;
            self.audit.append(&mut tx, context, registration_refused(existing.id)).await?;
            tx.commit().await?;
            self.outbox.mail_queued();
            return Ok(());
        }
        let password_hash = self.hasher.hash(&password).await.map_err(internal)?;
        let new_user = NewUser {
            id: UserId::generate(),
            email: email.clone(),
            name: name.clone(),
            password_hash,
            role: Role::User,
            email_verified_at: None,
            created_at: now,
        };
        let mut tx = self.store.begin().await?;
        match tx.insert_user(&new_user).await {
            Ok(user) => {
                let token = self.issue_one_time(&mut tx, user.id, OneTimePurpose::VerifyEmail, now).await?;
                let notice = Notification::VerifyEmail { name: name.as_str().to_owned(), token };
                self.queue_mail(&mut tx, &email, notice, now).await?;
                let event = AuditEvent::new(AuditAction::UserRegistered, AuditOutcome::Success).user(user.id);
                self.audit.append(&mut tx, context, event).await?;
            }
            // Registered concurrently between the check and the insert: same outcome as a taken address.
            Err(StoreError::Conflict(_)) => {
                drop(tx);
                if let Some(existing) = self.store.user_by_email(&email).await? {
                    self.audit.record(context, registration_refused(existing.id)).await?;
                }
                return Ok(());
            }
            Err(error) => return Err(error.into()),
        }
        tx.commit().await?;
        self.outbox.mail_queued();
        Ok(())
    }

    /// Verifies an address with the token from the verification email, and sends the welcome email.
    pub async fn verify_email(&self, token: &str, context: &RequestContext) -> Result<(), AuthError> {
        let Ok(digest) = self.opaque_tokens.digest(token) else {
            return self.refuse_token(AuditAction::EmailVerified, context).await;
        };
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        let Some(used) = tx.consume_one_time_token(&digest, OneTimePurpose::VerifyEmail, now).await? else {
            drop(tx);
            return self.refuse_token(AuditAction::EmailVerified, context).await;
        };
        tx.mark_email_verified(used.user_id, now).await?;
        let user = self.token_owner(used.user_id).await?;
        self.queue_mail(&mut tx, &user.email, Notification::Welcome { name: user.name.as_str().to_owned() }, now)
            .await?;
        let event = AuditEvent::new(AuditAction::EmailVerified, AuditOutcome::Success).user(user.id);
        self.audit.append(&mut tx, context, event).await?;
        tx.commit().await?;
        self.outbox.mail_queued();
        Ok(())
    }

    /// Records a refused email link (unknown, used or expired token) and refuses it.
    async fn refuse_token(&self, action: AuditAction, context: &RequestContext) -> Result<(), AuthError> {
        let event = AuditEvent::new(action, AuditOutcome::Failure).detail("reason", "invalid_token");
        self.audit.record(context, event).await?;
        Err(AuthError::InvalidToken)
    }

    /// The account a one-time token belongs to. Read from the pool, outside the caller's transaction: name and
    /// address do not change in these transactions, so the view is the same.
    async fn token_owner(&self, id: UserId) -> Result<User, AuthError> {
        self.store.user_by_id(id).await?.ok_or(AuthError::InvalidToken)
    }

    /// Sends a new verification link (voiding older ones) to an unverified account; does nothing for unknown
    /// or verified addresses, and the caller answers identically.
    pub async fn resend_verification(&self, email: &Email, context: &RequestContext) -> Result<(), AuthError> {
        let Some(user) = self.store.user_by_email(email).await? else { return Ok(()) };
        if user.email_verified_at.is_some() || user.disabled_at.is_some() {
            return Ok(());
        }
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        let token = self.issue_one_time(&mut tx, user.id, OneTimePurpose::VerifyEmail, now).await?;
        self.queue_mail(
            &mut tx,
            &user.email,
            Notification::VerifyEmail { name: user.name.as_str().to_owned(), token },
            now,
        )
        .await?;
        let event = AuditEvent::new(AuditAction::VerificationResent, AuditOutcome::Success).user(user.id);
        self.audit.append(&mut tx, context, event).await?;
        tx.commit().await?;
        self.outbox.mail_queued();
        Ok(())
    }

    /// Logs in: checks the lock, the password (at equal cost for unknown addresses), the account state, then
    /// starts a session with its first refresh token. Every refusal is audited with its reason.
    pub async fn login(
        &self,
        email: Option<&Email>,
        password: &Password,
        context: &RequestContext,
    ) -> Result<(User, TokenPair), AuthError> {
        let user = match email {
            Some(email) => self.store.user_by_email(email).await?,
            None => None,
        };
        let Some(user) = user else {
            let _ = self.hasher.verify(password, None).await.map_err(internal)?;
            let mut event = login_refused(AuditOutcome::Failure, "unknown_account");
            if let Some(email) = email {
                event = event.detail("email", email.as_str());
            }
            self.audit.record(context, event).await?;
            return Err(AuthError::InvalidCredentials);
        };
        let now = self.clock.now();
        if let Some(until) = user.locked_until.filter(|until| *until > now) {
            // Rounded up so a client that waits exactly this long is not refused again.
            let remaining = until - now;
            let retry_after_seconds =
                (remaining.whole_seconds() + i64::from(remaining.subsec_nanoseconds() > 0)).max(1);
            self.audit.record(context, login_refused(AuditOutcome::Denied, "account_locked").user(user.id)).await?;
            return Err(AuthError::AccountLocked { until, retry_after_seconds });
        }
        let verification = self.hasher.verify(password, Some(&user.password_hash)).await.map_err(internal)?;
        let PasswordVerification::Match { needs_rehash } = verification else {
            self.record_failed_login(&user, now, context).await?;
            return Err(AuthError::InvalidCredentials);
        };
        if user.disabled_at.is_some() {
            self.audit.record(context, login_refused(AuditOutcome::Denied, "account_disabled").user(user.id)).await?;
            return Err(AuthError::AccountDisabled);
        }
        if user.email_verified_at.is_none() {
            let event = login_refused(AuditOutcome::Denied, "email_not_verified").user(user.id);
            self.audit.record(context, event).await?;
            return Err(AuthError::EmailNotVerified);
        }
        let rehashed = if needs_rehash { Some(self.hasher.hash(password).await.map_err(internal)?) } else { None };
        let session_id = SessionId::generate();
        let refresh = self.opaque_tokens.issue().map_err(internal)?;
        let ip = context.ip_address.as_deref().and_then(|ip| ip.parse().ok());
        let device = self.devices.describe(context.user_agent.as_deref(), ip);
        let history = self.store.device_history(user.id, &device).await?;
        let global_token_version = self.store.security_config().await?.global_min_token_version;
        let mut tx = self.store.begin().await?;
        tx.record_login_success(user.id, now).await?;
        if let Some(hash) = &rehashed {
            tx.set_password_hash(user.id, hash, now).await?;
        }
        tx.insert_session(&NewSession {
            id: session_id,
            user_id: user.id,
            user_agent: context.user_agent.clone(),
            ip_address: context.ip_address.clone(),
            device: device.clone(),
            global_token_version,
            created_at: now,
            expires_at: after(now, self.settings.session_lifetime),
        })
        .await?;
        tx.insert_refresh_token(Uuid::now_v7(), session_id, &refresh.digest, now).await?;
        // A first login is not news; a later one from a device and place never seen before is.
        let new_device = history.earlier_sessions > 0 && history.from_this_device == 0;
        if new_device {
            let notice = Notification::NewDeviceLogin {
                name: user.name.as_str().to_owned(),
                at: now,
                device: device.device_info.clone(),
                location: device.location.clone(),
                ip_address: context.ip_address.clone(),
                session_id,
            };
            self.queue_mail(&mut tx, &user.email, notice, now).await?;
        }
        let event = AuditEvent::new(AuditAction::Login, AuditOutcome::Success)
            .signed_in_as(user.id, session_id)
            .detail("password_rehashed", rehashed.is_some())
            .detail("new_device", new_device);
        self.audit.append(&mut tx, context, event).await?;
        tx.commit().await?;
        if new_device {
            self.outbox.mail_queued();
        }
        let access_token = self.issue_access(&user, session_id, now)?;
        let user = User { last_login_at: Some(now), failed_login_count: 0, locked_until: None, ..user };
        Ok((
            user,
            TokenPair {
                access_token,
                refresh_token: refresh.text,
                expires_in: self.access_tokens.lifetime().as_secs(),
            },
        ))
    }

    async fn record_failed_login(
        &self,
        user: &User,
        now: OffsetDateTime,
        context: &RequestContext,
    ) -> Result<(), AuthError> {
        let lock_until = after(now, self.settings.lockout_duration);
        let mut tx = self.store.begin().await?;
        let updated = tx.record_login_failure(user.id, self.settings.lockout_threshold, lock_until, now).await?;
        let failures = updated.as_ref().map_or(0, |updated| updated.failed_login_count);
        let just_locked = failures == self.settings.lockout_threshold;
        if just_locked {
            let notice = Notification::AccountLocked { name: user.name.as_str().to_owned(), until: lock_until };
            self.queue_mail(&mut tx, &user.email, notice, now).await?;
        }
        let event = login_refused(AuditOutcome::Failure, "wrong_password").user(user.id).detail("failures", failures);
        self.audit.append(&mut tx, context, event).await?;
        if just_locked {
            let event = AuditEvent::new(AuditAction::AccountLocked, AuditOutcome::Success)
                .user(user.id)
                .detail("locked_until", lock_until.unix_timestamp());
            self.audit.append(&mut tx, context, event).await?;
        }
        tx.commit().await?;
        if just_locked {
            self.outbox.mail_queued();
        }
        Ok(())
    }

    fn issue_access(&self, user: &User, session_id: SessionId, now: OffsetDateTime) -> Result<String, AuthError> {
        self.access_tokens.issue(user.id, session_id, user.token_version, user.role, now).map_err(internal)
    }

    /// Exchanges a refresh token for a new pair. The immediately previous token, presented again within the
    /// grace window, is a client retry and gets a fresh pair for the same session; any other rotated token
    /// ends the session.
    pub async fn refresh(&self, presented: &str, context: &RequestContext) -> Result<TokenPair, AuthError> {
        let digest = self.opaque_tokens.digest(presented).map_err(|_| AuthError::InvalidToken)?;
        // A lost race re-reads once or twice; a bounded loop keeps a pathological client from spinning us.
        for _ in 0..3 {
            let RefreshTokenState { token: record, session: state } =
                self.store.refresh_token_by_digest(&digest).await?.ok_or(AuthError::InvalidToken)?;
            let now = self.clock.now();
            let refused = |reason: &'static str| {
                AuditEvent::new(AuditAction::TokenRefreshed, AuditOutcome::Denied)
                    .user(state.user.id)
                    .session(record.session_id)
                    .detail("reason", reason)
            };
            if state.is_globally_rotated(now) {
                self.audit.record(context, refused("token_rotated")).await?;
                return Err(AuthError::TokenRotated);
            }
            if state.session_revoked_at.is_some() || state.user.disabled_at.is_some() {
                self.audit.record(context, refused("session_revoked")).await?;
                return Err(AuthError::SessionRevoked);
            }
            if now >= state.session_expires_at {
                self.audit.record(context, refused("session_expired")).await?;
                return Err(AuthError::TokenExpired);
            }
            let (to_rotate, client_retry) = match record.rotated_at {
                None => (record.id, false),
                Some(rotated_at) => {
                    let successor = match record.replaced_by {
                        Some(next) => self.store.refresh_token_by_id(next).await?,
                        None => None,
                    };
                    let within_grace = now < after(rotated_at, self.settings.refresh_retry_grace);
                    match successor {
                        Some(successor) if successor.rotated_at.is_none() && within_grace => (successor.id, true),
                        _ => {
                            return Err(self
                                .end_session_for_reuse(state.user.id, record.session_id, context, now)
                                .await?);
                        }
                    }
                }
            };
            let fresh = self.opaque_tokens.issue().map_err(internal)?;
            let fresh_id = Uuid::now_v7();
            let mut event = AuditEvent::new(AuditAction::TokenRefreshed, AuditOutcome::Success)
                .signed_in_as(state.user.id, record.session_id);
            if client_retry {
                event = event.detail("client_retry", true);
            }
            let mut tx = self.store.begin().await?;
            // Appended before the rotation, so that PostgreSQL can send the entry in the rotation's statement;
            // a lost race drops the transaction, and the entry with it.
            self.audit.append(&mut tx, context, event).await?;
            if !tx.rotate_refresh_token(to_rotate, fresh_id, record.session_id, &fresh.digest, now).await? {
                continue;
            }
            // Activity is recorded at most once a minute: a write per refresh would lengthen the one write
            // transaction every refresh already needs, which is what bounds refresh throughput on SQLite.
            if now - state.session_last_activity_at >= ACTIVITY_RESOLUTION {
                tx.touch_session(record.session_id, now).await?;
            }
            tx.commit().await?;
            let access_token = self.issue_access(&state.user, record.session_id, now)?;
            return Ok(TokenPair {
                access_token,
                refresh_token: fresh.text,
                expires_in: self.access_tokens.lifetime().as_secs(),
            });
        }
        Err(AuthError::InvalidToken)
    }

    async fn end_session_for_reuse(
        &self,
        user_id: UserId,
        session_id: SessionId,
        context: &RequestContext,
        now: OffsetDateTime,
    ) -> Result<AuthError, AuthError> {
        let mut tx = self.store.begin().await?;
        let ended = tx.end_session(session_id, SessionEndReason::RefreshTokenReuse, now).await?;
        if ended && let Some(user) = self.store.user_by_id(user_id).await? {
            let notice = Notification::RefreshTokenReuse {
                name: user.name.as_str().to_owned(),
                at: now,
                ip_address: context.ip_address.clone(),
                user_agent: context.user_agent.clone(),
            };
            self.queue_mail(&mut tx, &user.email, notice, now).await?;
        }
        let event = AuditEvent::new(AuditAction::RefreshTokenReused, AuditOutcome::Denied)
            .user(user_id)
            .session(session_id)
            .detail("session_ended", ended);
        self.audit.append(&mut tx, context, event).await?;
        tx.commit().await?;
        if ended {
            self.outbox.mail_queued();
        }
        Ok(AuthError::RefreshTokenReused)
    }

    /// Checks an access token: signature and expiry, then that its session is live, its account enabled and
    /// its token version current — so logout, revocation and rotation take effect on the next request.
    /// Returns the caller and the account as stored now.
    pub async fn authenticate(&self, access_token: &str) -> Result<(Principal, User), AuthError> {
        let grant = self.access_tokens.verify(access_token, self.clock.now()).map_err(|error| match error {
            AccessTokenError::Expired => AuthError::TokenExpired,
            AccessTokenError::Invalid => AuthError::InvalidToken,
        })?;
        self.authenticate_grant(grant).await
    }

    /// [`AuthService::authenticate`] for a token whose signature was already checked earlier in the same
    /// request (by the rate limiter), so it is not checked twice: expiry and the stored state are.
    pub async fn authenticate_grant(&self, grant: AccessGrant) -> Result<(Principal, User), AuthError> {
        let now = self.clock.now();
        if now >= grant.expires_at {
            return Err(AuthError::TokenExpired);
        }
        let state = self.store.session_auth_state(grant.session_id).await?.ok_or(AuthError::SessionRevoked)?;
        if state.user.id != grant.user_id {
            return Err(AuthError::InvalidToken);
        }
        // Rotation first: a user rotation also ends the sessions, and the client should learn why.
        if grant.token_version < state.user.token_version || state.is_globally_rotated(now) {
            return Err(AuthError::TokenRotated);
        }
        if state.session_revoked_at.is_some() || state.user.disabled_at.is_some() || now >= state.session_expires_at {
            return Err(AuthError::SessionRevoked);
        }
        // Activity is recorded at most once a minute per session, so reads stay reads.
        if now - state.session_last_activity_at >= ACTIVITY_RESOLUTION {
            let mut tx = self.store.begin().await?;
            tx.touch_session(grant.session_id, now).await?;
            tx.commit().await?;
        }
        Ok((Principal { user_id: grant.user_id, session_id: grant.session_id, role: grant.role }, state.user))
    }

    /// Ends the caller's session at once.
    pub async fn logout(&self, principal: &Principal, context: &RequestContext) -> Result<(), AuthError> {
        let mut tx = self.store.begin().await?;
        tx.end_session(principal.session_id, SessionEndReason::Logout, self.clock.now()).await?;
        let event = AuditEvent::new(AuditAction::Logout, AuditOutcome::Success)
            .user(principal.user_id)
            .session(principal.session_id);
        self.audit.append(&mut tx, context, event).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Emails a reset link (voiding older ones) to an existing, enabled account; does nothing otherwise, and
    /// the caller answers identically.
    pub async fn request_password_reset(&self, email: &Email, context: &RequestContext) -> Result<(), AuthError> {
        let user = self.store.user_by_email(email).await?;
        let Some(user) = user.filter(|user| user.disabled_at.is_none()) else {
            let event = AuditEvent::new(AuditAction::PasswordResetRequested, AuditOutcome::Failure)
                .detail("reason", "unknown_or_disabled_account")
                .detail("email", email.as_str());
            self.audit.record(context, event).await?;
            return Ok(());
        };
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        let token = self.issue_one_time(&mut tx, user.id, OneTimePurpose::ResetPassword, now).await?;
        let notice = Notification::PasswordReset { name: user.name.as_str().to_owned(), token };
        self.queue_mail(&mut tx, &user.email, notice, now).await?;
        let event = AuditEvent::new(AuditAction::PasswordResetRequested, AuditOutcome::Success).user(user.id);
        self.audit.append(&mut tx, context, event).await?;
        tx.commit().await?;
        self.outbox.mail_queued();
        Ok(())
    }

    /// Sets a new password with a reset token: ends every session, lifts any lock, voids the token, and
    /// emails a notice. A weak password leaves the token usable. The new password is hashed before the write
    /// transaction starts, so the (slow) hash never holds the database's write lock.
    pub async fn reset_password(
        &self,
        token: &str,
        new_password: &Password,
        context: &RequestContext,
    ) -> Result<(), AuthError> {
        let Ok(digest) = self.opaque_tokens.digest(token) else {
            return self.refuse_token(AuditAction::PasswordReset, context).await;
        };
        let now = self.clock.now();
        let Some(pending) = self.store.usable_one_time_token(&digest, OneTimePurpose::ResetPassword, now).await? else {
            return self.refuse_token(AuditAction::PasswordReset, context).await;
        };
        let user = self.token_owner(pending.user_id).await?;
        // Checked after the token so a bad token is reported first.
        self.check_policy(new_password, &user.email)?;
        let hash = self.hasher.hash(new_password).await.map_err(internal)?;
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        // Used for real only now: a concurrent reset with the same token may have won meanwhile.
        let Some(used) = tx.consume_one_time_token(&digest, OneTimePurpose::ResetPassword, now).await? else {
            drop(tx);
            return self.refuse_token(AuditAction::PasswordReset, context).await;
        };
        tx.set_password_hash(used.user_id, &hash, now).await?;
        let ended = tx.end_user_sessions(used.user_id, None, SessionEndReason::PasswordChanged, now).await?;
        let notice = Notification::PasswordChanged { name: user.name.as_str().to_owned(), at: now };
        self.queue_mail(&mut tx, &user.email, notice, now).await?;
        let event = AuditEvent::new(AuditAction::PasswordReset, AuditOutcome::Success)
            .user(used.user_id)
            .detail("sessions_ended", ended);
        self.audit.append(&mut tx, context, event).await?;
        tx.commit().await?;
        self.outbox.mail_queued();
        Ok(())
    }

    /// Changes the caller's password after checking the current one; every other session ends.
    pub async fn change_password(
        &self,
        principal: &Principal,
        current: &Password,
        new_password: &Password,
        context: &RequestContext,
    ) -> Result<(), AuthError> {
        let user = self.store.user_by_id(principal.user_id).await?.ok_or(AuthError::SessionRevoked)?;
        match self.hasher.verify(current, Some(&user.password_hash)).await.map_err(internal)? {
            PasswordVerification::Match { .. } => {}
            PasswordVerification::Mismatch => {
                let event = AuditEvent::new(AuditAction::PasswordChanged, AuditOutcome::Failure)
                    .user(user.id)
                    .detail("reason", "wrong_password");
                self.audit.record(context, event).await?;
                return Err(AuthError::WrongPassword);
            }
        }
        self.check_policy(new_password, &user.email)?;
        if let PasswordVerification::Match { .. } =
            self.hasher.verify(new_password, Some(&user.password_hash)).await.map_err(internal)?
        {
            return Err(AuthError::PasswordReused);
        }
        let hash = self.hasher.hash(new_password).await.map_err(internal)?;
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        tx.set_password_hash(user.id, &hash, now).await?;
        let ended =
            tx.end_user_sessions(user.id, Some(principal.session_id), SessionEndReason::PasswordChanged, now).await?;
        let notice = Notification::PasswordChanged { name: user.name.as_str().to_owned(), at: now };
        self.queue_mail(&mut tx, &user.email, notice, now).await?;
        let event = AuditEvent::new(AuditAction::PasswordChanged, AuditOutcome::Success)
            .user(user.id)
            .detail("other_sessions_ended", ended);
        self.audit.append(&mut tx, context, event).await?;
        tx.commit().await?;
        self.outbox.mail_queued();
        Ok(())
    }

    /// Renames the caller.
    pub async fn rename(
        &self,
        principal: &Principal,
        name: &UserName,
        context: &RequestContext,
    ) -> Result<User, AuthError> {
        let mut tx = self.store.begin().await?;
        let user =
            tx.update_user_name(principal.user_id, name, self.clock.now()).await?.ok_or(AuthError::SessionRevoked)?;
        let event = AuditEvent::new(AuditAction::ProfileUpdated, AuditOutcome::Success).user(user.id);
        self.audit.append(&mut tx, context, event).await?;
        tx.commit().await?;
        Ok(user)
    }

    /// Creates a verified account from the command line.
    pub async fn create_verified_user(
        &self,
        email: Email,
        name: UserName,
        password: &Password,
        role: Role,
        context: &RequestContext,
    ) -> Result<User, AuthError> {
        self.check_policy(password, &email)?;
        let now = self.clock.now();
        let new_user = NewUser {
            id: UserId::generate(),
            email,
            name,
            password_hash: self.hasher.hash(password).await.map_err(internal)?,
            role,
            email_verified_at: Some(now),
            created_at: now,
        };
        let mut tx = self.store.begin().await?;
        let user = tx.insert_user(&new_user).await.map_err(|error| match error {
            StoreError::Conflict(_) => AuthError::EmailTaken,
            other => other.into(),
        })?;
        let event = AuditEvent::new(AuditAction::UserCreated, AuditOutcome::Success)
            .user(user.id)
            .detail("role", role.as_str());
        self.audit.append(&mut tx, context, event).await?;
        tx.commit().await?;
        Ok(user)
    }

    /// The account with this address (operator commands).
    pub async fn find_user(&self, email: &Email) -> Result<Option<User>, AuthError> {
        Ok(self.store.user_by_email(email).await?)
    }

    /// Gives an account a role (operator command). Existing access tokens keep the role they were issued
    /// with until they expire; the next refresh carries the new one.
    pub async fn change_role(&self, email: &Email, role: Role, context: &RequestContext) -> Result<User, AuthError> {
        let user = self.store.user_by_email(email).await?.ok_or(AuthError::NoSuchUser)?;
        let mut tx = self.store.begin().await?;
        let updated = tx.set_user_role(user.id, role, self.clock.now()).await?.ok_or(AuthError::NoSuchUser)?;
        let event = AuditEvent::new(AuditAction::RoleChanged, AuditOutcome::Success)
            .user(user.id)
            .detail("from", user.role.as_str())
            .detail("to", role.as_str());
        self.audit.append(&mut tx, context, event).await?;
        tx.commit().await?;
        Ok(updated)
    }

    /// Disables an account and ends all its sessions at once (operator command); returns the sessions ended.
    pub async fn disable_account(&self, email: &Email, context: &RequestContext) -> Result<(User, u64), AuthError> {
        let user = self.store.user_by_email(email).await?.ok_or(AuthError::NoSuchUser)?;
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        let disabled = tx.disable_user(user.id, now).await?.ok_or(AuthError::NoSuchUser)?;
        let ended = tx.end_user_sessions(user.id, None, SessionEndReason::AccountDisabled, now).await?;
        let event = AuditEvent::new(AuditAction::AccountDisabled, AuditOutcome::Success)
            .user(user.id)
            .detail("sessions_ended", ended);
        self.audit.append(&mut tx, context, event).await?;
        tx.commit().await?;
        Ok((disabled, ended))
    }
}

/// A refused registration (the address is taken): recorded against the existing account.
fn registration_refused(existing: UserId) -> AuditEvent {
    AuditEvent::new(AuditAction::UserRegistered, AuditOutcome::Denied).user(existing).detail("reason", "email_taken")
}

/// A refused login with its reason.
fn login_refused(outcome: AuditOutcome, reason: &'static str) -> AuditEvent {
    AuditEvent::new(AuditAction::Login, outcome).detail("reason", reason)
}
