//! The authentication endpoints. Each parses and validates its body, calls the service, and shapes the
//! answer; the rules live in `dashtam_domain::auth`.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use dashtam_domain::auth::{AuthError, ClientInfo, TokenPair};
use dashtam_domain::{Email, UserName};
use secrecy::ExposeSecret;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::dto::{
    ChangePasswordRequest, EmailRequest, LoginRequest, LoginResponse, LogoutRequest, MessageResponse, RefreshRequest,
    RegisterRequest, ResetPasswordRequest, TokenRequest, TokenResponse, UpdateMeRequest, UserResponse,
};
use super::errors::{TokenUse, auth_problem};
use super::extract::AuthUser;
use crate::client_ip::ClientIp;
use crate::extract::ValidJson;
use crate::problem::{Problem, ProblemDocument};
use crate::state::AppState;

/// The longest `User-Agent` kept; longer ones are cut before storing.
const MAX_USER_AGENT: usize = 512;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(verify_email))
        .routes(routes!(resend_verification))
        .routes(routes!(login))
        .routes(routes!(refresh))
        .routes(routes!(logout))
        .routes(routes!(request_password_reset))
        .routes(routes!(reset_password))
        .routes(routes!(me, update_me))
        .routes(routes!(change_password))
}

/// The client's user agent and address (the [`ClientIp`]: the socket peer, or what trusted proxies report).
pub(crate) struct Client(ClientInfo);

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let user_agent = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|value| value.to_str().ok())
            .map(|agent| agent.chars().take(MAX_USER_AGENT).collect());
        let ip_address =
            parts.extensions.get::<ClientIp>().map(|ClientIp(address)| address.to_string()).or_else(|| {
                parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(peer)| peer.ip().to_string())
            });
        Ok(Self(ClientInfo { user_agent, ip_address }))
    }
}

fn credential_problem(error: AuthError) -> Problem {
    auth_problem(error, TokenUse::Credential, "password")
}

fn tokens(pair: TokenPair) -> TokenResponse {
    TokenResponse {
        access_token: pair.access_token,
        refresh_token: pair.refresh_token.expose_secret().to_owned(),
        token_type: "bearer",
        expires_in: pair.expires_in,
    }
}

fn parsed_email(raw: &str) -> Result<Email, Problem> {
    // Already validated by the DTO; this only converts.
    Email::parse(raw).map_err(|_| Problem::validation(Vec::new()))
}

const ACCEPTED_REGISTRATION: &str =
    "If the address can be registered, a verification email is on its way. Check your inbox.";

