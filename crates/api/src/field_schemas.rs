//! OpenAPI schemas of request fields whose rules are more than a JSON type: trimmed texts with a length and
//! no control characters, bounded secrets, closed vocabularies and ranges. They are built from the same
//! constants the validation uses, so the document states exactly what the server accepts — a client (or a
//! fuzzer) that follows the document is not refused, and one that does not is.

use std::ops::RangeInclusive;

use dashtam_domain::audit::AuditAction;
use dashtam_domain::finance::{AccountType, AssetType, TransactionType};
use dashtam_domain::providers::model::ALIAS_MAX_CHARS;
use dashtam_domain::providers::{ProviderKey, ProviderStatus};
use dashtam_domain::sessions::{GLOBAL_ROTATION_REASON_CHARS, USER_ROTATION_REASON_CHARS};
use dashtam_domain::{Email, UserName};
use utoipa::openapi::schema::{AnyOfBuilder, KnownFormat, Object, ObjectBuilder, SchemaFormat, SchemaType, Type};
use utoipa::openapi::{RefOr, Schema};

/// What `str::trim` strips (Unicode White_Space), spelled out: JSON Schema's `\s` (ECMA-262) also matches
/// U+FEFF, and Python's (which test generators use) U+001C–U+001F, neither of which `trim` removes.
const WHITESPACE: &str = r"\t\n\x0B\x0C\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000";
/// The whitespace of [`WHITESPACE`] that is not also a control character.
const PLAIN_WHITESPACE: &str = r" \xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000";
/// What `char::is_control` matches (Unicode Cc).
const CONTROL: &str = r"\x00-\x1F\x7F-\x9F";

/// The longest password field read (longer ones are refused before any hashing work).
pub(crate) const MAX_PASSWORD_FIELD: usize = 1024;
/// The longest token field read.
pub(crate) const MAX_TOKEN_FIELD: usize = 512;
/// The longest API key or secret read.
pub(crate) const MAX_CREDENTIAL_FIELD: usize = 512;

fn string(description: &str) -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String).description(Some(description))
}

/// A text that, once trimmed, has `1..=max` characters and no control character. Control characters around
/// it are trimmed away with the whitespace unless `controls_anywhere_refused`.
fn trimmed_text(description: &str, max: usize, controls_anywhere_refused: bool) -> Object {
    let edge = if controls_anywhere_refused { PLAIN_WHITESPACE } else { WHITESPACE };
    let pattern = format!(
        "^[{edge}]*[^{WHITESPACE}{CONTROL}](?:[^{CONTROL}]{{0,{middle}}}[^{WHITESPACE}{CONTROL}])?[{edge}]*$",
        middle = max - 2,
    );
    string(description).pattern(Some(pattern)).build()
}

/// A text whose trimmed length is within `allowed` (any characters).
fn trimmed_length(description: &str, allowed: &RangeInclusive<usize>) -> Object {
    let pattern = format!(
        r"^[{WHITESPACE}]*[^{WHITESPACE}][\s\S]{{{min},{max}}}[^{WHITESPACE}][{WHITESPACE}]*$",
        min = allowed.start() - 2,
        max = allowed.end() - 2,
    );
    string(description).pattern(Some(pattern)).build()
}

fn bounded(description: &str, max: usize) -> Object {
    string(description).min_length(Some(1)).max_length(Some(max)).build()
}

fn choice(description: &str, values: impl IntoIterator<Item = &'static str>) -> Object {
    string(description).enum_values(Some(values)).build()
}

/// A person's display name (`UserName`).
pub(crate) fn display_name() -> Object {
    trimmed_text("Display name: 1–100 characters once trimmed, no control characters.", UserName::MAX_LEN, false)
}

/// A provider connection's alias (`Alias`).
pub(crate) fn alias() -> Object {
    trimmed_text(
        "Your name for the connection: 1–100 characters once trimmed, no control characters, unique among yours.",
        ALIAS_MAX_CHARS,
        false,
    )
}

/// An API key id or secret.
pub(crate) fn api_credential() -> Object {
    trimmed_text("1–512 printable characters once trimmed.", MAX_CREDENTIAL_FIELD, true)
}

/// A login address. The server trims it and compares it case-insensitively.
pub(crate) fn email() -> Object {
    string("An email address (at most 254 characters; its domain has a dot).")
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Email)))
        .max_length(Some(Email::MAX_LEN))
        .build()
}

