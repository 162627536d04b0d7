//! The outermost middleware: gives every request an id, a log span (an exported trace span when OpenTelemetry
//! is on, see [`crate::telemetry`]) and a finished-request log line, and makes every error response a problem
//! document carrying that id.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use crate::problem::Problem;
use crate::telemetry;

/// The request id header, echoed when the caller sent a well-formed one.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The longest caller-supplied request id that is echoed.
const MAX_REQUEST_ID_LEN: usize = 64;

/// The id of the request being served; in the request's extensions for handlers and audit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(String);

impl RequestId {
    /// The caller's id when it is 1–64 characters of `[A-Za-z0-9._-]`, else a fresh UUIDv7. Anything else
    /// could inject text into logs or headers, so it is replaced rather than cleaned.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        headers
            .get(REQUEST_ID_HEADER)
            .and_then(|value| value.to_str().ok())
            .filter(|candidate| is_acceptable_request_id(candidate))
            .map_or_else(Self::generate, |candidate| Self(candidate.to_owned()))
    }

    /// A fresh id.
    pub fn generate() -> Self {
        Self(uuid::Uuid::now_v7().to_string())
    }

    /// The id as sent in `X-Request-ID`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// 1–64 characters of `[A-Za-z0-9._-]`: what a request id echoed by this server can be.
pub(crate) fn is_acceptable_request_id(candidate: &str) -> bool {
    (1..=MAX_REQUEST_ID_LEN).contains(&candidate.len())
        && candidate.bytes().all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-'))
}

/// See the module documentation. Runs after routing (it is a router layer), so the route template is known.
pub async fn request_context(mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let request_id = RequestId::from_headers(request.headers());
    request.extensions_mut().insert(request_id.clone());
    let path = request.uri().path().to_owned();
    let method = request.method().clone();
    let route = request.extensions().get::<MatchedPath>().map(|matched| matched.as_str().to_owned());
    let span = tracing::info_span!(
        "request",
        request_id = request_id.as_str(),
        method = %method,
        route = route.as_deref().unwrap_or("unmatched"),
        // Filled in by the OpenTelemetry hook when tracing is on; fields left empty are not logged.
        trace_id = tracing::field::Empty,
        otel.name = tracing::field::Empty,
        otel.kind = tracing::field::Empty,
    );
    telemetry::start_request(&span, request.headers(), &method, route.as_deref());

    let mut response = next.run(request).instrument(span.clone()).await;

    finish_problem(&mut response, &path, request_id.as_str());
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(request_id.as_str()) {
        headers.insert(REQUEST_ID_HEADER, value);
    }
    if path.starts_with("/api/") {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }

    let status = response.status();
    telemetry::finish_request(&span, status);
    span.in_scope(|| {
        let elapsed_ms = started.elapsed().as_secs_f64() * 1_000.0;
        if status.is_server_error() {
            tracing::warn!(status = status.as_u16(), elapsed_ms, "request finished");
        } else {
            tracing::info!(status = status.as_u16(), elapsed_ms, "request finished");
        }
    });
    response
}

/// Renders a [`Problem`] left by a handler, or makes one for a bare error status produced by a layer or the
/// router (those come with an empty or plain-text body). Bodies a handler chose on purpose, such as an
/// HTML error page, are left alone.
fn finish_problem(response: &mut Response, path: &str, request_id: &str) {
    if let Some(problem) = response.extensions_mut().remove::<Problem>() {
        problem.render_into(response, path, request_id);
        return;
    }
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return;
    }
    let is_plain = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_none_or(|content_type| content_type.to_str().is_ok_and(|value| value.starts_with("text/plain")));
    if is_plain {
        Problem::for_status(status).render_into(response, path, request_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers_with(id: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(REQUEST_ID_HEADER, HeaderValue::from_str(id).expect("valid header"));
        headers
    }

    #[test]
    fn well_formed_ids_are_echoed() {
        for id in ["a", "abc-123_X.y", &"z".repeat(64)] {
            assert_eq!(RequestId::from_headers(&headers_with(id)).as_str(), id);
        }
    }

    #[test]
    fn malformed_ids_are_replaced() {
        for id in ["", "has space", "semi;colon", &"z".repeat(65), "ünïcode"] {
            let mut headers = HeaderMap::new();
            if let Ok(value) = HeaderValue::from_str(id) {
                headers.insert(REQUEST_ID_HEADER, value);
            }
            let replaced = RequestId::from_headers(&headers);
            assert_ne!(replaced.as_str(), id);
            assert!(uuid::Uuid::parse_str(replaced.as_str()).is_ok());
        }
    }
}
