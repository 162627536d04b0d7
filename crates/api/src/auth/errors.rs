//! How authentication failures become problems.

use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use dashtam_domain::auth::AuthError;

use crate::problem::{FieldError, Problem};

/// Where a token-shaped failure happened: one-time tokens are `400`, bearer and refresh tokens `401`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenUse {
    /// An access or refresh token.
    Credential,
    /// A verification or reset token from an email.
    OneTime,
}

/// `401` with `WWW-Authenticate: Bearer`, as every authentication failure carries.
pub(crate) fn unauthorized(code: &'static str, title: &'static str, detail: &'static str) -> Problem {
    Problem::new(StatusCode::UNAUTHORIZED, code, title)
        .with_detail(detail)
        .with_header(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))
}

/// The problem for an authentication failure; `password_field` names the field a weak password came in.
pub(crate) fn auth_problem(error: AuthError, token_use: TokenUse, password_field: &str) -> Problem {
    match error {
        AuthError::InvalidCredentials => {
            Problem::new(StatusCode::UNAUTHORIZED, "invalid_credentials", "Invalid credentials")
                .with_detail("The email or password is wrong.")
        }
        AuthError::AccountLocked { retry_after_seconds: seconds, .. } => {
            let retry_after = HeaderValue::from_str(&seconds.to_string()).unwrap_or(HeaderValue::from_static("1"));
            Problem::new(StatusCode::LOCKED, "account_locked", "Account locked")
                .with_detail("Too many failed logins. Try again later or reset your password.")
                .with_header(HeaderName::from_static("retry-after"), retry_after)
                .with_extension("retry_after", serde_json::json!(seconds))
        }
        AuthError::EmailNotVerified => Problem::new(StatusCode::FORBIDDEN, "email_not_verified", "Email not verified")
            .with_detail("Verify your email address before logging in."),
        AuthError::AccountDisabled => Problem::new(StatusCode::FORBIDDEN, "account_disabled", "Account disabled")
            .with_detail("This account has been disabled."),
        AuthError::InvalidToken => match token_use {
            TokenUse::OneTime => Problem::new(StatusCode::BAD_REQUEST, "invalid_token", "Invalid token")
                .with_detail("The link is invalid, expired, already used, or superseded by a newer one."),
            TokenUse::Credential => unauthorized("invalid_token", "Invalid token", "The token is not valid."),
        },
        AuthError::TokenExpired => unauthorized("token_expired", "Token expired", "The token has expired."),
        AuthError::SessionRevoked => unauthorized("session_revoked", "Session revoked", "This session has ended."),
        AuthError::TokenRotated => unauthorized("token_rotated", "Token rotated", "Tokens were rotated; log in again."),
        AuthError::RefreshTokenReused => unauthorized(
            "refresh_token_reused",
            "Refresh token reused",
            "An already-used refresh token was presented; the session has been ended for safety.",
        ),
        AuthError::WeakPassword(problems) => {
            Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "weak_password", "Weak password")
                .with_detail("The password does not meet the password policy; see errors.")
                .with_errors(
                    problems
                        .iter()
                        .map(|problem| FieldError::new(password_field, problem.code(), problem.message()))
                        .collect(),
                )
        }
        AuthError::PasswordReused => {
            Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "password_reused", "Password reused")
                .with_detail("The new password must differ from the current one.")
                .with_errors(vec![FieldError::new(
                    password_field,
                    "password_reused",
                    "must differ from the current password",
                )])
        }
        AuthError::WrongPassword => Problem::new(StatusCode::BAD_REQUEST, "wrong_password", "Wrong password")
            .with_detail("The current password is wrong."),
        // Operator-command outcomes; the API's own flows never produce them.
        AuthError::NoSuchUser => Problem::not_found(),
        AuthError::EmailTaken => Problem::new(StatusCode::CONFLICT, "email_taken", "Email taken"),
        AuthError::Store(error) => error.into(),
        AuthError::Internal(message) => {
            tracing::error!(error = %message, "authentication failed internally");
            Problem::internal()
        }
    }
}
