//! Sessions (one per logged-in device), the refresh tokens bound to them, and one-time tokens (email
//! verification, password reset). Tokens are held only as digests: the keyed hash of the text the client
//! was given.

use std::fmt;
use std::str::FromStr;

use time::OffsetDateTime;
use uuid::Uuid;

use crate::device::Device;
pub use crate::ids::SessionId;
use crate::ids::UserId;

/// The keyed hash of a token. Lookups compare digests, so the token itself is never stored.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenDigest(pub [u8; 32]);

impl fmt::Debug for TokenDigest {
    // A digest is not secret, but printing it invites pasting it around; the first bytes suffice to tell
    // two apart in a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenDigest({:02x}{:02x}{:02x}{:02x}…)", self.0[0], self.0[1], self.0[2], self.0[3])
    }
}

/// What is recorded when a session starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSession {
    /// Its id.
    pub id: SessionId,
    /// Whose session it is.
    pub user_id: UserId,
    /// The client's `User-Agent`, already truncated to a sane length.
    pub user_agent: Option<String>,
    /// The client's address (from the socket or a trusted proxy).
    pub ip_address: Option<String>,
    /// The device, as described from the user agent and address.
    pub device: Device,
    /// The global token version in force at login.
    pub global_token_version: i64,
    /// Login time; also the first activity.
    pub created_at: OffsetDateTime,
    /// The latest the session may live (30 days after login by default).
    pub expires_at: OffsetDateTime,
}

/// A session as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Its id.
    pub id: SessionId,
    /// Whose session it is.
    pub user_id: UserId,
    /// The client's `User-Agent`.
    pub user_agent: Option<String>,
    /// The client's address.
    pub ip_address: Option<String>,
    /// The device.
    pub device: Device,
    /// The global token version in force at login.
    pub global_token_version: i64,
    /// Login time.
    pub created_at: OffsetDateTime,
    /// Last time the session was used.
    pub last_activity_at: OffsetDateTime,
    /// The latest the session may live.
    pub expires_at: OffsetDateTime,
    /// When it was ended, if it was.
    pub revoked_at: Option<OffsetDateTime>,
    /// Why it was ended.
    pub revoked_reason: Option<SessionEndReason>,
}

impl Session {
    /// Whether the session can still authenticate requests at `now`.
    pub fn is_live(&self, now: OffsetDateTime) -> bool {
        self.revoked_at.is_none() && now < self.expires_at
    }
}

impl SessionAuthState {
    /// Whether a global rotation has retired this session: it was started under an older global version and
    /// the rotation's grace period is over.
    pub fn is_globally_rotated(&self, now: OffsetDateTime) -> bool {
        self.session_global_token_version < self.global_min_token_version
            && self.global_rotation_enforced_at.is_none_or(|enforced_at| now >= enforced_at)
    }
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionEndReason {
    /// The user logged out.
    Logout,
    /// The user (or an admin) ended it from the sessions list.
    Revoked,
    /// A rotated refresh token was presented again: the token family may be stolen.
    RefreshTokenReuse,
    /// The password was changed or reset.
    PasswordChanged,
    /// A user or global token rotation.
    TokenRotation,
    /// The account was disabled.
    AccountDisabled,
}

impl SessionEndReason {
    /// The stable name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Logout => "logout",
            Self::Revoked => "revoked",
            Self::RefreshTokenReuse => "refresh_token_reuse",
            Self::PasswordChanged => "password_changed",
            Self::TokenRotation => "token_rotation",
            Self::AccountDisabled => "account_disabled",
        }
    }
}

/// A stored reason this binary does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown session end reason {0:?}")]
pub struct UnknownSessionEndReason(pub String);

impl FromStr for SessionEndReason {
    type Err = UnknownSessionEndReason;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        [
            Self::Logout,
            Self::Revoked,
            Self::RefreshTokenReuse,
            Self::PasswordChanged,
            Self::TokenRotation,
            Self::AccountDisabled,
        ]
        .into_iter()
        .find(|reason| reason.as_str() == name)
        .ok_or_else(|| UnknownSessionEndReason(name.to_owned()))
    }
}

