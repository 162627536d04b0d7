//! Adapters from Dashtam's ports to the outside world.

pub mod shared_state;

pub use shared_state::{MemorySharedState, RedisSharedState, RedisSharedStateError};
