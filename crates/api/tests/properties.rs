//! Property tests for the HTTP layer's parsers of outside input: JSON bodies (`parse_json` and the
//! `ValidJson` extractor), query strings (`ValidQuery`), date-time values, the `X-Request-ID` header, and
//! `X-Forwarded-For` as read behind trusted proxies (`client_ip`).
//!
//! The `Authorization: Bearer` header parser (`auth::extract::bearer_token`) is private and is not covered
//! here; the token behind it is covered by the adapters' properties.

use std::net::IpAddr;
use std::sync::LazyLock;

use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use dashtam_api::client_ip::{FORWARDED_FOR, TrustedProxies};
use dashtam_api::datetime::{DateOrTimestamp, DateTimeError, Timestamp, parse_date_or_timestamp, parse_timestamp};
use dashtam_api::extract::{ValidJson, ValidQuery, Validate, parse_json, parse_json_object};
use dashtam_api::problem::{FieldError, Problem};
use dashtam_api::request_context::{REQUEST_ID_HEADER, RequestId};
use proptest::prelude::*;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Map, Value};
use time::format_description::well_known::Rfc3339;
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

/// Default case count, and no regression files written next to the sources.
fn config() -> ProptestConfig {
    ProptestConfig { failure_persistence: None, ..ProptestConfig::default() }
}

// ---- Request bodies ---------------------------------------------------------------------------------------

/// A body shaped like the API's request bodies: unknown fields refused, a nested object, an instant.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // fields are read through Debug only
struct Body1 {
    name: String,
    at: Option<Timestamp>,
    inner: Option<Inner>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Inner {
    count: u32,
}

impl Validate for Body1 {
    fn validate(&self) -> Result<(), Vec<FieldError>> {
        if self.name.trim().is_empty() {
            Err(vec![FieldError::new("name", "required", "must not be empty")])
        } else {
            Ok(())
        }
    }
}

const BODY_FIELDS: [&str; 3] = ["name", "at", "inner"];

/// The only `(status, code)` pairs `parse_json` may answer with.
fn is_classified(problem: &Problem) -> bool {
    matches!(
        (problem.status(), problem.code()),
        (StatusCode::BAD_REQUEST, "malformed_json")
            | (StatusCode::UNPROCESSABLE_ENTITY, "unknown_field" | "validation_failed" | "naive_datetime")
    )
}

/// A 422 names at least one field error with a code, and its code is backed by one of them.
fn check_unprocessable(problem: &Problem) -> Result<(), TestCaseError> {
    prop_assert!(!problem.errors().is_empty(), "422 without errors: {}", problem);
    prop_assert!(problem.errors().iter().all(|error| !error.code.is_empty()), "{:?}", problem.errors());
    if problem.code() != "validation_failed" {
        prop_assert!(problem.errors().iter().any(|error| error.code == problem.code()), "{:?}", problem.errors());
    }
    Ok(())
}

/// `parse_json`'s whole contract for one body: never a panic; `400 malformed_json` exactly when the bytes are
/// not JSON; otherwise `Ok` or a classified 422.
fn check_parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<Option<Problem>, TestCaseError> {
    let is_json = serde_json::from_slice::<IgnoredAny>(body).is_ok();
    match parse_json::<T>(body) {
        Ok(_) => {
            prop_assert!(is_json, "accepted a body that is not JSON");
            Ok(None)
        }
        Err(problem) => {
            prop_assert!(is_classified(&problem), "unexpected problem {}", problem);
            prop_assert_eq!(problem.status() == StatusCode::BAD_REQUEST, !is_json, "{}", problem);
            if problem.status() == StatusCode::UNPROCESSABLE_ENTITY {
                check_unprocessable(&problem)?;
            }
            Ok(Some(problem))
        }
    }
}

/// Any JSON value, nested a few levels.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
        prop::sample::select(vec!["2025-10-03T10:00:00Z", "2025-10-03T10:00:00", "soon", "a"])
            .prop_map(|text| Value::String(text.to_owned())),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((json_key(), inner), 0..6)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
        ]
    })
}

/// Object keys: mostly the body's own field names and short words, sometimes anything.
fn json_key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec!["name", "at", "inner", "count"]).prop_map(str::to_owned),
        2 => "[a-z_]{1,8}",
        1 => ".{0,10}",
    ]
}

