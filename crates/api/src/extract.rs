//! Extractors that turn request input into typed, validated values or a problem: `ValidJson` for bodies
//! and `ValidQuery` for query strings.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;

use crate::problem::{FieldError, Problem};

/// Checks a deserialised request value against the rules serde cannot express (lengths, ranges, formats).
pub trait Validate {
    /// Every broken rule, one entry per field; `Ok` when all hold.
    fn validate(&self) -> Result<(), Vec<FieldError>>;
}

/// A JSON body that was well-formed, had only known fields, and passed [`Validate`].
#[derive(Debug, Clone)]
pub struct ValidJson<T>(pub T);

/// A query string that deserialised and passed [`Validate`].
#[derive(Debug, Clone)]
pub struct ValidQuery<T>(pub T);

/// A UUID path parameter (`{id}`, `{user_id}`); anything else is `422` naming the parameter, never `400` or
/// `404`, so a client can tell a malformed id from one that does not exist.
#[derive(Debug, Clone, Copy)]
pub struct PathId(pub uuid::Uuid);

impl<S: Send + Sync> FromRequestParts<S> for PathId {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let invalid =
            |name: &str| Problem::validation(vec![FieldError::new(name.to_owned(), "invalid_uuid", "must be a UUID")]);
        // Fails only when the segment is not UTF-8 once percent-decoded: not a UUID either.
        let params = axum::extract::RawPathParams::from_request_parts(parts, state).await.map_err(|_| invalid("id"))?;
        let Some((name, value)) = params.iter().next() else { return Err(Problem::not_found()) };
        uuid::Uuid::parse_str(value).map(Self).map_err(|_| invalid(name))
    }
}

/// Prefixes a deserialisation message with a stable code, which [`classify`] reads back. Serde errors
/// carry only text, so this is how a type like [`Timestamp`](crate::datetime::Timestamp) names its code.
pub(crate) fn coded_message(code: &str, message: &str) -> String {
    format!("[{code}] {message}")
}

impl<S, T> FromRequest<S> for ValidJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Validate,
{
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !has_json_content_type(&request) {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "Unsupported media type",
            )
            .with_detail("Send the body as application/json."));
        }
        let body = Bytes::from_request(request, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                Problem::payload_too_large()
            } else {
                Problem::new(StatusCode::BAD_REQUEST, "unreadable_body", "Unreadable body")
                    .with_detail("The request body could not be read.")
            }
        })?;
        let value: T = parse_json_object(&body)?;
        value.validate().map_err(Problem::validation)?;
        Ok(Self(value))
    }
}

impl<S, T> FromRequestParts<S> for ValidQuery<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Validate,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let deserializer = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        let value: T = serde_path_to_error::deserialize(deserializer).map_err(|error| {
            let field = field_path(error.path());
            problem_from_field_errors(vec![classify(field, &error.inner().to_string())])
        })?;
        value.validate().map_err(Problem::validation)?;
        Ok(Self(value))
    }
}

fn has_json_content_type(request: &Request) -> bool {
    let Some(content_type) = request.headers().get(header::CONTENT_TYPE).and_then(|value| value.to_str().ok()) else {
        return false;
    };
    content_type.parse::<mime::Mime>().is_ok_and(|mime| {
        mime.type_() == mime::APPLICATION
            && (mime.subtype() == mime::JSON || mime.suffix().is_some_and(|suffix| suffix == mime::JSON))
    })
}

/// Deserialises a JSON body, telling malformed JSON (`400`) apart from well-formed JSON of the wrong shape
/// (`422`, with the offending field named).
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, Problem> {
    check_syntax(body)?;
    parse_checked(body)
}

/// [`parse_json`] for a request body, which is always a JSON object here: a derived struct would also
/// deserialise from the array of its fields in order (`["a", null]`), a shape no document describes, so
/// anything but an object is `422` with code `invalid_type`.
pub fn parse_json_object<T: DeserializeOwned>(body: &[u8]) -> Result<T, Problem> {
    check_syntax(body)?;
    // Well-formed JSON starts with its value's first byte.
    if body.iter().find(|byte| !byte.is_ascii_whitespace()) != Some(&b'{') {
        return Err(Problem::validation(vec![FieldError::new("", "invalid_type", "the body must be a JSON object")]));
    }
    parse_checked(body)
}

/// Syntax first: a typed parse stops at the first shape mismatch and would call `[1,2` a wrong type rather
/// than broken JSON. Bodies are small (64 KiB at most), so the extra pass is cheap.
fn check_syntax(body: &[u8]) -> Result<(), Problem> {
    serde_json::from_slice::<serde::de::IgnoredAny>(body).map(drop).map_err(|error| {
        Problem::new(StatusCode::BAD_REQUEST, "malformed_json", "Malformed JSON")
            .with_detail(format!("The body is not valid JSON: {error}."))
    })
}

/// The typed parse of a body whose syntax was checked.
fn parse_checked<T: DeserializeOwned>(body: &[u8]) -> Result<T, Problem> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let field = field_path(error.path());
        problem_from_field_errors(vec![classify(field, &strip_position(&error.inner().to_string()))])
    })
}

/// `items[2].amount` style path, or empty for the document itself.
fn field_path(path: &serde_path_to_error::Path) -> String {
    let rendered = path.to_string();
    if rendered == "." { String::new() } else { rendered }
}

