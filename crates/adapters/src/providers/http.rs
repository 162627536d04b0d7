//! The outbound HTTP client every provider connector uses: one reqwest client per connector with connect and
//! read timeouts, no redirects, a hard total deadline per call, size-capped bodies, `Retry-After` honoured
//! within the deadline, and one mapping from HTTP failures to [`ConnectorError`].

use std::error::Error as _;
use std::fmt;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use dashtam_domain::connector::ConnectorError;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{RequestBuilder, StatusCode};
use time::OffsetDateTime;
use tokio::time::Instant;

/// The largest token-endpoint answer we read: real ones are a few hundred bytes.
pub(crate) const TOKEN_BODY_LIMIT: usize = 64 * 1024;
/// The largest data answer we read: 3000 Schwab transactions are about 5 MiB.
pub(crate) const DATA_BODY_LIMIT: usize = 16 * 1024 * 1024;
/// How many times one call is retried after a `429` whose `Retry-After` fits within the deadline.
const MAX_RATE_LIMIT_RETRIES: u32 = 2;

/// Timeouts for every outbound provider call (`DASHTAM_HTTP__*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpTimeouts {
    /// How long establishing a connection (TCP and TLS) may take.
    pub connect: Duration,
    /// How long the provider may stay silent while we wait for the next bytes of its answer.
    pub read: Duration,
    /// The hard deadline for a whole call: sending, waiting, any `Retry-After` pauses and reading the body.
    pub total: Duration,
}

impl Default for HttpTimeouts {
    /// The documented defaults: 10 s to connect, 30 s of silence, 30 s in all.
    fn default() -> Self {
        Self { connect: Duration::from_secs(10), read: Duration::from_secs(30), total: Duration::from_secs(30) }
    }
}

/// A successful (or, for token calls, any non-429) answer, read in full.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

/// One connector's HTTP client.
#[derive(Clone)]
pub(crate) struct ProviderHttp {
    client: reqwest::Client,
    total: Duration,
}

impl fmt::Debug for ProviderHttp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderHttp").field("total", &self.total).finish_non_exhaustive()
    }
}

/// Why a connector could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ProviderSetupError {
    /// The HTTP client could not be built (TLS set-up, say).
    #[error("could not build the provider HTTP client: {0}")]
    Client(String),
    /// The configured base URL is not an absolute http(s) URL.
    #[error("the provider base URL is invalid: {0}")]
    BaseUrl(String),
}

