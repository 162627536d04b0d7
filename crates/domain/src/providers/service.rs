//! The providers service: a user's connections, the OAuth 2.0 connect flow, API keys, and provider tokens
//! that are refreshed before use under a lock shared by every instance.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::audit::{AuditAction, AuditEvent, AuditLog, AuditOutcome};
use crate::clock::Clock;
use crate::connector::{ApiKeyCredentials, AuthorizationRequest, Connector, ConnectorError, OAuthTokens, ProviderAuth};
use crate::context::RequestContext;
use crate::ids::UserId;
use crate::ports::{BoxError, SharedState, Store, StoreError};
use crate::providers::catalog::{AuthType, ProviderCatalog, ProviderKey};
use crate::providers::key_rotation::{self, KEY_ROTATION_BATCH, KeyRotationReport};
use crate::providers::model::{
    Alias, CredentialKind, CredentialSecret, NewProvider, Provider, ProviderId, ProviderListQuery, ProviderPage,
    ProviderStatus, StoredCredentials,
};
use crate::secrets::{SecretCipher, SecretCipherError, SecretLocation};
use crate::session::TokenDigest;
use crate::tokens::{OpaqueTokenIssuer, RandomnessError};

/// How long a connect flow's `state` stays usable.
pub const OAUTH_STATE_LIFETIME: Duration = Duration::from_secs(600);
/// An access token expiring sooner than this is refreshed before use.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(300);
/// Refresh failures in a row after which a connection is marked `error`.
pub const MAX_REFRESH_FAILURES: i32 = 3;
/// The lock around a refresh lives this long at most, so a crashed instance cannot hold it forever; it is
/// longer than any provider call may take (the HTTP total timeout is capped below it).
const REFRESH_LOCK_TTL: Duration = Duration::from_secs(120);
/// How long a caller waits for another's refresh of the same connection before giving up.
const REFRESH_LOCK_WAIT: Duration = Duration::from_secs(60);

/// Why a providers request was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// No such connection of the caller's (never says which).
    #[error("not found")]
    NotFound,
    /// No such provider type.
    #[error("unknown provider type")]
    UnknownProvider,
    /// The provider type is not configured on this server.
    #[error("provider type not configured")]
    NotConfigured,
    /// The caller already has a connection with this alias.
    #[error("alias already in use")]
    DuplicateAlias,
    /// The connection does not use OAuth 2.0.
    #[error("not an OAuth provider")]
    NotOAuthProvider,
    /// The connection does not use API keys.
    #[error("not an API-key provider")]
    NotApiKeyProvider,
    /// The connection holds no usable credentials.
    #[error("not connected")]
    NotConnected,
    /// The provider refused the API key pair.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// A call to the provider failed.
    #[error("provider call failed: {0}")]
    Provider(#[source] ConnectorError),
    /// The shared state (Redis) could not be reached.
    #[error("shared state unavailable")]
    SharedStateUnavailable(#[source] BoxError),
    /// Another refresh of this connection did not finish in time.
    #[error("timed out waiting for another refresh of this connection")]
    RefreshBusy,
    /// A stored secret could not be decrypted or a new one encrypted.
    #[error(transparent)]
    Cipher(#[from] SecretCipherError),
    /// No randomness for a state or verifier.
    #[error(transparent)]
    Randomness(#[from] RandomnessError),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why an OAuth callback was refused; each gives the user an error page and changes nothing.
#[derive(Debug, thiserror::Error)]
pub enum CallbackError {
    /// The user declined at the provider (or the provider reported another `error=`).
    #[error("the provider reported {0}")]
    Denied(String),
    /// Neither `code` nor `error` came back.
    #[error("the callback carried no authorization code")]
    MissingCode,
    /// The `state` is missing, unknown, already used, for another provider, or expired.
    #[error("the authorization request is unknown, expired or already used")]
    InvalidState,
    /// The code exchange failed.
    #[error(transparent)]
    Failed(#[from] ProviderError),
}

/// A started connect flow.
#[derive(Debug)]
pub struct AuthorizationStart {
    /// Where to send the user.
    pub auth_url: String,
    /// The flow's `state` (also inside `auth_url`).
    pub state: SecretString,
    /// Seconds until the flow expires.
    pub expires_in: u64,
}

/// A finished connect flow.
#[derive(Debug, Clone)]
pub struct ConnectedProvider {
    /// The connection, now active.
    pub provider: Provider,
}

/// What is known of a connection's authorization, without its secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationStatus {
    /// The connection's status.
    pub status: ProviderStatus,
    /// When it was connected.
    pub connected_at: Option<OffsetDateTime>,
    /// When the access token expires.
    pub expires_at: Option<OffsetDateTime>,
    /// Whether a refresh token is held.
    pub has_refresh_token: bool,
    /// The granted scope.
    pub scope: Option<String>,
}

/// How a successful refresh treated the refresh token (each is audited as such).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshTokenOutcome {
    /// A new refresh token replaced the old one.
    Rotated,
    /// None was returned; the old one is kept.
    NotReturned,
    /// The same one was returned.
    Unchanged,
}

impl RefreshTokenOutcome {
    /// The audited text.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rotated => "rotated",
            Self::NotReturned => "not_returned",
            Self::Unchanged => "unchanged",
        }
    }
}

/// Decrypted credentials, ready for a provider call; wiped from memory when dropped.
pub struct ProviderAccess {
    secret: Access,
    /// When the access token expires, when known.
    pub expires_at: Option<OffsetDateTime>,
}

enum Access {
    Bearer(SecretString),
    ApiKey(ApiKeyCredentials),
}

impl ProviderAccess {
    /// How a connector call authenticates with these credentials.
    pub fn auth(&self) -> ProviderAuth<'_> {
        match &self.secret {
            Access::Bearer(token) => ProviderAuth::Bearer(token),
            Access::ApiKey(credentials) => ProviderAuth::ApiKey(credentials),
        }
    }
}