/// Bodies that are JSON, nearly JSON, or not JSON at all.
fn body_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..128),
        "[\\[\\]{}\",:0-9a-z \\\\.eE+-]{0,48}".prop_map(String::into_bytes),
        json_value().prop_map(|value| serde_json::to_vec(&value).expect("serialises")),
        (json_value(), any::<prop::sample::Index>(), any::<u8>()).prop_map(|(value, index, byte)| {
            let mut bytes = serde_json::to_vec(&value).expect("serialises");
            let at = index.index(bytes.len() + 1);
            bytes.insert(at, byte);
            bytes
        }),
        (json_value(), any::<prop::sample::Index>()).prop_map(|(value, index)| {
            let mut bytes = serde_json::to_vec(&value).expect("serialises");
            let at = index.index(bytes.len());
            bytes.remove(at);
            bytes
        }),
    ]
}

/// A body that deserialises into `Body1`, as a JSON object.
fn valid_body() -> impl Strategy<Value = Map<String, Value>> {
    (
        ".{0,16}",
        prop::option::of(prop::option::of(offset_date_time_in_range())),
        prop::option::of(prop::option::of(any::<u32>())),
    )
        .prop_map(|(name, at, count)| {
            let mut body = Map::new();
            body.insert("name".into(), Value::String(name));
            if let Some(at) = at {
                let at = at.map(|at| Value::String(at.format(&Rfc3339).expect("formats")));
                body.insert("at".into(), at.unwrap_or(Value::Null));
            }
            if let Some(count) = count {
                let inner = count.map(|count| serde_json::json!({ "count": count }));
                body.insert("inner".into(), inner.unwrap_or(Value::Null));
            }
            body
        })
}

proptest! {
    #![proptest_config(config())]

    /// Arbitrary bytes never panic; the answer is `Ok` or one of the four classified problems, and it is
    /// `400 malformed_json` exactly when the bytes are not JSON.
    #[test]
    fn parse_json_classifies_every_body(body in body_bytes()) {
        check_parse_json::<Body1>(&body)?;
        check_parse_json::<Value>(&body)?;
        check_parse_json::<Vec<u32>>(&body)?;
    }

    /// Any syntactically valid JSON value, compact or pretty, is never a 400.
    #[test]
    fn valid_json_is_never_malformed(value in json_value(), pretty in any::<bool>()) {
        let body = if pretty { serde_json::to_vec_pretty(&value) } else { serde_json::to_vec(&value) };
        let body = body.expect("serialises");
        prop_assert!(parse_json::<Value>(&body).is_ok());
        if let Some(problem) = check_parse_json::<Body1>(&body)? {
            prop_assert_eq!(problem.status(), StatusCode::UNPROCESSABLE_ENTITY, "{}", problem);
        }
    }

    /// Well-formed bodies of the right shape are accepted.
    #[test]
    fn well_formed_bodies_are_accepted(body in valid_body()) {
        let bytes = serde_json::to_vec(&Value::Object(body)).expect("serialises");
        let parsed = parse_json::<Body1>(&bytes);
        prop_assert!(parsed.is_ok(), "{:?}", parsed.err().map(|problem| problem.errors().to_vec()));
    }

    /// An extra key in an otherwise valid body is `422 unknown_field`, and `errors[0].field` names it
    /// (prefixed with `inner.` when it is inside the nested object).
    #[test]
    fn unknown_keys_are_named(
        body in valid_body(),
        key in prop_oneof![
            "[A-Za-z0-9_.$ -]{1,12}",
            prop::sample::select(vec!["name", "at", "inner", "count", "x.inner", "inner.x", "Name", ""])
                .prop_map(str::to_owned),
        ],
        value in json_value(),
        nested in any::<bool>(),
    ) {
        let mut body = body;
        let field = if nested {
            prop_assume!(key != "count");
            let mut inner = Map::new();
            inner.insert("count".into(), Value::from(1));
            inner.insert(key.clone(), value);
            body.insert("inner".into(), Value::Object(inner));
            format!("inner.{key}")
        } else {
            prop_assume!(!BODY_FIELDS.contains(&key.as_str()));
            body.insert(key.clone(), value);
            key
        };
        let bytes = serde_json::to_vec(&Value::Object(body)).expect("serialises");
        let problem = parse_json::<Body1>(&bytes).expect_err("an unknown key is refused");
        prop_assert_eq!((problem.status(), problem.code()), (StatusCode::UNPROCESSABLE_ENTITY, "unknown_field"));
        prop_assert_eq!(&problem.errors()[0].field, &field);
        prop_assert_eq!(problem.errors()[0].code.as_ref(), "unknown_field");
    }

    /// Every strict prefix of a valid JSON object is `400 malformed_json`.
    #[test]
    fn truncated_objects_are_malformed(
        object in prop::collection::vec((json_key(), json_value()), 0..6),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 1..8),
    ) {
        let body = serde_json::to_vec(&Value::Object(object.into_iter().collect())).expect("serialises");
        for cut in cuts {
            let prefix = &body[..cut.index(body.len())];
            let problem = parse_json::<Body1>(prefix).expect_err("a truncated object is refused");
            prop_assert_eq!(
                (problem.status(), problem.code()),
                (StatusCode::BAD_REQUEST, "malformed_json"),
                "{}",
                String::from_utf8_lossy(prefix)
            );
        }
    }

    /// A date-time without an offset anywhere in a body is `422 naive_datetime` on that field.
    #[test]
    fn naive_datetimes_in_bodies_are_named(
        name in "[a-z]{1,8}",
        at in offset_date_time_in_range(),
        space in any::<bool>(),
    ) {
        let body = serde_json::json!({ "name": name, "at": naive_text(at, space) });
        let problem = parse_json::<Body1>(body.to_string().as_bytes()).expect_err("a naive date-time is refused");
        prop_assert_eq!((problem.status(), problem.code()), (StatusCode::UNPROCESSABLE_ENTITY, "naive_datetime"));
        let first = &problem.errors()[0];
        prop_assert_eq!((first.field.as_str(), first.code.as_ref()), ("at", "naive_datetime"));
    }
}

