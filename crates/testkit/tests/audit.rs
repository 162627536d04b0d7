//! The audit log (API.md §7) end to end: each audited action writes exactly its entry with the request's id;
//! failures survive their rolled-back transactions; the chain detects edits, deletions and truncation on
//! SQLite and PostgreSQL; the admin listing filters and pages.

use axum::http::StatusCode;
use std::sync::Arc;

use dashtam_adapters::audit_seal::HmacChainSealer;
use dashtam_adapters::opaque_tokens::{OpaqueTokens, generate_secret_base64};
use dashtam_domain::UserId;
use dashtam_domain::audit::{
    AuditAction, AuditEntry, AuditEvent, AuditLog, AuditOutcome, AuditQuery, ChainBreak, ChainReport, FIRST_CHAIN,
    VerifyError,
};
use dashtam_domain::clock::{Clock, SystemClock};
use dashtam_domain::context::RequestContext;
use dashtam_testkit::http::*;
use dashtam_testkit::{
    Backend, SQLITE_FIXED_WIDTH_INSTANT, TestApp, TestDatabase, random_keys, sqlite_trimmed_instant,
};
use serde_json::{Value, json};

/// Sends `request` with a chosen request id and returns status, body and the id the response carried.
async fn send_with_id(request: reqwest::RequestBuilder, request_id: &str) -> (StatusCode, Value, String) {
    let response = request.header("x-request-id", request_id).send().await.expect("request");
    let status = response.status();
    let echoed =
        response.headers().get("x-request-id").and_then(|value| value.to_str().ok()).unwrap_or_default().to_owned();
    (status, response.json().await.unwrap_or(Value::Null), echoed)
}

/// The entries written for one request id, oldest first.
async fn entries_for(app: &TestApp, request_id: &str) -> Vec<dashtam_domain::audit::AuditEntry> {
    let query = AuditQuery { request_id: Some(request_id.to_owned()), limit: 100, ..AuditQuery::default() };
    let mut entries = app.state.audit.query(&query).await.expect("read the audit log");
    entries.reverse();
    entries
}

/// Asserts that `request_id` wrote exactly one entry, with this action and outcome, and returns it.
async fn only_entry(app: &TestApp, request_id: &str, action: &str, outcome: &str) -> dashtam_domain::audit::AuditEntry {
    let entries = entries_for(app, request_id).await;
    let summary: Vec<(&str, &str)> =
        entries.iter().map(|entry| (entry.action.as_str(), entry.outcome.as_str())).collect();
    assert_eq!(summary, vec![(action, outcome)], "entries of request {request_id}");
    entries.into_iter().next().expect("one entry")
}

#[tokio::test]
async fn every_authentication_action_writes_its_entry_with_the_request_id_and_context() {
    let app = TestApp::spawn().await;
    let client = &app.client;

    let (status, _, echoed) = send_with_id(
        client
            .post(app.url("/api/v1/auth/register"))
            .header("user-agent", "AuditTest/1.0")
            .json(&json!({"email": "ada@example.com", "password": PASSWORD, "name": "Ada"})),
        "req-register",
    )
    .await;
    assert_eq!((status, echoed.as_str()), (StatusCode::CREATED, "req-register"));
    let registered = only_entry(&app, "req-register", "user.registered", "success").await;
    assert_eq!(registered.method.as_deref(), Some("POST"));
    assert_eq!(registered.route.as_deref(), Some("/api/v1/auth/register"));
    assert_eq!(registered.path.as_deref(), Some("/api/v1/auth/register"));
    assert_eq!(registered.ip_address.as_deref(), Some("127.0.0.1"));
    assert_eq!(registered.user_agent.as_deref(), Some("AuditTest/1.0"));
    assert_eq!(registered.actor, "anonymous");
    let user_id = registered.user_id.expect("about the new user");

    let token = token_from_mail(&app, "ada@example.com", "verify-email", 1).await;
    let request = client.post(app.url("/api/v1/auth/verify-email")).json(&json!({"token": token}));
    assert_eq!(send_with_id(request, "req-verify").await.0, StatusCode::OK);
    assert_eq!(only_entry(&app, "req-verify", "user.email_verified", "success").await.user_id, Some(user_id));

    let request = client.post(app.url("/api/v1/auth/verify-email")).json(&json!({"token": token}));
    assert_eq!(send_with_id(request, "req-verify-again").await.0, StatusCode::BAD_REQUEST);
    only_entry(&app, "req-verify-again", "user.email_verified", "failure").await;

    // A failed login's entry survives, though nothing else of that request is kept.
    let request = client
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({"email": "ada@example.com", "password": "wrong password entirely"}));
    assert_eq!(send_with_id(request, "req-login-bad").await.0, StatusCode::UNAUTHORIZED);
    let failed = only_entry(&app, "req-login-bad", "auth.login", "failure").await;
    // About Ada, but nobody proved to be her.
    assert_eq!((failed.user_id, failed.actor.as_str()), (Some(user_id), "anonymous"));
    assert!(failed.details.contains("wrong_password"), "{}", failed.details);
    assert!(!failed.details.contains("wrong password entirely"), "no password in the log");

    let request = client
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({"email": "nobody@example.com", "password": "whatever it is"}));
    assert_eq!(send_with_id(request, "req-login-unknown").await.0, StatusCode::UNAUTHORIZED);
    let unknown = only_entry(&app, "req-login-unknown", "auth.login", "failure").await;
    assert!(unknown.details.contains("unknown_account") && unknown.user_id.is_none(), "{unknown:?}");

    let request =
        client.post(app.url("/api/v1/auth/login")).json(&json!({"email": "ada@example.com", "password": PASSWORD}));
    let (status, body, _) = send_with_id(request, "req-login").await;
    assert_eq!(status, StatusCode::OK);
    let login = only_entry(&app, "req-login", "auth.login", "success").await;
    let session_id = login.session_id.expect("the new session");
    // The password proved who is acting, though the request carried no access token.
    assert_eq!(login.actor, user_id.to_string());
    let first = tokens(&body);

    let request = client.post(app.url("/api/v1/auth/refresh")).json(&json!({"refresh_token": first.refresh}));
    let (status, body, _) = send_with_id(request, "req-refresh").await;
    assert_eq!(status, StatusCode::OK);
    let refreshed = only_entry(&app, "req-refresh", "auth.refresh", "success").await;
    assert_eq!(
        (refreshed.user_id, refreshed.session_id, refreshed.actor),
        (Some(user_id), Some(session_id), user_id.to_string())
    );
    let second = tokens(&body);

    let request = client.patch(app.url("/api/v1/auth/me")).bearer_auth(&second.access).json(&json!({"name": "Ada L."}));
    assert_eq!(send_with_id(request, "req-rename").await.0, StatusCode::OK);
    let renamed = only_entry(&app, "req-rename", "user.profile_updated", "success").await;
    assert_eq!((renamed.actor.clone(), renamed.session_id), (user_id.to_string(), Some(session_id)));

    let request = client
        .post(app.url("/api/v1/auth/change-password"))
        .bearer_auth(&second.access)
        .json(&json!({"current_password": "not my password at all", "new_password": "another long passphrase"}));
    assert_eq!(send_with_id(request, "req-change-bad").await.0, StatusCode::BAD_REQUEST);
    only_entry(&app, "req-change-bad", "auth.password_changed", "failure").await;

    let request = client
        .post(app.url("/api/v1/auth/change-password"))
        .bearer_auth(&second.access)
        .json(&json!({"current_password": PASSWORD, "new_password": "another long passphrase"}));
    assert_eq!(send_with_id(request, "req-change").await.0, StatusCode::OK);
    only_entry(&app, "req-change", "auth.password_changed", "success").await;

    let request = client.post(app.url("/api/v1/auth/logout")).bearer_auth(&second.access).json(&json!({}));
    assert_eq!(send_with_id(request, "req-logout").await.0, StatusCode::OK);
    assert_eq!(only_entry(&app, "req-logout", "auth.logout", "success").await.session_id, Some(session_id));

    let request =
        client.post(app.url("/api/v1/auth/request-password-reset")).json(&json!({"email": "ada@example.com"}));
    assert_eq!(send_with_id(request, "req-reset-request").await.0, StatusCode::ACCEPTED);
    only_entry(&app, "req-reset-request", "auth.password_reset_requested", "success").await;
    let reset_token = token_from_mail(&app, "ada@example.com", "reset-password", 4).await;
    let request = client
        .post(app.url("/api/v1/auth/reset-password"))
        .json(&json!({"token": reset_token, "new_password": "a third long passphrase"}));
    assert_eq!(send_with_id(request, "req-reset").await.0, StatusCode::OK);
    only_entry(&app, "req-reset", "auth.password_reset", "success").await;

    let report = app.state.audit.verify().await.expect("the chain verifies");
    assert_eq!(report.entries, 13, "one entry per request above");
}

