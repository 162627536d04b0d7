//! Fault tests (issue 11): Redis killed and restarted, Redis hung, PostgreSQL killed and restarted, and
//! PostgreSQL hung, while the application serves. Each test runs the private server it breaks
//! (`dashtam_testkit::services`) on a port of its own — never the shared ones — and every wait is bounded.
//! They run in the PostgreSQL + Redis pass and are skipped without `DASHTAM_TEST_DATABASE_URL` (CI sets it).
//!
//! Latency bounds here are generous ceilings (a timeout plus a wide margin for a loaded CI machine), there
//! to catch a request that waits on a dead dependency for good, not to measure speed.

use std::future::Future;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use dashtam_domain::Role;
use dashtam_domain::rate_limit::FailurePolicy;
use dashtam_server::Config;
use dashtam_server::config::RuleConfig;
use dashtam_testkit::http::*;
use dashtam_testkit::sandbox::{connected_user, user_with_sandbox};
use dashtam_testkit::services::{PostgresServer, RedisServer};
use dashtam_testkit::{Backend, TestApp, TestDatabase, postgres_url, random_keys};
use serde_json::json;
use sqlx::Connection;

const SKIPPED: &str = "skipped: the fault tests run in the PostgreSQL + Redis pass (DASHTAM_TEST_DATABASE_URL)";

/// `redis_timeout`: the bound on each shared-state command.
const REDIS_TIMEOUT: Duration = Duration::from_millis(300);
/// `rate_limit.redis_timeout` (its default): the bound on each rate-limit check.
const LIMIT_TIMEOUT: Duration = Duration::from_millis(100);
/// `server.readiness_timeout`.
const READINESS_TIMEOUT: Duration = Duration::from_secs(1);
/// `database.acquire_timeout`.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);
/// Added to every timeout in latency assertions.
const MARGIN: Duration = Duration::from_secs(2);
/// How long a dependency that came back may take to be used again.
const RECOVERY: Duration = Duration::from_secs(10);

const VERIFY_EMAIL: &str = "/api/v1/auth/verify-email";
const ME: &str = "/api/v1/auth/me";

/// The timeouts above, and a `verify-email` limit of `burst` an hour per address that the tests watch.
fn settings(config: &mut Config, burst: u32) {
    config.redis_timeout = REDIS_TIMEOUT;
    config.rate_limit.redis_timeout = LIMIT_TIMEOUT;
    config.server.readiness_timeout = READINESS_TIMEOUT;
    config.database.acquire_timeout = ACQUIRE_TIMEOUT;
    config.rate_limit.rules = vec![RuleConfig {
        name: "verify-email".to_owned(),
        routes: None,
        scope: None,
        burst: Some(burst),
        rate: Some("1/hour".to_owned()),
        enabled: None,
    }];
}

/// `POST /verify-email` with a token that does not exist: rate limited by address, touches no shared state,
/// and answered `400` whenever it is admitted.
async fn verify_email(app: &TestApp) -> Answer {
    answer(app.client.post(app.url(VERIFY_EMAIL)).json(&json!({"token": "x".repeat(43)}))).await
}

async fn ready(app: &TestApp) -> Answer {
    answer(app.client.get(app.url("/ready"))).await
}

/// Starts a provider's OAuth flow, whose `state` is kept in the shared state (Redis).
async fn start_authorization(app: &TestApp, token: &str, provider: &str) -> Answer {
    let path = format!("/api/v1/providers/{provider}/authorization");
    answer(app.client.post(app.url(&path)).bearer_auth(token).json(&json!({}))).await
}

/// What `future` gives, and how long it took.
async fn timed<T>(future: impl Future<Output = T>) -> (T, Duration) {
    let started = Instant::now();
    let output = future.await;
    (output, started.elapsed())
}