impl std::fmt::Debug for ProviderAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderAccess").field("expires_at", &self.expires_at).finish_non_exhaustive()
    }
}

/// A connect flow in progress, kept in the shared state under the digest of its `state`.
#[derive(Serialize, Deserialize)]
struct OAuthFlow {
    user_id: uuid::Uuid,
    provider_id: uuid::Uuid,
    provider_key: String,
    redirect_uri: String,
    code_verifier: Option<String>,
    /// Unix seconds by the service's clock (the shared state's own expiry only cleans up).
    expires_at: i64,
}

/// Everything the providers service needs.
#[derive(Debug, Clone)]
pub struct ProviderDeps {
    /// Durable storage.
    pub store: Arc<dyn Store>,
    /// The audit log.
    pub audit: Arc<AuditLog>,
    /// Now.
    pub clock: Arc<dyn Clock>,
    /// OAuth flows and refresh locks, shared by every instance.
    pub shared_state: Arc<dyn SharedState>,
    /// Encrypts stored credentials.
    pub cipher: Arc<dyn SecretCipher>,
    /// Random states and PKCE verifiers, and the keyed digest states are stored under.
    pub opaque_tokens: Arc<dyn OpaqueTokenIssuer>,
    /// The configured connectors.
    pub catalog: ProviderCatalog,
    /// This server's public base URL, without a trailing slash (OAuth redirect URIs hang off it).
    pub public_url: String,
}

/// Connections, connect flows and provider tokens.
#[derive(Debug)]
pub struct ProviderService {
    deps: ProviderDeps,
}

const CREDENTIALS_TABLE: &str = "provider_credentials";
const CREDENTIALS_COLUMN: &str = "secret";

impl ProviderService {
    /// A service over `deps`.
    pub fn new(deps: ProviderDeps) -> Self {
        Self { deps }
    }

    /// The configured connectors.
    pub fn catalog(&self) -> &ProviderCatalog {
        &self.deps.catalog
    }

    /// The callback URL registered with providers of type `key`.
    pub fn redirect_uri(&self, key: ProviderKey) -> String {
        format!("{}/api/v1/oauth/{}/callback", self.deps.public_url, key.as_str())
    }

