//! The short-lived state shared between instances: in-process for one instance, Redis for many.

use std::collections::HashMap;
use std::sync::PoisonError;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use dashtam_domain::ports::{BoxError, LockToken, SharedState};
use rand::RngCore;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::Mutex;

/// How often a caller waiting for a lock looks again.
const LOCK_POLL_INTERVAL: Duration = Duration::from_millis(20);
/// The most ephemeral values the in-process backend holds; beyond it, expired values are swept first and a
/// still-full map refuses new ones (a flood of connect flows cannot exhaust memory).
const MAX_EPHEMERAL_VALUES: usize = 100_000;

/// The embedded backend: ephemeral values and locks in this process's memory.
#[derive(Debug, Default)]
pub struct MemorySharedState {
    values: std::sync::Mutex<HashMap<String, (Vec<u8>, Instant)>>,
    locks: std::sync::Mutex<HashMap<String, (String, Instant)>>,
}

impl MemorySharedState {
    fn try_lock(&self, name: &str, ttl: Duration) -> Option<LockToken> {
        let now = Instant::now();
        let mut locks = self.locks.lock().unwrap_or_else(PoisonError::into_inner);
        if locks.get(name).is_some_and(|(_, expires)| *expires > now) {
            return None;
        }
        let token = lock_token();
        locks.insert(name.to_owned(), (token.clone(), now + ttl));
        Some(LockToken(token))
    }
}

#[async_trait]
impl SharedState for MemorySharedState {
    fn kind(&self) -> &'static str {
        "memory"
    }

    async fn ping(&self) -> Result<(), BoxError> {
        Ok(())
    }

    async fn put_ephemeral(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, BoxError> {
        let now = Instant::now();
        let mut values = self.values.lock().unwrap_or_else(PoisonError::into_inner);
        if values.len() >= MAX_EPHEMERAL_VALUES {
            values.retain(|_, (_, expires)| *expires > now);
            if values.len() >= MAX_EPHEMERAL_VALUES {
                return Err("too many pending ephemeral values".into());
            }
        }
        if values.get(key).is_some_and(|(_, expires)| *expires > now) {
            return Ok(false);
        }
        values.insert(key.to_owned(), (value.to_vec(), now + ttl));
        Ok(true)
    }

    async fn take_ephemeral(&self, key: &str) -> Result<Option<Vec<u8>>, BoxError> {
        let mut values = self.values.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(values.remove(key).filter(|(_, expires)| *expires > Instant::now()).map(|(value, _)| value))
    }

    async fn lock(&self, name: &str, ttl: Duration, wait: Duration) -> Result<Option<LockToken>, BoxError> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(token) = self.try_lock(name, ttl) {
                return Ok(Some(token));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            tokio::time::sleep(LOCK_POLL_INTERVAL).await;
        }
    }

    async fn unlock(&self, name: &str, token: &LockToken) -> Result<(), BoxError> {
        let mut locks = self.locks.lock().unwrap_or_else(PoisonError::into_inner);
        if locks.get(name).is_some_and(|(held, _)| *held == token.0) {
            locks.remove(name);
        }
        Ok(())
    }
}