proptest! {
    #![proptest_config(config())]

    /// Deeply nested bodies never overflow the stack and are never a 400 (they are JSON). A `Value` deeper
    /// than serde_json's recursion limit (128) is a `422`, not a crash.
    #[test]
    fn deeply_nested_bodies_are_classified(depth in 1_usize..5000, object in any::<bool>()) {
        let (open, close) = if object { (r#"{"a":"#, "}") } else { ("[", "]") };
        let body = format!("{}1{}", open.repeat(depth), close.repeat(depth));
        let problem = check_parse_json::<Body1>(body.as_bytes())?.expect("never a Body1");
        prop_assert_eq!(problem.status(), StatusCode::UNPROCESSABLE_ENTITY, "depth {}: {}", depth, problem);
        prop_assert_eq!(check_parse_json::<Value>(body.as_bytes())?.is_none(), depth < 128, "depth {}", depth);
    }
}

/// See `unknown_key_with_a_backtick_minimal`.
#[test]
fn unknown_keys_with_backticks_are_named() {
    proptest!(config(), |(prefix in "[a-z]{0,4}", suffix in "[a-z`]{0,4}")| {
        let key = format!("{prefix}`{suffix}");
        let mut body = Map::new();
        body.insert("name".into(), Value::from("a"));
        body.insert(key.clone(), Value::from(1));
        let problem = parse_json::<Body1>(Value::Object(body).to_string().as_bytes()).expect_err("refused");
        prop_assert_eq!(problem.code(), "unknown_field");
        prop_assert_eq!(&problem.errors()[0].field, &key);
    });
}

/// Minimal reproducer: serde's message is "unknown field `a`b`, expected …"; `classify` takes the name up to
/// the first backtick (`a`) and, as the path is already `a`b`, appends it: the field is reported as
/// `a`b.a`. (Shrunk by proptest: the key "`" is reported as "`.".)
#[test]
fn unknown_key_with_a_backtick_minimal() {
    for (body, key) in [(&br#"{"name":"a","a`b":1}"#[..], "a`b"), (br#"{"name":"a","`":1}"#, "`")] {
        let problem = parse_json::<Body1>(body).expect_err("refused");
        assert_eq!(problem.code(), "unknown_field");
        assert_eq!(problem.errors()[0].field, key);
    }
}

// ---- The extractors ---------------------------------------------------------------------------------------

static RUNTIME: LazyLock<tokio::runtime::Runtime> =
    LazyLock::new(|| tokio::runtime::Builder::new_current_thread().build().expect("a current-thread runtime"));

/// Query parameters like the API's list filters.
#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct Filter {
    from: Option<DateOrTimestamp>,
    to: Option<DateOrTimestamp>,
    limit: Option<u32>,
}

impl Validate for Filter {
    fn validate(&self) -> Result<(), Vec<FieldError>> {
        match self.limit {
            Some(limit) if !(1..=500).contains(&limit) => {
                Err(vec![FieldError::new("limit", "out_of_range", "must be between 1 and 500")])
            }
            _ => Ok(()),
        }
    }
}

fn query_filter(query: &str) -> Option<Result<Filter, Problem>> {
    let request = Request::builder().uri(format!("/items?{query}")).body(Body::empty()).ok()?;
    let (mut parts, _) = request.into_parts();
    Some(RUNTIME.block_on(ValidQuery::<Filter>::from_request_parts(&mut parts, &())).map(|ValidQuery(filter)| filter))
}

fn json_request(content_type: Option<&str>, body: Vec<u8>) -> Option<Result<Body1, Problem>> {
    let mut builder = Request::builder().method("POST").uri("/items");
    if let Some(content_type) = content_type {
        builder = builder.header(header::CONTENT_TYPE, HeaderValue::from_str(content_type).ok()?);
    }
    let request = builder.body(Body::from(body)).ok()?;
    Some(RUNTIME.block_on(ValidJson::<Body1>::from_request(request, &())).map(|ValidJson(body)| body))
}

fn is_json_media_type(content_type: &str) -> bool {
    content_type.parse::<mime::Mime>().is_ok_and(|mime| {
        mime.type_() == mime::APPLICATION
            && (mime.subtype() == mime::JSON || mime.suffix().is_some_and(|suffix| suffix == mime::JSON))
    })
}

proptest! {
    #![proptest_config(config())]

    /// Arbitrary query strings never panic; the answer is `Ok` or a classified 422.
    #[test]
    fn valid_query_classifies_every_query(
        query in prop_oneof![
            "[A-Za-z0-9%&=+._~:!$'()*,;/?-]{0,60}",
            "((from|to|limit|x|)=[0-9A-Za-z:.+%-]{0,26}&?){0,4}",
        ],
    ) {
        if let Some(Err(problem)) = query_filter(&query) {
            prop_assert_eq!(problem.status(), StatusCode::UNPROCESSABLE_ENTITY, "{}", problem);
            let code = problem.code();
            prop_assert!(["unknown_field", "validation_failed", "naive_datetime"].contains(&code), "{}", problem);
            check_unprocessable(&problem)?;
        }
    }

    /// Well-formed filters, percent-encoded, read back as what was sent; a naive instant is named.
    #[test]
    fn valid_query_round_trips(
        from in prop::option::of(date_or_timestamp()),
        to in prop::option::of(date_or_timestamp()),
        limit in prop::option::of(1_u32..=500),
        naive in prop::option::of(offset_date_time_in_range()),
    ) {
        let mut query = form_urlencoded::Serializer::new(String::new());
        if let Some((_, text)) = &from {
            query.append_pair("from", text);
        }
        if let Some((_, text)) = &to {
            query.append_pair("to", text);
        }
        if let Some(limit) = limit {
            query.append_pair("limit", &limit.to_string());
        }
        let query = query.finish();
        let filter = query_filter(&query).expect("a valid URI").map_err(|problem| problem.to_string());
        let expected = Filter { from: from.map(|(value, _)| value), to: to.map(|(value, _)| value), limit };
        prop_assert_eq!(filter, Ok(expected));

        if let Some(naive) = naive {
            let query =
                form_urlencoded::Serializer::new(String::new()).append_pair("to", &naive_text(naive, false)).finish();
            let problem = query_filter(&query).expect("a valid URI").expect_err("a naive instant is refused");
            prop_assert_eq!(problem.code(), "naive_datetime");
            prop_assert_eq!(problem.errors()[0].field.as_str(), "to");
        }
    }

    /// `ValidJson` refuses anything but a JSON media type with `415`, and otherwise agrees with
    /// `parse_json` followed by `Validate`.
    #[test]
    fn valid_json_checks_media_type_then_body(
        content_type in prop::option::of(prop_oneof![
            Just("application/json".to_owned()),
            Just("application/json; charset=utf-8".to_owned()),
            Just("application/merge-patch+json".to_owned()),
            Just("text/plain".to_owned()),
            Just("application/jsonx".to_owned()),
            "[a-z]{1,12}/[a-z+.-]{1,16}(; ?[a-z]{1,8}=[a-z0-9-]{1,8})?",
            ".{0,24}",
        ]),
        body in prop_oneof![
            body_bytes(),
            valid_body().prop_map(|body| serde_json::to_vec(&Value::Object(body)).expect("serialises")),
        ],
    ) {
        let Some(result) = json_request(content_type.as_deref(), body.clone()) else {
            return Ok(());
        };
        if !content_type.as_deref().is_some_and(is_json_media_type) {
            let problem = result.expect_err("not JSON");
            prop_assert_eq!(
                (problem.status(), problem.code()),
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            );
            return Ok(());
        }
        // ValidJson is exactly `parse_json_object` (a body is an object), then `validate`.
        match (result, parse_json_object::<Body1>(&body)) {
            (Ok(_), Ok(parsed)) => prop_assert!(parsed.validate().is_ok()),
            (Err(problem), Ok(parsed)) => {
                let errors = parsed.validate().expect_err("only validation can refuse a parsed body");
                prop_assert_eq!((problem.code(), problem.errors()), ("validation_failed", errors.as_slice()));
            }
            (Err(problem), Err(direct)) => {
                prop_assert_eq!((problem.status(), problem.code()), (direct.status(), direct.code()));
                prop_assert_eq!(problem.errors(), direct.errors());
            }
            (Ok(_), Err(direct)) => prop_assert!(false, "ValidJson accepted what parse_json_object refused: {}", direct),
        }
    }
}

// ---- Date-time values -------------------------------------------------------------------------------------

/// Any instant RFC 3339 can write: year 0000–9999, microsecond precision, any offset within ±23:59.
fn offset_date_time() -> impl Strategy<Value = OffsetDateTime> {
    (
        (0_i32..=9999, 1_u8..=12, 1_u8..=31),
        (0_u8..24, 0_u8..60, 0_u8..60, prop_oneof![Just(0_u32), 0_u32..1_000_000]),
        (0_i8..=23, 0_i8..=59, any::<bool>()),
    )
        .prop_filter_map(
            "a day past the month's end",
            |((year, month, day), (hour, minute, second, micro), offset)| {
                let month = Month::try_from(month).ok()?;
                let date = Date::from_calendar_date(year, month, day).ok()?;
                let time = Time::from_hms_micro(hour, minute, second, micro).ok()?;
                let (hours, minutes, negative) = offset;
                let sign = if negative { -1 } else { 1 };
                let offset = UtcOffset::from_hms(sign * hours, sign * minutes, 0).ok()?;
                Some(PrimitiveDateTime::new(date, time).assume_offset(offset))
            },
        )
}

/// Instants whose UTC form is also writable as RFC 3339 (year 0000–9999 in UTC).
fn offset_date_time_in_range() -> impl Strategy<Value = OffsetDateTime> {
    offset_date_time().prop_filter("UTC year outside 0000-9999", |instant| {
        instant.checked_to_offset(UtcOffset::UTC).is_some_and(|utc| (0..=9999).contains(&utc.year()))
    })
}

/// The same wall-clock time with its offset left out (`T` or a space between date and time).
fn naive_text(instant: OffsetDateTime, space: bool) -> String {
    let text = instant.format(&Rfc3339).expect("formats");
    let offset_at = text.rfind(['Z', '+', '-']).expect("an offset");
    let naive = &text[..offset_at];
    if space { naive.replacen('T', " ", 1) } else { naive.to_owned() }
}

fn date() -> impl Strategy<Value = Date> {
    (0_i32..=9999, 1_u16..=366)
        .prop_filter_map("day 366 of a common year", |(year, ordinal)| Date::from_ordinal_date(year, ordinal).ok())
}

fn date_text(date: Date) -> String {
    format!("{:04}-{:02}-{:02}", date.year(), u8::from(date.month()), date.day())
}

fn date_or_timestamp() -> impl Strategy<Value = (DateOrTimestamp, String)> {
    prop_oneof![
        date().prop_map(|date| (DateOrTimestamp::Date(date), date_text(date))),
        offset_date_time_in_range().prop_map(|instant| {
            (DateOrTimestamp::Timestamp(instant.to_offset(UtcOffset::UTC)), instant.format(&Rfc3339).expect("formats"))
        }),
    ]
}

/// Text that is, nearly is, or is not a date or an instant.
fn datetime_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[0-9]{4}-[0-9]{2}-[0-9]{2}",
        "[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\\.[0-9]{1,10})?)?([Zz]|[+-][0-9]{2}:?[0-9]{2})?",
        "[0-9T:.Z+ -]{0,30}",
        offset_date_time_in_range().prop_map(|instant| instant.format(&Rfc3339).expect("formats")),
    ]
}

