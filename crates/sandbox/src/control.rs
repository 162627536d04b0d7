//! The control API: tests set a client's fault knobs and move the sandbox's calendar.
//!
//! It has no authentication on purpose: it only exists while the sandbox is switched on, which is a
//! development and test setting that production deployments leave off.
//!
//! - `GET /control/clients/{client_id}` → `{"client_id", "settings": {…}, "counters": {"token_requests",
//!   "code_exchanges", "refresh_requests", "api_requests"}}`.
//! - `PUT /control/clients/{client_id}` changes the knobs it names (`null` clears an optional one; an unknown
//!   field or a bad value is `422`, unparsable JSON `400`):
//!   `latency_ms` (wait before answering), `trickle_ms` (send the body in 64-byte chunks with this pause before
//!   each), `fail_status` (401, 403, 429, 500, 502 or 503 instead of doing the work), `fail_times` (how many of
//!   the next requests fail; absent or `null` = all until cleared), `retry_after_seconds` (sent with 429),
//!   `malformed_json` (do the work, then answer `200` with half the body — so a refresh still rotates, as when
//!   an answer is lost), `applies_to` (`token`, `api` or `all`), `refresh_behavior` (`rotate`, `omit`, `same`)
//!   and `transactions_per_day` (average trades per account per calendar day, 0–1000; default 1).
//! - `DELETE /control/clients/{client_id}` restores the defaults and zeroes the counters.
//! - `GET /control/clock`, `POST /control/clock` with `{"advance_days": n}` (or `{"day_offset": n}`),
//!   `DELETE /control/clock`: the data's "today" is the clock's date plus an offset of 0 to 3650 days. The
//!   offset moves only the data; codes and tokens expire by the injected clock alone.
//!
//! Faults reach the requests that carry the client: the token endpoint's Basic client and the client an access
//! token was issued to. Requests that fail authentication are answered normally and not counted.

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};
use serde::{Deserialize, Deserializer, de::DeserializeOwned};
use serde_json::{Value, json};

use crate::{
    Sandbox,
    data::MAX_TRADES_PER_DAY,
    faults::{AppliesTo, ClientControl, RefreshBehavior},
};

/// The furthest the control API moves the data's "today" ahead of the clock (ten years).
const MAX_DAY_OFFSET: u32 = 3650;
/// Statuses a failing request may answer with.
const FAIL_STATUSES: [u16; 6] = [401, 403, 429, 500, 502, 503];

pub(crate) fn routes() -> Router<Sandbox> {
    Router::new()
        .route("/control/clients/{client_id}", get(show_client).put(update_client).delete(reset_client))
        .route("/control/clock", get(show_clock).post(move_clock).delete(reset_clock))
}

/// A change to a client's knobs: absent fields stay as they are, `null` clears an optional one.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsChange {
    #[serde(default, deserialize_with = "present")]
    latency_ms: Option<Option<u64>>,
    #[serde(default, deserialize_with = "present")]
    trickle_ms: Option<Option<u64>>,
    #[serde(default, deserialize_with = "present")]
    fail_status: Option<Option<u16>>,
    #[serde(default, deserialize_with = "present")]
    fail_times: Option<Option<u32>>,
    #[serde(default, deserialize_with = "present")]
    retry_after_seconds: Option<Option<u32>>,
    malformed_json: Option<bool>,
    applies_to: Option<AppliesTo>,
    refresh_behavior: Option<RefreshBehavior>,
    transactions_per_day: Option<f64>,
}

/// Tells a field given as `null` (`Some(None)`) from an absent one (`None`, through `#[serde(default)]`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(deserializer: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(deserializer).map(Some)
}

impl SettingsChange {
    fn check(&self) -> Result<(), String> {
        if let Some(Some(status)) = self.fail_status
            && !FAIL_STATUSES.contains(&status)
        {
            return Err(format!("fail_status must be one of {FAIL_STATUSES:?}"));
        }
        if matches!(self.latency_ms, Some(Some(ms)) if ms > 600_000) {
            return Err("latency_ms may be at most 600000".into());
        }
        if matches!(self.trickle_ms, Some(Some(ms)) if ms > 60_000) {
            return Err("trickle_ms may be at most 60000".into());
        }
        if matches!(self.retry_after_seconds, Some(Some(seconds)) if seconds > 86_400) {
            return Err("retry_after_seconds may be at most 86400".into());
        }
        if let Some(rate) = self.transactions_per_day
            && !(0.0..=MAX_TRADES_PER_DAY).contains(&rate)
        {
            return Err(format!("transactions_per_day must be between 0 and {MAX_TRADES_PER_DAY}"));
        }
        Ok(())
    }

