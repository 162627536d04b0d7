//! Row shapes shared by both backends, and their conversion into domain values. A value that fails to
//! convert means the stored data was changed behind the application's back, so it is reported as corrupt.

use dashtam_domain::audit::{AuditEntry, AuditOutcome, AuditQuery, ChainPoint, ChainState};
use dashtam_domain::device::Device;
use dashtam_domain::mail::{OutgoingEmail, QueuedEmail};
use dashtam_domain::ports::{StoreBackend, StoreError};
use dashtam_domain::{
    Email, OneTimeToken, RefreshTokenRecord, RefreshTokenState, SecurityConfig, Session, SessionAuthState, SessionId,
    User, UserId, UserName,
};
use time::OffsetDateTime;
use uuid::Uuid;

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct UserRow {
    id: Uuid,
    email: String,
    name: String,
    password_hash: String,
    role: String,
    email_verified_at: Option<OffsetDateTime>,
    disabled_at: Option<OffsetDateTime>,
    token_version: i64,
    failed_login_count: i32,
    locked_until: Option<OffsetDateTime>,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
    last_login_at: Option<OffsetDateTime>,
}

impl TryFrom<UserRow> for User {
    type Error = StoreError;

    fn try_from(row: UserRow) -> Result<Self, Self::Error> {
        let corrupt = |what: &str| StoreError::Corrupt(format!("user {}: {what}", row.id));
        Ok(User {
            id: UserId::from_uuid(row.id),
            email: Email::parse(&row.email).map_err(|_| corrupt("email"))?,
            name: UserName::parse(&row.name).map_err(|_| corrupt("name"))?,
            role: row.role.parse().map_err(|_| corrupt("role"))?,
            password_hash: row.password_hash,
            email_verified_at: row.email_verified_at,
            disabled_at: row.disabled_at,
            token_version: row.token_version,
            failed_login_count: row.failed_login_count,
            locked_until: row.locked_until,
            created_at: row.created_at,
            updated_at: row.updated_at,
            last_login_at: row.last_login_at,
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct SecurityConfigRow {
    global_min_token_version: i64,
    last_rotation_at: Option<OffsetDateTime>,
    last_rotation_reason: Option<String>,
    last_rotated_by: Option<Uuid>,
    global_rotation_enforced_at: Option<OffsetDateTime>,
}

impl From<SecurityConfigRow> for SecurityConfig {
    fn from(row: SecurityConfigRow) -> Self {
        SecurityConfig {
            global_min_token_version: row.global_min_token_version,
            last_rotation_at: row.last_rotation_at,
            last_rotation_reason: row.last_rotation_reason,
            last_rotated_by: row.last_rotated_by.map(UserId::from_uuid),
            global_rotation_enforced_at: row.global_rotation_enforced_at,
        }
    }
}

/// An instant as the store writes it: in UTC, and on SQLite as RFC 3339 text with all nine fractional digits
/// (`…:10.850000000Z`). SQLite keeps instants as the text given and compares them as text, and sqlx would write
/// the fraction with its trailing zeros trimmed (`…:10.85Z`, `…:10Z`), whose text order is not time order within
/// a second (`10.85Z` sorts after `10.857795Z`): a token would still pass `expires_at > now` for up to a second
/// after it expired, and rows made within a second would list out of order. Migrations 000015 (audit times) and
/// 000017 (every other instant) rewrote the values written before. PostgreSQL keeps a `TIMESTAMPTZ`, which
/// normalises the offset anyway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StoredInstant(OffsetDateTime);

/// Every instant is bound through this.
pub(crate) fn utc(instant: OffsetDateTime) -> StoredInstant {
    StoredInstant(instant.to_offset(time::UtcOffset::UTC))
}

/// RFC 3339 in UTC with a fixed-width fraction: text order is time order.
const SORTABLE_RFC3339: &[time::format_description::BorrowedFormatItem<'static>] =
    time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:9]Z");

impl sqlx::Type<sqlx::Sqlite> for StoredInstant {
    fn type_info() -> sqlx::sqlite::SqliteTypeInfo {
        <String as sqlx::Type<sqlx::Sqlite>>::type_info()
    }
}

impl<'q> sqlx::Encode<'q, sqlx::Sqlite> for StoredInstant {
    fn encode_by_ref(
        &self,
        buf: &mut Vec<sqlx::sqlite::SqliteArgumentValue<'q>>,
    ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        let text = self.0.format(SORTABLE_RFC3339)?;
        <String as sqlx::Encode<'q, sqlx::Sqlite>>::encode(text, buf)
    }
}

impl sqlx::Type<sqlx::Postgres> for StoredInstant {
    fn type_info() -> sqlx::postgres::PgTypeInfo {
        <OffsetDateTime as sqlx::Type<sqlx::Postgres>>::type_info()
    }
}

impl sqlx::Encode<'_, sqlx::Postgres> for StoredInstant {
    fn encode_by_ref(
        &self,
        buf: &mut sqlx::postgres::PgArgumentBuffer,
    ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        <OffsetDateTime as sqlx::Encode<'_, sqlx::Postgres>>::encode_by_ref(&self.0, buf)
    }
}

/// Converts an optional row, keeping "not found" apart from "corrupt".
pub(crate) fn user_from_row(row: Option<UserRow>) -> Result<Option<User>, StoreError> {
    row.map(User::try_from).transpose()
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct SessionRow {
    id: Uuid,
    user_id: Uuid,
    user_agent: Option<String>,
    ip_address: Option<String>,
    browser: Option<String>,
    os: Option<String>,
    device_type: Option<String>,
    device_info: Option<String>,
    location: Option<String>,
    global_token_version: i64,
    created_at: OffsetDateTime,
    last_activity_at: OffsetDateTime,
    expires_at: OffsetDateTime,
    revoked_at: Option<OffsetDateTime>,
    revoked_reason: Option<String>,
}

impl TryFrom<SessionRow> for Session {
    type Error = StoreError;

    fn try_from(row: SessionRow) -> Result<Self, Self::Error> {
        let revoked_reason = row
            .revoked_reason
            .map(|reason| reason.parse())
            .transpose()
            .map_err(|_| StoreError::Corrupt(format!("session {}: revoked_reason", row.id)))?;
        Ok(Session {
            id: SessionId::from_uuid(row.id),
            user_id: UserId::from_uuid(row.user_id),
            user_agent: row.user_agent,
            ip_address: row.ip_address,
            device: Device {
                browser: row.browser,
                os: row.os,
                device_type: row.device_type,
                device_info: row.device_info,
                location: row.location,
            },
            global_token_version: row.global_token_version,
            created_at: row.created_at,
            last_activity_at: row.last_activity_at,
            expires_at: row.expires_at,
            revoked_at: row.revoked_at,
            revoked_reason,
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct RefreshTokenRow {
    id: Uuid,
    session_id: Uuid,
    created_at: OffsetDateTime,
    rotated_at: Option<OffsetDateTime>,
    replaced_by: Option<Uuid>,
}

impl From<RefreshTokenRow> for RefreshTokenRecord {
    fn from(row: RefreshTokenRow) -> Self {
        RefreshTokenRecord {
            id: row.id,
            session_id: SessionId::from_uuid(row.session_id),
            created_at: row.created_at,
            rotated_at: row.rotated_at,
            replaced_by: row.replaced_by,
        }
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct OneTimeTokenRow {
    id: Uuid,
    user_id: Uuid,
    purpose: String,
    created_at: OffsetDateTime,
    expires_at: OffsetDateTime,
    used_at: Option<OffsetDateTime>,
}

impl TryFrom<OneTimeTokenRow> for OneTimeToken {
    type Error = StoreError;

    fn try_from(row: OneTimeTokenRow) -> Result<Self, Self::Error> {
        Ok(OneTimeToken {
            id: row.id,
            user_id: UserId::from_uuid(row.user_id),
            purpose: row
                .purpose
                .parse()
                .map_err(|_| StoreError::Corrupt(format!("one-time token {}: purpose", row.id)))?,
            created_at: row.created_at,
            expires_at: row.expires_at,
            used_at: row.used_at,
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct SessionAuthStateRow {
    session_id: Uuid,
    session_revoked_at: Option<OffsetDateTime>,
    session_expires_at: OffsetDateTime,
    session_last_activity_at: OffsetDateTime,
    session_global_token_version: i64,
    global_min_token_version: i64,
    global_rotation_enforced_at: Option<OffsetDateTime>,
    #[sqlx(flatten)]
    user: UserRow,
}

impl TryFrom<SessionAuthStateRow> for SessionAuthState {
    type Error = StoreError;

    fn try_from(row: SessionAuthStateRow) -> Result<Self, Self::Error> {
        Ok(SessionAuthState {
            session_id: SessionId::from_uuid(row.session_id),
            session_revoked_at: row.session_revoked_at,
            session_expires_at: row.session_expires_at,
            session_last_activity_at: row.session_last_activity_at,
            session_global_token_version: row.session_global_token_version,
            global_min_token_version: row.global_min_token_version,
            global_rotation_enforced_at: row.global_rotation_enforced_at,
            user: User::try_from(row.user)?,
        })
    }
}

/// A refresh token joined with its session's [`SessionAuthStateRow`]; the token's own columns carry a
/// `token_` prefix, as the user's columns already use the plain names.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct RefreshTokenStateRow {
    token_id: Uuid,
    token_created_at: OffsetDateTime,
    token_rotated_at: Option<OffsetDateTime>,
    token_replaced_by: Option<Uuid>,
    #[sqlx(flatten)]
    session: SessionAuthStateRow,
}

impl TryFrom<RefreshTokenStateRow> for RefreshTokenState {
    type Error = StoreError;

    fn try_from(row: RefreshTokenStateRow) -> Result<Self, Self::Error> {
        let token = RefreshTokenRecord {
            id: row.token_id,
            session_id: SessionId::from_uuid(row.session.session_id),
            created_at: row.token_created_at,
            rotated_at: row.token_rotated_at,
            replaced_by: row.token_replaced_by,
        };
        Ok(RefreshTokenState { token, session: SessionAuthState::try_from(row.session)? })
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct QueuedEmailRow {
    id: Uuid,
    recipient: String,
    subject: String,
    text_body: String,
    html_body: String,
    created_at: OffsetDateTime,
    attempts: i32,
}

impl TryFrom<QueuedEmailRow> for QueuedEmail {
    type Error = StoreError;

    fn try_from(row: QueuedEmailRow) -> Result<Self, Self::Error> {
        Ok(QueuedEmail {
            email: OutgoingEmail {
                id: row.id,
                to: Email::parse(&row.recipient)
                    .map_err(|_| StoreError::Corrupt(format!("email {}: recipient", row.id)))?,
                subject: row.subject,
                text_body: row.text_body,
                html_body: row.html_body,
                created_at: row.created_at,
            },
            attempts: row.attempts,
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct AuditEntryRow {
    seq: i64,
    chain: i16,
    chain_seq: i64,
    id: Uuid,
    occurred_at: OffsetDateTime,
    action: String,
    outcome: String,
    user_id: Option<Uuid>,
    actor: String,
    resource_type: Option<String>,
    resource_id: Option<String>,
    request_id: Option<String>,
    session_id: Option<Uuid>,
    method: Option<String>,
    route: Option<String>,
    path: Option<String>,
    ip_address: Option<String>,
    user_agent: Option<String>,
    trace_id: Option<String>,
    details: String,
    hash: String,
}

impl TryFrom<AuditEntryRow> for AuditEntry {
    type Error = StoreError;

    fn try_from(row: AuditEntryRow) -> Result<Self, Self::Error> {
        Ok(AuditEntry {
            outcome: AuditOutcome::parse(&row.outcome)
                .ok_or_else(|| StoreError::Corrupt(format!("audit entry {}: outcome", row.seq)))?,
            seq: row.seq,
            chain: row.chain,
            chain_seq: row.chain_seq,
            id: row.id,
            occurred_at: row.occurred_at,
            action: row.action,
            user_id: row.user_id,
            actor: row.actor,
            resource_type: row.resource_type,
            resource_id: row.resource_id,
            request_id: row.request_id,
            session_id: row.session_id,
            method: row.method,
            route: row.route,
            path: row.path,
            ip_address: row.ip_address,
            user_agent: row.user_agent,
            trace_id: row.trace_id,
            details: row.details,
            hash: row.hash,
        })
    }
}

/// Converts audit rows, failing on the first corrupt one.
pub(crate) fn audit_entries_from_rows(rows: Vec<AuditEntryRow>) -> Result<Vec<AuditEntry>, StoreError> {
    rows.into_iter().map(AuditEntry::try_from).collect()
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct AuditChainRow {
    id: i16,
    head_seq: i64,
    head_hash: String,
    head_seal: Option<String>,
    checkpoint_seq: i64,
    checkpoint_hash: String,
    checkpoint_seal: Option<String>,
}

impl From<AuditChainRow> for ChainState {
    fn from(row: AuditChainRow) -> Self {
        ChainState {
            head: ChainPoint { chain: row.id, seq: row.head_seq, hash: row.head_hash, seal: row.head_seal },
            checkpoint: ChainPoint {
                chain: row.id,
                seq: row.checkpoint_seq,
                hash: row.checkpoint_hash,
                seal: row.checkpoint_seal,
            },
        }
    }
}

/// Builds the filtered audit query, newest first: one `$n` placeholder per filter that is set, in the order
/// `audit_entries` (crate::queries) binds them, then the limit.
///
/// On PostgreSQL `audit_log` carries the lookup indexes itself. On SQLite they are on `audit_log_lookup`, which
/// holds the entries up to `audit_chain.lookup_seq` (migration 000015): the newer tail is scanned in
/// `audit_log`, at most a few hundred rows, and comes first, as every entry in it is newer.
pub(crate) fn audit_query_sql(query: &AuditQuery, backend: StoreBackend) -> String {
    let mut filters = String::new();
    let mut placeholders = 0;
    for (set, condition) in [
        (query.user_id.is_some(), "user_id ="),
        (query.action.is_some(), "action ="),
        (query.from.is_some(), "occurred_at >="),
        (query.to.is_some(), "occurred_at <"),
        (query.request_id.is_some(), "request_id ="),
        (query.before_seq.is_some(), "seq <"),
    ] {
        if set {
            placeholders += 1;
            filters.push_str(&format!(" AND {condition} ${placeholders}"));
        }
    }
    let limit = format!("${}", placeholders + 1);
    let select = concat!("SELECT ", crate::queries::audit_columns!(), " FROM audit_log WHERE");
    match backend {
        StoreBackend::Postgres => format!("{select} TRUE{filters} ORDER BY seq DESC LIMIT {limit}"),
        StoreBackend::Sqlite => format!(
            "{select} seq > (SELECT lookup_seq FROM audit_chain WHERE id = 1){filters} \
             UNION ALL \
             {select} seq IN (SELECT seq FROM audit_log_lookup WHERE TRUE{filters} ORDER BY seq DESC LIMIT {limit}) \
             ORDER BY seq DESC LIMIT {limit}"
        ),
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct RateLimitViolationRow {
    id: Uuid,
    occurred_at: OffsetDateTime,
    rule: String,
    route: String,
    scope: String,
    identifier: String,
    ip_address: Option<String>,
}

impl TryFrom<RateLimitViolationRow> for dashtam_domain::rate_limit::RateLimitViolation {
    type Error = StoreError;

    fn try_from(row: RateLimitViolationRow) -> Result<Self, Self::Error> {
        let corrupt = |what: &str| StoreError::Corrupt(format!("rate-limit violation {}: {what}", row.id));
        let scope =
            dashtam_domain::rate_limit::RateLimitScope::from_name(&row.scope).ok_or_else(|| corrupt("scope"))?;
        // PostgreSQL renders INET as `address/prefix`; a host address has the full prefix.
        let ip_address = row
            .ip_address
            .as_deref()
            .map(|text| text.split('/').next().unwrap_or(text).parse().map_err(|_| corrupt("ip_address")))
            .transpose()?;
        Ok(Self {
            id: row.id,
            occurred_at: row.occurred_at,
            rule: row.rule,
            route: row.route,
            scope,
            identifier: row.identifier,
            ip_address,
        })
    }
}
