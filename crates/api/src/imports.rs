//! Statement imports (API.md §6): upload an OFX, QFX or CSV file; list past imports.

use axum::Json;
use axum::extract::{DefaultBodyLimit, Multipart, State};
use axum::http::{HeaderMap, StatusCode, header};
use dashtam_domain::imports::{ImportError, ImportFormat, ImportRecord, ImportRequest};
use dashtam_domain::ledger::AccountId;
use dashtam_import::{CsvMapping, Format, ParseFailure};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::AuthUser;
use crate::datetime::Timestamp;
use crate::problem::{FieldError, Problem, ProblemDocument};
use crate::state::AppState;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    // The upload streams through the handler, which enforces the configured file size limit itself; the
    // JSON body limit of every other route does not apply here.
    OpenApiRouter::new().routes(routes!(create_import, list_imports)).layer(DefaultBodyLimit::disable())
}

/// A finished import.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImportResponse {
    /// Its id.
    id: Uuid,
    /// The uploaded file's name.
    file_name: String,
    /// `ofx`, `qfx` or `csv`.
    format: &'static str,
    /// Accounts created.
    accounts_created: u64,
    /// Accounts changed.
    accounts_updated: u64,
    /// Transactions created.
    transactions_created: u64,
    /// Transactions already stored, or repeated within the file.
    transactions_duplicate: u64,
    /// Holdings created.
    holdings_created: u64,
    /// Holdings changed.
    holdings_updated: u64,
    /// Quirks read past.
    warnings: Vec<String>,
    /// When.
    #[schema(value_type = String, format = DateTime)]
    created_at: Timestamp,
}

impl From<ImportRecord> for ImportResponse {
    fn from(record: ImportRecord) -> Self {
        Self {
            id: record.id.as_uuid(),
            file_name: record.file_name,
            format: record.format.as_str(),
            accounts_created: record.accounts_created,
            accounts_updated: record.accounts_updated,
            transactions_created: record.transactions_created,
            transactions_duplicate: record.transactions_duplicate,
            holdings_created: record.holdings_created,
            holdings_updated: record.holdings_updated,
            warnings: record.warnings,
            created_at: Timestamp(record.created_at),
        }
    }
}

/// The caller's imports.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImportListResponse {
    /// Newest first.
    items: Vec<ImportResponse>,
}

/// The multipart form of `POST /imports`, for the OpenAPI document. Other parts are refused.
#[derive(Debug, ToSchema)]
#[serde(deny_unknown_fields)]
#[expect(dead_code, reason = "describes the multipart form in the OpenAPI document; the handler reads the parts")]
pub struct ImportForm {
    /// The statement file.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
    /// The account to import into (required for CSV files, which do not name one).
    account_id: Option<Uuid>,
    /// `ofx`, `qfx` or `csv`; detected when left out.
    format: Option<String>,
    /// A JSON column mapping for CSV files (see API.md §6).
    csv_mapping: Option<String>,
}

/// What the form carried.
struct Upload {
    file_name: String,
    bytes: Vec<u8>,
    account_id: Option<AccountId>,
    format: Option<Format>,
    mapping: Option<CsvMapping>,
}

fn import_problem(error: ImportError) -> Problem {
    match error {
        ImportError::AccountNotFound => Problem::not_found().with_detail("No such account of yours."),
        ImportError::AccountRequired => Problem::validation(vec![FieldError::new(
            "account_id",
            "required",
            "this file does not say which account it is for; name one",
        )]),
        ImportError::Empty => invalid_statement("The file holds no statement."),
        ImportError::Store(error) => error.into(),
    }
}

fn invalid_statement(detail: impl Into<String>) -> Problem {
    Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_statement", "Invalid statement").with_detail(detail)
}

fn unsupported(detail: &str) -> Problem {
    Problem::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", "Unsupported media type")
        .with_detail(detail.to_owned())
}