proptest! {
    #![proptest_config(config())]

    /// Arbitrary text never panics; an accepted instant is in UTC and is what RFC 3339 reads; a refusal is
    /// `Naive` or `Invalid`, and never for text RFC 3339 reads.
    #[test]
    fn parse_timestamp_classifies_every_string(text in datetime_text()) {
        let rfc3339 = OffsetDateTime::parse(&text, &Rfc3339);
        match parse_timestamp(&text) {
            Ok(instant) => {
                prop_assert!(instant.offset().is_utc());
                prop_assert_eq!(Ok(instant), rfc3339);
            }
            Err(DateTimeError::Naive | DateTimeError::Invalid) => prop_assert!(rfc3339.is_err()),
        }
    }

    /// `parse_date_or_timestamp` never panics; a date is exactly `YYYY-MM-DD`; an instant agrees with
    /// `parse_timestamp`.
    #[test]
    fn parse_date_or_timestamp_classifies_every_string(text in datetime_text()) {
        match parse_date_or_timestamp(&text) {
            Ok(DateOrTimestamp::Date(date)) => prop_assert_eq!(date_text(date), text),
            Ok(DateOrTimestamp::Timestamp(instant)) => prop_assert_eq!(parse_timestamp(&text), Ok(instant)),
            Err(error) => prop_assert_eq!(parse_timestamp(&text), Err(error)),
        }
    }

    /// Any instant written as RFC 3339 parses to the same instant, normalised to UTC; without its offset it
    /// is `Naive`.
    #[test]
    fn rfc3339_instants_parse_to_the_same_instant_in_utc(
        instant in offset_date_time_in_range(),
        space in any::<bool>(),
    ) {
        let text = instant.format(&Rfc3339).expect("formats");
        let parsed = parse_timestamp(&text).expect("valid RFC 3339");
        prop_assert_eq!(parsed, instant);
        prop_assert!(parsed.offset().is_utc());
        prop_assert_eq!(parse_timestamp(&naive_text(instant, space)), Err(DateTimeError::Naive));
        prop_assert_eq!(parse_date_or_timestamp(&naive_text(instant, space)), Err(DateTimeError::Naive));
    }

    /// A `Timestamp` serialises as RFC 3339 ending in `Z`, which parses back to the same instant.
    #[test]
    fn timestamps_serialise_with_z_and_parse_back(instant in offset_date_time_in_range()) {
        let json = serde_json::to_value(Timestamp(instant)).expect("serialises");
        let text = json.as_str().expect("a string");
        prop_assert!(text.ends_with('Z'), "{}", text);
        prop_assert_eq!(parse_timestamp(text), Ok(instant));
        let back: Timestamp = serde_json::from_value(json.clone()).expect("deserialises");
        prop_assert_eq!(back, Timestamp(instant));
    }

    /// Every valid `YYYY-MM-DD` is a date.
    #[test]
    fn calendar_dates_parse_as_dates(date in date()) {
        prop_assert_eq!(parse_date_or_timestamp(&date_text(date)), Ok(DateOrTimestamp::Date(date)));
    }
}

