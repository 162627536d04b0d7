//! The `AuthUser` extractor: a handler that takes it only runs for a caller with a valid access token whose
//! session is live, account enabled and token version current.

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use dashtam_domain::User;
use dashtam_domain::audit::{AuditAction, AuditEvent, AuditOutcome};
use dashtam_domain::auth::Principal;
use dashtam_domain::tokens::AccessGrant;
use dashtam_domain::{RequestContext, Role};

use super::errors::{TokenUse, auth_problem, unauthorized};
use crate::context::request_context;
use crate::problem::Problem;
use crate::state::AppState;

/// The authenticated caller, and their account as read while checking the token.
#[derive(Debug, Clone)]
pub struct AuthUser {
    /// Who is calling, through which session.
    pub principal: Principal,
    /// The account.
    pub user: User,
    /// The request's context, signed in as this caller.
    pub context: RequestContext,
}

impl<S> FromRequestParts<S> for AuthUser
where
    S: Send + Sync,
    AppState: FromRef<S>,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = AppState::from_ref(state);
        let token = bearer_token(parts).ok_or_else(|| {
            unauthorized("not_authenticated", "Not authenticated", "Send an access token as Authorization: Bearer.")
        })?;
        // The rate limiter may have checked this very header's signature already.
        let authenticated = match parts.extensions.get::<VerifiedAccessGrant>() {
            Some(VerifiedAccessGrant(grant)) => state.auth.authenticate_grant(*grant).await,
            None => state.auth.authenticate(token).await,
        };
        let (principal, user) = authenticated.map_err(|error| auth_problem(error, TokenUse::Credential, "password"))?;
        let context = request_context(parts).signed_in(principal.user_id, principal.session_id);
        Ok(Self { principal, user, context })
    }
}

/// What the `Authorization: Bearer` token of this request grants, its signature and expiry already checked
/// (by the rate limiter, which needs the user first). Only server code puts it in a request's extensions.
#[derive(Debug, Clone, Copy)]
pub(crate) struct VerifiedAccessGrant(pub(crate) AccessGrant);

/// The token of an `Authorization: Bearer <token>` header (scheme case-insensitive, per RFC 7235).
fn bearer_token(parts: &Parts) -> Option<&str> {
    bearer_token_of(&parts.headers)
}

/// [`bearer_token`] of a header map (the rate limiter reads it before any extractor runs).
pub(crate) fn bearer_token_of(headers: &axum::http::HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// An authenticated administrator. Anyone else is refused with `403 forbidden`, and the refusal is audited.
#[derive(Debug, Clone)]
pub struct AdminUser(pub AuthUser);

impl<S> FromRequestParts<S> for AdminUser
where
    S: Send + Sync,
    AppState: FromRef<S>,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let caller = AuthUser::from_request_parts(parts, state).await?;
        // The role as stored now, not as the token was issued: a demotion takes effect at once.
        if caller.user.role == Role::Admin {
            return Ok(Self(caller));
        }
        let state = AppState::from_ref(state);
        let event = AuditEvent::new(AuditAction::AccessDenied, AuditOutcome::Denied).detail("required_role", "admin");
        state.audit.record(&caller.context, event).await?;
        Err(Problem::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden")
            .with_detail("This action needs the administrator role."))
    }
}