impl ProviderHttp {
    /// Builds the client: connect and read timeouts, no redirects (a token call must never follow one, and no
    /// data call needs one), our user agent, rustls (reqwest's default aws-lc provider) with the platform's roots.
    pub(crate) fn new(timeouts: &HttpTimeouts) -> Result<Self, ProviderSetupError> {
        let client = reqwest::Client::builder()
            .connect_timeout(timeouts.connect)
            .read_timeout(timeouts.read)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("dashtam/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| ProviderSetupError::Client(describe_reqwest_error(&error)))?;
        Ok(Self { client, total: timeouts.total })
    }

    /// The underlying client, to start building a request.
    pub(crate) fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Sends a data call and answers its body when the status is 2xx; other statuses become
    /// [`ConnectorError`]s. `build` is called once per attempt, so a `429` can be retried.
    pub(crate) async fn fetch(
        &self,
        build: impl Fn() -> RequestBuilder,
        limit: usize,
    ) -> Result<Bytes, ConnectorError> {
        let answer = self.send(build, limit).await?;
        check_status(answer.status)?;
        Ok(answer.body)
    }

    /// Sends a call under the total deadline, honouring `429 Retry-After` while the wait fits, and answers
    /// whatever else the provider said (any status) with its body read in full.
    pub(crate) async fn send(
        &self,
        build: impl Fn() -> RequestBuilder,
        limit: usize,
    ) -> Result<Answer, ConnectorError> {
        let deadline = Instant::now() + self.total;
        let mut retries = 0;
        loop {
            let answer = match tokio::time::timeout_at(deadline, attempt(build(), limit)).await {
                Ok(answer) => answer?,
                Err(_elapsed) => return Err(ConnectorError::Timeout),
            };
            if answer.status != StatusCode::TOO_MANY_REQUESTS {
                return Ok(answer);
            }
            let retry_after = retry_after(&answer.headers, OffsetDateTime::now_utc());
            let fits = retry_after.is_some_and(|wait| Instant::now() + wait < deadline);
            match retry_after {
                Some(wait) if fits && retries < MAX_RATE_LIMIT_RETRIES => {
                    retries += 1;
                    tracing::debug!(wait_ms = wait.as_millis() as u64, retries, "provider rate limited us; waiting");
                    tokio::time::sleep(wait).await;
                }
                _ => return Err(ConnectorError::RateLimited { retry_after }),
            }
        }
    }
}

/// One request and its body, read chunk by chunk so an oversized answer is refused without being held.
async fn attempt(request: RequestBuilder, limit: usize) -> Result<Answer, ConnectorError> {
    let mut response = request.send().await.map_err(map_reqwest_error)?;
    let status = response.status();
    let headers = std::mem::take(response.headers_mut());
    if response.content_length().is_some_and(|length| length > limit as u64) {
        return Err(too_large());
    }
    let mut body = BytesMut::new();
    while let Some(chunk) = response.chunk().await.map_err(map_reqwest_error)? {
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Answer { status, headers, body: body.freeze() })
}

fn too_large() -> ConnectorError {
    ConnectorError::InvalidResponse("response body too large".to_owned())
}

/// The shared mapping of a non-2xx status.
pub(crate) fn check_status(status: StatusCode) -> Result<(), ConnectorError> {
    match status.as_u16() {
        200..=299 => Ok(()),
        401 | 403 => Err(ConnectorError::Unauthorized),
        429 => Err(ConnectorError::RateLimited { retry_after: None }),
        status @ 500..=599 => Err(ConnectorError::Unavailable { status }),
        status => Err(ConnectorError::Rejected { status }),
    }
}

/// `Retry-After` as a wait: delay-seconds or an HTTP date (a date in the past means now).
pub(crate) fn retry_after(headers: &HeaderMap, now: OffsetDateTime) -> Option<Duration> {
    let text = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = parse_http_date(text)?;
    Some(Duration::try_from(at - now).unwrap_or(Duration::ZERO))
}

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the only HTTP date form senders may use (RFC 9110).
fn parse_http_date(text: &str) -> Option<OffsetDateTime> {
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    time::PrimitiveDateTime::parse(text, format).ok().map(time::PrimitiveDateTime::assume_utc)
}

/// reqwest's failures in our terms. The text never carries the URL (a query could one day hold something
/// private) nor anything of the request.
pub(crate) fn map_reqwest_error(error: reqwest::Error) -> ConnectorError {
    if error.is_timeout() || is_chain_timeout(&error) {
        ConnectorError::Timeout
    } else {
        ConnectorError::Network(describe_reqwest_error(&error))
    }
}

/// Whether any cause in the chain is an I/O timeout (a read timeout may surface wrapped in a body error).
fn is_chain_timeout(error: &reqwest::Error) -> bool {
    let mut source = error.source();
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::TimedOut
        {
            return true;
        }
        source = cause.source();
    }
    false
}

/// The error and its causes, without the URL.
fn describe_reqwest_error(error: &reqwest::Error) -> String {
    let mut text = String::from(if error.is_connect() { "connection failed" } else { "request failed" });
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_str(value).expect("header"));
        headers
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = time::macros::datetime!(2025-03-28 21:10:40 UTC);
        assert_eq!(retry_after(&headers("3"), now), Some(Duration::from_secs(3)));
        assert_eq!(retry_after(&headers("Fri, 28 Mar 2025 21:10:42 GMT"), now), Some(Duration::from_secs(2)));
        assert_eq!(retry_after(&headers("Fri, 28 Mar 2025 21:10:00 GMT"), now), Some(Duration::ZERO));
        assert_eq!(retry_after(&headers("soon"), now), None);
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
    }

    #[test]
    fn statuses_map_to_connector_errors() {
        assert!(check_status(StatusCode::OK).is_ok());
        assert!(matches!(check_status(StatusCode::UNAUTHORIZED), Err(ConnectorError::Unauthorized)));
        assert!(matches!(check_status(StatusCode::FORBIDDEN), Err(ConnectorError::Unauthorized)));
        assert!(matches!(check_status(StatusCode::BAD_GATEWAY), Err(ConnectorError::Unavailable { status: 502 })));
        assert!(matches!(check_status(StatusCode::NOT_FOUND), Err(ConnectorError::Rejected { status: 404 })));
    }
}