/// serde_json appends " at line L column C" to data errors; the field path already says where.
fn strip_position(message: &str) -> String {
    message.rsplit_once(" at line ").map_or(message, |(head, _)| head).to_owned()
}

/// Turns one serde message into a field error with a stable code.
fn classify(field: String, message: &str) -> FieldError {
    if let Some(rest) = message.strip_prefix('[')
        && let Some((code, text)) = rest.split_once("] ")
    {
        return FieldError::new(field, code.to_owned(), text);
    }
    if let Some(name) = message.strip_prefix("unknown field `").map(unknown_field_name) {
        let field = join_path(&field, name);
        return FieldError::new(field, "unknown_field", format!("unknown field `{name}`"));
    }
    if let Some(name) =
        message.strip_prefix("missing field `").and_then(|rest| rest.split_once('`')).map(|(name, _)| name)
    {
        return FieldError::new(join_path(&field, name), "required", "this field is required");
    }
    if message.starts_with("invalid type") {
        return FieldError::new(field, "invalid_type", message);
    }
    FieldError::new(field, "invalid", message)
}

/// The key in serde's "unknown field `KEY`, expected …" (or "…, there are no fields"). The key itself may
/// contain backticks, so the message is cut at its fixed tail rather than at the next backtick.
fn unknown_field_name(rest: &str) -> &str {
    ["`, expected", "`, there are no fields"]
        .iter()
        .filter_map(|tail| rest.rfind(tail))
        .max()
        .map_or_else(|| rest.strip_suffix('`').unwrap_or(rest), |end| &rest[..end])
}

fn join_path(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_owned()
    } else if parent == name || parent.ends_with(&format!(".{name}")) {
        // serde_path_to_error already put the unknown key in the path on some inputs; do not repeat it.
        parent.to_owned()
    } else {
        format!("{parent}.{name}")
    }
}

/// The problem for deserialisation failures: the most specific code of its field errors.
fn problem_from_field_errors(errors: Vec<FieldError>) -> Problem {
    let code =
        ["unknown_field", "naive_datetime"].into_iter().find(|code| errors.iter().any(|error| error.code == *code));
    match code {
        Some("unknown_field") => Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "unknown_field", "Unknown field")
            .with_detail("The request has a field this endpoint does not accept; see errors.")
            .with_errors(errors),
        Some(_) => Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "naive_datetime", "Time without offset")
            .with_detail("A date-time has no UTC offset; see errors.")
            .with_errors(errors),
        None => Problem::validation(errors),
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;
    use crate::datetime::Timestamp;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)] // fields are read through Debug only
    struct Body {
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

    fn problem_for(body: &str) -> Problem {
        parse_json::<Body>(body.as_bytes()).expect_err("must be rejected")
    }

    #[test]
    fn well_formed_bodies_parse() {
        assert!(parse_json::<Body>(br#"{"name":"a","at":"2025-10-03T10:00:00Z","inner":{"count":1}}"#).is_ok());
    }

    #[test]
    fn syntax_errors_are_malformed_json() {
        for body in ["{", "", "{\"name\":}", "[1,2", "{\"name\":\"a\"} trailing"] {
            let problem = problem_for(body);
            assert_eq!((problem.status(), problem.code()), (StatusCode::BAD_REQUEST, "malformed_json"), "{body}");
        }
    }

    #[test]
    fn unknown_fields_are_named() {
        let problem = problem_for(r#"{"name":"a","admin":true}"#);
        assert_eq!((problem.status(), problem.code()), (StatusCode::UNPROCESSABLE_ENTITY, "unknown_field"));
        assert_eq!(problem.errors()[0].field, "admin");
        let nested = problem_for(r#"{"name":"a","inner":{"count":1,"extra":2}}"#);
        assert_eq!(nested.errors()[0].field, "inner.extra");
    }

    #[test]
    fn wrong_shapes_are_validation_failures() {
        let missing = problem_for(r#"{"at":"2025-10-03T10:00:00Z"}"#);
        assert_eq!(missing.code(), "validation_failed");
        assert_eq!((missing.errors()[0].field.as_str(), missing.errors()[0].code.as_ref()), ("name", "required"));
        let wrong_type = problem_for(r#"{"name":5}"#);
        assert_eq!(
            (wrong_type.errors()[0].field.as_str(), wrong_type.errors()[0].code.as_ref()),
            ("name", "invalid_type")
        );
        for not_an_object in ["42", "null", "\"a\"", r#"["a", null, null]"#, " [] "] {
            let problem = parse_json_object::<Body>(not_an_object.as_bytes()).expect_err("must be rejected");
            assert_eq!(problem.code(), "validation_failed", "{not_an_object}");
            assert_eq!(problem.errors()[0].code, "invalid_type", "{not_an_object}");
        }
    }

    #[test]
    fn naive_datetimes_get_their_own_code() {
        let problem = problem_for(r#"{"name":"a","at":"2025-10-03T10:00:00"}"#);
        assert_eq!((problem.status(), problem.code()), (StatusCode::UNPROCESSABLE_ENTITY, "naive_datetime"));
        assert_eq!((problem.errors()[0].field.as_str(), problem.errors()[0].code.as_ref()), ("at", "naive_datetime"));
        let invalid = problem_for(r#"{"name":"a","at":"soon"}"#);
        assert_eq!(invalid.errors()[0].code, "invalid_datetime");
    }
}
