//! OpenTelemetry end to end (built only with `--features otel`): the real `dashtam serve` exports its request
//! spans over OTLP/HTTP to a small collector run here on 127.0.0.1, which decodes the protobuf it receives. A
//! caller's `traceparent` continues into the exported span, the request's log lines and its audit entries;
//! without one a fresh trace does the same; spans still buffered at SIGTERM are exported before exit.

mod support;

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use prost::Message;
use serde_json::{Value, json};
use support::{Server, dashtam, user_command};
use tempfile::TempDir;

const ADMIN_EMAIL: &str = "admin@example.com";
const ADMIN_PASSWORD: &str = "a sufficiently long passphrase";
const WRONG_PASSWORD: &str = "not the right passphrase";
const LOGIN_PATH: &str = "/api/v1/auth/login";

/// A span as the collector received it.
#[derive(Debug, Clone)]
struct ExportedSpan {
    trace_id: String,
    parent_span_id: String,
    name: String,
    service_name: Option<String>,
    attributes: HashMap<String, String>,
}

/// An OTLP/HTTP receiver: `POST /v1/traces` with a protobuf `ExportTraceServiceRequest`.
struct Collector {
    endpoint: String,
    spans: Arc<Mutex<Vec<ExportedSpan>>>,
}

impl Collector {
    async fn start() -> Self {
        let spans = Arc::new(Mutex::new(Vec::new()));
        let router = axum::Router::new().route("/v1/traces", axum::routing::post(receive)).with_state(spans.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the collector");
        let endpoint = format!("http://{}", listener.local_addr().expect("collector address"));
        tokio::spawn(async move { axum::serve(listener, router).await });
        Self { endpoint, spans }
    }

    fn spans_of(&self, trace_id: &str) -> Vec<ExportedSpan> {
        self.spans.lock().expect("spans lock").iter().filter(|span| span.trace_id == trace_id).cloned().collect()
    }

    /// The spans of `trace_id`, once at least one has arrived; panics after ten seconds.
    async fn wait_for(&self, trace_id: &str) -> Vec<ExportedSpan> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let spans = self.spans_of(trace_id);
            if !spans.is_empty() {
                return spans;
            }
            assert!(Instant::now() < deadline, "no span of trace {trace_id} was exported within 10 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn receive(State(spans): State<Arc<Mutex<Vec<ExportedSpan>>>>, body: Bytes) -> impl IntoResponse {
    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
        return (StatusCode::BAD_REQUEST, Vec::new()).into_response();
    };
    let mut received = Vec::new();
    for resource_spans in request.resource_spans {
        let resource = resource_spans.resource.map(|resource| attributes(&resource.attributes)).unwrap_or_default();
        for span in resource_spans.scope_spans.into_iter().flat_map(|scope| scope.spans) {
            received.push(ExportedSpan {
                trace_id: hex(&span.trace_id),
                parent_span_id: hex(&span.parent_span_id),
                name: span.name,
                service_name: resource.get("service.name").cloned(),
                attributes: attributes(&span.attributes),
            });
        }
    }
    spans.lock().expect("spans lock").extend(received);
    let response = ExportTraceServiceResponse::default().encode_to_vec();
    ([(header::CONTENT_TYPE, "application/x-protobuf")], response).into_response()
}

fn attributes(pairs: &[KeyValue]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|pair| {
            let value = match pair.value.as_ref().and_then(|AnyValue { value }| value.as_ref()) {
                Some(any_value::Value::StringValue(text)) => text.clone(),
                Some(any_value::Value::IntValue(number)) => number.to_string(),
                Some(any_value::Value::BoolValue(flag)) => flag.to_string(),
                Some(any_value::Value::DoubleValue(number)) => number.to_string(),
                other => format!("{other:?}"),
            };
            (pair.key.clone(), value)
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// `dashtam serve` in `dir` exporting to `collector` as `dashtam-test`, with JSON logs and batches sent every
/// `schedule_delay_ms` (the SDK's `OTEL_BSP_SCHEDULE_DELAY`); no other `OTEL_*` setting of the test's own
/// environment reaches it.
fn traced_server(dir: &Path, collector: &Collector, schedule_delay_ms: u64) -> Command {
    let mut command = dashtam(dir);
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("OTEL_")) {
        command.env_remove(name);
    }
    command
        .env("DASHTAM_OTEL__ENABLED", "true")
        .env("DASHTAM_OTEL__ENDPOINT", &collector.endpoint)
        .env("DASHTAM_OTEL__SERVICE_NAME", "dashtam-test")
        .env("DASHTAM_LOG__FORMAT", "json")
        .env("OTEL_BSP_SCHEDULE_DELAY", schedule_delay_ms.to_string());
    command
}

/// A directory whose database has an administrator.
fn with_admin() -> TempDir {
    let dir = TempDir::new().expect("temp dir");
    let create = ["create", "--email", ADMIN_EMAIL, "--name", "Admin", "--admin"];
    let created = user_command(dir.path(), &create, &format!("{ADMIN_PASSWORD}\n"));
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    dir
}

/// A login with the wrong password (audited as a failed `auth.login`), with `traceparent` when given; returns
/// the response's `X-Request-ID`.
async fn failed_login(server: &Server, traceparent: Option<&str>) -> String {
    let mut request = reqwest::Client::new()
        .post(format!("http://{}{LOGIN_PATH}", server.address))
        .json(&json!({"email": ADMIN_EMAIL, "password": WRONG_PASSWORD}));
    if let Some(traceparent) = traceparent {
        request = request.header("traceparent", traceparent);
    }
    let response = request.send().await.expect("login request");
    assert_eq!(response.status(), 401);
    let request_id = response.headers().get("x-request-id").and_then(|value| value.to_str().ok()).map(str::to_owned);
    request_id.expect("the response carries X-Request-ID")
}

/// The audit entries of one request, read through the admin API.
async fn audit_entries(server: &Server, request_id: &str) -> Vec<Value> {
    let client = reqwest::Client::new();
    let base = format!("http://{}", server.address);
    let login: Value = client
        .post(format!("{base}{LOGIN_PATH}"))
        .json(&json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}))
        .send()
        .await
        .expect("admin login")
        .json()
        .await
        .expect("login JSON");
    let token = login["access_token"].as_str().expect("an access token");
    let page: Value = client
        // Request ids are `[A-Za-z0-9._-]` only: nothing to encode.
        .get(format!("{base}/api/v1/admin/audit-logs?request_id={request_id}"))
        .bearer_auth(token)
        .send()
        .await
        .expect("audit log request")
        .json()
        .await
        .expect("audit log JSON");
    page["items"].as_array().expect("a page of entries").clone()
}

