//! Token ports: access tokens (signed, self-contained, short-lived) and opaque tokens (random, stored only as
//! digests: refresh tokens and one-time tokens). The cryptography lives in adapters; services see only these.

use std::fmt::Debug;
use std::time::Duration;

use secrecy::SecretString;
use time::OffsetDateTime;

use crate::ids::UserId;
use crate::session::{SessionId, TokenDigest};
use crate::user::Role;

/// What an access token grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessGrant {
    /// The user (`sub`).
    pub user_id: UserId,
    /// The session (`sid`).
    pub session_id: SessionId,
    /// The user's token version when issued (`ver`); a user-level rotation raises it.
    pub token_version: i64,
    /// The user's role when issued.
    pub role: Role,
    /// When it was issued (`iat`).
    pub issued_at: OffsetDateTime,
    /// When it stops working (`exp`).
    pub expires_at: OffsetDateTime,
}

/// Why a presented access token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AccessTokenError {
    /// Past its expiry (`401 token_expired`).
    #[error("token expired")]
    Expired,
    /// Malformed, badly signed, signed with an unknown key, or not an access token (`401 invalid_token`).
    #[error("invalid token")]
    Invalid,
}

/// Issues and checks access tokens.
pub trait AccessTokenCodec: Send + Sync + Debug {
    /// How long new tokens live.
    fn lifetime(&self) -> Duration;

    /// A token for this user and session, carrying the user's current token version and role, issued at
    /// `now` and valid for [`AccessTokenCodec::lifetime`].
    fn issue(
        &self,
        user_id: UserId,
        session_id: SessionId,
        token_version: i64,
        role: Role,
        now: OffsetDateTime,
    ) -> Result<String, AccessTokenError>;

    /// What an intact, unexpired token of ours grants at `now`.
    fn verify(&self, token: &str, now: OffsetDateTime) -> Result<AccessGrant, AccessTokenError>;
}

/// A freshly issued opaque token: the text for the client (once) and the digest to store.
#[derive(Debug)]
pub struct IssuedToken {
    /// Shown once, to the client.
    pub text: SecretString,
    /// Stored.
    pub digest: TokenDigest,
}

/// The presented text is not shaped like one of our tokens; it is refused before any lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed token")]
pub struct MalformedToken;

/// The operating system could not supply random bytes; no token can be made safely.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the OS random number generator failed: {0}")]
pub struct RandomnessError(pub String);

/// Issues opaque tokens and digests presented ones.
pub trait OpaqueTokenIssuer: Send + Sync + Debug {
    /// A new random token and its digest.
    fn issue(&self) -> Result<IssuedToken, RandomnessError>;

    /// The digest to look a presented token up by.
    fn digest(&self, presented: &str) -> Result<TokenDigest, MalformedToken>;
}