/// RFC 3339 instants on the first or last day of the range whose UTC form falls outside years 0000–9999:
/// `9999-12-31` west of UTC late in the day, or `0000-01-01` east of UTC early in the day.
fn instants_crossing_the_range_in_utc(at_the_end: bool) -> impl Strategy<Value = String> {
    (0_u8..24, 0_u8..60, 0_u8..60, 0_i8..=23, 0_i8..=59).prop_filter_map(
        "stays within the range in UTC",
        move |(hour, minute, second, offset_hours, offset_minutes)| {
            let local = i32::from(hour) * 60 + i32::from(minute);
            let offset = i32::from(offset_hours) * 60 + i32::from(offset_minutes);
            let time = format!("{hour:02}:{minute:02}:{second:02}");
            let offset_text = format!("{offset_hours:02}:{offset_minutes:02}");
            if at_the_end {
                (local + offset >= 24 * 60).then(|| format!("9999-12-31T{time}-{offset_text}"))
            } else {
                (local < offset).then(|| format!("0000-01-01T{time}+{offset_text}"))
            }
        },
    )
}

/// See `parse_timestamp_panics_past_year_9999_minimal`.
#[test]
fn parse_timestamp_never_panics_at_the_end_of_the_range() {
    proptest!(config(), |(text in instants_crossing_the_range_in_utc(true))| {
        let outcome = std::panic::catch_unwind(|| parse_timestamp(&text));
        prop_assert!(outcome.is_ok(), "parse_timestamp({:?}) panicked", text);
        prop_assert_eq!(outcome.ok(), Some(Err(DateTimeError::Invalid)));
    });
}

