//! Providers (API.md §5): the catalog of provider types, a user's connections, the OAuth connect flow with
//! its callback page, API-key credentials and forced token refresh.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use dashtam_domain::connector::{ApiKeyCredentials, ConnectorError, DateRange};
use dashtam_domain::providers::{
    Alias, AliasError, AuthorizationStatus, CallbackError, Provider, ProviderError, ProviderId, ProviderKey,
    ProviderListQuery, ProviderSort, ProviderStatus, ProviderTypeInfo,
};
use dashtam_domain::sync::{SyncError, SyncResult};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::AuthUser;
use crate::context::Context;
use crate::datetime::{DateOrTimestamp, Timestamp};
use crate::extract::{PathId, ValidJson, ValidQuery, Validate};
use crate::field_schemas::{self, MAX_CREDENTIAL_FIELD};
use crate::problem::{FieldError, Problem, ProblemDocument};
use crate::state::AppState;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_provider_types))
        .routes(routes!(provider_type))
        .routes(routes!(create_provider, list_providers))
        .routes(routes!(get_provider, rename_provider, delete_provider))
        .routes(routes!(start_authorization, authorization_status, refresh_authorization, disconnect))
        .routes(routes!(set_credentials))
        .routes(routes!(sync_provider))
        .routes(routes!(oauth_callback))
}

/// The one place provider errors become problems.
pub(crate) fn provider_problem(error: ProviderError) -> Problem {
    let bad_request = |code: &'static str, title: &'static str| Problem::new(StatusCode::BAD_REQUEST, code, title);
    match error {
        ProviderError::NotFound => Problem::not_found(),
        ProviderError::UnknownProvider => bad_request("unknown_provider", "Unknown provider")
            .with_detail("No provider type has this key; see GET /api/v1/provider-types."),
        ProviderError::NotConfigured => bad_request("provider_not_configured", "Provider not configured")
            .with_detail("This server is not configured for this provider type."),
        ProviderError::DuplicateAlias => Problem::new(StatusCode::CONFLICT, "duplicate_alias", "Duplicate alias")
            .with_detail("You already have a provider with this alias."),
        ProviderError::NotOAuthProvider => bad_request("not_oauth_provider", "Not an OAuth provider")
            .with_detail("This provider does not connect through OAuth."),
        ProviderError::NotApiKeyProvider => bad_request("not_api_key_provider", "Not an API-key provider")
            .with_detail("This provider does not connect with an API key."),
        ProviderError::InvalidCredentials => bad_request("invalid_credentials", "Invalid credentials")
            .with_detail("The provider did not accept this API key and secret."),
        ProviderError::NotConnected => Problem::new(StatusCode::CONFLICT, "not_connected", "Not connected")
            .with_detail("This provider is not connected; connect it first."),
        ProviderError::Provider(error) => connector_problem(&error),
        ProviderError::SharedStateUnavailable(error) => {
            tracing::error!(%error, "shared state unavailable");
            Problem::unavailable()
        }
        ProviderError::RefreshBusy => Problem::unavailable()
            .with_detail("Another refresh of this provider's tokens is still running. Try again shortly."),
        ProviderError::Cipher(error) => {
            tracing::error!(%error, "provider credentials could not be encrypted or decrypted");
            Problem::internal()
        }
        ProviderError::Randomness(error) => {
            tracing::error!(%error, "no randomness");
            Problem::internal()
        }
        ProviderError::Store(error) => error.into(),
    }
}

/// `502 provider_error` or `504 provider_timeout`, with a detail that names no secret.
fn connector_problem(error: &ConnectorError) -> Problem {
    if matches!(error, ConnectorError::Timeout) {
        return Problem::new(StatusCode::GATEWAY_TIMEOUT, "provider_timeout", "Provider timeout")
            .with_detail("The provider did not answer in time. Try again later.");
    }
    tracing::warn!(%error, "provider call failed");
    let detail = if error.needs_reconnection() {
        "The provider no longer accepts this connection; connect it again."
    } else {
        match error {
            ConnectorError::RateLimited { .. } => "The provider is limiting requests. Try again later.",
            ConnectorError::InvalidResponse(_) => "The provider answered something that could not be read.",
            _ => "The provider could not complete the request. Try again later.",
        }
    };
    Problem::new(StatusCode::BAD_GATEWAY, "provider_error", "Provider error").with_detail(detail)
}

