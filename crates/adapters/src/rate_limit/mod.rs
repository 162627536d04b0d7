//! The two backends of the [`RateLimiter`](dashtam_domain::rate_limit::RateLimiter) port: in-process for
//! one instance, Redis for many.

mod memory;
mod redis;

pub use memory::{DEFAULT_MAX_KEYS, MemoryRateLimiter};
pub use redis::{RETRY_AFTER_FAILURE, RedisRateLimiter, RedisRateLimiterError};