/// Polls `probe` until it gives something, for at most `within`; what it gave and how long it took.
async fn eventually<T, F: Future<Output = Option<T>>>(
    within: Duration,
    what: &str,
    mut probe: impl FnMut() -> F,
) -> (T, Duration) {
    let started = Instant::now();
    loop {
        if let Some(value) = probe().await {
            return (value, started.elapsed());
        }
        assert!(started.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Asserts `elapsed` stayed within `bound` plus the margin.
fn assert_within(elapsed: Duration, bound: Duration, what: &str) {
    assert!(elapsed < bound + MARGIN, "{what} took {elapsed:?}, beyond its {bound:?} timeout");
}

/// `503 service_unavailable` as a whole problem document.
fn assert_service_unavailable(answer: &Answer) {
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE, "{}", answer.body);
    assert_eq!(answer.header_text("content-type"), Some("application/problem+json"));
    let body = &answer.body;
    assert_eq!(
        (&body["type"], &body["title"], &body["status"], &body["code"]),
        (
            &json!("/problems/service_unavailable"),
            &json!("Service unavailable"),
            &json!(503),
            &json!("service_unavailable")
        ),
        "{body}"
    );
    assert!(body["detail"].as_str().is_some_and(|detail| !detail.is_empty()), "{body}");
    assert!(body["request_id"].as_str().is_some_and(|id| !id.is_empty()), "{body}");
}

/// `/ready`'s `503 not_ready` naming `failing` (and only it) as unavailable.
fn assert_not_ready(answer: &Answer, failing: &str) {
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE, "{}", answer.body);
    assert_eq!(answer.header_text("content-type"), Some("application/problem+json"));
    assert_eq!(answer.body["code"], "not_ready", "{}", answer.body);
    let healthy = if failing == "cache" { "database" } else { "cache" };
    assert_eq!(answer.body["checks"][failing], "unavailable", "{}", answer.body);
    assert_eq!(answer.body["checks"][healthy], "ok", "{}", answer.body);
}

/// `dashtam_rate_limit_backend_failures_total{backend="redis"}`.
async fn redis_failures(app: &TestApp) -> u64 {
    let text = app.client.get(app.url("/metrics")).send().await.expect("metrics").text().await.expect("text");
    text.lines()
        .find_map(|line| line.strip_prefix(r#"dashtam_rate_limit_backend_failures_total{backend="redis"} "#))
        .and_then(|count| count.parse().ok())
        .unwrap_or(0)
}

/// The session an access token belongs to.
fn session_of(app: &TestApp, access_token: &str) -> String {
    let grant = app.state.access_tokens.verify(access_token, app.state.clock.now()).expect("a valid token");
    grant.session_id.to_string()
}

#[tokio::test]
async fn with_redis_killed_limits_fail_open_or_closed_revocations_hold_and_all_recovers_without_a_restart() {
    let Some(database) = TestDatabase::postgres().await else {
        eprintln!("{SKIPPED}");
        return;
    };
    const BURST: u32 = 3;
    let mut redis = RedisServer::start().await;
    let redis_url = redis.url();
    let first = TestApp::spawn_configured(database, |config| {
        random_keys(config);
        config.redis_url = Some(redis_url.into());
        settings(config, BURST);
    })
    .await;
    let second = first.spawn_peer(|config| settings(config, BURST)).await;
    let closed = first
        .spawn_peer(|config| {
            settings(config, BURST);
            config.rate_limit.failure_policy = FailurePolicy::Closed;
        })
        .await;
    let ada = created_and_logged_in(&first, "ada@example.com", Role::User).await;
    let phone = logged_in(&first, "ada@example.com").await;
    let (bob, provider) = user_with_sandbox(&first, "bob@example.com").await;
    let (carol, connection) = connected_user(&first, "carol@example.com").await;
    let sync = format!("/api/v1/providers/{connection}/sync");

    // While Redis runs, one limit holds across the instances.
    for remaining in [2, 1, 0] {
        let admitted = verify_email(&first).await;
        assert_eq!(admitted.status, StatusCode::BAD_REQUEST, "{}", admitted.body);
        assert_eq!(admitted.header("x-ratelimit-remaining"), Some(remaining));
    }
    assert_eq!(verify_email(&second).await.status, StatusCode::TOO_MANY_REQUESTS);

    redis.kill();

    let (not_ready, elapsed) = timed(ready(&first)).await;
    assert_not_ready(&not_ready, "cache");
    assert_within(elapsed, READINESS_TIMEOUT, "/ready with Redis down");

    // Failing open (the default), requests are served unlimited — the bucket above is empty — and counted.
    for _ in 0..5 {
        let (served, elapsed) = timed(verify_email(&first)).await;
        assert_eq!(served.status, StatusCode::BAD_REQUEST, "{}", served.body);
        assert!(served.header("x-ratelimit-limit").is_none(), "no limit was checked");
        assert_within(elapsed, LIMIT_TIMEOUT, "a rate-limited request with Redis down");
    }
    let failures = redis_failures(&first).await;
    assert!(failures >= 5, "{failures} rate-limit backend failures counted");
    // Failing closed where configured so.
    let (refused, elapsed) = timed(verify_email(&closed)).await;
    assert_service_unavailable(&refused);
    assert_eq!(refused.header("retry-after"), Some(1));
    assert_within(elapsed, LIMIT_TIMEOUT, "a fail-closed refusal");

    // Revocation is the database's: a session ended now is refused at once on another instance.
    let path = format!("/api/v1/auth/sessions/{}", session_of(&first, &phone.access));
    let (status, body) = delete_as(&first, &ada.access, &path).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = get_as(&second, &phone.access, ME).await;
    assert_eq!((status, code(&body)), (StatusCode::UNAUTHORIZED, "session_revoked"), "{body}");
    assert_eq!(get_as(&second, &ada.access, ME).await.0, StatusCode::OK);

    // What needs Redis itself (an OAuth flow's state, a sync's lock) is refused as unavailable, promptly.
    let (refused, elapsed) = timed(start_authorization(&first, &bob, &provider)).await;
    assert_service_unavailable(&refused);
    assert_within(elapsed, REDIS_TIMEOUT, "an OAuth start with Redis down");
    let (refused, elapsed) =
        timed(answer(first.client.post(first.url(&sync)).bearer_auth(&carol).json(&json!({})))).await;
    assert_service_unavailable(&refused);
    assert_within(elapsed, REDIS_TIMEOUT, "a sync with Redis down");

    redis.restart().await;

    // Every instance recovers on its own.
    let (_, ready_in) =
        eventually(RECOVERY, "ready again", || async { (ready(&first).await.status == StatusCode::OK).then_some(()) })
            .await;
    for instance in [&second, &closed] {
        eventually(RECOVERY, "peer ready again", || async move {
            (ready(instance).await.status == StatusCode::OK).then_some(())
        })
        .await;
    }
    // Limits are enforced again, across the instances. The restarted Redis lost its buckets, so each starts
    // full; answers given unlimited (or refused, failing closed) before a limiter reconnects take nothing.
    for (instance, remaining) in [(&first, 2), (&closed, 1), (&second, 0)] {
        let (admitted, _) = eventually(RECOVERY, "limits checked again", || async move {
            let answer = verify_email(instance).await;
            answer.header("x-ratelimit-remaining").is_some().then_some(answer)
        })
        .await;
        assert_eq!(admitted.status, StatusCode::BAD_REQUEST, "{}", admitted.body);
        assert_eq!(admitted.header("x-ratelimit-remaining"), Some(remaining));
    }
    assert_eq!(verify_email(&first).await.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(start_authorization(&first, &bob, &provider).await.status, StatusCode::OK);
    let (status, synced) = post_as(&first, &carol, &sync, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{synced}");

    // A revocation made now reaches the other instance within a second.
    let tablet = logged_in(&first, "ada@example.com").await;
    assert_eq!(get_as(&second, &tablet.access, ME).await.0, StatusCode::OK);
    let revoking = Instant::now();
    let path = format!("/api/v1/auth/sessions/{}", session_of(&first, &tablet.access));
    assert_eq!(delete_as(&first, &ada.access, &path).await.0, StatusCode::OK);
    eventually(Duration::from_secs(1), "the revocation on the other instance", || async {
        let (status, body) = get_as(&second, &tablet.access, ME).await;
        (status == StatusCode::UNAUTHORIZED && code(&body) == "session_revoked").then_some(())
    })
    .await;
    let propagated_in = revoking.elapsed();
    eprintln!("Redis restarted: ready again in {ready_in:?}; a revocation refused on the peer {propagated_in:?} later");
}

#[tokio::test]
async fn a_hung_redis_holds_no_request_beyond_its_timeouts_and_service_resumes_with_it() {
    let Some(database) = TestDatabase::postgres().await else {
        eprintln!("{SKIPPED}");
        return;
    };
    let redis = RedisServer::start().await;
    let redis_url = redis.url();
    let app = TestApp::spawn_configured(database, |config| {
        config.redis_url = Some(redis_url.into());
        settings(config, 1_000);
    })
    .await;
    let (token, provider) = user_with_sandbox(&app, "ada@example.com").await;
    // Connected and answering before the hang.
    assert!(verify_email(&app).await.header("x-ratelimit-limit").is_some());
    assert_eq!(start_authorization(&app, &token, &provider).await.status, StatusCode::OK);
    assert_eq!(ready(&app).await.status, StatusCode::OK);

    redis.pause();

    // Everything at once, as traffic would arrive: nothing waits on Redis beyond its own timeout.
    let limited = futures::future::join_all((0..8).map(|_| timed(verify_email(&app))));
    let (limited, (not_ready, ready_took), (oauth, oauth_took), ((me, _), me_took)) = tokio::join!(
        limited,
        timed(ready(&app)),
        timed(start_authorization(&app, &token, &provider)),
        timed(get_as(&app, &token, ME)),
    );
    for (served, elapsed) in &limited {
        assert_eq!(served.status, StatusCode::BAD_REQUEST, "{}", served.body);
        assert!(served.header("x-ratelimit-limit").is_none(), "failed open");
        assert_within(*elapsed, LIMIT_TIMEOUT, "a rate-limited request with Redis hung");
    }
    assert_not_ready(&not_ready, "cache");
    assert_within(ready_took, READINESS_TIMEOUT, "/ready with Redis hung");
    assert_service_unavailable(&oauth);
    assert_within(oauth_took, REDIS_TIMEOUT, "an OAuth start with Redis hung");
    assert_eq!(me, StatusCode::OK);
    assert_within(me_took, LIMIT_TIMEOUT, "an authenticated read with Redis hung");

    redis.resume();

    let (_, ready_in) =
        eventually(RECOVERY, "ready again", || async { (ready(&app).await.status == StatusCode::OK).then_some(()) })
            .await;
    eventually(RECOVERY, "limits checked again", || async {
        verify_email(&app).await.header("x-ratelimit-limit").map(|_| ())
    })
    .await;
    assert_eq!(start_authorization(&app, &token, &provider).await.status, StatusCode::OK);
    let slowest = limited.iter().map(|(_, elapsed)| *elapsed).max().unwrap_or_default();
    eprintln!(
        "Redis hung: slowest limited request {slowest:?}, /ready {ready_took:?}, OAuth start {oauth_took:?}, \
         /me {me_took:?}; ready again {ready_in:?} after SIGCONT"
    );
}

/// An OFX bank statement with `count` transactions.
fn ofx_statement(count: usize) -> String {
    let mut text = String::from(
        "OFXHEADER:100\nDATA:OFXSGML\nVERSION:102\nSECURITY:NONE\nENCODING:USASCII\nCHARSET:1252\n\
         COMPRESSION:NONE\nOLDFILEUID:NONE\nNEWFILEUID:NONE\n\n<OFX><BANKMSGSRSV1><STMTTRNRS><TRNUID>1<STMTRS>\
         <CURDEF>USD<BANKACCTFROM><BANKID>1<ACCTID>FAULT-1<ACCTTYPE>CHECKING</BANKACCTFROM><BANKTRANLIST>\n",
    );
    for i in 0..count {
        let (month, day, cents) = (1 + i % 12, 1 + i % 28, i % 100_000);
        text.push_str(&format!(
            "<STMTTRN><TRNTYPE>DEBIT<DTPOSTED>2025{month:02}{day:02}<TRNAMT>-{}.{:02}<FITID>F{i}<NAME>Shop {}\
             </STMTTRN>\n",
            cents / 100,
            cents % 100,
            i % 97
        ));
    }
    text.push_str("</BANKTRANLIST><LEDGERBAL><BALAMT>100.00<DTASOF>20251231</LEDGERBAL></STMTRS></STMTTRNRS>");
    text.push_str("</BANKMSGSRSV1></OFX>\n");
    text
}

async fn import(app: &TestApp, token: &str, statement: &str) -> Answer {
    let file = reqwest::multipart::Part::bytes(statement.as_bytes().to_vec()).file_name("statement.ofx");
    let form = reqwest::multipart::Form::new().part("file", file);
    answer(app.client.post(app.url("/api/v1/imports")).bearer_auth(token).multipart(form)).await
}

/// Rows of `table`, counted straight in the database.
async fn rows(url: &str, table: &str) -> i64 {
    let mut connection = sqlx::PgConnection::connect(url).await.expect("connect");
    let count = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}")).fetch_one(&mut connection).await;
    let _ = connection.close().await;
    count.expect("count rows")
}

/// Waits (at most 30 s) until the application's import transaction has written transactions and not yet
/// committed, as PostgreSQL itself reports it.
async fn import_transaction_in_flight(url: &str) {
    let mut connection = sqlx::PgConnection::connect(url).await.expect("connect");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let writing: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE application_name = 'dashtam' \
             AND backend_xid IS NOT NULL AND query LIKE 'INSERT INTO transactions%')",
        )
        .fetch_one(&mut connection)
        .await
        .expect("read pg_stat_activity");
        if writing {
            return;
        }
        assert!(Instant::now() < deadline, "the import never started writing");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test]
async fn with_postgresql_killed_requests_fail_fast_with_503_nothing_is_half_written_and_all_recovers() {
    if postgres_url().is_none() {
        eprintln!("{SKIPPED}");
        return;
    }
    const LINES: usize = 20_000;
    let mut postgres = PostgresServer::start().await;
    let url = postgres.url();
    let app = TestApp::spawn_configured(TestDatabase::unmanaged(url.clone(), Backend::Postgres), |config| {
        settings(config, 1_000);
        config.imports.max_file_size = 16 * 1024 * 1024;
    })
    .await;
    let token = created_and_logged_in(&app, "ada@example.com", Role::User).await.access;
    let (status, body) = patch_as(&app, &token, ME, json!({"name": "Ada Before"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) =
        post_as(&app, &token, "/api/v1/providers", json!({"provider_key": "sandbox", "alias": "Kept"})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // Killed in the middle of an import's transaction: the request fails as unavailable, promptly.
    let statement = ofx_statement(LINES);
    let (interrupted, killed) = tokio::join!(import(&app, &token, &statement), async {
        import_transaction_in_flight(&url).await;
        postgres.kill();
        Instant::now()
    });
    let interrupted_took = killed.elapsed();
    assert_service_unavailable(&interrupted);
    assert_within(interrupted_took, ACQUIRE_TIMEOUT, "the import after PostgreSQL died under it");

    // Down: liveness holds, readiness names the database, every request that needs it is a prompt 503.
    let health = answer(app.client.get(app.url("/health"))).await;
    assert_eq!(health.status, StatusCode::OK);
    let (not_ready, ready_took) = timed(ready(&app)).await;
    assert_not_ready(&not_ready, "database");
    assert_within(ready_took, READINESS_TIMEOUT, "/ready with PostgreSQL down");
    let (read, read_took) = timed(answer(app.client.get(app.url(ME)).bearer_auth(&token))).await;
    assert_service_unavailable(&read);
    assert_within(read_took, ACQUIRE_TIMEOUT, "an authenticated read with PostgreSQL down");
    let rename = app.client.patch(app.url(ME)).bearer_auth(&token).json(&json!({"name": "Ada During"}));
    let (write, write_took) = timed(answer(rename)).await;
    assert_service_unavailable(&write);
    assert_within(write_took, ACQUIRE_TIMEOUT, "a write with PostgreSQL down");
    let create = json!({"provider_key": "sandbox", "alias": "Lost"});
    let created = answer(app.client.post(app.url("/api/v1/providers")).bearer_auth(&token).json(&create)).await;
    assert_service_unavailable(&created);
    let credentials = json!({"email": "ada@example.com", "password": PASSWORD});
    assert_service_unavailable(&answer(app.client.post(app.url("/api/v1/auth/login")).json(&credentials)).await);
    let metrics = answer(app.client.get(app.url("/metrics"))).await;
    assert_eq!(metrics.status, StatusCode::OK, "metrics are served from memory");

    postgres.restart().await;

    let (_, ready_in) =
        eventually(RECOVERY, "ready again", || async { (ready(&app).await.status == StatusCode::OK).then_some(()) })
            .await;
    // Nothing the failed requests began is there, and the audit chain is whole.
    let (status, me) = get_as(&app, &token, ME).await;
    assert_eq!((status, &me["name"]), (StatusCode::OK, &json!("Ada Before")), "{me}");
    let (_, providers) = get_as(&app, &token, "/api/v1/providers").await;
    let aliases: Vec<&str> =
        providers["items"].as_array().expect("items").iter().filter_map(|p| p["alias"].as_str()).collect();
    assert_eq!(aliases, ["Kept"], "{providers}");
    assert_eq!((rows(&url, "transactions").await, rows(&url, "imports").await), (0, 0), "the import was not committed");
    let report = app.state.audit.verify().await.expect("the audit chain verifies after the crash");

    // And the same requests now succeed, on the same instance.
    let (status, body) = patch_as(&app, &token, ME, json!({"name": "Ada After"})).await;
    assert_eq!((status, &body["name"]), (StatusCode::OK, &json!("Ada After")), "{body}");
    let (status, body) = post_as(&app, &token, "/api/v1/providers", create).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let imported = import(&app, &token, &statement).await;
    assert_eq!(imported.status, StatusCode::CREATED, "{}", imported.body);
    assert_eq!(imported.body["transactions_created"], LINES);
    assert_eq!(rows(&url, "transactions").await, LINES as i64);
    let after = app.state.audit.verify().await.expect("the audit chain verifies");
    assert!(after.entries > report.entries, "the later writes were audited: {report:?} then {after:?}");
    // The mail worker lived through the outage too.
    register(&app, "bob@example.com").await;
    assert_eq!(mail_to(&app, "bob@example.com", 1).await.len(), 1, "the verification email went out");
    eprintln!(
        "PostgreSQL killed: import answered in {interrupted_took:?}, /ready {ready_took:?}, read {read_took:?}, \
         write {write_took:?}; ready again {ready_in:?} after the restart"
    );
}

#[tokio::test]
async fn a_hung_postgresql_holds_no_request_beyond_its_timeouts_and_service_resumes_with_it() {
    if postgres_url().is_none() {
        eprintln!("{SKIPPED}");
        return;
    }
    const LINES: usize = 20_000;
    const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
    let mut postgres = PostgresServer::start().await;
    let url = postgres.url();
    let app = TestApp::spawn_configured(TestDatabase::unmanaged(url.clone(), Backend::Postgres), |config| {
        settings(config, 1_000);
        config.server.request_timeout = REQUEST_TIMEOUT;
        config.imports.max_file_size = 16 * 1024 * 1024;
    })
    .await;
    let token = created_and_logged_in(&app, "ada@example.com", Role::User).await.access;

    // Hung in the middle of an import's transaction: that request is cut off at the request timeout.
    let statement = ofx_statement(LINES);
    let (interrupted, paused) = tokio::join!(import(&app, &token, &statement), async {
        import_transaction_in_flight(&url).await;
        postgres.pause();
        Instant::now()
    });
    let interrupted_took = paused.elapsed();
    assert_eq!(interrupted.status, StatusCode::SERVICE_UNAVAILABLE, "{}", interrupted.body);
    assert_eq!(interrupted.body["code"], "request_timeout", "{}", interrupted.body);
    assert_within(interrupted_took, REQUEST_TIMEOUT, "the import PostgreSQL hung under");

    // Requests arriving now wait no longer than for a connection.
    let rename = app.client.patch(app.url(ME)).bearer_auth(&token).json(&json!({"name": "Ada During"}));
    let ((health, health_took), (not_ready, ready_took), (read, read_took), (write, write_took)) = tokio::join!(
        timed(answer(app.client.get(app.url("/health")))),
        timed(ready(&app)),
        timed(answer(app.client.get(app.url(ME)).bearer_auth(&token))),
        timed(answer(rename)),
    );
    assert_eq!(health.status, StatusCode::OK);
    assert_within(health_took, Duration::ZERO, "/health with PostgreSQL hung");
    assert_not_ready(&not_ready, "database");
    assert_within(ready_took, READINESS_TIMEOUT, "/ready with PostgreSQL hung");
    assert_service_unavailable(&read);
    assert_within(read_took, ACQUIRE_TIMEOUT, "an authenticated read with PostgreSQL hung");
    assert_service_unavailable(&write);
    assert_within(write_took, ACQUIRE_TIMEOUT, "a write with PostgreSQL hung");

    postgres.resume();

    let (_, ready_in) =
        eventually(RECOVERY, "ready again", || async { (ready(&app).await.status == StatusCode::OK).then_some(()) })
            .await;
    // The abandoned transaction rolled back, the refused write never happened, and the pool's connections —
    // including the one abandoned mid-statement — serve correctly.
    let (status, me) = get_as(&app, &token, ME).await;
    assert_eq!((status, &me["name"]), (StatusCode::OK, &json!("Test User")), "{me}");
    eventually(RECOVERY, "the abandoned import rolled back", || async {
        (rows(&url, "transactions").await == 0).then_some(())
    })
    .await;
    assert_eq!(rows(&url, "imports").await, 0);
    for _ in 0..3 {
        let imported = import(&app, &token, &statement).await;
        assert!(imported.status == StatusCode::CREATED, "{}", imported.body);
    }
    assert_eq!(rows(&url, "transactions").await, LINES as i64, "imported once, then found duplicate");
    app.state.audit.verify().await.expect("the audit chain verifies");
    eprintln!(
        "PostgreSQL hung: import cut off {interrupted_took:?} after the hang, /ready {ready_took:?}, \
         read {read_took:?}, write {write_took:?}; ready again {ready_in:?} after SIGCONT"
    );
}
