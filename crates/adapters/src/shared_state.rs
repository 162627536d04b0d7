//! The short-lived state shared between instances: in-process for one instance, Redis for many.

use std::time::Duration;

use async_trait::async_trait;
use dashtam_domain::ports::{BoxError, SharedState};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::Mutex;

/// The embedded backend: nothing to reach, so it is always healthy.
#[derive(Debug, Default)]
pub struct MemorySharedState;

#[async_trait]
impl SharedState for MemorySharedState {
    fn kind(&self) -> &'static str {
        "memory"
    }

    async fn ping(&self) -> Result<(), BoxError> {
        Ok(())
    }
}

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
}