/// Minimal reproducer: one minute west of UTC on the last minute of 9999 is 10000-01-01 in UTC, which
/// `OffsetDateTime::to_offset` cannot represent, so it panics (a 500 through `CatchPanicLayer`, for any
/// body or query field of type `Timestamp` or `DateOrTimestamp`).
#[test]
fn parse_timestamp_panics_past_year_9999_minimal() {
    for text in ["9999-12-31T23:59:00-00:01", "9999-12-31T00:00:00-23:59"] {
        let outcome = std::panic::catch_unwind(|| parse_timestamp(text));
        assert!(outcome.is_ok(), "parse_timestamp({text:?}) panicked");
        let outcome = std::panic::catch_unwind(|| {
            parse_json::<Body1>(format!("{{\"name\":\"a\",\"at\":{text:?}}}").as_bytes()).map(drop)
        });
        assert!(outcome.is_ok(), "parse_json of a body with at = {text:?} panicked");
    }
}

/// See `accepted_instant_before_year_0_cannot_be_serialised_minimal`.
#[test]
fn every_accepted_instant_serialises() {
    proptest!(config(), |(text in instants_crossing_the_range_in_utc(false))| {
        if let Ok(parsed) = parse_timestamp(&text) {
            let serialised = serde_json::to_string(&Timestamp(parsed));
            prop_assert!(serialised.is_ok(), "{} is accepted but does not serialise", text);
        }
    });
}