/// A refresh token's record. At most one token per session is current (`rotated_at` is `None`); each
/// rotation links the old token to its successor, which is how a retry of the immediately previous token is
/// told apart from the reuse of an older one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshTokenRecord {
    /// Its id.
    pub id: Uuid,
    /// The session it renews.
    pub session_id: SessionId,
    /// When it was issued.
    pub created_at: OffsetDateTime,
    /// When it was exchanged for its successor.
    pub rotated_at: Option<OffsetDateTime>,
    /// Its successor.
    pub replaced_by: Option<Uuid>,
}

/// A presented refresh token's record and the state of its session, which every refresh reads together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshTokenState {
    /// The token.
    pub token: RefreshTokenRecord,
    /// Its session, user and the global token version.
    pub session: SessionAuthState,
}

/// Everything needed to decide whether an access token's session still stands, read in one query on every
/// authenticated request — together with the account itself, so handlers that show it need no second query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionAuthState {
    /// The session.
    pub session_id: SessionId,
    /// When the session ended, if it did.
    pub session_revoked_at: Option<OffsetDateTime>,
    /// The latest the session may live.
    pub session_expires_at: OffsetDateTime,
    /// When the session was last used (recorded at most once a minute).
    pub session_last_activity_at: OffsetDateTime,
    /// The global token version the session was started under.
    pub session_global_token_version: i64,
    /// The installation-wide minimum token version.
    pub global_min_token_version: i64,
    /// When the last global rotation takes effect (its grace period ends).
    pub global_rotation_enforced_at: Option<OffsetDateTime>,
    /// The session's user, as stored now (token version, disabled state, role).
    pub user: crate::user::User,
}

/// What a one-time token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OneTimePurpose {
    /// Proves an email address (24 h).
    VerifyEmail,
    /// Allows setting a new password (15 min).
    ResetPassword,
}

impl OneTimePurpose {
    /// The stable name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::VerifyEmail => "verify_email",
            Self::ResetPassword => "reset_password",
        }
    }
}

/// A stored purpose this binary does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown one-time token purpose {0:?}")]
pub struct UnknownOneTimePurpose(pub String);

impl FromStr for OneTimePurpose {
    type Err = UnknownOneTimePurpose;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        [Self::VerifyEmail, Self::ResetPassword]
            .into_iter()
            .find(|purpose| purpose.as_str() == name)
            .ok_or_else(|| UnknownOneTimePurpose(name.to_owned()))
    }
}

/// A one-time token's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OneTimeToken {
    /// Its id.
    pub id: Uuid,
    /// Whose it is.
    pub user_id: UserId,
    /// What it is for.
    pub purpose: OneTimePurpose,
    /// When it was issued.
    pub created_at: OffsetDateTime,
    /// When it stops working.
    pub expires_at: OffsetDateTime,
    /// When it was used, or voided by a newer token of the same purpose.
    pub used_at: Option<OffsetDateTime>,
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn names_round_trip() {
        for reason in [
            SessionEndReason::Logout,
            SessionEndReason::Revoked,
            SessionEndReason::RefreshTokenReuse,
            SessionEndReason::PasswordChanged,
            SessionEndReason::TokenRotation,
            SessionEndReason::AccountDisabled,
        ] {
            assert_eq!(reason.as_str().parse::<SessionEndReason>(), Ok(reason));
        }
        for purpose in [OneTimePurpose::VerifyEmail, OneTimePurpose::ResetPassword] {
            assert_eq!(purpose.as_str().parse::<OneTimePurpose>(), Ok(purpose));
        }
        assert!("nope".parse::<SessionEndReason>().is_err());
        assert!("nope".parse::<OneTimePurpose>().is_err());
    }

    #[test]
    fn a_session_is_live_until_revoked_or_expired() {
        let now = datetime!(2025-10-03 10:00 UTC);
        let mut session = Session {
            id: SessionId::generate(),
            user_id: UserId::generate(),
            user_agent: None,
            ip_address: None,
            device: Device::default(),
            global_token_version: 1,
            created_at: now,
            last_activity_at: now,
            expires_at: now + time::Duration::days(30),
            revoked_at: None,
            revoked_reason: None,
        };
        assert!(session.is_live(now));
        assert!(!session.is_live(session.expires_at));
        session.revoked_at = Some(now);
        assert!(!session.is_live(now));
    }

    #[test]
    fn digests_print_only_a_prefix() {
        let digest = TokenDigest([0xab; 32]);
        assert_eq!(format!("{digest:?}"), "TokenDigest(abababab…)");
    }
}
