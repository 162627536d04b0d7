//! The scaled rate limiter: buckets in Redis, shared by every instance. Each check is one `EVALSHA` of
//! `token_bucket.lua`, which reads the bucket, decides by Redis's own clock and writes it back atomically,
//! so N instances enforce one limit exactly.
//!
//! A dead Redis must not hold requests: every check is bounded by a short timeout, and after a failure the
//! limiter answers "unavailable" at once for [`RETRY_AFTER_FAILURE`] instead of making each request wait
//! for its own timeout. What to do then (let requests through or refuse them) is the caller's policy.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use dashtam_domain::ports::BoxError;
use dashtam_domain::rate_limit::{BucketPolicy, RateLimitDecision, RateLimiter, Verdict};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::OnceCell;

/// How long checks fail fast after Redis failed one, before Redis is tried again.
pub const RETRY_AFTER_FAILURE: Duration = Duration::from_millis(500);

/// The Lua script of one check.
const TOKEN_BUCKET_LUA: &str = include_str!("token_bucket.lua");

/// See the module documentation.
pub struct RedisRateLimiter {
    client: redis::Client,
    timeout: Duration,
    key_prefix: String,
    script: redis::Script,
    connection: OnceCell<ConnectionManager>,
    /// Milliseconds since `started` before which Redis is not asked (0: ask).
    unavailable_until: AtomicU64,
    started: Instant,
}

impl std::fmt::Debug for RedisRateLimiter {
    // The client holds the URL, which may carry a password; it is left out.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisRateLimiter")
            .field("timeout", &self.timeout)
            .field("key_prefix", &self.key_prefix)
            .finish_non_exhaustive()
    }
}

/// The Redis URL could not be parsed.
#[derive(Debug, thiserror::Error)]
#[error("Redis URL is invalid: {0}")]
pub struct RedisRateLimiterError(#[source] redis::RedisError);

impl RedisRateLimiter {
    /// Prepares a client for `url`; no connection is made until the first check. Bucket keys are
    /// `<key_prefix>:rl:{<key>}`: the braces make each bucket a Redis Cluster hash tag, so the script's one
    /// key always lives on one node.
    pub fn new(url: &str, timeout: Duration, key_prefix: &str) -> Result<Self, RedisRateLimiterError> {
        let client = redis::Client::open(url).map_err(RedisRateLimiterError)?;
        Ok(Self {
            client,
            timeout,
            key_prefix: key_prefix.to_owned(),
            script: redis::Script::new(TOKEN_BUCKET_LUA),
            connection: OnceCell::new(),
            unavailable_until: AtomicU64::new(0),
            started: Instant::now(),
        })
    }

    /// The Redis key of a bucket.
    pub fn redis_key(&self, key: &str) -> String {
        format!("{}:rl:{{{key}}}", self.key_prefix)
    }

    async fn connection(&self) -> Result<ConnectionManager, BoxError> {
        let connection = self
            .connection
            .get_or_try_init(|| async {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(self.timeout)
                    .set_response_timeout(self.timeout)
                    .set_number_of_retries(1);
                ConnectionManager::new_with_config(self.client.clone(), config).await
            })
            .await?;
        Ok(connection.clone())
    }

    fn elapsed_millis(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    async fn run_script(&self, key: &str, policy: &BucketPolicy) -> Result<RateLimitDecision, BoxError> {
        let mut connection = self.connection().await?;
        let reply: Vec<i64> = self
            .script
            .key(self.redis_key(key))
            .arg(policy.interval_micros())
            .arg(policy.burst())
            .invoke_async(&mut connection)
            .await?;
        let [admitted, _remaining, until_full, retry_in] = reply[..] else {
            return Err(format!("unexpected script reply {reply:?}").into());
        };
        let verdict = if admitted == 1 { Verdict::Admitted } else { Verdict::Denied };
        let micros = |value: i64| u64::try_from(value).unwrap_or(0);
        Ok(RateLimitDecision::from_bucket(policy, verdict, micros(until_full), micros(retry_in), 1_000))
    }
}

#[async_trait]
impl RateLimiter for RedisRateLimiter {
    fn backend(&self) -> &'static str {
        "redis"
    }

    async fn check(&self, key: &str, policy: &BucketPolicy) -> Result<RateLimitDecision, BoxError> {
        if self.elapsed_millis() < self.unavailable_until.load(Ordering::Relaxed) {
            return Err("Redis failed a moment ago; not asked again yet".into());
        }
        let outcome = match tokio::time::timeout(self.timeout, self.run_script(key, policy)).await {
            Ok(outcome) => outcome,
            Err(_) => Err("timed out waiting for Redis".into()),
        };
        if outcome.is_err() {
            let pause = u64::try_from(RETRY_AFTER_FAILURE.as_millis()).unwrap_or(u64::MAX);
            let retry_at = self.elapsed_millis().saturating_add(pause);
            self.unavailable_until.store(retry_at, Ordering::Relaxed);
        }
        outcome
    }
}
