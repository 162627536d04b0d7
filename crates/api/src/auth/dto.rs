//! Request and response bodies of the authentication endpoints.

use dashtam_domain::password::Password;
use dashtam_domain::{Email, User, UserName};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::datetime::Timestamp;
use crate::extract::Validate;
use crate::field_schemas::{self, MAX_PASSWORD_FIELD, MAX_TOKEN_FIELD};
use crate::problem::FieldError;

fn email_error(field: &str, raw: &str) -> Option<FieldError> {
    Email::parse(raw).err().map(|error| FieldError::new(field, "invalid_email", error.to_string()))
}

fn name_error(field: &str, raw: &str) -> Option<FieldError> {
    UserName::parse(raw).err().map(|error| FieldError::new(field, "invalid_name", error.to_string()))
}

fn bounded(field: &str, value: &str, max: usize) -> Option<FieldError> {
    if value.is_empty() {
        Some(FieldError::new(field, "required", "must not be empty"))
    } else if value.chars().count() > max {
        Some(FieldError::new(field, "too_long", format!("must be at most {max} characters")))
    } else {
        None
    }
}

fn collect(errors: impl IntoIterator<Item = Option<FieldError>>) -> Result<(), Vec<FieldError>> {
    let errors: Vec<FieldError> = errors.into_iter().flatten().collect();
    if errors.is_empty() { Ok(()) } else { Err(errors) }
}

/// `POST /register`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// Login address.
    #[schema(schema_with = field_schemas::email, example = "ada@example.com")]
    pub email: String,
    /// Checked against the password policy (by default 12–128 characters).
    #[schema(schema_with = field_schemas::password)]
    pub password: Password,
    /// Display name, 1–100 characters.
    #[schema(schema_with = field_schemas::display_name)]
    pub name: String,
}

impl Validate for RegisterRequest {
    fn validate(&self) -> Result<(), Vec<FieldError>> {
        collect([
            email_error("email", &self.email),
            bounded("password", self.password.expose(), MAX_PASSWORD_FIELD),
            name_error("name", &self.name),
        ])
    }
}

/// A body carrying one token.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// The token from the email link.
    #[schema(schema_with = field_schemas::token)]
    pub token: String,
}

impl Validate for TokenRequest {
    fn validate(&self) -> Result<(), Vec<FieldError>> {
        collect([bounded("token", &self.token, MAX_TOKEN_FIELD)])
    }
}

/// A body carrying one email address.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailRequest {
    /// The address.
    #[schema(schema_with = field_schemas::email)]
    pub email: String,
}

impl Validate for EmailRequest {
    fn validate(&self) -> Result<(), Vec<FieldError>> {
        collect([email_error("email", &self.email)])
    }
}

/// `POST /login`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// Login address.
    #[schema(schema_with = field_schemas::email)]
    pub email: String,
    /// Password.
    #[schema(schema_with = field_schemas::password)]
    pub password: Password,
}

impl Validate for LoginRequest {
    fn validate(&self) -> Result<(), Vec<FieldError>> {
        collect([email_error("email", &self.email), bounded("password", self.password.expose(), MAX_PASSWORD_FIELD)])
    }
}

/// `POST /refresh`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    /// The refresh token from login or the previous refresh.
    #[schema(schema_with = field_schemas::token)]
    pub refresh_token: String,
}

impl Validate for RefreshRequest {
    fn validate(&self) -> Result<(), Vec<FieldError>> {
        collect([bounded("refresh_token", &self.refresh_token, MAX_TOKEN_FIELD)])
    }
}

/// `POST /logout`: `{}` or `{refresh_token}`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LogoutRequest {
    /// Accepted for clients that send it; the session ends either way.
    #[schema(schema_with = field_schemas::optional_token)]
    pub refresh_token: Option<String>,
}

impl Validate for LogoutRequest {
    fn validate(&self) -> Result<(), Vec<FieldError>> {
        collect([self.refresh_token.as_deref().and_then(|token| bounded("refresh_token", token, MAX_TOKEN_FIELD))])
    }
}

/// `POST /reset-password`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetPasswordRequest {
    /// The token from the reset email.
    #[schema(schema_with = field_schemas::token)]
    pub token: String,
    /// The new password.
    #[schema(schema_with = field_schemas::password)]
    pub new_password: Password,
}

impl Validate for ResetPasswordRequest {
    fn validate(&self) -> Result<(), Vec<FieldError>> {
        collect([
            bounded("token", &self.token, MAX_TOKEN_FIELD),
            bounded("new_password", self.new_password.expose(), MAX_PASSWORD_FIELD),
        ])
    }
}

/// `PATCH /me`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMeRequest {
    /// New display name, 1–100 characters.
    #[schema(schema_with = field_schemas::display_name)]
    pub name: String,
}

impl Validate for UpdateMeRequest {
    fn validate(&self) -> Result<(), Vec<FieldError>> {
        collect([name_error("name", &self.name)])
    }
}

/// `POST /change-password`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    /// The password in use now.
    #[schema(schema_with = field_schemas::password)]
    pub current_password: Password,
    /// The new one.
    #[schema(schema_with = field_schemas::password)]
    pub new_password: Password,
}

impl Validate for ChangePasswordRequest {
    fn validate(&self) -> Result<(), Vec<FieldError>> {
        collect([
            bounded("current_password", self.current_password.expose(), MAX_PASSWORD_FIELD),
            bounded("new_password", self.new_password.expose(), MAX_PASSWORD_FIELD),
        ])
    }
}

/// A sentence for people.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessageResponse {
    /// What happened.
    pub message: &'static str,
}

/// A user, as the API shows it: never a hash or token.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserResponse {
    /// Id.
    pub id: uuid::Uuid,
    /// Login address.
    pub email: String,
    /// Display name.
    pub name: String,
    /// `user` or `admin`.
    #[schema(example = "user")]
    pub role: &'static str,
    /// Whether the address was verified.
    pub email_verified: bool,
    /// Creation time (UTC).
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// Last successful login (UTC).
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_login_at: Option<Timestamp>,
}

impl From<&User> for UserResponse {
    fn from(user: &User) -> Self {
        Self {
            id: user.id.as_uuid(),
            email: user.email.as_str().to_owned(),
            name: user.name.as_str().to_owned(),
            role: user.role.as_str(),
            email_verified: user.email_verified_at.is_some(),
            created_at: Timestamp(user.created_at),
            last_login_at: user.last_login_at.map(Timestamp),
        }
    }
}

/// New tokens.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    /// The access token (JWT) for `Authorization: Bearer`.
    pub access_token: String,
    /// The refresh token; it changes on every refresh.
    pub refresh_token: String,
    /// Always `bearer`.
    #[schema(example = "bearer")]
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
}

/// `POST /login` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct LoginResponse {
    /// The access token (JWT).
    pub access_token: String,
    /// The refresh token.
    pub refresh_token: String,
    /// Always `bearer`.
    #[schema(example = "bearer")]
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// The account.
    pub user: UserResponse,
}