    /// Creates a connection (status `pending`).
    pub async fn create(
        &self,
        user_id: UserId,
        provider_key: &str,
        alias: Alias,
        context: &RequestContext,
    ) -> Result<Provider, ProviderError> {
        let key = ProviderKey::parse(provider_key).ok_or(ProviderError::UnknownProvider)?;
        if !self.deps.catalog.is_configured(key) {
            return Err(ProviderError::NotConfigured);
        }
        let new = NewProvider {
            id: ProviderId::generate(),
            user_id,
            provider_key: key,
            alias,
            created_at: self.deps.clock.now(),
        };
        let mut tx = self.deps.store.begin().await?;
        let provider = tx.insert_provider(&new).await.map_err(alias_conflict)?;
        let event = AuditEvent::new(AuditAction::ProviderCreated, AuditOutcome::Success)
            .user(user_id)
            .resource("provider", provider.id)
            .detail("provider_key", key.as_str());
        self.deps.audit.append(&mut tx, context, event).await?;
        tx.commit().await?;
        Ok(provider)
    }

    /// Re-encrypts every stored credential under the active encryption key (`dashtam keys rotate`); see
    /// [`crate::providers::key_rotation`].
    pub async fn reencrypt_credentials(&self, context: &RequestContext) -> Result<KeyRotationReport, ProviderError> {
        let deps = &self.deps;
        Ok(key_rotation::reencrypt_credentials(&*deps.store, &deps.audit, &*deps.cipher, context, KEY_ROTATION_BATCH)
            .await?)
    }

    /// A page of the caller's connections.
    pub async fn list(&self, query: &ProviderListQuery) -> Result<ProviderPage, ProviderError> {
        Ok(self.deps.store.providers(query).await?)
    }

    /// The caller's connection.
    pub async fn get(&self, user_id: UserId, id: ProviderId) -> Result<Provider, ProviderError> {
        self.deps.store.provider(user_id, id).await?.ok_or(ProviderError::NotFound)
    }

    /// Renames the caller's connection.
    pub async fn rename(
        &self,
        user_id: UserId,
        id: ProviderId,
        alias: Alias,
        context: &RequestContext,
    ) -> Result<Provider, ProviderError> {
        let mut tx = self.deps.store.begin().await?;
        let provider = tx
            .rename_provider(user_id, id, &alias, self.deps.clock.now())
            .await
            .map_err(alias_conflict)?
            .ok_or(ProviderError::NotFound)?;
        let event =
            AuditEvent::new(AuditAction::ProviderRenamed, AuditOutcome::Success).user(user_id).resource("provider", id);
        self.deps.audit.append(&mut tx, context, event).await?;
        tx.commit().await?;
        Ok(provider)
    }