/// A kind of provider.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderTypeResponse {
    /// `schwab`, `alpaca`, `sandbox` or `file_import`.
    key: &'static str,
    /// Its name.
    name: &'static str,
    /// `brokerage` or `file`.
    provider_type: &'static str,
    /// `oauth2`, `api_key` or `file`.
    auth_type: &'static str,
    /// One sentence.
    description: &'static str,
    /// Whether this server can use it now.
    is_configured: bool,
    /// What it supplies.
    supported_features: &'static [&'static str],
}

impl ProviderTypeResponse {
    fn new(info: ProviderTypeInfo, is_configured: bool) -> Self {
        Self {
            key: info.key.as_str(),
            name: info.name,
            provider_type: info.provider_type,
            auth_type: info.auth_type.as_str(),
            description: info.description,
            is_configured,
            supported_features: info.supported_features,
        }
    }
}

/// `GET /provider-types` filters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ProviderTypesQuery {
    /// Only types that are (or are not) configured.
    configured: Option<bool>,
}

impl Validate for ProviderTypesQuery {
    fn validate(&self) -> Result<(), Vec<FieldError>> {
        Ok(())
    }
}

/// Every provider type, and whether this server can use it.
#[utoipa::path(get, path = "/api/v1/provider-types", tag = "providers", params(ProviderTypesQuery),
    responses(
        (status = 200, body = Vec<ProviderTypeResponse>),
        (status = 422, body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub(crate) async fn list_provider_types(
    State(state): State<AppState>,
    ValidQuery(query): ValidQuery<ProviderTypesQuery>,
) -> Json<Vec<ProviderTypeResponse>> {
    let catalog = state.providers.catalog();
    let types = ProviderKey::ALL
        .into_iter()
        .map(|key| (key, catalog.is_configured(key)))
        .filter(|(_, configured)| query.configured.is_none_or(|wanted| wanted == *configured))
        .map(|(key, configured)| ProviderTypeResponse::new(key.info(), configured))
        .collect();
    Json(types)
}

/// One provider type.
#[utoipa::path(get, path = "/api/v1/provider-types/{key}", tag = "providers",
    params(("key" = String, Path, description = "Provider type key")),
    responses(
        (status = 200, body = ProviderTypeResponse),
        (status = 404, body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub(crate) async fn provider_type(
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> Result<Json<ProviderTypeResponse>, Problem> {
    let key = ProviderKey::parse(&key).ok_or_else(Problem::not_found)?;
    Ok(Json(ProviderTypeResponse::new(key.info(), state.providers.catalog().is_configured(key))))
}

/// A connection to a provider.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderResponse {
    /// Its id.
    id: Uuid,
    /// The provider type.
    provider_key: &'static str,
    /// The owner's name for it.
    alias: String,
    /// `pending`, `active`, `expired`, `revoked` or `error`.
    status: &'static str,
    /// Whether its credentials work.
    is_connected: bool,
    /// Whether it must be connected again before it can sync.
    needs_reconnection: bool,
    /// When it was last connected.
    #[schema(value_type = Option<String>, format = DateTime)]
    connected_at: Option<Timestamp>,
    /// When it last synced successfully.
    #[schema(value_type = Option<String>, format = DateTime)]
    last_sync_at: Option<Timestamp>,
    /// Why the last sync failed.
    last_sync_error: Option<String>,
    /// How many accounts it holds.
    accounts_count: i64,
    /// Created.
    #[schema(value_type = String, format = DateTime)]
    created_at: Timestamp,
    /// Last changed.
    #[schema(value_type = String, format = DateTime)]
    updated_at: Timestamp,
}

impl From<Provider> for ProviderResponse {
    fn from(provider: Provider) -> Self {
        Self {
            id: provider.id.as_uuid(),
            provider_key: provider.provider_key.as_str(),
            is_connected: provider.is_connected(),
            needs_reconnection: provider.needs_reconnection(),
            alias: provider.alias.as_str().to_owned(),
            status: provider.status.as_str(),
            connected_at: provider.connected_at.map(Timestamp),
            last_sync_at: provider.last_sync_at.map(Timestamp),
            last_sync_error: provider.last_sync_error,
            accounts_count: provider.accounts_count,
            created_at: Timestamp(provider.created_at),
            updated_at: Timestamp(provider.updated_at),
        }
    }
}

fn alias_error(error: AliasError) -> FieldError {
    let code = match error {
        AliasError::Empty => "required",
        AliasError::TooLong => "too_long",
        AliasError::ControlCharacter => "invalid_characters",
    };
    FieldError::new("alias", code, error.to_string())
}

/// `POST /providers`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProviderRequest {
    /// A provider type key.
    #[schema(schema_with = field_schemas::provider_key)]
    provider_key: String,
    /// Your name for the connection (1–100 characters, unique among yours).
    #[schema(schema_with = field_schemas::alias)]
    alias: String,
}

impl Validate for CreateProviderRequest {
    fn validate(&self) -> Result<(), Vec<FieldError>> {
        Alias::parse(&self.alias).map(drop).map_err(|error| vec![alias_error(error)])
    }
}

/// Create a connection (status `pending`; connect it next).
#[utoipa::path(post, path = "/api/v1/providers", tag = "providers", request_body = CreateProviderRequest,
    security(("bearer" = [])),
    responses(
        (status = 201, body = ProviderResponse),
        (status = 400, description = "unknown_provider, provider_not_configured", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 401, body = ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "duplicate_alias", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 422, body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub(crate) async fn create_provider(
    State(state): State<AppState>,
    AuthUser { principal, context, .. }: AuthUser,
    ValidJson(body): ValidJson<CreateProviderRequest>,
) -> Result<(StatusCode, Json<ProviderResponse>), Problem> {
    let alias = Alias::parse(&body.alias).map_err(|error| Problem::validation(vec![alias_error(error)]))?;
    let provider = state
        .providers
        .create(principal.user_id, &body.provider_key, alias, &context)
        .await
        .map_err(provider_problem)?;
    Ok((StatusCode::CREATED, Json(provider.into())))
}

/// The highest page number: the `int32` the OpenAPI document declares for `page`.
const MAX_PAGE: u32 = i32::MAX as u32;

/// `GET /providers` paging, filters and order.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListProvidersQuery {
    /// Page number, from 1 (at most 2147483647, the int32 the document declares).
    #[param(minimum = 1, maximum = 2_147_483_647)]
    page: Option<u32>,
    /// Items per page, 1–100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    per_page: Option<u32>,
    /// Only this status.
    #[param(schema_with = field_schemas::provider_status)]
    status: Option<String>,
    /// Only this provider type.
    #[param(schema_with = field_schemas::provider_key)]
    provider_key: Option<String>,
    /// `created_at` (default), `updated_at`, `alias` or `provider_key`.
    #[param(schema_with = field_schemas::provider_sort)]
    sort: Option<String>,
    /// `asc` or `desc` (default).
    #[param(schema_with = field_schemas::sort_order)]
    order: Option<String>,
}

impl Validate for ListProvidersQuery {
    fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = Vec::new();
        if self.page.is_some_and(|page| page == 0 || page > MAX_PAGE) {
            errors.push(FieldError::new("page", "out_of_range", format!("must be between 1 and {MAX_PAGE}")));
        }
        if self.per_page.is_some_and(|per_page| !(1..=100).contains(&per_page)) {
            errors.push(FieldError::new("per_page", "out_of_range", "must be between 1 and 100"));
        }
        if self.status.as_deref().is_some_and(|status| ProviderStatus::parse(status).is_none()) {
            errors.push(FieldError::new(
                "status",
                "invalid_choice",
                "must be pending, active, expired, revoked or error",
            ));
        }
        if self.provider_key.as_deref().is_some_and(|key| ProviderKey::parse(key).is_none()) {
            errors.push(FieldError::new("provider_key", "invalid_choice", "must be a provider type key"));
        }
        if errors.is_empty() { Ok(()) } else { Err(errors) }
    }
}

/// A page of connections.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderListResponse {
    /// This page.
    items: Vec<ProviderResponse>,
    /// Matches in all.
    total: u64,
    /// This page's number.
    page: u32,
    /// Items per page.
    per_page: u32,
    /// Pages in all.
    pages: u64,
    /// Whether a later page exists.
    has_next: bool,
    /// Whether an earlier page exists.
    has_prev: bool,
}

/// The caller's connections, a page at a time.
#[utoipa::path(get, path = "/api/v1/providers", tag = "providers", params(ListProvidersQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, body = ProviderListResponse),
        (status = 400, description = "invalid_sort", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 401, body = ProblemDocument, content_type = "application/problem+json"),
        (status = 422, body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub(crate) async fn list_providers(
    State(state): State<AppState>,
    AuthUser { principal, .. }: AuthUser,
    ValidQuery(query): ValidQuery<ListProvidersQuery>,
) -> Result<Json<ProviderListResponse>, Problem> {
    let invalid_sort = || {
        Problem::new(StatusCode::BAD_REQUEST, "invalid_sort", "Invalid sort")
            .with_detail("sort must be created_at, updated_at, alias or provider_key, and order asc or desc.")
    };
    let sort = match query.sort.as_deref() {
        None => ProviderSort::CreatedAt,
        Some(text) => ProviderSort::parse(text).ok_or_else(invalid_sort)?,
    };
    let descending = match query.order.as_deref() {
        None | Some("desc") => true,
        Some("asc") => false,
        Some(_) => return Err(invalid_sort()),
    };
    let page = query.page.unwrap_or(1);
    let per_page = query.per_page.unwrap_or(50);
    let list = ProviderListQuery {
        user_id: principal.user_id,
        status: query.status.as_deref().and_then(ProviderStatus::parse),
        provider_key: query.provider_key.as_deref().and_then(ProviderKey::parse),
        sort,
        descending,
        offset: u64::from(page - 1) * u64::from(per_page),
        limit: per_page,
    };
    let result = state.providers.list(&list).await.map_err(provider_problem)?;
    let pages = result.total.div_ceil(u64::from(per_page));
    Ok(Json(ProviderListResponse {
        items: result.items.into_iter().map(ProviderResponse::from).collect(),
        total: result.total,
        page,
        per_page,
        pages,
        has_next: u64::from(page) < pages,
        has_prev: page > 1,
    }))
}

/// One of the caller's connections.
#[utoipa::path(get, path = "/api/v1/providers/{id}", tag = "providers",
    params(("id" = Uuid, Path, description = "Provider id")), security(("bearer" = [])),
    responses(
        (status = 200, body = ProviderResponse),
        (status = 401, body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, body = ProblemDocument, content_type = "application/problem+json"),
        (status = 422, body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub(crate) async fn get_provider(
    State(state): State<AppState>,
    AuthUser { principal, .. }: AuthUser,
    PathId(id): PathId,
) -> Result<Json<ProviderResponse>, Problem> {
    let provider = state.providers.get(principal.user_id, ProviderId::from_uuid(id)).await.map_err(provider_problem)?;
    Ok(Json(provider.into()))
}

/// `PATCH /providers/{id}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenameProviderRequest {
    /// The new alias (1–100 characters, unique among yours).
    #[schema(schema_with = field_schemas::alias)]
    alias: String,
}

impl Validate for RenameProviderRequest {
    fn validate(&self) -> Result<(), Vec<FieldError>> {
        Alias::parse(&self.alias).map(drop).map_err(|error| vec![alias_error(error)])
    }
}

/// Rename one of the caller's connections.
#[utoipa::path(patch, path = "/api/v1/providers/{id}", tag = "providers", request_body = RenameProviderRequest,
    params(("id" = Uuid, Path, description = "Provider id")), security(("bearer" = [])),
    responses(
        (status = 200, body = ProviderResponse),
        (status = 401, body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, body = ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "duplicate_alias", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 422, body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub(crate) async fn rename_provider(
    State(state): State<AppState>,
    AuthUser { principal, context, .. }: AuthUser,
    PathId(id): PathId,
    ValidJson(body): ValidJson<RenameProviderRequest>,
) -> Result<Json<ProviderResponse>, Problem> {
    let alias = Alias::parse(&body.alias).map_err(|error| Problem::validation(vec![alias_error(error)]))?;
    let provider = state
        .providers
        .rename(principal.user_id, ProviderId::from_uuid(id), alias, &context)
        .await
        .map_err(provider_problem)?;
    Ok(Json(provider.into()))
}

/// Delete one of the caller's connections with its credentials and data (its audit entries stay).
#[utoipa::path(delete, path = "/api/v1/providers/{id}", tag = "providers",
    params(("id" = Uuid, Path, description = "Provider id")), security(("bearer" = [])),
    responses(
        (status = 204, description = "deleted"),
        (status = 401, body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, body = ProblemDocument, content_type = "application/problem+json"),
        (status = 422, body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub(crate) async fn delete_provider(
    State(state): State<AppState>,
    AuthUser { principal, context, .. }: AuthUser,
    PathId(id): PathId,
) -> Result<StatusCode, Problem> {
    state.providers.delete(principal.user_id, ProviderId::from_uuid(id), &context).await.map_err(provider_problem)?;
    Ok(StatusCode::NO_CONTENT)
}

/// A started connect flow.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuthorizationStartResponse {
    /// Open this in the user's browser.
    auth_url: String,
    /// The flow's single-use state (also in `auth_url`).
    state: String,
    /// Seconds until the flow expires.
    expires_in: u64,
}

/// Start connecting an OAuth provider: send the user to `auth_url`.
#[utoipa::path(post, path = "/api/v1/providers/{id}/authorization", tag = "providers",
    params(("id" = Uuid, Path, description = "Provider id")), security(("bearer" = [])),
    responses(
        (status = 200, body = AuthorizationStartResponse),
        (status = 400, description = "not_oauth_provider, provider_not_configured", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 401, body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, body = ProblemDocument, content_type = "application/problem+json"),
        (status = 422, body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub(crate) async fn start_authorization(
    State(state): State<AppState>,
    AuthUser { principal, context, .. }: AuthUser,
    PathId(id): PathId,
) -> Result<Json<AuthorizationStartResponse>, Problem> {
    let start = state
        .providers
        .start_authorization(principal.user_id, ProviderId::from_uuid(id), &context)
        .await
        .map_err(provider_problem)?;
    Ok(Json(AuthorizationStartResponse {
        auth_url: start.auth_url,
        state: start.state.expose_secret().to_owned(),
        expires_in: start.expires_in,
    }))
}

/// A connection's authorization, without secrets.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuthorizationStatusResponse {
    /// The connection's status.
    status: &'static str,
    /// When it was connected.
    #[schema(value_type = Option<String>, format = DateTime)]
    connected_at: Option<Timestamp>,
    /// When the access token expires.
    #[schema(value_type = Option<String>, format = DateTime)]
    expires_at: Option<Timestamp>,
    /// Whether a refresh token is held.
    has_refresh_token: bool,
    /// The granted scope.
    scope: Option<String>,
}

impl From<AuthorizationStatus> for AuthorizationStatusResponse {
    fn from(status: AuthorizationStatus) -> Self {
        Self {
            status: status.status.as_str(),
            connected_at: status.connected_at.map(Timestamp),
            expires_at: status.expires_at.map(Timestamp),
            has_refresh_token: status.has_refresh_token,
            scope: status.scope,
        }
    }
}

/// What is known of a connection's authorization.
#[utoipa::path(get, path = "/api/v1/providers/{id}/authorization", tag = "providers",
    params(("id" = Uuid, Path, description = "Provider id")), security(("bearer" = [])),
    responses(
        (status = 200, body = AuthorizationStatusResponse),
        (status = 401, body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, body = ProblemDocument, content_type = "application/problem+json"),
        (status = 422, body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub(crate) async fn authorization_status(
    State(state): State<AppState>,
    AuthUser { principal, .. }: AuthUser,
    PathId(id): PathId,
) -> Result<Json<AuthorizationStatusResponse>, Problem> {
    let status = state
        .providers
        .authorization_status(principal.user_id, ProviderId::from_uuid(id))
        .await
        .map_err(provider_problem)?;
    Ok(Json(status.into()))
}

/// A refresh that happened.
#[derive(Debug, Serialize, ToSchema)]
pub struct RefreshResponse {
    /// What happened.
    message: &'static str,
    /// When the new access token expires.
    #[schema(value_type = Option<String>, format = DateTime)]
    expires_at: Option<Timestamp>,
}

/// Refresh the connection's provider tokens now.
#[utoipa::path(patch, path = "/api/v1/providers/{id}/authorization", tag = "providers",
    params(("id" = Uuid, Path, description = "Provider id")), security(("bearer" = [])),
    responses(
        (status = 200, body = RefreshResponse),
        (status = 401, body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, body = ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "not_connected", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 422, body = ProblemDocument, content_type = "application/problem+json"),
        (status = 502, description = "provider_error", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 504, description = "provider_timeout", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub(crate) async fn refresh_authorization(
    State(state): State<AppState>,
    AuthUser { principal, context, .. }: AuthUser,
    PathId(id): PathId,
) -> Result<Json<RefreshResponse>, Problem> {
    let expires_at = state
        .providers
        .force_refresh(principal.user_id, ProviderId::from_uuid(id), &context)
        .await
        .map_err(provider_problem)?;
    Ok(Json(RefreshResponse {
        message: "The provider's tokens were refreshed.",
        expires_at: expires_at.map(Timestamp),
    }))
}

/// Erase the connection's credentials (status becomes `revoked`).
#[utoipa::path(delete, path = "/api/v1/providers/{id}/authorization", tag = "providers",
    params(("id" = Uuid, Path, description = "Provider id")), security(("bearer" = [])),
    responses(
        (status = 204, description = "credentials erased"),
        (status = 401, body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, body = ProblemDocument, content_type = "application/problem+json"),
        (status = 422, body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub(crate) async fn disconnect(
    State(state): State<AppState>,
    AuthUser { principal, context, .. }: AuthUser,
    PathId(id): PathId,
) -> Result<StatusCode, Problem> {
    state
        .providers
        .disconnect(principal.user_id, ProviderId::from_uuid(id), &context)
        .await
        .map_err(provider_problem)?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /providers/{id}/credentials`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CredentialsRequest {
    /// The API key id.
    #[schema(schema_with = field_schemas::api_credential)]
    api_key: SecretString,
    /// The API secret.
    #[schema(schema_with = field_schemas::api_credential)]
    api_secret: SecretString,
}

impl std::fmt::Debug for CredentialsRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CredentialsRequest(<redacted>)")
    }
}

impl Validate for CredentialsRequest {
    fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = Vec::new();
        for (field, value) in [("api_key", &self.api_key), ("api_secret", &self.api_secret)] {
            let length = value.expose_secret().trim().chars().count();
            if length == 0 {
                errors.push(FieldError::new(field, "required", "must not be empty"));
            } else if length > MAX_CREDENTIAL_FIELD || value.expose_secret().chars().any(char::is_control) {
                let message = format!("must be at most {MAX_CREDENTIAL_FIELD} printable characters");
                errors.push(FieldError::new(field, "invalid", message));
            }
        }
        if errors.is_empty() { Ok(()) } else { Err(errors) }
    }
}

/// Connect an API-key provider; the key is checked with a live call before it is stored (encrypted).
#[utoipa::path(post, path = "/api/v1/providers/{id}/credentials", tag = "providers", request_body = CredentialsRequest,
    params(("id" = Uuid, Path, description = "Provider id")), security(("bearer" = [])),
    responses(
        (status = 200, body = ProviderResponse),
        (status = 400, description = "invalid_credentials, not_api_key_provider", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 401, body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, body = ProblemDocument, content_type = "application/problem+json"),
        (status = 422, body = ProblemDocument, content_type = "application/problem+json"),
        (status = 502, description = "provider_error", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 504, description = "provider_timeout", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub(crate) async fn set_credentials(
    State(state): State<AppState>,
    AuthUser { principal, context, .. }: AuthUser,
    PathId(id): PathId,
    ValidJson(body): ValidJson<CredentialsRequest>,
) -> Result<Json<ProviderResponse>, Problem> {
    let credentials = ApiKeyCredentials {
        api_key: SecretString::from(body.api_key.expose_secret().trim()),
        api_secret: SecretString::from(body.api_secret.expose_secret().trim()),
    };
    let provider = state
        .providers
        .set_api_credentials(principal.user_id, ProviderId::from_uuid(id), credentials, &context)
        .await
        .map_err(provider_problem)?;
    Ok(Json(provider.into()))
}

/// `POST /providers/{id}/sync`: an optional range of posting dates.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SyncRequest {
    /// The first day (a date, or a timestamp with an offset: its UTC date); with `end_date`.
    #[schema(schema_with = sync_start_schema)]
    start_date: Option<DateOrTimestamp>,
    /// The last day; with `start_date`.
    #[schema(schema_with = sync_end_schema)]
    end_date: Option<DateOrTimestamp>,
}

fn sync_start_schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
    field_schemas::nullable_date_or_timestamp(
        "The first day (a date, or a timestamp with an offset: its UTC date); with `end_date`.",
    )
}

fn sync_end_schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
    field_schemas::nullable_date_or_timestamp("The last day (a date, or a timestamp with an offset: its UTC date).")
}

impl SyncRequest {
    fn range(&self) -> Option<DateRange> {
        let day = |value: DateOrTimestamp| match value {
            DateOrTimestamp::Date(date) => date,
            DateOrTimestamp::Timestamp(instant) => instant.date(),
        };
        Some(DateRange { start: day(self.start_date?), end: day(self.end_date?) })
    }
}

impl Validate for SyncRequest {
    fn validate(&self) -> Result<(), Vec<FieldError>> {
        match (self.start_date, self.end_date) {
            (Some(_), None) => Err(vec![FieldError::new("end_date", "required", "give both dates or neither")]),
            (None, Some(_)) => Err(vec![FieldError::new("start_date", "required", "give both dates or neither")]),
            _ => Ok(()),
        }
    }
}

/// Counts of created and changed rows.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedUpdated {
    /// Created.
    created: u64,
    /// Changed.
    updated: u64,
}

/// Holdings counts.
#[derive(Debug, Serialize, ToSchema)]
pub struct HoldingCounts {
    /// Created.
    created: u64,
    /// Changed.
    updated: u64,
    /// No longer reported, now closed.
    closed: u64,
}

/// Transaction counts.
#[derive(Debug, Serialize, ToSchema)]
pub struct TransactionCounts {
    /// Created.
    created: u64,
    /// Changed (including pending ones that posted).
    updated: u64,
    /// Reported again exactly as stored.
    unchanged: u64,
}

/// What a sync did.
#[derive(Debug, Serialize, ToSchema)]
pub struct SyncResultResponse {
    /// Accounts.
    accounts: CreatedUpdated,
    /// Holdings.
    holdings: HoldingCounts,
    /// Transactions.
    transactions: TransactionCounts,
    /// Balance snapshots recorded.
    balances_recorded: u64,
    /// Start.
    #[schema(value_type = String, format = DateTime)]
    started_at: Timestamp,
    /// End.
    #[schema(value_type = String, format = DateTime)]
    finished_at: Timestamp,
}

impl From<SyncResult> for SyncResultResponse {
    fn from(result: SyncResult) -> Self {
        let counts = result.counts;
        Self {
            accounts: CreatedUpdated { created: counts.accounts_created, updated: counts.accounts_updated },
            holdings: HoldingCounts {
                created: counts.holdings_created,
                updated: counts.holdings_updated,
                closed: counts.holdings_closed,
            },
            transactions: TransactionCounts {
                created: counts.transactions_created,
                updated: counts.transactions_updated,
                unchanged: counts.transactions_unchanged,
            },
            balances_recorded: counts.balances_recorded,
            started_at: Timestamp(result.started_at),
            finished_at: Timestamp(result.finished_at),
        }
    }
}

fn sync_problem(error: SyncError) -> Problem {
    match error {
        SyncError::NotConnected => provider_problem(ProviderError::NotConnected),
        SyncError::InProgress => Problem::new(StatusCode::CONFLICT, "sync_in_progress", "Sync in progress")
            .with_detail("A sync of this provider is already running; try again when it has finished."),
        SyncError::InvalidRange(reason) => {
            Problem::validation(vec![FieldError::new("start_date", "invalid_range", reason)])
        }
        SyncError::Provider(error) => provider_problem(error),
        SyncError::Store(error) => error.into(),
    }
}

/// Sync the connection's accounts, holdings, transactions and balances now.
#[utoipa::path(post, path = "/api/v1/providers/{id}/sync", tag = "providers", request_body = SyncRequest,
    params(("id" = Uuid, Path, description = "Provider id")), security(("bearer" = [])),
    responses(
        (status = 200, body = SyncResultResponse),
        (status = 401, body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, body = ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "not_connected, sync_in_progress", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 422, body = ProblemDocument, content_type = "application/problem+json"),
        (status = 502, description = "provider_error", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 504, description = "provider_timeout", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub(crate) async fn sync_provider(
    State(state): State<AppState>,
    AuthUser { principal, context, .. }: AuthUser,
    PathId(id): PathId,
    ValidJson(body): ValidJson<SyncRequest>,
) -> Result<Json<SyncResultResponse>, Problem> {
    let result = state
        .sync
        .sync(principal.user_id, ProviderId::from_uuid(id), body.range(), &context)
        .await
        .map_err(sync_problem)?;
    Ok(Json(result.into()))
}

/// What a provider sends back to the callback.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallbackQuery {
    /// The authorization code.
    code: Option<String>,
    /// The flow's state.
    state: Option<String>,
    /// Set instead of `code` when the user declined or the provider failed.
    error: Option<String>,
}

/// Where the provider sends the user back. Needs no bearer token: the single-use `state` identifies the flow.
/// Answers a small HTML page (or `303` to the configured front end on success).
#[utoipa::path(get, path = "/api/v1/oauth/{provider_key}/callback", tag = "providers", params(CallbackQuery,
        ("provider_key" = String, Path, description = "Provider type key")),
    responses(
        (status = 200, description = "connected page", content_type = "text/html"),
        (status = 303, description = "connected: redirect to the configured front end"),
        (status = 400, description = "declined, missing code, unknown, expired or reused state", content_type = "text/html"),
        (status = 502, description = "the provider refused the code exchange", content_type = "text/html"),
    ))]
pub(crate) async fn oauth_callback(
    State(state): State<AppState>,
    Path(provider_key): Path<String>,
    Context(context): Context,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Response {
    // A query string that does not parse is treated as empty: the page then reports the missing state.
    let query: Option<CallbackQuery> = query.and_then(|query| serde_urlencoded::from_str(&query).ok());
    let field = |pick: fn(&CallbackQuery) -> &Option<String>| query.as_ref().and_then(|query| pick(query).as_deref());
    let result = state
        .providers
        .complete_authorization(
            &provider_key,
            field(|query| &query.state),
            field(|query| &query.code),
            field(|query| &query.error),
            &context,
        )
        .await;
    match result {
        Ok(connected) => match &state.settings.oauth_success_redirect {
            Some(target) => {
                let location = format!("{target}?provider_id={}&status=connected", connected.provider.id);
                (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response()
            }
            None => callback_page(
                StatusCode::OK,
                "Connected",
                &format!(
                    "“{}” is connected. You can close this window and return to Dashtam.",
                    connected.provider.alias.as_str()
                ),
            ),
        },
        Err(error) => {
            let (status, message) = match &error {
                CallbackError::Denied(_) => (StatusCode::BAD_REQUEST, "The connection was declined at the provider."),
                CallbackError::MissingCode => {
                    (StatusCode::BAD_REQUEST, "The provider did not send an authorization code back.")
                }
                CallbackError::InvalidState => (
                    StatusCode::BAD_REQUEST,
                    "This connection link is unknown, has expired or was already used. Start connecting again.",
                ),
                CallbackError::Failed(ProviderError::Provider(_)) => {
                    (StatusCode::BAD_GATEWAY, "The provider did not complete the connection. Try again later.")
                }
                CallbackError::Failed(_) => {
                    (StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong on our side. Try again later.")
                }
            };
            if let CallbackError::Failed(failure) = error {
                tracing::warn!(error = %failure, "OAuth callback failed");
            }
            callback_page(status, "Connection failed", message)
        }
    }
}

/// The small page the browser shows after a connect flow. Nothing in it comes from the request unescaped.
fn callback_page(status: StatusCode, title: &str, message: &str) -> Response {
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title} · Dashtam</title>\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <style>body{{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem}}</style>\
         </head><body><h1>{title}</h1><p>{message}</p></body></html>",
        title = escape_html(title),
        message = escape_html(message),
    );
    let mut response = (status, Html(body)).into_response();
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"),
    );
    response
}

fn escape_html(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            other => escaped.push(other),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_is_escaped() {
        assert_eq!(escape_html("<a href=\"x\">'&'</a>"), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
    }
}