/// Register an account; a verification email follows. The answer is the same whether or not the address
/// is taken.
#[utoipa::path(post, path = "/api/v1/auth/register", tag = "auth", request_body = RegisterRequest,
    responses(
        (status = 201, body = MessageResponse),
        (status = 422, description = "validation_failed, unknown_field or weak_password", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub(crate) async fn register(
    State(state): State<AppState>,
    ValidJson(body): ValidJson<RegisterRequest>,
) -> Result<(StatusCode, Json<MessageResponse>), Problem> {
    let email = parsed_email(&body.email)?;
    let name = UserName::parse(&body.name).map_err(|_| Problem::validation(Vec::new()))?;
    state
        .auth
        .register(email, body.password, name)
        .await
        .map_err(|error| auth_problem(error, TokenUse::OneTime, "password"))?;
    Ok((StatusCode::CREATED, Json(MessageResponse { message: ACCEPTED_REGISTRATION })))
}

/// Verify an email address with the token from the verification email.
#[utoipa::path(post, path = "/api/v1/auth/verify-email", tag = "auth", request_body = TokenRequest,
    responses(
        (status = 200, body = MessageResponse),
        (status = 400, description = "invalid_token", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub(crate) async fn verify_email(
    State(state): State<AppState>,
    ValidJson(body): ValidJson<TokenRequest>,
) -> Result<Json<MessageResponse>, Problem> {
    state.auth.verify_email(&body.token).await.map_err(|error| auth_problem(error, TokenUse::OneTime, "password"))?;
    Ok(Json(MessageResponse { message: "Your email address is verified. You can log in now." }))
}

/// Send a new verification email. The answer is the same for unknown and already verified addresses.
#[utoipa::path(post, path = "/api/v1/auth/resend-verification", tag = "auth", request_body = EmailRequest,
    responses(
        (status = 202, body = MessageResponse),
        (status = 422, body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub(crate) async fn resend_verification(
    State(state): State<AppState>,
    ValidJson(body): ValidJson<EmailRequest>,
) -> Result<(StatusCode, Json<MessageResponse>), Problem> {
    state.auth.resend_verification(&parsed_email(&body.email)?).await.map_err(credential_problem)?;
    let message = "If the address belongs to an unverified account, a new verification email is on its way.";
    Ok((StatusCode::ACCEPTED, Json(MessageResponse { message })))
}

/// Log in and start a session.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses(
        (status = 200, body = LoginResponse),
        (status = 401, description = "invalid_credentials", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "email_not_verified or account_disabled", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 423, description = "account_locked, with Retry-After", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 422, body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub(crate) async fn login(
    State(state): State<AppState>,
    Client(client): Client,
    ValidJson(body): ValidJson<LoginRequest>,
) -> Result<Json<LoginResponse>, Problem> {
    let email = Email::parse(&body.email).ok();
    let (user, pair) = state.auth.login(email.as_ref(), &body.password, &client).await.map_err(credential_problem)?;
    let tokens = tokens(pair);
    Ok(Json(LoginResponse {
        access_token: tokens.access_token,
        refresh_token: tokens.refresh_token,
        token_type: tokens.token_type,
        expires_in: tokens.expires_in,
        user: UserResponse::from(&user),
    }))
}

/// Exchange a refresh token for a new access token and a new refresh token.
#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses(
        (status = 200, body = TokenResponse),
        (status = 401, description = "invalid_token, token_expired, session_revoked, token_rotated or refresh_token_reused", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub(crate) async fn refresh(
    State(state): State<AppState>,
    Client(client): Client,
    ValidJson(body): ValidJson<RefreshRequest>,
) -> Result<Json<TokenResponse>, Problem> {
    let pair = state.auth.refresh(&body.refresh_token, &client).await.map_err(credential_problem)?;
    Ok(Json(tokens(pair)))
}

/// End the current session at once.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", request_body = LogoutRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, body = MessageResponse),
        (status = 401, body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub(crate) async fn logout(
    State(state): State<AppState>,
    AuthUser { principal, .. }: AuthUser,
    ValidJson(_body): ValidJson<LogoutRequest>,
) -> Result<Json<MessageResponse>, Problem> {
    state.auth.logout(&principal).await.map_err(credential_problem)?;
    Ok(Json(MessageResponse { message: "Logged out." }))
}

/// Email a password-reset link. The answer is the same for unknown addresses.
#[utoipa::path(post, path = "/api/v1/auth/request-password-reset", tag = "auth", request_body = EmailRequest,
    responses(
        (status = 202, body = MessageResponse),
        (status = 422, body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub(crate) async fn request_password_reset(
    State(state): State<AppState>,
    ValidJson(body): ValidJson<EmailRequest>,
) -> Result<(StatusCode, Json<MessageResponse>), Problem> {
    state.auth.request_password_reset(&parsed_email(&body.email)?).await.map_err(credential_problem)?;
    let message = "If the address belongs to an account, a password-reset email is on its way.";
    Ok((StatusCode::ACCEPTED, Json(MessageResponse { message })))
}

/// Set a new password with the token from the reset email; every session ends.
#[utoipa::path(post, path = "/api/v1/auth/reset-password", tag = "auth", request_body = ResetPasswordRequest,
    responses(
        (status = 200, body = MessageResponse),
        (status = 400, description = "invalid_token", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 422, description = "weak_password (the token stays usable)", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub(crate) async fn reset_password(
    State(state): State<AppState>,
    ValidJson(body): ValidJson<ResetPasswordRequest>,
) -> Result<Json<MessageResponse>, Problem> {
    state
        .auth
        .reset_password(&body.token, &body.new_password)
        .await
        .map_err(|error| auth_problem(error, TokenUse::OneTime, "new_password"))?;
    Ok(Json(MessageResponse { message: "Your password has been changed. Log in with the new one." }))
}

/// The caller's account.
#[utoipa::path(get, path = "/api/v1/auth/me", tag = "auth", security(("bearer" = [])),
    responses(
        (status = 200, body = UserResponse),
        (status = 401, body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub(crate) async fn me(AuthUser { user, .. }: AuthUser) -> Json<UserResponse> {
    // The account was read with the session check; no second query.
    Json(UserResponse::from(&user))
}

/// Change the caller's name.
#[utoipa::path(patch, path = "/api/v1/auth/me", tag = "auth", request_body = UpdateMeRequest, security(("bearer" = [])),
    responses(
        (status = 200, body = UserResponse),
        (status = 401, body = ProblemDocument, content_type = "application/problem+json"),
        (status = 422, body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub(crate) async fn update_me(
    State(state): State<AppState>,
    AuthUser { principal, .. }: AuthUser,
    ValidJson(body): ValidJson<UpdateMeRequest>,
) -> Result<Json<UserResponse>, Problem> {
    let name = UserName::parse(&body.name).map_err(|_| Problem::validation(Vec::new()))?;
    let user = state.auth.rename(&principal, &name).await.map_err(credential_problem)?;
    Ok(Json(UserResponse::from(&user)))
}

/// Change the caller's password; every other session ends.
#[utoipa::path(post, path = "/api/v1/auth/change-password", tag = "auth", request_body = ChangePasswordRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, body = MessageResponse),
        (status = 400, description = "wrong_password", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 401, body = ProblemDocument, content_type = "application/problem+json"),
        (status = 422, description = "weak_password or password_reused", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub(crate) async fn change_password(
    State(state): State<AppState>,
    AuthUser { principal, .. }: AuthUser,
    ValidJson(body): ValidJson<ChangePasswordRequest>,
) -> Result<Json<MessageResponse>, Problem> {
    state
        .auth
        .change_password(&principal, &body.current_password, &body.new_password)
        .await
        .map_err(|error| auth_problem(error, TokenUse::Credential, "new_password"))?;
    Ok(Json(MessageResponse { message: "Your password has been changed. Your other sessions have ended." }))
}