#[tokio::test]
async fn refresh_token_reuse_and_lockout_are_recorded() {
    let app = TestApp::spawn_configured(TestDatabase::preferred().await, |config| {
        config.auth.lockout_threshold = 2;
        config.auth.refresh_retry_grace = std::time::Duration::ZERO;
    })
    .await;
    verified_user(&app, "bob@example.com").await;
    let first = logged_in(&app, "bob@example.com").await;
    let (status, _) = post(&app, "/api/v1/auth/refresh", json!({"refresh_token": first.refresh})).await;
    assert_eq!(status, StatusCode::OK);
    let request = app.client.post(app.url("/api/v1/auth/refresh")).json(&json!({"refresh_token": first.refresh}));
    let (status, body, _) = send_with_id(request, "req-reuse").await;
    assert_eq!((status, code(&body)), (StatusCode::UNAUTHORIZED, "refresh_token_reused"));
    let reuse = only_entry(&app, "req-reuse", "auth.refresh_token_reuse", "denied").await;
    assert!(reuse.session_id.is_some() && reuse.details.contains("\"session_ended\":true"), "{reuse:?}");
    // A rotated token proves nothing about who presents it.
    assert_eq!(reuse.actor, "anonymous");

    for attempt in ["req-bad-1", "req-bad-2"] {
        let request = app
            .client
            .post(app.url("/api/v1/auth/login"))
            .json(&json!({"email": "bob@example.com", "password": "not the password"}));
        assert_eq!(send_with_id(request, attempt).await.0, StatusCode::UNAUTHORIZED);
    }
    let entries = entries_for(&app, "req-bad-2").await;
    let actions: Vec<(&str, &str)> =
        entries.iter().map(|entry| (entry.action.as_str(), entry.outcome.as_str())).collect();
    assert_eq!(actions, vec![("auth.login", "failure"), ("auth.lockout", "success")]);
    let request =
        app.client.post(app.url("/api/v1/auth/login")).json(&json!({"email": "bob@example.com", "password": PASSWORD}));
    assert_eq!(send_with_id(request, "req-locked").await.0, StatusCode::LOCKED);
    assert!(only_entry(&app, "req-locked", "auth.login", "denied").await.details.contains("account_locked"));
}