    /// Deletes the caller's connection with its credentials and financial data; its audit entries stay.
    pub async fn delete(&self, user_id: UserId, id: ProviderId, context: &RequestContext) -> Result<(), ProviderError> {
        let provider = self.get(user_id, id).await?;
        let mut tx = self.deps.store.begin().await?;
        if !tx.delete_provider(user_id, id).await? {
            return Err(ProviderError::NotFound);
        }
        let event = AuditEvent::new(AuditAction::ProviderDeleted, AuditOutcome::Success)
            .user(user_id)
            .resource("provider", id)
            .detail("provider_key", provider.provider_key.as_str());
        self.deps.audit.append(&mut tx, context, event).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Starts an OAuth connect flow for the caller's connection: a random single-use `state` bound to the user
    /// and connection, and a PKCE verifier when the connector uses PKCE, kept in the shared state for
    /// [`OAUTH_STATE_LIFETIME`].
    pub async fn start_authorization(
        &self,
        user_id: UserId,
        id: ProviderId,
        context: &RequestContext,
    ) -> Result<AuthorizationStart, ProviderError> {
        let provider = self.get(user_id, id).await?;
        if provider.provider_key.info().auth_type != AuthType::OAuth2 {
            return Err(ProviderError::NotOAuthProvider);
        }
        let connector = self.connector(provider.provider_key)?;
        let state = self.deps.opaque_tokens.issue()?;
        let code_verifier = if connector.uses_pkce() { Some(self.deps.opaque_tokens.issue()?.text) } else { None };
        let code_challenge = code_verifier.as_ref().map(|verifier| pkce_challenge(verifier.expose_secret()));
        let redirect_uri = self.redirect_uri(provider.provider_key);
        let auth_url = connector
            .authorization_url(&AuthorizationRequest {
                state: state.text.expose_secret(),
                redirect_uri: &redirect_uri,
                code_challenge: code_challenge.as_deref(),
            })
            .map_err(ProviderError::Provider)?;
        let expires_at = self.deps.clock.now() + OAUTH_STATE_LIFETIME;
        let flow = OAuthFlow {
            user_id: user_id.as_uuid(),
            provider_id: id.as_uuid(),
            provider_key: provider.provider_key.as_str().to_owned(),
            redirect_uri,
            code_verifier: code_verifier.as_ref().map(|verifier| verifier.expose_secret().to_owned()),
            expires_at: expires_at.unix_timestamp(),
        };
        let flow = Zeroizing::new(serde_json::to_vec(&flow).map_err(|error| StoreError::Other(error.into()))?);
        // The shared state keeps the flow a minute longer than it is valid, so an expired state is reported as
        // expired (by the clock check) rather than as unknown.
        let ttl = OAUTH_STATE_LIFETIME + Duration::from_secs(60);
        self.deps
            .shared_state
            .put_ephemeral(&oauth_state_key(&state.digest), &flow, ttl)
            .await
            .map_err(ProviderError::SharedStateUnavailable)?;
        let event = AuditEvent::new(AuditAction::ProviderAuthorizationStarted, AuditOutcome::Success)
            .user(user_id)
            .resource("provider", id);
        self.deps.audit.record(context, event).await?;
        Ok(AuthorizationStart { auth_url, state: state.text, expires_in: OAUTH_STATE_LIFETIME.as_secs() })
    }

    /// Finishes a connect flow from the provider's redirect: the `state` is used up whatever happens next;
    /// on success the tokens are stored encrypted and the connection becomes active.
    pub async fn complete_authorization(
        &self,
        provider_key: &str,
        state: Option<&str>,
        code: Option<&str>,
        error: Option<&str>,
        context: &RequestContext,
    ) -> Result<ConnectedProvider, CallbackError> {
        let flow = self.take_flow(state).await?;
        let key = ProviderKey::parse(provider_key).filter(|key| key.as_str() == flow.provider_key);
        let user_id = UserId::from_uuid(flow.user_id);
        let id = ProviderId::from_uuid(flow.provider_id);
        let (Some(key), true) = (key, flow.expires_at > self.deps.clock.now().unix_timestamp()) else {
            return Err(CallbackError::InvalidState);
        };
        let failure = |reason: &str| {
            AuditEvent::new(AuditAction::ProviderConnected, AuditOutcome::Failure)
                .user(user_id)
                .resource("provider", id)
                .detail("reason", reason)
        };
        if let Some(error) = error {
            // Only a known OAuth error code is echoed to the page and the log; anything else is summarised.
            let error = oauth_error_code(error);
            self.deps.audit.record(context, failure(error).detail("provider_error", error)).await.map_err(fail)?;
            return Err(CallbackError::Denied(error.to_owned()));
        }
        let Some(code) = code.filter(|code| !code.is_empty()) else {
            self.deps.audit.record(context, failure("missing_code")).await.map_err(fail)?;
            return Err(CallbackError::MissingCode);
        };
        if self.deps.store.provider(user_id, id).await.map_err(fail)?.is_none() {
            return Err(CallbackError::InvalidState);
        }
        let connector = self.connector(key)?;
        let tokens = match connector.exchange_code(code, flow.code_verifier.as_deref(), &flow.redirect_uri).await {
            Ok(tokens) => tokens,
            Err(error) => {
                self.deps.audit.record(context, failure(connector_reason(&error))).await.map_err(fail)?;
                return Err(ProviderError::Provider(error).into());
            }
        };
        let now = self.deps.clock.now();
        let credentials = self.seal_oauth_tokens(id, &tokens, None, now, now)?;
        let mut tx = self.deps.store.begin().await.map_err(fail)?;
        tx.put_credentials(&credentials).await.map_err(fail)?;
        tx.set_provider_status(id, ProviderStatus::Active, true, now).await.map_err(fail)?;
        let event = AuditEvent::new(AuditAction::ProviderConnected, AuditOutcome::Success)
            .user(user_id)
            .resource("provider", id)
            .detail("method", "oauth2")
            .detail("has_refresh_token", credentials.has_refresh_token);
        self.deps.audit.append(&mut tx, context, event).await.map_err(fail)?;
        tx.commit().await.map_err(fail)?;
        let provider = self.get(user_id, id).await?;
        Ok(ConnectedProvider { provider })
    }

    /// What is known of the caller's connection's authorization.
    pub async fn authorization_status(
        &self,
        user_id: UserId,
        id: ProviderId,
    ) -> Result<AuthorizationStatus, ProviderError> {
        let provider = self.get(user_id, id).await?;
        let credentials = self.deps.store.provider_credentials(id).await?;
        Ok(AuthorizationStatus {
            status: provider.status,
            connected_at: provider.connected_at,
            expires_at: credentials.as_ref().and_then(|credentials| credentials.access_expires_at),
            has_refresh_token: credentials.as_ref().is_some_and(|credentials| credentials.has_refresh_token),
            scope: credentials.and_then(|credentials| credentials.scope),
        })
    }

    /// Refreshes the caller's connection's access token now (a real call to the provider, unless another
    /// caller's refresh finished while this one waited for the lock). Returns the new expiry.
    pub async fn force_refresh(
        &self,
        user_id: UserId,
        id: ProviderId,
        context: &RequestContext,
    ) -> Result<Option<OffsetDateTime>, ProviderError> {
        let provider = self.get(user_id, id).await?;
        if provider.provider_key.info().auth_type != AuthType::OAuth2 || !provider.is_connected() {
            return Err(ProviderError::NotConnected);
        }
        let access = self.refresh_under_lock(&provider, true, context).await?;
        Ok(access.expires_at)
    }

    /// Credentials for a call to the connection's provider, refreshing the access token first when it expires
    /// within [`REFRESH_MARGIN`]. Concurrent callers on every instance share one refresh.
    pub async fn access(&self, provider: &Provider, context: &RequestContext) -> Result<ProviderAccess, ProviderError> {
        if !provider.is_connected() {
            return Err(ProviderError::NotConnected);
        }
        let credentials =
            self.deps.store.provider_credentials(provider.id).await?.ok_or(ProviderError::NotConnected)?;
        if !self.needs_refresh(&credentials) {
            return self.open(&credentials);
        }
        self.refresh_under_lock(provider, false, context).await
    }

    /// The connector for a provider type, when configured.
    pub fn connector(&self, key: ProviderKey) -> Result<&Arc<dyn Connector>, ProviderError> {
        self.deps.catalog.connector(key).ok_or(ProviderError::NotConfigured)
    }

    /// Erases the caller's connection's credentials and marks it `revoked`.
    pub async fn disconnect(
        &self,
        user_id: UserId,
        id: ProviderId,
        context: &RequestContext,
    ) -> Result<(), ProviderError> {
        self.get(user_id, id).await?;
        let mut tx = self.deps.store.begin().await?;
        let erased = tx.delete_credentials(id).await?;
        tx.set_provider_status(id, ProviderStatus::Revoked, false, self.deps.clock.now()).await?;
        let event = AuditEvent::new(AuditAction::ProviderDisconnected, AuditOutcome::Success)
            .user(user_id)
            .resource("provider", id)
            .detail("credentials_erased", erased);
        self.deps.audit.append(&mut tx, context, event).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Stores an API key pair for the caller's connection after the provider accepted it in a live call.
    pub async fn set_api_credentials(
        &self,
        user_id: UserId,
        id: ProviderId,
        credentials: ApiKeyCredentials,
        context: &RequestContext,
    ) -> Result<Provider, ProviderError> {
        let provider = self.get(user_id, id).await?;
        if provider.provider_key.info().auth_type != AuthType::ApiKey {
            return Err(ProviderError::NotApiKeyProvider);
        }
        let connector = self.connector(provider.provider_key)?;
        if let Err(error) = connector.verify_api_key(&credentials).await {
            let event = AuditEvent::new(AuditAction::ProviderConnected, AuditOutcome::Failure)
                .user(user_id)
                .resource("provider", id)
                .detail("method", "api_key")
                .detail("reason", connector_reason(&error));
            self.deps.audit.record(context, event).await?;
            return Err(match error {
                ConnectorError::Unauthorized | ConnectorError::Rejected { .. } => ProviderError::InvalidCredentials,
                other => ProviderError::Provider(other),
            });
        }
        let secret = CredentialSecret::ApiKey {
            api_key: credentials.api_key.expose_secret().to_owned(),
            api_secret: credentials.api_secret.expose_secret().to_owned(),
        };
        let now = self.deps.clock.now();
        let stored = StoredCredentials {
            provider_id: id,
            kind: CredentialKind::ApiKey,
            secret: self.seal(id, &secret)?,
            access_expires_at: None,
            has_refresh_token: false,
            scope: None,
            connected_at: now,
            updated_at: now,
        };
        let mut tx = self.deps.store.begin().await?;
        tx.put_credentials(&stored).await?;
        tx.set_provider_status(id, ProviderStatus::Active, true, now).await?;
        let event = AuditEvent::new(AuditAction::ProviderConnected, AuditOutcome::Success)
            .user(user_id)
            .resource("provider", id)
            .detail("method", "api_key");
        self.deps.audit.append(&mut tx, context, event).await?;
        tx.commit().await?;
        self.get(user_id, id).await
    }

    /// Records that a provider call failed in a way only a reconnection can fix.
    pub async fn mark_needs_reconnection(
        &self,
        provider: &Provider,
        status: ProviderStatus,
        reason: &str,
        context: &RequestContext,
    ) -> Result<(), ProviderError> {
        let mut tx = self.deps.store.begin().await?;
        tx.set_provider_status(provider.id, status, false, self.deps.clock.now()).await?;
        let event = AuditEvent::new(AuditAction::ProviderNeedsReconnection, AuditOutcome::Failure)
            .user(provider.user_id)
            .resource("provider", provider.id)
            .detail("status", status.as_str())
            .detail("reason", reason);
        self.deps.audit.append(&mut tx, context, event).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn take_flow(&self, state: Option<&str>) -> Result<OAuthFlow, CallbackError> {
        let state = state.filter(|state| !state.is_empty()).ok_or(CallbackError::InvalidState)?;
        let digest = self.deps.opaque_tokens.digest(state).map_err(|_| CallbackError::InvalidState)?;
        let flow = self
            .deps
            .shared_state
            .take_ephemeral(&oauth_state_key(&digest))
            .await
            .map_err(|error| CallbackError::Failed(ProviderError::SharedStateUnavailable(error)))?
            .ok_or(CallbackError::InvalidState)?;
        let flow = Zeroizing::new(flow);
        serde_json::from_slice(&flow).map_err(|_| CallbackError::InvalidState)
    }

    fn needs_refresh(&self, credentials: &StoredCredentials) -> bool {
        credentials.kind == CredentialKind::OAuth2
            && credentials
                .access_expires_at
                .is_some_and(|expires_at| expires_at <= self.deps.clock.now() + REFRESH_MARGIN)
    }

    /// Refreshes under the connection's lock. A caller that had to wait for the lock and finds the secret
    /// changed meanwhile uses the refresh that just happened instead of making another.
    async fn refresh_under_lock(
        &self,
        provider: &Provider,
        force: bool,
        context: &RequestContext,
    ) -> Result<ProviderAccess, ProviderError> {
        let before = self.deps.store.provider_credentials(provider.id).await?.ok_or(ProviderError::NotConnected)?;
        let lock_name = format!("provider-refresh:{}", provider.id);
        let shared = &self.deps.shared_state;
        let token = match shared.lock(&lock_name, REFRESH_LOCK_TTL, Duration::ZERO).await {
            Ok(Some(token)) => (token, false),
            Ok(None) => match shared.lock(&lock_name, REFRESH_LOCK_TTL, REFRESH_LOCK_WAIT).await {
                Ok(Some(token)) => (token, true),
                Ok(None) => return Err(ProviderError::RefreshBusy),
                Err(error) => return Err(ProviderError::SharedStateUnavailable(error)),
            },
            Err(error) => return Err(ProviderError::SharedStateUnavailable(error)),
        };
        let (token, waited) = token;
        let result = self.refresh_locked(provider, &before, force, waited, context).await;
        if let Err(error) = shared.unlock(&lock_name, &token).await {
            // The lock expires on its own; the next refresh merely waits for that.
            tracing::warn!(provider_id = %provider.id, %error, "could not release a provider refresh lock");
        }
        result
    }

    async fn refresh_locked(
        &self,
        provider: &Provider,
        before: &StoredCredentials,
        force: bool,
        waited: bool,
        context: &RequestContext,
    ) -> Result<ProviderAccess, ProviderError> {
        let current = self.deps.store.provider_credentials(provider.id).await?.ok_or(ProviderError::NotConnected)?;
        let refreshed_meanwhile = waited && current.secret != before.secret;
        if refreshed_meanwhile || (!force && !self.needs_refresh(&current)) {
            return self.open(&current);
        }
        let CredentialSecret::OAuth2 { refresh_token: Some(refresh_token), .. } = &*self.unseal(&current)? else {
            return Err(ProviderError::NotConnected);
        };
        let refresh_token = SecretString::from(refresh_token.as_str());
        let connector = self.connector(provider.provider_key)?;
        match connector.refresh_tokens(&refresh_token).await {
            Ok(tokens) => self.store_refreshed(provider, &current, &refresh_token, tokens, context).await,
            Err(error) => {
                self.record_refresh_failure(provider, &error, context).await?;
                Err(ProviderError::Provider(error))
            }
        }
    }

    async fn store_refreshed(
        &self,
        provider: &Provider,
        current: &StoredCredentials,
        old_refresh_token: &SecretString,
        tokens: OAuthTokens,
        context: &RequestContext,
    ) -> Result<ProviderAccess, ProviderError> {
        let outcome = match &tokens.refresh_token {
            None => RefreshTokenOutcome::NotReturned,
            Some(new) if new.expose_secret() == old_refresh_token.expose_secret() => RefreshTokenOutcome::Unchanged,
            Some(_) => RefreshTokenOutcome::Rotated,
        };
        let now = self.deps.clock.now();
        let kept = (outcome == RefreshTokenOutcome::NotReturned).then_some(old_refresh_token);
        let stored = self.seal_oauth_tokens(provider.id, &tokens, kept, current.connected_at, now)?;
        let mut tx = self.deps.store.begin().await?;
        tx.put_credentials(&stored).await?;
        tx.clear_refresh_failures(provider.id, now).await?;
        let event = AuditEvent::new(AuditAction::ProviderTokenRefreshed, AuditOutcome::Success)
            .user(provider.user_id)
            .resource("provider", provider.id)
            .detail("refresh_token", outcome.as_str());
        self.deps.audit.append(&mut tx, context, event).await?;
        tx.commit().await?;
        Ok(ProviderAccess { secret: Access::Bearer(tokens.access_token), expires_at: stored.access_expires_at })
    }

    /// Counts a failed refresh and audits it in its own transaction (it must survive the failed operation);
    /// a refused grant, or the third failure in a row, marks the connection as needing reconnection.
    async fn record_refresh_failure(
        &self,
        provider: &Provider,
        error: &ConnectorError,
        context: &RequestContext,
    ) -> Result<(), ProviderError> {
        let now = self.deps.clock.now();
        let mut tx = self.deps.store.begin().await?;
        let failures = tx.count_refresh_failure(provider.id, now).await?;
        let new_status = if error.needs_reconnection() {
            Some(ProviderStatus::Expired)
        } else if failures >= MAX_REFRESH_FAILURES {
            Some(ProviderStatus::Error)
        } else {
            None
        };
        if let Some(status) = new_status {
            tx.set_provider_status(provider.id, status, false, now).await?;
        }
        let mut event = AuditEvent::new(AuditAction::ProviderTokenRefreshed, AuditOutcome::Failure)
            .user(provider.user_id)
            .resource("provider", provider.id)
            .detail("reason", connector_reason(error))
            .detail("consecutive_failures", failures);
        if let Some(status) = new_status {
            event = event.detail("status", status.as_str());
        }
        self.deps.audit.append(&mut tx, context, event).await?;
        tx.commit().await?;
        Ok(())
    }

    fn open(&self, credentials: &StoredCredentials) -> Result<ProviderAccess, ProviderError> {
        let secret = match &*self.unseal(credentials)? {
            CredentialSecret::OAuth2 { access_token, .. } => Access::Bearer(SecretString::from(access_token.as_str())),
            CredentialSecret::ApiKey { api_key, api_secret } => Access::ApiKey(ApiKeyCredentials {
                api_key: SecretString::from(api_key.as_str()),
                api_secret: SecretString::from(api_secret.as_str()),
            }),
        };
        Ok(ProviderAccess { secret, expires_at: credentials.access_expires_at })
    }

    fn seal_oauth_tokens(
        &self,
        id: ProviderId,
        tokens: &OAuthTokens,
        kept_refresh_token: Option<&SecretString>,
        connected_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<StoredCredentials, ProviderError> {
        let refresh_token = tokens.refresh_token.as_ref().or(kept_refresh_token);
        let secret = CredentialSecret::OAuth2 {
            access_token: tokens.access_token.expose_secret().to_owned(),
            refresh_token: refresh_token.map(|token| token.expose_secret().to_owned()),
        };
        Ok(StoredCredentials {
            provider_id: id,
            kind: CredentialKind::OAuth2,
            secret: self.seal(id, &secret)?,
            access_expires_at: tokens.expires_in.map(|lifetime| now + lifetime),
            has_refresh_token: refresh_token.is_some(),
            scope: tokens.scope.clone(),
            connected_at,
            updated_at: now,
        })
    }

    fn seal(&self, id: ProviderId, secret: &CredentialSecret) -> Result<Vec<u8>, ProviderError> {
        let plaintext = Zeroizing::new(serde_json::to_vec(secret).map_err(|error| StoreError::Other(error.into()))?);
        let row_id = id.to_string();
        Ok(self.deps.cipher.encrypt(&plaintext, &credentials_location(&row_id))?)
    }

    fn unseal(&self, credentials: &StoredCredentials) -> Result<Zeroizing<CredentialSecret>, ProviderError> {
        let row_id = credentials.provider_id.to_string();
        let plaintext = self.deps.cipher.decrypt(&credentials.secret, &credentials_location(&row_id))?;
        let secret = serde_json::from_slice(&plaintext)
            .map_err(|_| StoreError::Corrupt(format!("provider {} credentials", credentials.provider_id)))?;
        Ok(Zeroizing::new(secret))
    }
}

/// Where a connection's secret is stored: the AAD binds it to the connection's id.
pub fn credentials_location(row_id: &str) -> SecretLocation<'_> {
    SecretLocation::new(CREDENTIALS_TABLE, CREDENTIALS_COLUMN, row_id)
}

/// The shared-state key of a flow: the keyed digest of its `state`, so the state itself is never stored.
fn oauth_state_key(digest: &TokenDigest) -> String {
    format!("oauth-state:{}", hex::encode(digest.0))
}

/// `BASE64URL(SHA-256(verifier))`, the S256 code challenge (RFC 7636).
fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// The RFC 6749 error codes a provider may send back; anything else is reported as `provider_error`.
fn oauth_error_code(error: &str) -> &'static str {
    const KNOWN: &[&str] = &[
        "access_denied",
        "invalid_request",
        "unauthorized_client",
        "unsupported_response_type",
        "invalid_scope",
        "server_error",
        "temporarily_unavailable",
    ];
    KNOWN.iter().copied().find(|known| *known == error).unwrap_or("provider_error")
}

/// A short, secret-free reason for the audit log.
pub fn connector_reason(error: &ConnectorError) -> &'static str {
    match error {
        ConnectorError::Unauthorized => "unauthorized",
        ConnectorError::InvalidGrant => "invalid_grant",
        ConnectorError::RateLimited { .. } => "rate_limited",
        ConnectorError::Unavailable { .. } => "provider_unavailable",
        ConnectorError::Timeout => "timeout",
        ConnectorError::Network(_) => "network",
        ConnectorError::InvalidResponse(_) => "invalid_response",
        ConnectorError::Rejected { .. } => "rejected",
        ConnectorError::Unsupported => "unsupported",
    }
}

fn alias_conflict(error: StoreError) -> ProviderError {
    match error {
        StoreError::Conflict(_) => ProviderError::DuplicateAlias,
        other => ProviderError::Store(other),
    }
}

fn fail(error: StoreError) -> CallbackError {
    CallbackError::Failed(ProviderError::Store(error))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_challenge_is_unpadded_base64url_of_sha256() {
        // Expected value computed independently: base64.urlsafe_b64encode(sha256(verifier)).rstrip("=").
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mJ92K9ekCbGp3jFn7N5Mh6rXxCSK5Y"),
            "fhBi55MpA1ZropuYindU0HLw11y3vYAfJIv3rFCuoP8"
        );
    }

    #[test]
    fn only_known_oauth_errors_are_echoed() {
        assert_eq!(oauth_error_code("access_denied"), "access_denied");
        assert_eq!(oauth_error_code("<script>"), "provider_error");
    }
}