/// Import a statement file: all of it or nothing.
#[utoipa::path(post, path = "/api/v1/imports", tag = "imports", security(("bearer" = [])),
    request_body(content = ImportForm, content_type = "multipart/form-data"),
    responses(
        (status = 201, body = ImportResponse),
        (status = 400, description = "malformed_multipart: the form cannot be read", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 401, body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "account_id is not one of the caller's accounts", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 413, description = "the file is larger than the configured limit", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 415, description = "not multipart, or not a statement file", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 422, description = "invalid_statement (names the line and element), validation_failed", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub(crate) async fn create_import(
    State(state): State<AppState>,
    AuthUser { principal, context, .. }: AuthUser,
    headers: HeaderMap,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<(StatusCode, Json<ImportResponse>), Problem> {
    let is_multipart = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.to_ascii_lowercase().starts_with("multipart/form-data"));
    let Ok(multipart) =
        multipart.map_err(drop).and_then(|multipart| if is_multipart { Ok(multipart) } else { Err(()) })
    else {
        return Err(unsupported("Send the file as multipart/form-data with a `file` part."));
    };
    let upload = read_upload(multipart, state.settings.import_max_bytes).await?;
    let user_id = principal.user_id;
    let file_name = upload.file_name.clone();
    let parsed = tokio::task::spawn_blocking(move || {
        dashtam_import::parse(&upload.bytes, Some(&upload.file_name), upload.format, upload.mapping.as_ref())
            .map(|(format, statement)| (format, statement, upload.account_id, upload.file_name))
    })
    .await
    .map_err(|error| {
        tracing::error!(%error, "statement parser task failed");
        Problem::internal()
    })?;
    let (format, statement, account_id, file_name) = match parsed {
        Ok(parsed) => parsed,
        Err(failure) => {
            let reason = failure.to_string();
            state.imports.record_failure(user_id, &file_name, &reason, &context).await.map_err(import_problem)?;
            return Err(match failure {
                ParseFailure::UnknownFormat => unsupported("The file is not an OFX, QFX or CSV statement."),
                ParseFailure::Parse(error) => invalid_statement(error.to_string()),
            });
        }
    };
    let request =
        ImportRequest { user_id, file_name: file_name.clone(), format: domain_format(format), account_id, statement };
    let record = match state.imports.import(request, &context).await {
        Ok(record) => record,
        Err(error) => {
            if !matches!(error, ImportError::Store(_)) {
                let _ = state.imports.record_failure(user_id, &file_name, &error.to_string(), &context).await;
            }
            return Err(import_problem(error));
        }
    };
    Ok((StatusCode::CREATED, Json(record.into())))
}

fn domain_format(format: Format) -> ImportFormat {
    match format {
        Format::Ofx => ImportFormat::Ofx,
        Format::Qfx => ImportFormat::Qfx,
        Format::Csv => ImportFormat::Csv,
    }
}

/// Reads the form, streaming the file with a running size check (a file over `max_bytes` is `413` without
/// being held in memory whole).
async fn read_upload(mut multipart: Multipart, max_bytes: usize) -> Result<Upload, Problem> {
    let unreadable = || {
        Problem::new(StatusCode::BAD_REQUEST, "malformed_multipart", "Malformed multipart body")
            .with_detail("The form could not be read.")
    };
    let mut file: Option<(String, Vec<u8>)> = None;
    let (mut account_id, mut format, mut mapping) = (None, None, None);
    let mut errors = Vec::new();
    while let Some(mut field) = multipart.next_field().await.map_err(|_| unreadable())? {
        let name = field.name().unwrap_or_default().to_owned();
        if name == "file" {
            let file_name = field.file_name().unwrap_or("statement").chars().take(255).collect();
            let mut bytes = Vec::new();
            while let Some(chunk) = field.chunk().await.map_err(|_| unreadable())? {
                if bytes.len() + chunk.len() > max_bytes {
                    return Err(Problem::payload_too_large()
                        .with_detail(format!("Statement files may be at most {max_bytes} bytes.")));
                }
                bytes.extend_from_slice(&chunk);
            }
            file = Some((file_name, bytes));
            continue;
        }
        let text = field.text().await.map_err(|_| unreadable())?;
        if text.len() > 64 * 1024 {
            return Err(Problem::payload_too_large().with_detail(format!("The {name} field is too large.")));
        }
        match name.as_str() {
            "account_id" => match Uuid::parse_str(text.trim()) {
                Ok(id) => account_id = Some(AccountId::from_uuid(id)),
                Err(_) => errors.push(FieldError::new("account_id", "invalid_uuid", "must be a UUID")),
            },
            "format" => match Format::parse(&text) {
                Some(parsed) => format = Some(parsed),
                None => errors.push(FieldError::new("format", "invalid_choice", "must be ofx, qfx or csv")),
            },
            "csv_mapping" => match serde_json::from_str::<CsvMapping>(&text) {
                Ok(parsed) => mapping = Some(parsed),
                Err(error) => errors.push(FieldError::new("csv_mapping", "invalid", error.to_string())),
            },
            other => errors.push(FieldError::new(other.to_owned(), "unknown_field", "is not a field of this form")),
        }
    }
    let Some((file_name, bytes)) = file else {
        errors.push(FieldError::new("file", "required", "attach the statement file as `file`"));
        return Err(Problem::validation(errors));
    };
    if !errors.is_empty() {
        return Err(Problem::validation(errors));
    }
    Ok(Upload { file_name, bytes, account_id, format, mapping })
}

/// The caller's imports, newest first (failed imports are audited, not listed).
#[utoipa::path(get, path = "/api/v1/imports", tag = "imports", security(("bearer" = [])),
    responses(
        (status = 200, body = ImportListResponse),
        (status = 401, body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub(crate) async fn list_imports(
    State(state): State<AppState>,
    AuthUser { principal, .. }: AuthUser,
) -> Result<Json<ImportListResponse>, Problem> {
    let records = state.imports.list(principal.user_id).await.map_err(import_problem)?;
    Ok(Json(ImportListResponse { items: records.into_iter().map(ImportResponse::from).collect() }))
}