#[tokio::test]
async fn admins_list_filter_and_page_the_log_and_users_are_refused_and_recorded() {
    let app = TestApp::spawn().await;
    let admin = logged_in_admin(&app, "root@example.com").await.access;
    verified_user(&app, "carol@example.com").await;
    let carol = logged_in(&app, "carol@example.com").await;

    let request = app.client.get(app.url("/api/v1/admin/audit-logs")).bearer_auth(&carol.access);
    let (status, body, _) = send_with_id(request, "req-snoop").await;
    assert_eq!((status, code(&body)), (StatusCode::FORBIDDEN, "forbidden"));
    let denied = only_entry(&app, "req-snoop", "access.denied", "denied").await;
    assert_eq!(denied.route.as_deref(), Some("/api/v1/admin/audit-logs"));

    let (status, page) = get_as(&app, &admin, "/api/v1/admin/audit-logs?action=auth.login&limit=1").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let items = page["items"].as_array().expect("items");
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["action"], "auth.login");
    assert!(items[0]["occurred_at"].as_str().is_some_and(|at| at.ends_with('Z')));
    let cursor = page["next_cursor"].as_str().expect("a second login entry exists");
    let (status, next) =
        get_as(&app, &admin, &format!("/api/v1/admin/audit-logs?action=auth.login&limit=1&cursor={cursor}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_ne!(next["items"][0]["id"], items[0]["id"]);
    assert!(next["items"][0]["seq"].as_i64() < items[0]["seq"].as_i64());

    let (_, by_request) = get_as(&app, &admin, "/api/v1/admin/audit-logs?request_id=req-snoop").await;
    assert_eq!(by_request["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(by_request["next_cursor"], Value::Null);

    for bad in [
        "action=nope",
        "limit=0",
        "limit=201",
        "cursor=garbage",
        "user_id=not-a-uuid",
        "from=2026-01-01T00:00:00",
        "surprise=1",
    ] {
        let (status, body) = get_as(&app, &admin, &format!("/api/v1/admin/audit-logs?{bad}")).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {body}");
    }
    let (status, body) = get_as(&app, &admin, "/api/v1/admin/audit-logs?from=2026-01-02&to=2026-01-01").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
}

/// Makes a few entries and returns the app, for tampering.
async fn app_with_history(database: TestDatabase) -> TestApp {
    let app = TestApp::spawn_configured(database, |_| {}).await;
    verified_user(&app, "dave@example.com").await;
    for _ in 0..2 {
        logged_in(&app, "dave@example.com").await;
    }
    let report = app.state.audit.verify().await.expect("an untouched chain verifies");
    assert!(report.entries >= 4, "{report:?}");
    app
}

/// SQL that runs with the append-only triggers out of the way, as an attacker with full database access would.
fn bypassing_triggers(app: &TestApp, statement: &str) -> String {
    match app.state.store.backend() {
        dashtam_domain::ports::StoreBackend::Sqlite => {
            format!("DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete; {statement};")
        }
        dashtam_domain::ports::StoreBackend::Postgres => {
            format!("SET session_replication_role = replica; {statement}; SET session_replication_role = origin;")
        }
    }
}

fn on_postgres(app: &TestApp) -> bool {
    matches!(app.state.store.backend(), dashtam_domain::ports::StoreBackend::Postgres)
}

async fn another_database(backend: Backend) -> TestDatabase {
    match backend {
        Backend::Sqlite => TestDatabase::sqlite(),
        Backend::Postgres => TestDatabase::postgres().await.expect("PostgreSQL is configured"),
    }
}

async fn broken_chain(app: &TestApp) -> ChainBreak {
    match app.state.audit.verify().await {
        Err(VerifyError::Broken(broken)) => broken,
        other => panic!("expected a broken chain, got {other:?}"),
    }
}

#[tokio::test]
async fn the_log_is_append_only_and_tampering_is_detected_on_every_backend() {
    for database in TestDatabase::every_backend().await {
        let backend = database.backend;
        // The triggers refuse edits and deletions outright.
        let app = app_with_history(database).await;
        assert!(app.execute_raw_sql("UPDATE audit_log SET outcome = 'success' WHERE seq = 1").await.is_err());
        assert!(app.execute_raw_sql("DELETE FROM audit_log WHERE seq = 1").await.is_err());
        app.state.audit.verify().await.expect("refused changes left the chain intact");

        // An edited entry.
        app.execute_raw_sql(&bypassing_triggers(&app, "UPDATE audit_log SET ip_address = '10.9.9.9' WHERE seq = 2"))
            .await
            .expect("tamper");
        assert_eq!(broken_chain(&app).await, ChainBreak::HashMismatch { seq: 2 });
        drop(app);

        // A deleted entry in the middle.
        let app = app_with_history(another_database(backend).await).await;
        app.execute_raw_sql(&bypassing_triggers(&app, "DELETE FROM audit_log WHERE seq = 2")).await.expect("tamper");
        assert_eq!(broken_chain(&app).await, ChainBreak::Gap { chain: FIRST_CHAIN, expected: 2, found: 3 });
        drop(app);

        if backend == Backend::Postgres {
            // An entry moved onto another chain, or onto one that does not exist (SQLite has only the one chain,
            // computed, not stored).
            let app = app_with_history(another_database(backend).await).await;
            app.execute_raw_sql(&bypassing_triggers(&app, "UPDATE audit_log SET chain = 2 WHERE chain_seq = 3"))
                .await
                .expect("tamper");
            assert_eq!(broken_chain(&app).await, ChainBreak::Gap { chain: 2, expected: 1, found: 3 });
            app.execute_raw_sql(&bypassing_triggers(&app, "UPDATE audit_log SET chain = 17 WHERE chain_seq = 3"))
                .await
                .expect("tamper");
            assert!(matches!(broken_chain(&app).await, ChainBreak::UnknownChain { chain: 17, .. }));
        }
    }
}

#[tokio::test]
async fn removing_the_newest_entries_or_forging_the_head_is_detected() {
    for database in TestDatabase::every_backend().await {
        let app = app_with_history(database).await;
        let head = app.state.audit.heads().await.expect("heads").remove(0);
        assert_eq!(head.chain, FIRST_CHAIN, "one writer at a time keeps to the first chain");
        app.execute_raw_sql(&bypassing_triggers(&app, &format!("DELETE FROM audit_log WHERE seq = {}", head.seq)))
            .await
            .expect("truncate");
        let (chain, last) = (FIRST_CHAIN, head.seq - 1);
        assert_eq!(broken_chain(&app).await, ChainBreak::HeadMismatch { chain, last, head: head.seq });

        // Pointing the head back at the new last entry without the sealing key is caught by the seal.
        let previous = app.state.audit.query(&AuditQuery { limit: 1, ..AuditQuery::default() }).await.expect("read");
        let last = &previous[0];
        app.execute_raw_sql(&format!(
            "UPDATE audit_chain SET head_seq = {}, head_hash = '{}' WHERE id = 1",
            last.seq, last.hash
        ))
        .await
        .expect("forge the head");
        assert_eq!(broken_chain(&app).await, ChainBreak::BadSeal { which: "head", chain: FIRST_CHAIN });

        // Another chain's sealed head does not stand in for this one's: seals name their chain.
        if on_postgres(&app) {
            app.execute_raw_sql(&format!(
                "UPDATE audit_chain SET head_seq = {}, head_hash = '{}', head_seal = (SELECT head_seal FROM audit_chain \
                 WHERE id = 1) WHERE id = 2",
                head.seq, head.hash
            ))
            .await
            .expect("copy a seal");
            assert!(matches!(broken_chain(&app).await, ChainBreak::BadSeal { which: "head", .. }));
        }
    }
}

#[tokio::test]
async fn purging_keeps_the_rest_verifiable_and_concurrent_writers_keep_one_chain() {
    for database in TestDatabase::every_backend().await {
        let app = app_with_history(database).await;
        let before = app.state.audit.verify().await.expect("verifies");
        let context = RequestContext::command_line("test purge");
        let future = app.state.clock.now() + time::Duration::seconds(1);
        let deleted = app.state.audit.purge_before(future, &context).await.expect("purge");
        assert_eq!(deleted, before.entries);
        let after = app.state.audit.verify().await.expect("still verifies after the purge");
        let first_chain = |report: &ChainReport| report.chains[0].clone();
        assert_eq!(
            (after.entries, first_chain(&after).checkpoint.seq),
            (1, first_chain(&before).head.seq),
            "only the purge's own entry"
        );

        // Entries at or before the checkpoint may go; later ones stay protected.
        assert!(app.execute_raw_sql("DELETE FROM audit_log WHERE seq > 0").await.is_err());

        let writers = (0..20).map(|index| {
            let audit = app.state.audit.clone();
            async move {
                let event = dashtam_domain::audit::AuditEvent::new(
                    dashtam_domain::audit::AuditAction::KeysRotated,
                    dashtam_domain::audit::AuditOutcome::Success,
                )
                .detail("writer", index);
                audit.record(&RequestContext::command_line("test"), event).await
            }
        });
        for written in futures::future::join_all(writers).await {
            written.expect("write");
        }
        let report = app.state.audit.verify().await.expect("concurrent appends keep every chain whole");
        assert_eq!(report.entries, 21);
        let chains_written = report.chains.iter().filter(|state| state.head.seq > state.checkpoint.seq).count();
        if on_postgres(&app) {
            // Twenty transactions at once on ten connections: they do not wait for one another on one chain.
            assert!(chains_written > 1, "{:?}", report.chains);
        } else {
            assert_eq!(chains_written, 1);
        }
    }
}

/// `entries` were verified, and (with nothing purged) they are exactly the positions the chains' heads reached.
fn assert_every_head_is_its_chains_last_entry(report: &ChainReport, entries: u64) {
    assert_eq!(report.entries, entries);
    let positions: i64 = report.chains.iter().map(|state| state.head.seq).sum();
    assert_eq!(
        u64::try_from(positions).ok(),
        Some(entries),
        "every chain's head is its last entry: {:?}",
        report.chains
    );
}

/// The sealer a process would build from a fresh `keys.token_hash`.
fn chain_sealer() -> Arc<HmacChainSealer> {
    let tokens = OpaqueTokens::from_base64(&generate_secret_base64(32).expect("randomness")).expect("key");
    Arc::new(HmacChainSealer::new(&tokens))
}

/// Each store remembers the chain head it committed last instead of reading it back inside every audited
/// transaction. That hint must never fork the chain: not after an append whose transaction rolled back, and
/// not when another process or instance (here: a second pool on the same database) appends in between.
#[tokio::test]
async fn a_remembered_head_never_forks_the_chain_after_a_rollback_or_another_writer() {
    for database in TestDatabase::every_backend().await {
        remembered_head_never_forks(database).await;
    }
}

async fn remembered_head_never_forks(database: TestDatabase) {
    let (this_process, other_process) = (database.open().await, database.open().await);
    let sealer = chain_sealer();
    let ours = AuditLog::new(this_process.store(), sealer.clone(), Arc::new(SystemClock));
    let theirs = AuditLog::new(other_process.store(), sealer, Arc::new(SystemClock));
    let context = RequestContext::command_line("test");
    let event = |step: u32| AuditEvent::new(AuditAction::KeysRotated, AuditOutcome::Success).detail("step", step);

    ours.record(&context, event(1)).await.expect("first entry");
    let mut rolled_back = this_process.store().begin().await.expect("begin");
    ours.append(&mut rolled_back, &context, event(2)).await.expect("append, never committed");
    drop(rolled_back);
    ours.record(&context, event(3)).await.expect("after the rollback");
    theirs.record(&context, event(4)).await.expect("the other process");
    ours.record(&context, event(5)).await.expect("after the other process");

    let report = ours.verify().await.expect("one unbroken chain");
    assert_eq!((report.entries, report.chains[0].head.seq), (4, 4), "entries 1, 3, 4 and 5, in that order");
    let newest_first = ours.query(&AuditQuery { limit: 10, ..AuditQuery::default() }).await.expect("list");
    let steps: Vec<&str> = newest_first.iter().map(|entry| entry.details.as_str()).collect();
    assert_eq!(steps, [r#"{"step":5}"#, r#"{"step":4}"#, r#"{"step":3}"#, r#"{"step":1}"#]);
}

#[tokio::test]
async fn two_processes_appending_at_once_keep_one_chain() {
    for database in TestDatabase::every_backend().await {
        two_processes_appending_at_once(database).await;
    }
}

async fn two_processes_appending_at_once(database: TestDatabase) {
    let processes = [database.open().await, database.open().await];
    let sealer = chain_sealer();
    let logs = processes
        .each_ref()
        .map(|process| Arc::new(AuditLog::new(process.store(), sealer.clone(), Arc::new(SystemClock))));
    let context = RequestContext::command_line("test");
    let event = |writer: usize, step: u32| {
        AuditEvent::new(AuditAction::KeysRotated, AuditOutcome::Success).detail("writer", writer).detail("step", step)
    };

    // Two entries in one transaction, then both processes appending as fast as they can.
    let mut tx = processes[0].store().begin().await.expect("begin");
    logs[0].append(&mut tx, &context, event(0, 0)).await.expect("first of two");
    logs[0].append(&mut tx, &context, event(0, 1)).await.expect("second of two");
    tx.commit().await.expect("commit both");
    let writers = logs.iter().enumerate().map(|(writer, log)| {
        let (log, context) = (Arc::clone(log), context.clone());
        tokio::spawn(async move {
            for step in 2..22 {
                log.record(&context, event(writer, step)).await.expect("append");
            }
        })
    });
    for writer in futures::future::join_all(writers).await {
        writer.expect("writer task");
    }

    let report = logs[1].verify().await.expect("one unbroken chain");
    assert_every_head_is_its_chains_last_entry(&report, 42);
    let newest_first = logs[0].query(&AuditQuery { limit: 100, ..AuditQuery::default() }).await.expect("list");
    let oldest = newest_first.iter().rev().take(2).map(|entry| entry.details.as_str()).collect::<Vec<_>>();
    assert_eq!(oldest, [r#"{"step":0,"writer":0}"#, r#"{"step":1,"writer":0}"#], "one transaction, in order");
}

/// Text of every kind (quotes, backslashes, SQL and placeholder syntax, control and non-ASCII characters, the
/// empty string) must read back exactly as it was hashed, on every backend, and the chain hold, with another
/// writer moving the head in between: both the append after the head this process remembers and its fallback
/// (the head had moved) run.
#[tokio::test]
async fn awkward_text_reads_back_as_hashed_and_the_chain_holds() {
    for database in TestDatabase::every_backend().await {
        let (ours, theirs) = (database.open().await, database.open().await);
        let sealer = chain_sealer();
        let log = AuditLog::new(ours.store(), sealer.clone(), Arc::new(SystemClock));
        let other_writer = AuditLog::new(theirs.store(), sealer, Arc::new(SystemClock));
        let awkward = [
            "it's",
            r"back\slash \' \\ E'\x41'",
            "'); DROP TABLE audit_log; --",
            "$$ $1 $tag$ :name ?",
            "ünïcødé ✓ 𝄞 \u{feff}",
            "\u{7f}\t\n\r\u{1b}[0m",
            "",
        ];
        for (step, text) in awkward.iter().enumerate() {
            let mut context = RequestContext::command_line("test");
            for field in [&mut context.request_id, &mut context.path, &mut context.user_agent, &mut context.trace_id] {
                *field = Some((*text).to_owned());
            }
            let event = AuditEvent::new(AuditAction::KeysRotated, AuditOutcome::Success).detail("text", *text);
            log.record(&context, event).await.expect("append");
            if step == 3 {
                let event = AuditEvent::new(AuditAction::KeysRotated, AuditOutcome::Success).detail("other", true);
                other_writer.record(&RequestContext::command_line("test"), event).await.expect("the other writer");
            }
        }

        let report = log.verify().await.expect("one unbroken chain");
        assert_every_head_is_its_chains_last_entry(&report, 8);
        let newest_first = log.query(&AuditQuery { limit: 100, ..AuditQuery::default() }).await.expect("list");
        let ours_in_order: Vec<&AuditEntry> =
            newest_first.iter().rev().filter(|entry| !entry.details.contains("other")).collect();
        assert_eq!(ours_in_order.len(), awkward.len());
        for (entry, text) in ours_in_order.iter().zip(awkward) {
            let read_back = [&entry.request_id, &entry.path, &entry.user_agent, &entry.trace_id];
            assert!(read_back.iter().all(|field| field.as_deref() == Some(text)), "{text:?} read back as {entry:?}");
            assert_eq!(entry.details, json!({ "text": text }).to_string());
        }
        ours.store().close().await;
        theirs.store().close().await;
    }
}

/// On PostgreSQL a refresh sends its audit entry in the rotation's statement, linked after the head its instance
/// remembers. When another instance has moved that head meanwhile, the rotation must still happen and the entry
/// go after the head as it is now: every refresh is on record exactly once, and the chain holds.
#[tokio::test]
async fn refreshes_are_recorded_once_each_while_another_instance_moves_the_head() {
    for database in TestDatabase::every_backend().await {
        let app = TestApp::spawn_configured(database, random_keys).await;
        let peer = app.spawn_peer(|_| {}).await;
        verified_user(&app, "erin@example.com").await;
        let mut current = logged_in(&app, "erin@example.com").await;
        for round in 0..4 {
            if round % 2 == 1 {
                let (status, _) = login(&peer, "erin@example.com", "not the password").await;
                assert_eq!(status, StatusCode::UNAUTHORIZED, "the peer records a failed login");
            }
            let (status, body) = post(&app, "/api/v1/auth/refresh", json!({"refresh_token": current.refresh})).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            current = tokens(&body);
        }

        let report = app.state.audit.verify().await.expect("one unbroken chain");
        let refreshes = app
            .state
            .audit
            .query(&AuditQuery { action: Some("auth.refresh".to_owned()), limit: 100, ..AuditQuery::default() })
            .await
            .expect("list");
        assert_eq!(refreshes.len(), 4, "{refreshes:?}");
        assert!(refreshes.iter().all(|entry| entry.outcome == AuditOutcome::Success));
        let failed_logins = peer
            .state
            .audit
            .query(&AuditQuery { action: Some("auth.login".to_owned()), limit: 100, ..AuditQuery::default() })
            .await
            .expect("list")
            .into_iter()
            .filter(|entry| entry.outcome != AuditOutcome::Success)
            .count();
        assert_eq!(failed_logins, 2);
        assert_every_head_is_its_chains_last_entry(&report, report.entries);
    }
}

/// The first migration that rebuilds `audit_log` on SQLite (which drops a constraint only that way); 000015
/// rebuilds it again.
const REBUILDS_THE_AUDIT_LOG: dashtam_store::SchemaVersion = 20261128000014;

/// Counts the SQLite audit entries whose time is written with all nine fractional digits.
fn fixed_width_times() -> String {
    format!("SELECT count(*) FROM audit_log WHERE occurred_at GLOB {SQLITE_FIXED_WIDTH_INSTANT}")
}

/// Rebuilding `audit_log` must carry every entry over unchanged, in both directions, with the table's
/// append-only protection intact afterwards; on SQLite, migration 000015 also rewrites times stored the old way
/// (fraction trimmed) with nine fractional digits.
#[tokio::test]
async fn the_migration_that_rebuilds_the_audit_log_keeps_every_entry_and_the_chain_both_ways() {
    for database in TestDatabase::every_backend().await {
        let opened = database.open().await;
        let log = AuditLog::new(opened.store(), chain_sealer(), Arc::new(SystemClock));
        let context = RequestContext::command_line("test");
        for step in 0..5 {
            let event = AuditEvent::new(AuditAction::KeysRotated, AuditOutcome::Success).detail("step", step);
            log.record(&context, event).await.expect("append");
        }
        let status = opened.migration_status().await.expect("status");
        let steps = status.iter().filter(|line| line.version >= REBUILDS_THE_AUDIT_LOG).count();
        assert!(steps >= 1, "the rebuild is among the applied migrations: {status:?}");
        // Read by sequence number; the admin query also needs the lookup table of migration 000015 on SQLite.
        let whole_log = || async { opened.store().audit_entries_after(0, 100).await };
        let (report, entries) = (log.verify().await.expect("verifies"), whole_log().await.expect("list"));
        assert_eq!(entries.len(), 5);

        assert_eq!(opened.migrate_down(steps).await.expect("down").len(), steps);
        // The oldest schema here has no chain columns, which the store reads: count the entries kept as they were.
        let kept_as_they_were = entries
            .iter()
            .map(|entry| format!("(seq = {} AND hash = '{}' AND details = '{}')", entry.seq, entry.hash, entry.details))
            .collect::<Vec<_>>()
            .join(" OR ");
        let kept = format!("SELECT count(*) FROM audit_log WHERE {kept_as_they_were}");
        assert_eq!(database.fetch_i64(&kept).await.expect("count"), 5);
        assert_eq!(database.fetch_i64("SELECT count(*) FROM audit_log").await.expect("count"), 5);
        if database.backend == Backend::Sqlite {
            // Times as the store wrote them before migration 000015: the fraction's trailing zeros trimmed.
            database
                .execute_raw_sql(&format!(
                    "DROP TRIGGER audit_log_no_update; \
                     UPDATE audit_log SET {}; \
                     CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log \
                     BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;",
                    sqlite_trimmed_instant("occurred_at")
                ))
                .await
                .expect("write times the old way");
            assert_eq!(database.fetch_i64(&fixed_width_times()).await.expect("count"), 0, "all trimmed");
        }
        assert_eq!(opened.migrate_up().await.expect("up").len(), steps);
        assert_eq!(whole_log().await.expect("list after up"), entries);
        if database.backend == Backend::Sqlite {
            let rewritten = database.fetch_i64(&fixed_width_times()).await.expect("count");
            assert_eq!(rewritten, entries.len() as i64, "the migration wrote every time with nine digits");
        }
        assert_eq!(log.verify().await.expect("still verifies"), report);
        let newest_first = log.query(&AuditQuery { limit: 100, ..AuditQuery::default() }).await.expect("query");
        assert!(newest_first.iter().rev().eq(entries.iter()), "the admin query finds them all after the way back");

        log.record(&context, AuditEvent::new(AuditAction::KeysRotated, AuditOutcome::Success)).await.expect("append");
        let first_head = |report: ChainReport| report.chains[0].head.seq;
        assert_eq!(first_head(log.verify().await.expect("the chain goes on")), first_head(report) + 1);
        let edit = database.execute_raw_sql("UPDATE audit_log SET actor = 'someone else' WHERE seq = 1").await;
        assert!(edit.is_err(), "entries are still append-only");
        opened.store().close().await;
    }
}

/// `dashtam audit verify` on a live server: entries appended while it walks the log are past the heads it read
/// first, and must not read as entries added behind the heads' back.
#[tokio::test]
async fn verifying_while_the_server_appends_passes() {
    for database in TestDatabase::every_backend().await {
        let opened = database.open().await;
        let log = Arc::new(AuditLog::new(opened.store(), chain_sealer(), Arc::new(SystemClock)));
        let context = RequestContext::command_line("test");
        let event = |step: usize| AuditEvent::new(AuditAction::KeysRotated, AuditOutcome::Success).detail("step", step);
        // Enough entries for the walk to take a few pages.
        let mut tx = opened.store().begin().await.expect("begin");
        for step in 0..2_500 {
            log.append(&mut tx, &context, event(step)).await.expect("append");
        }
        tx.commit().await.expect("commit");

        let appending = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let writer = {
            let (log, context, appending) = (Arc::clone(&log), context.clone(), Arc::clone(&appending));
            tokio::spawn(async move {
                let mut written = 0;
                while appending.load(std::sync::atomic::Ordering::Relaxed) {
                    log.record(&context, event(written)).await.expect("append");
                    written += 1;
                }
                written
            })
        };
        let mut appended_during = 0;
        for _ in 0..5 {
            let before = log.verify().await.expect("verifies while entries are appended");
            let after = log.verify().await.expect("verifies while entries are appended");
            appended_during += after.entries - before.entries;
        }
        appending.store(false, std::sync::atomic::Ordering::Relaxed);
        let written = writer.await.expect("writer task");
        assert!(written > 0 && appended_during > 0, "the writer appended while the log was verified");
        let report = log.verify().await.expect("verifies at rest");
        assert_eq!(report.entries, 2_500 + written as u64, "{:?}", database.backend);
        opened.store().close().await;
    }
}

/// The PostgreSQL migration that splits the audit log into sixteen chains.
const SIXTEEN_CHAINS: dashtam_store::SchemaVersion = 20261129000016;

/// Going back to one chain (migration 000016 down) is refused once another chain holds entries, whose hashes
/// cover a chain the older schema cannot hold; the log stays as it was and still verifies.
#[tokio::test]
async fn the_log_goes_back_to_one_chain_only_while_it_is_one() {
    for database in TestDatabase::every_backend().await.into_iter().filter(|db| db.backend == Backend::Postgres) {
        let opened = database.open().await;
        let log = AuditLog::new(opened.store(), chain_sealer(), Arc::new(SystemClock));
        let context = RequestContext::command_line("test");
        let event = || AuditEvent::new(AuditAction::KeysRotated, AuditOutcome::Success);
        // While one transaction holds the first chain, the next appends to another.
        let mut holding = opened.store().begin().await.expect("begin");
        log.append(&mut holding, &context, event()).await.expect("append on chain 1");
        log.record(&context, event()).await.expect("append on another chain");
        holding.commit().await.expect("commit");
        let report = log.verify().await.expect("verifies");
        let written: Vec<i16> =
            report.chains.iter().filter(|state| state.head.seq > 0).map(|state| state.head.chain).collect();
        assert_eq!(written.len(), 2, "{:?}", report.chains);

        // The migrations after it come off first; they hold nothing the older schema cannot.
        let status = opened.migration_status().await.expect("status");
        let newer = status.iter().filter(|line| line.version > SIXTEEN_CHAINS).count();
        assert_eq!(opened.migrate_down(newer).await.expect("later migrations down").len(), newer);
        assert!(opened.migrate_down(1).await.is_err(), "entries on chain {} have nowhere to go", written[1]);
        assert_eq!(log.verify().await.expect("still verifies"), report);
        opened.store().close().await;
    }
}

/// On PostgreSQL the chains are the sixteen rows migration 000016 made; a row for any other chain is refused
/// (by a trigger on INSERT since migration 000017, which the moves of a head do not fire), and the chains
/// already there move on as before.
#[tokio::test]
async fn no_chain_beyond_the_sixteen_can_be_added() {
    for database in TestDatabase::every_backend().await.into_iter().filter(|db| db.backend == Backend::Postgres) {
        let opened = database.open().await;
        for id in [0, 17, -1] {
            let refused = database
                .execute_raw_sql(&format!(
                    "INSERT INTO audit_chain (id, head_seq, head_hash, checkpoint_seq, checkpoint_hash) \
                     VALUES ({id}, 0, repeat('0', 64), 0, repeat('0', 64))"
                ))
                .await
                .expect_err("no such chain");
            let code = refused.as_database_error().and_then(|error| error.code()).map(|code| code.into_owned());
            assert_eq!(code.as_deref(), Some("23514"), "a check violation for chain {id}: {refused}");
        }
        assert_eq!(database.fetch_i64("SELECT count(*) FROM audit_chain").await.expect("count"), 16);
        let log = AuditLog::new(opened.store(), chain_sealer(), Arc::new(SystemClock));
        let context = RequestContext::command_line("test");
        for _ in 0..3 {
            log.record(&context, AuditEvent::new(AuditAction::KeysRotated, AuditOutcome::Success))
                .await
                .expect("append");
        }
        assert_eq!(log.verify().await.expect("verifies").entries, 3);
        opened.store().close().await;
    }
}

/// Whether `entry` passes every filter of `query` (its limit aside): what the admin query must answer.
fn passes(query: &AuditQuery, entry: &AuditEntry) -> bool {
    query.user_id.is_none_or(|user| entry.user_id == Some(user.as_uuid()))
        && query.action.as_ref().is_none_or(|action| &entry.action == action)
        && query.from.is_none_or(|from| entry.occurred_at >= from)
        && query.to.is_none_or(|to| entry.occurred_at < to)
        && query.request_id.as_ref().is_none_or(|id| entry.request_id.as_ref() == Some(id))
        && query.before_seq.is_none_or(|before| entry.seq < before)
}

/// On SQLite the lookup columns follow the log in bulk (migration 000015): the newest entries are found by
/// scanning the log, older ones through the lookup table's indexes. Every filter, alone and combined, and
/// paging with a cursor must find exactly the entries a scan of the whole log finds, on both sides of that
/// boundary and on PostgreSQL.
#[tokio::test]
async fn every_filter_finds_the_same_entries_on_both_sides_of_the_lookup_boundary() {
    const ENTRIES: usize = 300;
    for database in TestDatabase::every_backend().await {
        let opened = database.open().await;
        let log = AuditLog::new(opened.store(), chain_sealer(), Arc::new(SystemClock));
        let users = [UserId::generate(), UserId::generate(), UserId::generate()];
        let actions = [AuditAction::KeysRotated, AuditAction::RoleChanged];
        for step in 0..ENTRIES {
            let context = RequestContext {
                request_id: Some(format!("req-{}", step % 97)),
                ..RequestContext::command_line("test")
            };
            let event = AuditEvent::new(actions[step % 2], AuditOutcome::Success).user(users[step % 3]);
            log.record(&context, event.detail("step", step)).await.expect("append");
        }
        let all = opened.store().audit_entries_after(0, 1_000).await.expect("the whole log");
        assert_eq!(all.len(), ENTRIES);
        if database.backend == Backend::Sqlite {
            let indexed = database.fetch_i64("SELECT lookup_seq FROM audit_chain").await.expect("lookup_seq");
            assert!((1..ENTRIES as i64 - 10).contains(&indexed), "both sides hold entries: lookup_seq {indexed}");
        }

        let (early, late) = (all[40].occurred_at, all[ENTRIES - 5].occurred_at);
        let everything = AuditQuery { limit: 1_000, ..AuditQuery::default() };
        let queries = [
            everything.clone(),
            AuditQuery { limit: 7, ..everything.clone() },
            AuditQuery { user_id: Some(users[1]), ..everything.clone() },
            AuditQuery { action: Some("user.role_changed".to_owned()), ..everything.clone() },
            AuditQuery { request_id: Some("req-3".to_owned()), ..everything.clone() },
            AuditQuery { request_id: Some("req-none".to_owned()), ..everything.clone() },
            AuditQuery { from: Some(early), to: Some(late), ..everything.clone() },
            AuditQuery { before_seq: Some(all[ENTRIES - 20].seq), limit: 30, ..everything.clone() },
            AuditQuery {
                user_id: Some(users[2]),
                action: Some("keys.rotated".to_owned()),
                from: Some(early),
                request_id: Some("req-5".to_owned()),
                ..everything.clone()
            },
        ];
        for query in queries {
            let expected: Vec<i64> = all
                .iter()
                .rev()
                .filter(|entry| passes(&query, entry))
                .take(query.limit as usize)
                .map(|e| e.seq)
                .collect();
            let found: Vec<i64> = log.query(&query).await.expect("query").iter().map(|entry| entry.seq).collect();
            assert_eq!(found, expected, "{:?}: {query:?}", database.backend);
        }

        // Page by page through one user's entries, newest first, across the boundary.
        let mut pages = Vec::new();
        let mut page = AuditQuery { user_id: Some(users[0]), limit: 9, ..AuditQuery::default() };
        loop {
            let entries = log.query(&page).await.expect("a page");
            pages.extend(entries.iter().map(|entry| entry.seq));
            match entries.last() {
                Some(last) if entries.len() == 9 => page.before_seq = Some(last.seq),
                _ => break,
            }
        }
        let users_entries: Vec<i64> =
            all.iter().rev().filter(|entry| entry.user_id == Some(users[0].as_uuid())).map(|e| e.seq).collect();
        assert_eq!(pages, users_entries);

        // A purge takes the purged entries' lookup rows with them.
        let future = SystemClock.now() + time::Duration::seconds(1);
        log.purge_before(future, &RequestContext::command_line("test purge")).await.expect("purge");
        let left = log.query(&everything).await.expect("query after the purge");
        assert_eq!(left.iter().map(|entry| entry.action.as_str()).collect::<Vec<_>>(), ["audit.purged"]);
        if database.backend == Backend::Sqlite {
            let rows = database.fetch_i64("SELECT count(*) FROM audit_log_lookup").await.expect("count");
            assert_eq!(rows, 0, "the purge's own entry is not copied yet; every purged one is gone");
        }
        opened.store().close().await;
    }
}

/// A clock that reads whatever the test set.
#[derive(Debug)]
struct SetClock(std::sync::Mutex<time::OffsetDateTime>);

impl Clock for SetClock {
    fn now(&self) -> time::OffsetDateTime {
        *self.0.lock().expect("clock")
    }
}

/// Instants within one second whose fractions have different lengths (none, `.85`, `.857795`) filter in time
/// order, not in the order of their text, on every backend.
#[tokio::test]
async fn time_filters_follow_time_within_a_second() {
    let second = time::OffsetDateTime::from_unix_timestamp(1_795_000_000).expect("an instant");
    let instants = [
        second,
        second + time::Duration::milliseconds(850),
        second + time::Duration::microseconds(857_795),
        second + time::Duration::seconds(1),
    ];
    for database in TestDatabase::every_backend().await {
        let opened = database.open().await;
        let clock = Arc::new(SetClock(std::sync::Mutex::new(second)));
        let log = AuditLog::new(opened.store(), chain_sealer(), clock.clone());
        for instant in instants {
            *clock.0.lock().expect("clock") = instant;
            let event = AuditEvent::new(AuditAction::KeysRotated, AuditOutcome::Success);
            log.record(&RequestContext::command_line("test"), event).await.expect("append");
        }
        let between = |from: Option<usize>, to: Option<usize>| {
            let query = AuditQuery {
                from: from.map(|index| instants[index]),
                to: to.map(|index| instants[index]),
                limit: 10,
                ..AuditQuery::default()
            };
            let log = &log;
            async move {
                let entries = log.query(&query).await.expect("query");
                entries.iter().rev().map(|entry| entry.occurred_at).collect::<Vec<_>>()
            }
        };
        assert_eq!(between(Some(2), None).await, instants[2..], "{:?}: from .857795", database.backend);
        assert_eq!(between(None, Some(2)).await, instants[..2], "{:?}: to .857795", database.backend);
        assert_eq!(
            between(Some(1), Some(3)).await,
            instants[1..3],
            "{:?}: from .85 to the next second",
            database.backend
        );
        assert_eq!(between(Some(0), Some(1)).await, instants[..1], "{:?}: the whole second alone", database.backend);
        opened.store().close().await;
    }
}

#[tokio::test]
async fn concurrent_writers_and_a_large_transaction_keep_one_chain_on_every_backend() {
    // On SQLite, concurrent write transactions commit in batches, and a batch writes its members' entries with
    // its COMMIT, several hundred per INSERT statement: here 64 writers at once, and one transaction of 1,201
    // entries, which takes three statements.
    for database in TestDatabase::every_backend().await {
        let opened = database.open().await;
        let log = Arc::new(AuditLog::new(opened.store(), chain_sealer(), Arc::new(SystemClock)));
        let context = RequestContext::command_line("test");
        let event = |writer: usize, step: usize| {
            AuditEvent::new(AuditAction::KeysRotated, AuditOutcome::Success)
                .detail("writer", writer)
                .detail("step", step)
        };
        let large = {
            let (log, store, context) = (Arc::clone(&log), opened.store(), context.clone());
            tokio::spawn(async move {
                let mut tx = store.begin().await.expect("begin");
                for step in 0..1_201 {
                    log.append(&mut tx, &context, event(64, step)).await.expect("append");
                }
                tx.commit().await.expect("commit");
            })
        };
        let writers = (0..64).map(|writer| {
            let (log, context) = (Arc::clone(&log), context.clone());
            tokio::spawn(async move {
                for step in 0..5 {
                    log.record(&context, event(writer, step)).await.expect("append");
                }
            })
        });
        for writer in futures::future::join_all(writers).await {
            writer.expect("writer task");
        }
        large.await.expect("large transaction");

        let report = log.verify().await.expect("every chain unbroken");
        assert_every_head_is_its_chains_last_entry(&report, 1_521);
        let entries = log.query(&AuditQuery { limit: 2_000, ..AuditQuery::default() }).await.expect("list");
        let large: Vec<&AuditEntry> =
            entries.iter().rev().filter(|entry| entry.details.contains(r#""writer":64"#)).collect();
        let in_order = large.iter().map(|entry| entry.details.clone()).collect::<Vec<_>>();
        let expected = (0..1_201).map(|step| format!(r#"{{"step":{step},"writer":64}}"#)).collect::<Vec<_>>();
        assert_eq!(in_order, expected, "one transaction's entries are listed in order");
        // And follow one another on one chain (on PostgreSQL, other chains' entries come in between).
        let (chain, first) = (large[0].chain, large[0].chain_seq);
        assert!(large.iter().zip(first..).all(|(entry, position)| (entry.chain, entry.chain_seq) == (chain, position)));
        opened.store().close().await;
    }
}
