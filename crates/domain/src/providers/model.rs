//! A user's connection to a provider: its alias, status and (stored apart, encrypted) credentials.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

pub use crate::ids::ProviderId;
use crate::ids::UserId;
use crate::providers::catalog::ProviderKey;

/// The most characters an alias may have.
pub const ALIAS_MAX_CHARS: usize = 100;

/// The user's name for a connection ("Schwab IRA"): 1–100 characters after trimming, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alias(String);

/// An alias that breaks the rules; the text says which.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AliasError {
    /// Nothing but whitespace.
    #[error("alias must not be empty")]
    Empty,
    /// More than [`ALIAS_MAX_CHARS`] characters.
    #[error("alias must be at most 100 characters")]
    TooLong,
    /// A control character (newline, NUL, …).
    #[error("alias must not contain control characters")]
    ControlCharacter,
}

impl Alias {
    /// Validates and trims an alias.
    pub fn parse(text: &str) -> Result<Self, AliasError> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(AliasError::Empty);
        }
        if trimmed.chars().count() > ALIAS_MAX_CHARS {
            return Err(AliasError::TooLong);
        }
        if trimmed.chars().any(char::is_control) {
            return Err(AliasError::ControlCharacter);
        }
        Ok(Self(trimmed.to_owned()))
    }

    /// The alias.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Where a connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProviderStatus {
    /// Created, not connected yet.
    Pending,
    /// Connected: its credentials work.
    Active,
    /// The provider no longer accepts its grant (refresh token expired or revoked upstream).
    Expired,
    /// The user disconnected it; its credentials are erased.
    Revoked,
    /// It failed repeatedly; the user should reconnect.
    Error,
}

impl ProviderStatus {
    /// Every status.
    pub const ALL: [ProviderStatus; 5] = [Self::Pending, Self::Active, Self::Expired, Self::Revoked, Self::Error];

    /// The stored and served text.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Active => "active",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
            Self::Error => "error",
        }
    }

    /// The status named by `text`.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == text)
    }
}

/// A user's connection to a provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provider {
    /// Its id.
    pub id: ProviderId,
    /// Its owner.
    pub user_id: UserId,
    /// The provider type.
    pub provider_key: ProviderKey,
    /// The owner's name for it.
    pub alias: Alias,
    /// Where it stands.
    pub status: ProviderStatus,
    /// When it was last connected.
    pub connected_at: Option<OffsetDateTime>,
    /// When its data was last synced successfully.
    pub last_sync_at: Option<OffsetDateTime>,
    /// Why the last sync failed, when it did.
    pub last_sync_error: Option<String>,
    /// Token refreshes that failed in a row.
    pub refresh_failures: i32,
    /// How many accounts it holds.
    pub accounts_count: i64,
    /// When it was created.
    pub created_at: OffsetDateTime,
    /// When it last changed.
    pub updated_at: OffsetDateTime,
}

impl Provider {
    /// Whether its credentials work.
    pub fn is_connected(&self) -> bool {
        self.status == ProviderStatus::Active
    }

    /// Whether the owner must connect it (again) before it can sync.
    pub fn needs_reconnection(&self) -> bool {
        matches!(self.status, ProviderStatus::Expired | ProviderStatus::Revoked | ProviderStatus::Error)
    }
}

/// A connection to create.
#[derive(Debug, Clone)]
pub struct NewProvider {
    /// Its id.
    pub id: ProviderId,
    /// Its owner.
    pub user_id: UserId,
    /// The provider type.
    pub provider_key: ProviderKey,
    /// The owner's name for it.
    pub alias: Alias,
    /// Now.
    pub created_at: OffsetDateTime,
}

/// The order of a provider list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderSort {
    /// By creation time.
    CreatedAt,
    /// By last change.
    UpdatedAt,
    /// By alias (case-insensitive).
    Alias,
    /// By provider type.
    ProviderKey,
}

impl ProviderSort {
    /// The sort named by `text` (`created_at`, `updated_at`, `alias`, `provider_key`).
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "created_at" => Some(Self::CreatedAt),
            "updated_at" => Some(Self::UpdatedAt),
            "alias" => Some(Self::Alias),
            "provider_key" => Some(Self::ProviderKey),
            _ => None,
        }
    }
}

