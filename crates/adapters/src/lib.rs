//! Adapters from Dashtam's ports to the outside world.

pub mod access_tokens;
pub mod audit_seal;
pub mod device;
pub mod encryption;
pub mod keyring;
pub mod mail;
pub mod opaque_tokens;
pub mod password_hashing;
pub mod providers;
pub mod rate_limit;
pub mod shared_state;

pub use shared_state::{MemorySharedState, RedisSharedState, RedisSharedStateError};
