//! `GET /api/v1/admin/audit-logs`: the audit log for administrators, newest first, with filters and cursor
//! pagination.

use axum::Json;
use axum::extract::State;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use dashtam_domain::UserId;
use dashtam_domain::audit::{AuditAction, AuditEntry, AuditQuery};
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::AdminUser;
use crate::datetime::{DateOrTimestamp, Timestamp};
use crate::extract::{ValidQuery, Validate};
use crate::problem::{FieldError, Problem, ProblemDocument};
use crate::request_context::is_acceptable_request_id;
use crate::state::AppState;

/// Entries per page when `limit` is not given.
const DEFAULT_LIMIT: u32 = 50;
/// The most entries one page holds.
const MAX_LIMIT: u32 = 200;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_audit_logs))
}

/// Filters of the audit log listing.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditLogQuery {
    /// Entries about this user.
    user_id: Option<Uuid>,
    /// Entries with this action, e.g. `auth.login`.
    #[param(schema_with = crate::field_schemas::audit_action)]
    action: Option<String>,
    /// Entries at or after this instant (a date means its start, UTC).
    #[param(schema_with = from_schema)]
    from: Option<DateOrTimestamp>,
    /// Entries before this instant (a date includes that whole day, UTC).
    #[param(schema_with = to_schema)]
    to: Option<DateOrTimestamp>,
    /// Entries of one request (its `X-Request-ID`: 1–64 characters of `A-Z a-z 0-9 . _ -`).
    #[param(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    request_id: Option<String>,
    /// Entries per page, 1–200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

impl Validate for AuditLogQuery {
    fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = Vec::new();
        if let Some(action) = &self.action
            && AuditAction::parse(action).is_none()
        {
            errors.push(FieldError::new("action", "unknown_action", "not a known audit action"));
        }
        // Only what a request id can be: anything else matches no entry, and says so.
        if self.request_id.as_deref().is_some_and(|request_id| !is_acceptable_request_id(request_id)) {
            errors.push(FieldError::new("request_id", "invalid", "must be 1–64 characters of A-Z a-z 0-9 . _ -"));
        }
        if self.limit.is_some_and(|limit| !(1..=MAX_LIMIT).contains(&limit)) {
            errors.push(FieldError::new("limit", "out_of_range", format!("must be between 1 and {MAX_LIMIT}")));
        }
        if self.cursor.as_deref().is_some_and(|cursor| decode_cursor(cursor).is_none()) {
            errors.push(FieldError::new("cursor", "invalid_cursor", "not a cursor from a previous page"));
        }
        if let (Some(from), Some(to)) = (self.from, self.to)
            && start_of(from) >= end_of(to)
        {
            errors.push(FieldError::new("to", "invalid_range", "must be after `from`"));
        }
        if errors.is_empty() { Ok(()) } else { Err(errors) }
    }
}

fn from_schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
    crate::field_schemas::date_or_timestamp("Entries at or after this instant (a date means its start, UTC).")
}

fn to_schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
    crate::field_schemas::date_or_timestamp("Entries before this instant (a date includes that whole day, UTC).")
}

fn start_of(bound: DateOrTimestamp) -> OffsetDateTime {
    match bound {
        DateOrTimestamp::Date(date) => date.midnight().assume_utc(),
        DateOrTimestamp::Timestamp(instant) => instant,
    }
}

fn end_of(bound: DateOrTimestamp) -> OffsetDateTime {
    match bound {
        DateOrTimestamp::Date(date) => date.midnight().assume_utc().saturating_add(Duration::DAY),
        DateOrTimestamp::Timestamp(instant) => instant,
    }
}

/// Cursors are opaque to clients; inside, the sequence number the next page starts below.
fn encode_cursor(seq: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("seq:{seq}"))
}

fn decode_cursor(cursor: &str) -> Option<i64> {
    let bytes = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    std::str::from_utf8(&bytes).ok()?.strip_prefix("seq:")?.parse().ok().filter(|seq| *seq > 0)
}