/// A random 128-bit lock token, hex-encoded.
fn lock_token() -> String {
    let mut bytes = [0_u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Deletes a lock only while it still holds the caller's token, atomically.
const UNLOCK_SCRIPT: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
";

/// Every key this server writes starts with this, so a shared Redis stays tidy.
const KEY_PREFIX: &str = "dashtam:";

/// The scaled backend. Connects lazily and reconnects on its own, so an instance starts (and reports
/// itself not ready) while Redis is down, and recovers without a restart when Redis returns.
pub struct RedisSharedState {
    client: redis::Client,
    timeout: Duration,
    connection: Mutex<Option<ConnectionManager>>,
}

impl std::fmt::Debug for RedisSharedState {
    // The client holds the URL, which may carry a password; it is left out.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSharedState").field("timeout", &self.timeout).finish_non_exhaustive()
    }
}

/// The Redis URL could not be parsed.
#[derive(Debug, thiserror::Error)]
#[error("Redis URL is invalid: {0}")]
pub struct RedisSharedStateError(#[source] redis::RedisError);

impl RedisSharedState {
    /// Prepares a client for `url`; no connection is made until first use. `timeout` bounds every
    /// connection attempt and every command, so a dead Redis never holds a request for long.
    pub fn new(url: &str, timeout: Duration) -> Result<Self, RedisSharedStateError> {
        let client = redis::Client::open(url).map_err(RedisSharedStateError)?;
        Ok(Self { client, timeout, connection: Mutex::new(None) })
    }

    /// A live connection manager, connecting first if needed.
    async fn connection(&self) -> Result<ConnectionManager, BoxError> {
        let mut slot = self.connection.lock().await;
        if let Some(connection) = slot.as_ref() {
            return Ok(connection.clone());
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(self.timeout)
            .set_response_timeout(self.timeout)
            .set_number_of_retries(1);
        let connection =
            tokio::time::timeout(self.timeout, ConnectionManager::new_with_config(self.client.clone(), config))
                .await
                .map_err(|_| "timed out connecting to Redis")??;
        *slot = Some(connection.clone());
        Ok(connection)
    }
}

#[async_trait]
impl SharedState for RedisSharedState {
    fn kind(&self) -> &'static str {
        "redis"
    }

    async fn ping(&self) -> Result<(), BoxError> {
        let mut connection = self.connection().await?;
        let reply: String = tokio::time::timeout(self.timeout, redis::cmd("PING").query_async(&mut connection))
            .await
            .map_err(|_| "timed out waiting for Redis")??;
        if reply == "PONG" { Ok(()) } else { Err(format!("unexpected PING reply {reply:?}").into()) }
    }

    async fn put_ephemeral(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, BoxError> {
        let mut command = redis::cmd("SET");
        command.arg(format!("{KEY_PREFIX}{key}")).arg(value).arg("NX").arg("PX").arg(millis(ttl));
        let reply: Option<String> = self.run(&command).await?;
        Ok(reply.is_some())
    }

    async fn take_ephemeral(&self, key: &str) -> Result<Option<Vec<u8>>, BoxError> {
        let mut command = redis::cmd("GETDEL");
        command.arg(format!("{KEY_PREFIX}{key}"));
        self.run(&command).await
    }

    async fn lock(&self, name: &str, ttl: Duration, wait: Duration) -> Result<Option<LockToken>, BoxError> {
        let deadline = Instant::now() + wait;
        let token = lock_token();
        let mut command = redis::cmd("SET");
        command.arg(format!("{KEY_PREFIX}lock:{name}")).arg(&token).arg("NX").arg("PX").arg(millis(ttl));
        loop {
            let reply: Option<String> = self.run(&command).await?;
            if reply.is_some() {
                return Ok(Some(LockToken(token)));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            tokio::time::sleep(LOCK_POLL_INTERVAL).await;
        }
    }

    async fn unlock(&self, name: &str, token: &LockToken) -> Result<(), BoxError> {
        let mut connection = self.connection().await?;
        let script = redis::Script::new(UNLOCK_SCRIPT);
        let mut invocation = script.key(format!("{KEY_PREFIX}lock:{name}"));
        invocation.arg(&token.0);
        let _: i64 = tokio::time::timeout(self.timeout, invocation.invoke_async(&mut connection))
            .await
            .map_err(|_| "timed out waiting for Redis")??;
        Ok(())
    }
}

impl RedisSharedState {
    /// Runs one command within the timeout.
    async fn run<T: redis::FromRedisValue>(&self, command: &redis::Cmd) -> Result<T, BoxError> {
        let mut connection = self.connection().await?;
        let reply = tokio::time::timeout(self.timeout, command.query_async(&mut connection))
            .await
            .map_err(|_| "timed out waiting for Redis")??;
        Ok(reply)
    }
}

/// A duration in whole milliseconds, at least 1 (Redis refuses `PX 0`).
fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX).max(1)
}
