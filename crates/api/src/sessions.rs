//! Sessions (API.md §3) and breach response (§4): list and end sessions; rotate one user's or everyone's
//! tokens; read the installation's token settings.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use dashtam_domain::UserId;
use std::ops::RangeInclusive;

use dashtam_domain::sessions::{
    GLOBAL_ROTATION_REASON_CHARS, GlobalRotationOutcome, MAX_GRACE_SECONDS, SessionError, SessionView,
    USER_ROTATION_REASON_CHARS, UserRotation, reason_length_fits,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::{AdminUser, AuthUser};
use crate::datetime::Timestamp;
use crate::extract::{PathId, ValidJson, Validate};
use crate::problem::{FieldError, Problem, ProblemDocument};
use crate::state::AppState;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_sessions))
        .routes(routes!(revoke_session))
        .routes(routes!(revoke_other_sessions))
        .routes(routes!(revoke_all_sessions))
        .routes(routes!(rotate_user_tokens))
        .routes(routes!(rotate_global_tokens))
        .routes(routes!(security_config))
}

fn session_problem(error: SessionError) -> Problem {
    match error {
        SessionError::NotFound => Problem::not_found(),
        SessionError::CannotRevokeCurrent => {
            Problem::new(StatusCode::BAD_REQUEST, "cannot_revoke_current_session", "Cannot revoke current session")
                .with_detail("End the current session by logging out.")
        }
        SessionError::Store(error) => error.into(),
    }
}

/// A live session.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionResponse {
    /// Session id.
    id: Uuid,
    /// E.g. `Firefox on Linux`.
    device_info: Option<String>,
    /// Browser name.
    browser: Option<String>,
    /// Operating system.
    os: Option<String>,
    /// `desktop`, `mobile`, `tablet`, `bot` or `other`.
    device_type: Option<String>,
    /// The address the session was started from.
    ip_address: Option<String>,
    /// Approximate location, when a location database is configured.
    location: Option<String>,
    /// Login time.
    #[schema(value_type = String, format = DateTime)]
    created_at: Timestamp,
    /// Last use (kept to the minute).
    #[schema(value_type = String, format = DateTime)]
    last_activity_at: Timestamp,
    /// When it ends at the latest.
    #[schema(value_type = String, format = DateTime)]
    expires_at: Timestamp,
    /// Whether this request came through it.
    is_current: bool,
}

impl From<SessionView> for SessionResponse {
    fn from(view: SessionView) -> Self {
        let session = view.session;
        Self {
            id: session.id.as_uuid(),
            device_info: session.device.device_info,
            browser: session.device.browser,
            os: session.device.os,
            device_type: session.device.device_type,
            ip_address: session.ip_address,
            location: session.device.location,
            created_at: Timestamp(session.created_at),
            last_activity_at: Timestamp(session.last_activity_at),
            expires_at: Timestamp(session.expires_at),
            is_current: view.is_current,
        }
    }
}

/// The caller's live sessions.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionsResponse {
    /// Most recently active first.
    sessions: Vec<SessionResponse>,
    /// How many.
    total_count: usize,
}

/// One session ended.
#[derive(Debug, Serialize, ToSchema)]
pub struct RevokedSessionResponse {
    /// What happened.
    message: &'static str,
    /// The session ended.
    revoked_session_id: Uuid,
}

/// Several sessions ended.
#[derive(Debug, Serialize, ToSchema)]
pub struct RevokedCountResponse {
    /// What happened.
    message: &'static str,
    /// How many ended.
    revoked_count: u64,
}

