//! `/api/v1/auth`: the eleven authentication endpoints (API.md §2) and the `AuthUser` extractor.

mod dto;
mod errors;
mod extract;
mod handlers;

pub use extract::{AdminUser, AuthUser};
pub(crate) use extract::{VerifiedAccessGrant, bearer_token_of};
pub(crate) use handlers::routes;