/// One audit entry.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntryResponse {
    /// Entry id.
    id: Uuid,
    /// Position in the log: the listing's order.
    seq: i64,
    /// The hash chain the entry is on (PostgreSQL writes several side by side; SQLite only chain 1).
    chain: i16,
    /// Position on that chain, as `dashtam audit verify` reports it.
    chain_seq: i64,
    /// When it was recorded.
    #[schema(value_type = String, format = DateTime)]
    occurred_at: Timestamp,
    /// What happened, e.g. `auth.login`.
    action: String,
    /// `success`, `failure` or `denied`.
    outcome: &'static str,
    /// The user it is about.
    user_id: Option<Uuid>,
    /// Who acted: a user id, `anonymous`, `operator` or `system`.
    actor: String,
    /// The kind of resource acted on.
    resource_type: Option<String>,
    /// Its id.
    resource_id: Option<String>,
    /// The request's `X-Request-ID`.
    request_id: Option<String>,
    /// The session involved.
    session_id: Option<Uuid>,
    /// HTTP method, or `CLI`.
    method: Option<String>,
    /// Route template, or the command.
    route: Option<String>,
    /// The path requested.
    path: Option<String>,
    /// The client's address.
    ip_address: Option<String>,
    /// The client's user agent.
    user_agent: Option<String>,
    /// OpenTelemetry trace id, when tracing is on.
    trace_id: Option<String>,
    /// Further facts (never secrets).
    #[schema(value_type = Object)]
    details: serde_json::Value,
}

impl From<AuditEntry> for AuditEntryResponse {
    fn from(entry: AuditEntry) -> Self {
        // Written by us as a JSON object; anything else is shown as the text it is rather than hidden.
        let details =
            serde_json::from_str(&entry.details).unwrap_or_else(|_| serde_json::Value::String(entry.details.clone()));
        Self {
            id: entry.id,
            seq: entry.seq,
            chain: entry.chain,
            chain_seq: entry.chain_seq,
            occurred_at: Timestamp(entry.occurred_at),
            action: entry.action,
            outcome: entry.outcome.as_str(),
            user_id: entry.user_id,
            actor: entry.actor,
            resource_type: entry.resource_type,
            resource_id: entry.resource_id,
            request_id: entry.request_id,
            session_id: entry.session_id,
            method: entry.method,
            route: entry.route,
            path: entry.path,
            ip_address: entry.ip_address,
            user_agent: entry.user_agent,
            trace_id: entry.trace_id,
            details,
        }
    }
}

/// A page of the audit log.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditLogPage {
    /// Entries, newest first.
    items: Vec<AuditEntryResponse>,
    /// Pass as `cursor` for the next (older) page; `null` on the last page.
    next_cursor: Option<String>,
}

/// The audit log, newest first (admin only).
#[utoipa::path(get, path = "/api/v1/admin/audit-logs", tag = "admin", params(AuditLogQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, body = AuditLogPage),
        (status = 401, body = ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "forbidden: not an administrator", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 422, body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub(crate) async fn list_audit_logs(
    State(state): State<AppState>,
    _admin: AdminUser,
    ValidQuery(query): ValidQuery<AuditLogQuery>,
) -> Result<Json<AuditLogPage>, Problem> {
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    let filter = AuditQuery {
        user_id: query.user_id.map(UserId::from_uuid),
        action: query.action,
        from: query.from.map(start_of),
        to: query.to.map(end_of),
        request_id: query.request_id,
        before_seq: query.cursor.as_deref().and_then(decode_cursor),
        // One more than asked shows whether another page follows.
        limit: limit + 1,
    };
    let mut entries = state.audit.query(&filter).await?;
    let next_cursor = if entries.len() > limit as usize {
        entries.truncate(limit as usize);
        entries.last().map(|entry| encode_cursor(entry.seq))
    } else {
        None
    };
    Ok(Json(AuditLogPage { items: entries.into_iter().map(AuditEntryResponse::from).collect(), next_cursor }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        assert_eq!(decode_cursor(&encode_cursor(42)), Some(42));
        for bad in ["", "!!", "c2VxOi0x", "c2VxOg", "bm9wZQ"] {
            assert_eq!(decode_cursor(bad), None, "{bad}");
        }
    }
}