/// The caller's live sessions, most recently active first.
#[utoipa::path(get, path = "/api/v1/auth/sessions", tag = "sessions", security(("bearer" = [])),
    responses(
        (status = 200, body = SessionsResponse),
        (status = 401, body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub(crate) async fn list_sessions(
    State(state): State<AppState>,
    AuthUser { principal, .. }: AuthUser,
) -> Result<Json<SessionsResponse>, Problem> {
    let sessions = state.sessions.list(&principal).await.map_err(session_problem)?;
    let sessions: Vec<SessionResponse> = sessions.into_iter().map(SessionResponse::from).collect();
    Ok(Json(SessionsResponse { total_count: sessions.len(), sessions }))
}

/// End one of the caller's other sessions at once.
#[utoipa::path(delete, path = "/api/v1/auth/sessions/{id}", tag = "sessions", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Session id")),
    responses(
        (status = 200, body = RevokedSessionResponse),
        (status = 400, description = "cannot_revoke_current_session", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 401, body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "no such live session of the caller", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 422, description = "the id is not a UUID", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub(crate) async fn revoke_session(
    State(state): State<AppState>,
    AuthUser { principal, context, .. }: AuthUser,
    PathId(id): PathId,
) -> Result<Json<RevokedSessionResponse>, Problem> {
    let id = dashtam_domain::SessionId::from_uuid(id);
    state.sessions.revoke(&principal, id, &context).await.map_err(session_problem)?;
    Ok(Json(RevokedSessionResponse { message: "The session has ended.", revoked_session_id: id.as_uuid() }))
}

/// End every session of the caller except the current one.
#[utoipa::path(delete, path = "/api/v1/auth/sessions/others/revoke", tag = "sessions", security(("bearer" = [])),
    responses(
        (status = 200, body = RevokedCountResponse),
        (status = 401, body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub(crate) async fn revoke_other_sessions(
    State(state): State<AppState>,
    AuthUser { principal, context, .. }: AuthUser,
) -> Result<Json<RevokedCountResponse>, Problem> {
    let revoked_count = state.sessions.revoke_others(&principal, &context).await.map_err(session_problem)?;
    Ok(Json(RevokedCountResponse { message: "Every other session has ended.", revoked_count }))
}

/// End every session of the caller, the current one included.
#[utoipa::path(delete, path = "/api/v1/auth/sessions/all/revoke", tag = "sessions", security(("bearer" = [])),
    responses(
        (status = 200, body = RevokedCountResponse),
        (status = 401, body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub(crate) async fn revoke_all_sessions(
    State(state): State<AppState>,
    AuthUser { principal, context, .. }: AuthUser,
) -> Result<Json<RevokedCountResponse>, Problem> {
    let revoked_count = state.sessions.revoke_all(&principal, &context).await.map_err(session_problem)?;
    Ok(Json(RevokedCountResponse { message: "Every session has ended, this one included.", revoked_count }))
}

fn reason_error(reason: &str, allowed: &RangeInclusive<usize>) -> Option<FieldError> {
    (!reason_length_fits(reason, allowed)).then(|| {
        let message = format!("must be {}–{} characters", allowed.start(), allowed.end());
        FieldError::new("reason", "invalid_length", message)
    })
}

/// `POST /users/{user_id}/token-rotations`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserRotationRequest {
    /// Why (10–500 characters); recorded in the audit log.
    #[schema(schema_with = crate::field_schemas::user_rotation_reason)]
    reason: String,
}

impl Validate for UserRotationRequest {
    fn validate(&self) -> Result<(), Vec<FieldError>> {
        reason_error(&self.reason, &USER_ROTATION_REASON_CHARS).map_or(Ok(()), |error| Err(vec![error]))
    }
}

/// `POST /admin/token-rotations`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GlobalRotationRequest {
    /// Why (20–1000 characters); recorded in the audit log.
    #[schema(schema_with = crate::field_schemas::global_rotation_reason)]
    reason: String,
    /// How long tokens issued before the rotation keep working (0–3600, default 0).
    #[serde(default, deserialize_with = "whole_seconds")]
    #[schema(minimum = 0, maximum = 3600)]
    grace_period_seconds: u64,
}

/// A non-negative whole number, also when written with a zero fraction (`60.0`): JSON has one number type,
/// and JSON Schema's `integer` (what the document declares) admits both spellings.
fn whole_seconds<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    struct WholeSeconds;
    impl serde::de::Visitor<'_> for WholeSeconds {
        type Value = u64;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a whole number of seconds")
        }
        fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<u64, E> {
            Ok(value)
        }
        fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<u64, E> {
            u64::try_from(value).map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(value), &self))
        }
        fn visit_f64<E: serde::de::Error>(self, value: f64) -> Result<u64, E> {
            // Anything past u64's range (or not whole) is refused; the range check then applies as usual.
            if value.fract() == 0.0 && (0.0..18_446_744_073_709_551_616.0).contains(&value) {
                return Ok(value as u64);
            }
            Err(E::invalid_value(serde::de::Unexpected::Float(value), &self))
        }
    }
    deserializer.deserialize_any(WholeSeconds)
}

impl Validate for GlobalRotationRequest {
    fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errors: Vec<FieldError> =
            reason_error(&self.reason, &GLOBAL_ROTATION_REASON_CHARS).into_iter().collect();
        if self.grace_period_seconds > MAX_GRACE_SECONDS {
            errors.push(FieldError::new(
                "grace_period_seconds",
                "out_of_range",
                format!("must be between 0 and {MAX_GRACE_SECONDS}"),
            ));
        }
        if errors.is_empty() { Ok(()) } else { Err(errors) }
    }
}

/// What a user rotation did.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserRotationResponse {
    /// Always `user`.
    rotation_type: &'static str,
    /// Whose tokens.
    user_id: Uuid,
    /// The token version before.
    old_version: i64,
    /// The token version now.
    new_version: i64,
    /// Sessions ended.
    sessions_revoked: u64,
    /// Why.
    reason: String,
    /// When.
    #[schema(value_type = String, format = DateTime)]
    rotated_at: Timestamp,
}

