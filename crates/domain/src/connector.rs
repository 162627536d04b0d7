//! The port every provider connector implements: the OAuth 2.0 or API-key handshake, and reading accounts,
//! positions and transactions. Connectors translate provider shapes into [`crate::finance`] types and provider
//! failures into [`ConnectorError`]; they never store anything.

use std::fmt::Debug;
use std::time::Duration;

use async_trait::async_trait;
use secrecy::SecretString;
use time::Date;

use crate::finance::{ProviderAccount, ProviderTransaction};

/// What the provider's consent page needs to send the user back to us.
#[derive(Debug, Clone, Copy)]
pub struct AuthorizationRequest<'a> {
    /// The random, single-use value that identifies this flow when the user comes back.
    pub state: &'a str,
    /// Our callback URL.
    pub redirect_uri: &'a str,
    /// The PKCE S256 challenge, when the connector uses PKCE.
    pub code_challenge: Option<&'a str>,
}

/// Tokens a token endpoint answered.
#[derive(Debug)]
pub struct OAuthTokens {
    /// The bearer token for API calls.
    pub access_token: SecretString,
    /// The token to get the next access token, when one was returned.
    pub refresh_token: Option<SecretString>,
    /// How long the access token lives, when the provider says.
    pub expires_in: Option<Duration>,
    /// The granted scope, when the provider says.
    pub scope: Option<String>,
}

/// An API key pair for providers that use them instead of OAuth.
#[derive(Debug)]
pub struct ApiKeyCredentials {
    /// The key id.
    pub api_key: SecretString,
    /// The secret.
    pub api_secret: SecretString,
}

/// How a data call authenticates.
#[derive(Debug, Clone, Copy)]
pub enum ProviderAuth<'a> {
    /// An OAuth 2.0 bearer access token.
    Bearer(&'a SecretString),
    /// An API key pair.
    ApiKey(&'a ApiKeyCredentials),
}

/// An inclusive range of dates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateRange {
    /// The first day.
    pub start: Date,
    /// The last day.
    pub end: Date,
}

/// How a provider call failed, in terms the services act on.
#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    /// The provider no longer accepts our credentials (401/403): the user must reconnect.
    #[error("the provider refused the credentials")]
    Unauthorized,
    /// The token endpoint refused the authorization code or refresh token (`invalid_grant`): the user must
    /// reconnect.
    #[error("the provider refused the grant")]
    InvalidGrant,
    /// The provider asked us to slow down, even after honouring its `Retry-After` within our deadline.
    #[error("the provider is rate limiting us")]
    RateLimited {
        /// How long it asked us to wait, when it said.
        retry_after: Option<Duration>,
    },
    /// The provider failed (5xx).
    #[error("the provider failed with status {status}")]
    Unavailable {
        /// The HTTP status.
        status: u16,
    },
    /// The call did not finish within the configured connect, read or total timeout.
    #[error("the provider did not answer in time")]
    Timeout,
    /// The provider could not be reached (DNS, connection refused, TLS).
    #[error("the provider could not be reached: {0}")]
    Network(String),
    /// The provider answered something we cannot use (malformed JSON, a missing field, a body too large);
    /// the text names what, never a secret.
    #[error("the provider answered an invalid response: {0}")]
    InvalidResponse(String),
    /// The provider refused the request for another reason (another 4xx).
    #[error("the provider rejected the request with status {status}")]
    Rejected {
        /// The HTTP status.
        status: u16,
    },
    /// This connector does not do that (an API-key provider asked for an OAuth URL, say).
    #[error("the provider does not support this operation")]
    Unsupported,
}

impl ConnectorError {
    /// Whether the user has to connect again before anything else can work.
    pub fn needs_reconnection(&self) -> bool {
        matches!(self, Self::Unauthorized | Self::InvalidGrant)
    }
}

/// One provider's API. OAuth connectors implement the first three methods, API-key connectors
/// [`Connector::verify_api_key`]; the defaults answer [`ConnectorError::Unsupported`].
#[async_trait]
pub trait Connector: Send + Sync + Debug {
    /// Whether the authorization flow sends a PKCE S256 challenge (and the exchange its verifier).
    fn uses_pkce(&self) -> bool {
        false
    }

    /// The URL of the provider's consent page for this flow.
    fn authorization_url(&self, _request: &AuthorizationRequest<'_>) -> Result<String, ConnectorError> {
        Err(ConnectorError::Unsupported)
    }

    /// Exchanges an authorization code (and the PKCE verifier, when one was used) for tokens.
    async fn exchange_code(
        &self,
        _code: &str,
        _code_verifier: Option<&str>,
        _redirect_uri: &str,
    ) -> Result<OAuthTokens, ConnectorError> {
        Err(ConnectorError::Unsupported)
    }

    /// Uses a refresh token. The answer may carry a new refresh token, the same one, or none.
    async fn refresh_tokens(&self, _refresh_token: &SecretString) -> Result<OAuthTokens, ConnectorError> {
        Err(ConnectorError::Unsupported)
    }

    /// Proves an API key pair works with one cheap live call.
    async fn verify_api_key(&self, _credentials: &ApiKeyCredentials) -> Result<(), ConnectorError> {
        Err(ConnectorError::Unsupported)
    }

    /// Every account the credentials reach, with positions and current balances.
    async fn accounts(&self, auth: ProviderAuth<'_>) -> Result<Vec<ProviderAccount>, ConnectorError>;

    /// The account's transactions dated within `range`, all pages of them.
    async fn transactions(
        &self,
        auth: ProviderAuth<'_>,
        account: &ProviderAccount,
        range: DateRange,
    ) -> Result<Vec<ProviderTransaction>, ConnectorError>;
}