/// Regression: `0000-01-01T00:00:00+00:01` is `-0001-12-31T23:59:00Z` in UTC, which RFC 3339 cannot write;
/// it used to be accepted and then could not be echoed back. It is now refused as invalid.
#[test]
fn an_instant_before_year_0_in_utc_is_refused() {
    assert_eq!(parse_timestamp("0000-01-01T00:00:00+00:01"), Err(DateTimeError::Invalid));
}

// ---- X-Request-ID -----------------------------------------------------------------------------------------

fn is_request_id(text: &str) -> bool {
    (1..=64).contains(&text.len())
        && text.bytes().all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-'))
}

proptest! {
    #![proptest_config(config())]

    /// Whatever the header holds (or if it is missing or repeated), the id used is 1–64 characters of
    /// `[A-Za-z0-9._-]`; a well-formed first value is kept exactly, anything else becomes a UUIDv7.
    #[test]
    fn request_ids_are_always_safe(
        values in prop::collection::vec(
            prop_oneof![
                prop::collection::vec(any::<u8>(), 0..80),
                "[A-Za-z0-9._-]{0,70}".prop_map(String::into_bytes),
                "[A-Za-z0-9._ ;:/\"é-]{1,20}".prop_map(String::into_bytes),
            ],
            0..3,
        ),
    ) {
        let mut headers = HeaderMap::new();
        for value in &values {
            if let Ok(value) = HeaderValue::from_bytes(value) {
                headers.append(REQUEST_ID_HEADER, value);
            }
        }
        let first = headers.get(REQUEST_ID_HEADER).map(|value| value.as_bytes().to_vec());
        let id = RequestId::from_headers(&headers);
        prop_assert!(is_request_id(id.as_str()), "{:?}", id);
        match first.as_deref().and_then(|first| std::str::from_utf8(first).ok()).filter(|first| is_request_id(first)) {
            Some(first) => prop_assert_eq!(id.as_str(), first),
            None => {
                let uuid = uuid::Uuid::parse_str(id.as_str()).expect("a generated id is a UUID");
                prop_assert_eq!(uuid.get_version_num(), 7);
            }
        }
    }

    /// A well-formed id is echoed exactly.
    #[test]
    fn well_formed_request_ids_are_echoed(id in "[A-Za-z0-9._-]{1,64}") {
        let mut headers = HeaderMap::new();
        headers.insert(REQUEST_ID_HEADER, HeaderValue::from_str(&id).expect("a valid header value"));
        let echoed = RequestId::from_headers(&headers);
        prop_assert_eq!(echoed.as_str(), id.as_str());
    }
}

