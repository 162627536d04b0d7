//! Provider connections: the catalog of provider types, a user's connections with their encrypted
//! credentials, the OAuth 2.0 connect flow and token refresh.

pub mod catalog;
pub mod key_rotation;
pub mod model;
pub mod service;
pub mod store;

pub use catalog::{AuthType, ProviderCatalog, ProviderKey, ProviderTypeInfo};
pub use key_rotation::{KEY_ROTATION_BATCH, KeyRotationReport};
pub use model::{
    Alias, AliasError, CredentialKind, NewProvider, Provider, ProviderId, ProviderListQuery, ProviderPage,
    ProviderSort, ProviderStatus, StoredCredentials,
};
pub use service::{
    AuthorizationStart, AuthorizationStatus, CallbackError, ProviderAccess, ProviderDeps, ProviderError,
    ProviderService, RefreshTokenOutcome, connector_reason,
};