/// A password as typed (the password policy is checked after the schema: `weak_password`).
pub(crate) fn password() -> Object {
    string("A password (the policy decides what is strong enough).")
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Password)))
        .min_length(Some(1))
        .max_length(Some(MAX_PASSWORD_FIELD))
        .build()
}

/// A refresh or one-time token.
pub(crate) fn token() -> Object {
    bounded("A token as issued.", MAX_TOKEN_FIELD)
}

/// A refresh token that may be left out or `null`.
pub(crate) fn optional_token() -> Object {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .description(Some("A token as issued, or null."))
        .min_length(Some(1))
        .max_length(Some(MAX_TOKEN_FIELD))
        .build()
}

/// Why a user's tokens are rotated.
pub(crate) fn user_rotation_reason() -> Object {
    trimmed_length("Why (10–500 characters once trimmed); recorded in the audit log.", &USER_ROTATION_REASON_CHARS)
}

/// Why everyone's tokens are rotated.
pub(crate) fn global_rotation_reason() -> Object {
    trimmed_length("Why (20–1000 characters once trimmed); recorded in the audit log.", &GLOBAL_ROTATION_REASON_CHARS)
}

/// A provider type key.
pub(crate) fn provider_key() -> Object {
    choice("A provider type key.", ProviderKey::ALL.into_iter().map(ProviderKey::as_str))
}

/// Only connections with this status.
pub(crate) fn provider_status() -> Object {
    choice("Only this status.", ProviderStatus::ALL.into_iter().map(ProviderStatus::as_str))
}

/// The provider list's sort key.
pub(crate) fn provider_sort() -> Object {
    choice("Sort key (default `created_at`).", ["created_at", "updated_at", "alias", "provider_key"])
}

/// A sort direction.
pub(crate) fn sort_order() -> Object {
    choice("`asc` or `desc` (default).", ["asc", "desc"])
}

/// An account kind.
pub(crate) fn account_type() -> Object {
    choice("Only this kind of account.", AccountType::ALL.iter().map(|kind| kind.as_str()))
}

/// A holding's asset kind.
pub(crate) fn asset_type() -> Object {
    choice("Only this kind of asset.", AssetType::ALL.iter().map(|kind| kind.as_str()))
}

/// A transaction kind.
pub(crate) fn transaction_type() -> Object {
    choice("Only this kind of transaction.", TransactionType::ALL.iter().map(|kind| kind.as_str()))
}

/// The spacing of a net-worth series.
pub(crate) fn interval() -> Object {
    choice("`day` (default), `week` (points on Sundays) or `month` (points on month ends).", ["day", "week", "month"])
}

/// An audit action name.
pub(crate) fn audit_action() -> Object {
    choice("Only entries with this action.", AuditAction::ALL.iter().map(|action| action.as_str()))
}

/// A UUID given as a query parameter.
pub(crate) fn uuid(description: &str) -> Object {
    string(description).format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid))).build()
}

/// A signed decimal as `crate::ledger` reads it: optional whitespace and sign, at most 16 digits before the
/// point and 12 after.
pub(crate) fn decimal(description: &str) -> Object {
    let pattern = format!(r"^[{WHITESPACE}]*[+-]?[0-9]{{1,16}}(?:\.[0-9]{{1,12}})?[{WHITESPACE}]*$");
    string(description).pattern(Some(pattern)).build()
}

/// A calendar date (a whole day) or an RFC 3339 instant with an offset.
pub(crate) fn date_or_timestamp(description: &str) -> RefOr<Schema> {
    dates_and_timestamps(description).into()
}

/// An optional body field taking [`date_or_timestamp`], or `null`.
pub(crate) fn nullable_date_or_timestamp(description: &str) -> RefOr<Schema> {
    dates_and_timestamps(description).item(ObjectBuilder::new().schema_type(Type::Null)).into()
}

fn dates_and_timestamps(description: &str) -> AnyOfBuilder {
    let format =
        |format| ObjectBuilder::new().schema_type(Type::String).format(Some(SchemaFormat::KnownFormat(format)));
    AnyOfBuilder::new()
        .item(format(KnownFormat::Date))
        .item(format(KnownFormat::DateTime))
        .description(Some(description))
}