/// One page of a user's providers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderListQuery {
    /// Whose.
    pub user_id: UserId,
    /// Only this status.
    pub status: Option<ProviderStatus>,
    /// Only this type.
    pub provider_key: Option<ProviderKey>,
    /// Order.
    pub sort: ProviderSort,
    /// Newest/largest first.
    pub descending: bool,
    /// Rows to skip.
    pub offset: u64,
    /// Rows to return.
    pub limit: u32,
}

/// A page of providers and how many match in all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderPage {
    /// This page.
    pub items: Vec<Provider>,
    /// Matches in all.
    pub total: u64,
}

/// Which kind of secret a connection holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialKind {
    /// OAuth 2.0 tokens.
    OAuth2,
    /// An API key pair.
    ApiKey,
}

impl CredentialKind {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OAuth2 => "oauth2",
            Self::ApiKey => "api_key",
        }
    }

    /// The kind named by `text`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "oauth2" => Some(Self::OAuth2),
            "api_key" => Some(Self::ApiKey),
            _ => None,
        }
    }
}

/// A connection's stored credentials: the encrypted secret and what may be known without decrypting it.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredCredentials {
    /// The connection.
    pub provider_id: ProviderId,
    /// What the secret is.
    pub kind: CredentialKind,
    /// The encrypted [`CredentialSecret`] (bound to the connection's id).
    pub secret: Vec<u8>,
    /// When the access token expires, when known.
    pub access_expires_at: Option<OffsetDateTime>,
    /// Whether a refresh token is held.
    pub has_refresh_token: bool,
    /// The granted scope, when known.
    pub scope: Option<String>,
    /// When these credentials were first stored.
    pub connected_at: OffsetDateTime,
    /// When they last changed.
    pub updated_at: OffsetDateTime,
}

impl std::fmt::Debug for StoredCredentials {
    // The ciphertext is harmless but long and useless in logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredCredentials")
            .field("provider_id", &self.provider_id)
            .field("kind", &self.kind)
            .field("access_expires_at", &self.access_expires_at)
            .field("has_refresh_token", &self.has_refresh_token)
            .finish_non_exhaustive()
    }
}

/// The plaintext of a connection's secret, serialised to JSON before encryption. Only the providers service
/// ever holds it, briefly, in zeroizing memory.
#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum CredentialSecret {
    /// OAuth 2.0 tokens.
    #[serde(rename = "oauth2")]
    OAuth2 {
        /// The bearer token.
        access_token: String,
        /// The refresh token, when the provider gave one.
        refresh_token: Option<String>,
    },
    /// An API key pair.
    ApiKey {
        /// The key id.
        api_key: String,
        /// The secret.
        api_secret: String,
    },
}

impl zeroize::Zeroize for CredentialSecret {
    fn zeroize(&mut self) {
        match self {
            Self::OAuth2 { access_token, refresh_token } => {
                access_token.zeroize();
                refresh_token.zeroize();
            }
            Self::ApiKey { api_key, api_secret } => {
                api_key.zeroize();
                api_secret.zeroize();
            }
        }
    }
}

impl std::fmt::Debug for CredentialSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CredentialSecret(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_are_trimmed_and_bounded() {
        assert_eq!(Alias::parse("  My IRA ").map(|a| a.as_str().to_owned()), Ok("My IRA".to_owned()));
        assert_eq!(Alias::parse("   "), Err(AliasError::Empty));
        assert_eq!(Alias::parse(&"x".repeat(101)), Err(AliasError::TooLong));
        assert!(Alias::parse(&"é".repeat(100)).is_ok());
        assert_eq!(Alias::parse("a\nb"), Err(AliasError::ControlCharacter));
    }

    #[test]
    fn statuses_round_trip_and_say_when_to_reconnect() {
        for status in ProviderStatus::ALL {
            assert_eq!(ProviderStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(ProviderStatus::parse("Active"), None);
    }
}