// ---- X-Forwarded-For --------------------------------------------------------------------------------------

/// `10.0.0.0/8` and `fd00::/8` are the proxies in these properties.
fn trusted_proxies() -> TrustedProxies {
    TrustedProxies::new(["10.0.0.0/8", "fd00::/8"].map(|network| network.parse::<ipnet::IpNet>().expect("network")))
}

/// Addresses on both sides of the trust line, in both families.
fn any_address() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<u32>().prop_map(|bits| IpAddr::from(std::net::Ipv4Addr::from(bits))),
        any::<u32>().prop_map(|bits| IpAddr::from(std::net::Ipv4Addr::from((10 << 24) | (bits & 0x00ff_ffff)))),
        any::<u128>().prop_map(|bits| IpAddr::from(std::net::Ipv6Addr::from(bits))),
        any::<u128>().prop_map(|bits| IpAddr::from(std::net::Ipv6Addr::from((0xfd << 120) | (bits >> 8)))),
    ]
}

/// One hop as written in the header: an address with optional spaces, or garbage.
fn any_hop() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => (any_address(), " {0,2}", " {0,2}").prop_map(|(address, before, after)| format!("{before}{address}{after}")),
        // Printable ASCII but the list separator.
        1 => "[ -+\\--~]{0,20}",
    ]
}

/// What the client address should be: the rightmost hop that is not a trusted proxy; the leftmost when all
/// are trusted; the peer when a hop on the way is malformed, there are none, or the chain is over 32 hops.
fn expected_client(peer: IpAddr, hops: &[String], trusted: &TrustedProxies) -> IpAddr {
    let mut last_trusted = None;
    for (index, hop) in hops.iter().rev().enumerate() {
        if index == 32 {
            return peer;
        }
        let Ok(address) = hop.trim().parse::<IpAddr>() else { return peer };
        if !trusted.contains(address) {
            return address.to_canonical();
        }
        last_trusted = Some(address.to_canonical());
    }
    last_trusted.unwrap_or(peer)
}

proptest! {
    #![proptest_config(config())]

    /// A peer that is not a trusted proxy is the client, whatever it claims.
    #[test]
    fn untrusted_peers_are_the_client(
        peer in any_address().prop_filter("untrusted", |address| !trusted_proxies().contains(*address)),
        raw in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..60), 0..3),
    ) {
        let mut headers = HeaderMap::new();
        for value in &raw {
            if let Ok(value) = HeaderValue::from_bytes(value) {
                headers.append(FORWARDED_FOR, value);
            }
        }
        prop_assert_eq!(trusted_proxies().client_address(peer, &headers), peer.to_canonical());
    }

    /// Behind a trusted proxy, the client is exactly the rightmost untrusted hop (or the fallbacks above),
    /// however the hops are spread over header lines.
    #[test]
    fn trusted_peers_name_the_rightmost_untrusted_hop(
        peer in any_address().prop_filter("trusted", |address| trusted_proxies().contains(*address)),
        hops in prop::collection::vec(any_hop(), 0..40),
        split in 0_usize..40,
    ) {
        let trusted = trusted_proxies();
        let split = split.min(hops.len());
        let mut headers = HeaderMap::new();
        for line in [&hops[..split], &hops[split..]] {
            if !line.is_empty() {
                headers.append(FORWARDED_FOR, HeaderValue::from_str(&line.join(",")).expect("printable ASCII"));
            }
        }
        let client = trusted.client_address(peer, &headers);
        prop_assert_eq!(client, expected_client(peer, &hops, &trusted));
        let named = hops.iter().filter_map(|hop| hop.trim().parse::<IpAddr>().ok()).any(|hop| hop.to_canonical() == client);
        prop_assert!(client == peer || named, "{client} came from nowhere");
    }

    /// No header value makes the parser panic.
    #[test]
    fn forwarded_for_never_panics(peer in any_address(), value in prop::collection::vec(any::<u8>(), 0..300)) {
        let mut headers = HeaderMap::new();
        if let Ok(value) = HeaderValue::from_bytes(&value) {
            headers.insert(FORWARDED_FOR, value);
        }
        let _ = trusted_proxies().client_address(peer, &headers);
    }
}
