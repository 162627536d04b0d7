//! Per-client misbehaviour: the knobs a test sets through the control API and how a request obeys them.

use std::{convert::Infallible, time::Duration};

use axum::{
    body::{Body, Bytes},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};

/// Bytes per chunk when trickling a body: small, so a modest pause stretches any answer past a total timeout.
const TRICKLE_CHUNK: usize = 64;
/// Bodies are built in memory by the sandbox itself; this only bounds the re-read for malformed/trickled answers.
const MAX_BODY: usize = 64 * 1024 * 1024;

/// Which endpoints a client's faults apply to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum AppliesTo {
    /// The token endpoint only.
    Token,
    /// The Trader API only.
    Api,
    #[default]
    All,
}

/// What the token endpoint does with the refresh token on a `refresh_token` grant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum RefreshBehavior {
    /// A new refresh token; the old one stops working.
    #[default]
    Rotate,
    /// No `refresh_token` in the answer; the old one keeps working.
    Omit,
    /// The same refresh token back.
    Same,
}

/// A client's knobs, as the control API shows them.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ClientSettings {
    pub(crate) latency_ms: Option<u64>,
    pub(crate) trickle_ms: Option<u64>,
    pub(crate) fail_status: Option<u16>,
    /// How many more requests fail (or come back malformed); `None` means every one until cleared.
    pub(crate) fail_times: Option<u32>,
    pub(crate) retry_after_seconds: Option<u32>,
    pub(crate) malformed_json: bool,
    pub(crate) applies_to: AppliesTo,
    pub(crate) refresh_behavior: RefreshBehavior,
    pub(crate) transactions_per_day: f64,
}

/// The average number of trades per account per day when a client has not asked for more.
pub(crate) const DEFAULT_TRANSACTIONS_PER_DAY: f64 = 1.0;

impl Default for ClientSettings {
    fn default() -> Self {
        Self {
            latency_ms: None,
            trickle_ms: None,
            fail_status: None,
            fail_times: None,
            retry_after_seconds: None,
            malformed_json: false,
            applies_to: AppliesTo::All,
            refresh_behavior: RefreshBehavior::Rotate,
            transactions_per_day: DEFAULT_TRANSACTIONS_PER_DAY,
        }
    }
}

/// How many requests of each kind a client has made since its settings were last reset.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub(crate) struct Counters {
    pub(crate) token_requests: u64,
    pub(crate) code_exchanges: u64,
    pub(crate) refresh_requests: u64,
    pub(crate) api_requests: u64,
}

/// A client's settings and counters.
#[derive(Debug, Clone, Default)]
pub(crate) struct ClientControl {
    pub(crate) settings: ClientSettings,
    pub(crate) counters: Counters,
}

/// The two surfaces a fault can target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Surface {
    Token,
    Api,
}

/// What to do to one request, decided (and any `fail_times` spent) when it arrives.
#[derive(Debug, Default)]
pub(crate) struct FaultPlan {
    latency: Option<Duration>,
    trickle: Option<Duration>,
    failure: Option<(StatusCode, Option<u32>)>,
    malformed: bool,
}

impl ClientControl {
    /// The plan for the next request on `surface`. A failing status takes precedence over a malformed body;
    /// either one spends one of `fail_times`, while latency and trickling apply to every request.
    pub(crate) fn plan(&mut self, surface: Surface) -> FaultPlan {
        let settings = &mut self.settings;
        let applies = match settings.applies_to {
            AppliesTo::All => true,
            AppliesTo::Token => surface == Surface::Token,
            AppliesTo::Api => surface == Surface::Api,
        };
        if !applies {
            return FaultPlan::default();
        }
        let mut plan = FaultPlan {
            latency: settings.latency_ms.map(Duration::from_millis),
            trickle: settings.trickle_ms.map(Duration::from_millis),
            ..FaultPlan::default()
        };
        let wants_failure = settings.fail_status.is_some() || settings.malformed_json;
        let has_budget = settings.fail_times.is_none_or(|left| left > 0);
        if wants_failure && has_budget {
            if let Some(left) = settings.fail_times.as_mut() {
                *left -= 1;
            }
            match settings.fail_status.and_then(|status| StatusCode::from_u16(status).ok()) {
                Some(status) => plan.failure = Some((status, settings.retry_after_seconds)),
                None => plan.malformed = true,
            }
        }
        plan
    }
}

impl FaultPlan {
    /// Waits out the configured latency.
    pub(crate) async fn delay(&self) {
        if let Some(latency) = self.latency {
            tokio::time::sleep(latency).await;
        }
    }

    /// The failure to answer instead of doing the work, if this request is to fail.
    pub(crate) fn failure(&self, surface: Surface) -> Option<Response> {
        let (status, retry_after) = self.failure?;
        let body = match surface {
            Surface::Token => {
                let error = match status {
                    StatusCode::UNAUTHORIZED => "invalid_client",
                    StatusCode::BAD_REQUEST => "invalid_request",
                    _ => "temporarily_unavailable",
                };
                serde_json::json!({"error": error, "error_description": "failure injected by the sandbox"})
            }
            Surface::Api => serde_json::json!({
                "message": status.canonical_reason().unwrap_or("Error"),
                "errors": ["failure injected by the sandbox"],
            }),
        };
        let mut response = (status, axum::Json(body)).into_response();
        if status == StatusCode::TOO_MANY_REQUESTS {
            let seconds = retry_after.unwrap_or(1);
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        Some(response)
    }

    /// Applies the body faults (malformed JSON, trickling) to the answer that was going out.
    pub(crate) async fn shape(&self, response: Response) -> Response {
        if !self.malformed && self.trickle.is_none() {
            return response;
        }
        let (mut parts, body) = response.into_parts();
        let Ok(mut bytes) = axum::body::to_bytes(body, MAX_BODY).await else {
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        };
        if self.malformed {
            // A strict prefix of a JSON object or array never parses, so half the real answer is invalid JSON.
            parts.status = StatusCode::OK;
            parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            bytes = if bytes.len() >= 2 { bytes.slice(..bytes.len() / 2) } else { Bytes::from_static(b"{") };
        }
        parts.headers.remove(header::CONTENT_LENGTH);
        let body = match self.trickle {
            Some(pause) => trickle(bytes, pause),
            None => Body::from(bytes),
        };
        Response::from_parts(parts, body)
    }
}

/// The body in small chunks with a pause before each, so the whole answer takes as long as the test wants.
fn trickle(bytes: Bytes, pause: Duration) -> Body {
    let stream = futures::stream::unfold(bytes, move |mut rest| async move {
        if rest.is_empty() {
            return None;
        }
        tokio::time::sleep(pause).await;
        let chunk = rest.split_to(rest.len().min(TRICKLE_CHUNK));
        Some((Ok::<_, Infallible>(chunk), rest))
    });
    Body::from_stream(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fail_times_counts_down_then_stops() {
        let mut control = ClientControl::default();
        control.settings.fail_status = Some(503);
        control.settings.fail_times = Some(2);
        assert!(control.plan(Surface::Api).failure.is_some());
        assert!(control.plan(Surface::Token).failure.is_some());
        assert!(control.plan(Surface::Api).failure.is_none());
        assert_eq!(control.settings.fail_times, Some(0));
    }

    #[test]
    fn applies_to_limits_the_surface() {
        let mut control = ClientControl::default();
        control.settings.fail_status = Some(500);
        control.settings.applies_to = AppliesTo::Token;
        assert!(control.plan(Surface::Api).failure.is_none());
        assert!(control.plan(Surface::Token).failure.is_some());
    }
}