    fn apply(self, control: &mut ClientControl) {
        let settings = &mut control.settings;
        if let Some(value) = self.latency_ms {
            settings.latency_ms = value;
        }
        if let Some(value) = self.trickle_ms {
            settings.trickle_ms = value;
        }
        if let Some(value) = self.fail_status {
            settings.fail_status = value;
        }
        if let Some(value) = self.fail_times {
            settings.fail_times = value;
        }
        if let Some(value) = self.retry_after_seconds {
            settings.retry_after_seconds = value;
        }
        if let Some(value) = self.malformed_json {
            settings.malformed_json = value;
        }
        if let Some(value) = self.applies_to {
            settings.applies_to = value;
        }
        if let Some(value) = self.refresh_behavior {
            settings.refresh_behavior = value;
        }
        if let Some(value) = self.transactions_per_day {
            settings.transactions_per_day = value;
        }
    }
}

/// A control API error: `400` for unparsable JSON, `422` for unknown fields and bad values.
struct ControlError {
    status: StatusCode,
    message: String,
}

impl IntoResponse for ControlError {
    fn into_response(self) -> Response {
        let code = if self.status == StatusCode::BAD_REQUEST { "malformed_json" } else { "invalid_settings" };
        (self.status, Json(json!({"error": code, "message": self.message}))).into_response()
    }
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ControlError> {
    serde_json::from_slice(body).map_err(|error| {
        let status = match error.classify() {
            serde_json::error::Category::Data => StatusCode::UNPROCESSABLE_ENTITY,
            _ => StatusCode::BAD_REQUEST,
        };
        ControlError { status, message: error.to_string() }
    })
}

fn render_client(client_id: &str, control: &ClientControl) -> Value {
    json!({"client_id": client_id, "settings": control.settings, "counters": control.counters})
}

/// `GET /control/clients/{client_id}`: the client's knobs and counters.
async fn show_client(State(sandbox): State<Sandbox>, Path(client_id): Path<String>) -> Response {
    let control = sandbox.with_client(&client_id, |control| control.clone());
    Json(render_client(&client_id, &control)).into_response()
}

/// `PUT /control/clients/{client_id}`: changes some knobs, keeps the rest.
async fn update_client(State(sandbox): State<Sandbox>, Path(client_id): Path<String>, body: Bytes) -> Response {
    let change: SettingsChange = match parse(&body) {
        Ok(change) => change,
        Err(error) => return error.into_response(),
    };
    if let Err(message) = change.check() {
        return ControlError { status: StatusCode::UNPROCESSABLE_ENTITY, message }.into_response();
    }
    let control = sandbox.with_client(&client_id, |control| {
        change.apply(control);
        control.clone()
    });
    Json(render_client(&client_id, &control)).into_response()
}

/// `DELETE /control/clients/{client_id}`: default knobs and zeroed counters.
async fn reset_client(State(sandbox): State<Sandbox>, Path(client_id): Path<String>) -> Response {
    sandbox.state().clients.remove(&client_id);
    let control = ClientControl::default();
    Json(render_client(&client_id, &control)).into_response()
}

/// A move of the calendar: forward by `advance_days`, or to exactly `day_offset` days after the clock's date.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClockChange {
    advance_days: Option<u32>,
    day_offset: Option<u32>,
}

fn render_clock(sandbox: &Sandbox) -> Value {
    let offset = sandbox.state().day_offset;
    json!({"day_offset": offset, "today": sandbox.today().to_string(), "now": crate::wire::schwab_time(sandbox.now())})
}

/// `GET /control/clock`.
async fn show_clock(State(sandbox): State<Sandbox>) -> Response {
    Json(render_clock(&sandbox)).into_response()
}

/// `POST /control/clock` with `{"advance_days": n}` or `{"day_offset": n}`.
async fn move_clock(State(sandbox): State<Sandbox>, body: Bytes) -> Response {
    let change: ClockChange = match parse(&body) {
        Ok(change) => change,
        Err(error) => return error.into_response(),
    };
    let moved = {
        let mut state = sandbox.state();
        let target = match (change.advance_days, change.day_offset) {
            (Some(days), None) => state.day_offset.checked_add(days),
            (None, Some(offset)) => Some(offset),
            _ => None,
        };
        match target.filter(|offset| *offset <= MAX_DAY_OFFSET) {
            Some(offset) => {
                state.day_offset = offset;
                true
            }
            None => false,
        }
    };
    if !moved {
        let message = format!("give advance_days or day_offset; the offset may reach at most {MAX_DAY_OFFSET} days");
        return ControlError { status: StatusCode::UNPROCESSABLE_ENTITY, message }.into_response();
    }
    Json(render_clock(&sandbox)).into_response()
}

/// `DELETE /control/clock`: back to the clock's own date.
async fn reset_clock(State(sandbox): State<Sandbox>) -> Response {
    sandbox.state().day_offset = 0;
    Json(render_clock(&sandbox)).into_response()
}