/// The JSON log lines written while serving the request `request_id`.
fn request_log_lines(server: &Server, request_id: &str) -> Vec<Value> {
    server
        .log()
        .lines()
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["span"]["request_id"] == request_id)
        .collect()
}

fn is_trace_id(text: &str) -> bool {
    text.len() == 32
        && text.bytes().all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'))
        && text.bytes().any(|b| b != b'0')
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callers_trace_continues_into_the_exported_span_the_log_and_the_audit_log() {
    const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const PARENT_SPAN_ID: &str = "00f067aa0ba902b7";
    let collector = Collector::start().await;
    let dir = with_admin();
    let server = Server::start(&mut traced_server(dir.path(), &collector, 100));

    let request_id = failed_login(&server, Some(&format!("00-{TRACE_ID}-{PARENT_SPAN_ID}-01"))).await;

    let spans = collector.wait_for(TRACE_ID).await;
    let span = spans.iter().find(|span| span.parent_span_id == PARENT_SPAN_ID).expect("the request span");
    assert_eq!(span.name, format!("POST {LOGIN_PATH}"), "{span:?}");
    assert_eq!(span.attributes.get("http.route").map(String::as_str), Some(LOGIN_PATH), "{span:?}");
    assert_eq!(span.attributes.get("http.request.method").map(String::as_str), Some("POST"), "{span:?}");
    assert_eq!(span.attributes.get("http.response.status_code").map(String::as_str), Some("401"), "{span:?}");
    assert_eq!(span.attributes.get("request_id"), Some(&request_id), "{span:?}");
    assert_eq!(span.service_name.as_deref(), Some("dashtam-test"));

    let entries = audit_entries(&server, &request_id).await;
    assert!(!entries.is_empty(), "the failed login is audited");
    for entry in &entries {
        assert_eq!(entry["action"], "auth.login", "{entry}");
        assert_eq!(entry["trace_id"], TRACE_ID, "{entry}");
    }

    let lines = request_log_lines(&server, &request_id);
    assert!(lines.iter().any(|line| line["message"] == "request finished"), "{lines:#?}");
    for line in &lines {
        assert_eq!(line["span"]["trace_id"], TRACE_ID, "{line}");
    }
    assert!(server.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_traceparent_a_fresh_trace_is_exported_logged_and_audited_alike() {
    let collector = Collector::start().await;
    let dir = with_admin();
    let server = Server::start(&mut traced_server(dir.path(), &collector, 100));

    let request_id = failed_login(&server, None).await;

    let entries = audit_entries(&server, &request_id).await;
    assert!(!entries.is_empty(), "the failed login is audited");
    let trace_id = entries[0]["trace_id"].as_str().expect("the audit entry has a trace id").to_owned();
    assert!(is_trace_id(&trace_id), "{trace_id}");
    assert!(entries.iter().all(|entry| entry["trace_id"] == trace_id.as_str()), "{entries:#?}");

    let spans = collector.wait_for(&trace_id).await;
    assert_eq!(spans.len(), 1, "{spans:?}");
    assert_eq!(spans[0].name, format!("POST {LOGIN_PATH}"));
    assert_eq!(spans[0].parent_span_id, "", "a root span");
    assert_eq!(spans[0].attributes.get("request_id"), Some(&request_id));

    let lines = request_log_lines(&server, &request_id);
    assert!(!lines.is_empty());
    assert!(lines.iter().all(|line| line["span"]["trace_id"] == trace_id.as_str()), "{lines:#?}");
    assert!(server.terminate().success());
}

/// Batches go out every ten minutes here, so only the flush at shutdown can deliver these spans. The sample
/// ratio is zero: the caller's sampled trace is still exported (its decision is followed), a trace started here
/// is not, yet it still has a trace id for the log and the audit log. The log filter hides the API's own lines,
/// which must not hide its spans from the exporter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buffered_spans_are_exported_at_shutdown_and_the_callers_sampling_decision_is_followed() {
    const TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";
    let collector = Collector::start().await;
    let dir = with_admin();
    let mut command = traced_server(dir.path(), &collector, 600_000);
    command.env("DASHTAM_OTEL__SAMPLE_RATIO", "0").env("DASHTAM_LOG__FILTER", "warn,dashtam=info,dashtam_api=warn");
    let server = Server::start(&mut command);

    let sampled = failed_login(&server, Some(&format!("00-{TRACE_ID}-b7ad6b7169203331-01"))).await;
    let unsampled = failed_login(&server, None).await;
    let unsampled_entries = audit_entries(&server, &unsampled).await;
    let unsampled_trace = unsampled_entries[0]["trace_id"].as_str().expect("a trace id").to_owned();
    assert!(is_trace_id(&unsampled_trace), "{unsampled_trace}");
    assert_eq!(audit_entries(&server, &sampled).await[0]["trace_id"], TRACE_ID);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(collector.spans_of(TRACE_ID).is_empty(), "nothing is exported before the batch is due");

    let log = server.log();
    let status = tokio::task::spawn_blocking(move || server.terminate()).await.expect("terminate");
    assert!(status.success(), "{status:?}");
    let exported = collector.spans_of(TRACE_ID);
    assert_eq!(exported.len(), 1, "the buffered span was exported before exit: {exported:?}");
    assert!(collector.spans_of(&unsampled_trace).is_empty(), "a trace started here at ratio 0 is not exported");
    let lines = log.lines();
    assert!(lines.iter().any(|line| line.contains("OpenTelemetry: span exporter stopped")), "{lines:#?}");
    assert!(!lines.iter().any(|line| line.contains("request finished")), "the API's lines are filtered: {lines:#?}");
}