impl From<UserRotation> for UserRotationResponse {
    fn from(rotation: UserRotation) -> Self {
        Self {
            rotation_type: "user",
            user_id: rotation.user_id.as_uuid(),
            old_version: rotation.old_version,
            new_version: rotation.new_version,
            sessions_revoked: rotation.sessions_revoked,
            reason: rotation.reason,
            rotated_at: Timestamp(rotation.rotated_at),
        }
    }
}

/// What a global rotation did.
#[derive(Debug, Serialize, ToSchema)]
pub struct GlobalRotationResponse {
    /// Always `global`.
    rotation_type: &'static str,
    /// The global version before.
    old_version: i64,
    /// The global version now.
    new_version: i64,
    /// Live sessions retired (at once, or when the grace period ends).
    sessions_revoked: u64,
    /// Users those belong to.
    users_affected: u64,
    /// The grace period.
    grace_period_seconds: u64,
    /// Why.
    reason: String,
    /// The administrator who started it.
    initiated_by: Option<Uuid>,
    /// When.
    #[schema(value_type = String, format = DateTime)]
    rotated_at: Timestamp,
}

impl From<GlobalRotationOutcome> for GlobalRotationResponse {
    fn from(rotation: GlobalRotationOutcome) -> Self {
        Self {
            rotation_type: "global",
            old_version: rotation.old_version,
            new_version: rotation.new_version,
            sessions_revoked: rotation.sessions_revoked,
            users_affected: rotation.users_affected,
            grace_period_seconds: rotation.grace_period.as_secs(),
            reason: rotation.reason,
            initiated_by: rotation.initiated_by.map(|id| id.as_uuid()),
            rotated_at: Timestamp(rotation.rotated_at),
        }
    }
}

/// Rotate one user's tokens: every session ends and every access token fails with `token_rotated`. An
/// administrator may name anyone; a user only themself.
#[utoipa::path(post, path = "/api/v1/users/{user_id}/token-rotations", tag = "admin", request_body = UserRotationRequest,
    params(("user_id" = Uuid, Path, description = "The user")),
    security(("bearer" = [])),
    responses(
        (status = 200, body = UserRotationResponse),
        (status = 401, body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "no such user, or another user named by a non-admin", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 422, body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub(crate) async fn rotate_user_tokens(
    State(state): State<AppState>,
    AuthUser { principal, user, context }: AuthUser,
    PathId(user_id): PathId,
    ValidJson(body): ValidJson<UserRotationRequest>,
) -> Result<Json<UserRotationResponse>, Problem> {
    let rotation = state
        .sessions
        .rotate_user(Some((&principal, user.role)), UserId::from_uuid(user_id), body.reason.trim(), &context)
        .await
        .map_err(session_problem)?;
    Ok(Json(rotation.into()))
}

/// Rotate every user's tokens, after an optional grace period (admin only).
#[utoipa::path(post, path = "/api/v1/admin/token-rotations", tag = "admin", request_body = GlobalRotationRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, body = GlobalRotationResponse),
        (status = 401, body = ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "forbidden: not an administrator", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 422, body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub(crate) async fn rotate_global_tokens(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    ValidJson(body): ValidJson<GlobalRotationRequest>,
) -> Result<Json<GlobalRotationResponse>, Problem> {
    let grace = std::time::Duration::from_secs(body.grace_period_seconds);
    let rotation = state
        .sessions
        .rotate_global(Some(admin.principal.user_id), body.reason.trim(), grace, &admin.context)
        .await
        .map_err(session_problem)?;
    Ok(Json(rotation.into()))
}

/// The installation's token settings.
#[derive(Debug, Serialize, ToSchema)]
pub struct SecurityConfigResponse {
    /// Sessions started under an older global version are refused (once the grace period has passed).
    global_min_token_version: i64,
    /// The last global rotation.
    #[schema(value_type = Option<String>, format = DateTime)]
    last_rotation_at: Option<Timestamp>,
    /// Its reason.
    last_rotation_reason: Option<String>,
    /// Who started it.
    last_rotated_by: Option<Uuid>,
}

/// The installation's token settings (admin only).
#[utoipa::path(get, path = "/api/v1/admin/security-config", tag = "admin", security(("bearer" = [])),
    responses(
        (status = 200, body = SecurityConfigResponse),
        (status = 401, body = ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "forbidden: not an administrator", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub(crate) async fn security_config(
    State(state): State<AppState>,
    _admin: AdminUser,
) -> Result<Json<SecurityConfigResponse>, Problem> {
    let config = state.sessions.security_config().await.map_err(session_problem)?;
    Ok(Json(SecurityConfigResponse {
        global_min_token_version: config.global_min_token_version,
        last_rotation_at: config.last_rotation_at.map(Timestamp),
        last_rotation_reason: config.last_rotation_reason,
        last_rotated_by: config.last_rotated_by.map(|id| id.as_uuid()),
    }))
}
