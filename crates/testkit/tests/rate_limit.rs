//! Rate limiting end to end (issue 5, API.md §0): refusals with honest headers and body, client addresses
//! through trusted proxies only, refill by an injected clock, rules matched by route template, the failure
//! policy with Redis gone, violations recorded, and one exact limit across two instances sharing PostgreSQL
//! and Redis. Runs on SQLite and the in-process limiter, and — when `DASHTAM_TEST_DATABASE_URL` /
//! `DASHTAM_TEST_REDIS_URL` are set — on PostgreSQL and Redis.

use std::time::{Duration, Instant};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::{get, post};
use dashtam_domain::rate_limit::{FailurePolicy, RateLimitScope, RateLimitViolation};
use dashtam_server::Config;
use dashtam_server::config::RuleConfig;
use dashtam_testkit::http::{Answer, answer as send};
use dashtam_testkit::services::{RedisServer, vacant_port};
use dashtam_testkit::{Backend, TestApp, TestDatabase};
use serde_json::json;

const VERIFY_EMAIL: &str = "/api/v1/auth/verify-email";
const PROVIDER_ID: &str = "0193a5f0-7c2e-7d4e-9c1a-2b3c4d5e6f70";

/// A change to a built-in rule.
fn limit(name: &str, burst: u32, rate: &str) -> RuleConfig {
    RuleConfig {
        name: name.to_owned(),
        routes: None,
        scope: None,
        burst: Some(burst),
        rate: Some(rate.to_owned()),
        enabled: None,
    }
}

async fn spawn(configure: impl FnOnce(&mut Config)) -> TestApp {
    TestApp::spawn_configured(TestDatabase::preferred().await, configure).await
}

/// `POST /verify-email` with a token that does not exist: cheap, and answered `400` when admitted.
async fn verify_email(app: &TestApp, forwarded_for: Option<&str>) -> Answer {
    let mut request = app.client.post(app.url(VERIFY_EMAIL)).json(&json!({"token": "x".repeat(43)}));
    if let Some(forwarded_for) = forwarded_for {
        request = request.header("x-forwarded-for", forwarded_for);
    }
    send(request).await
}

/// Waits (up to 10 s) for at least `count` violation records.
async fn violations(app: &TestApp, count: usize) -> Vec<RateLimitViolation> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let recorded = app.state.store.recent_rate_limit_violations(100).await.expect("read violations");
        if recorded.len() >= count || Instant::now() > deadline {
            return recorded;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn metrics(app: &TestApp) -> String {
    app.client.get(app.url("/metrics")).send().await.expect("metrics").text().await.expect("text")
}

#[tokio::test]
async fn refused_after_the_burst_with_headers_body_metrics_and_a_record() {
    let app = spawn(|config| config.rate_limit.rules = vec![limit("verify-email", 3, "1/hour")]).await;
    for remaining in [2, 1, 0] {
        let answer = verify_email(&app, None).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.body);
        assert_eq!(answer.header("x-ratelimit-limit"), Some(3));
        assert_eq!(answer.header("x-ratelimit-remaining"), Some(remaining));
        let reset = answer.header("x-ratelimit-reset").expect("reset");
        assert!((1..=3 * 3_600).contains(&reset), "reset {reset}");
    }

    let refused = verify_email(&app, None).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.headers["content-type"], "application/problem+json");
    assert_eq!(refused.body["code"], "rate_limit_exceeded");
    assert_eq!(refused.body["status"], 429);
    assert_eq!(refused.body["instance"], VERIFY_EMAIL);
    assert!(refused.body["request_id"].as_str().is_some_and(|id| !id.is_empty()));
    let retry_after = refused.header("retry-after").expect("Retry-After");
    // One token per hour, just taken: a whole hour, give or take the test's own running time.
    assert!((3_590..=3_600).contains(&retry_after), "Retry-After {retry_after}");
    assert_eq!(refused.body["retry_after"], retry_after);
    assert_eq!(refused.header("x-ratelimit-limit"), Some(3));
    assert_eq!(refused.header("x-ratelimit-remaining"), Some(0));
    assert!(refused.header("x-ratelimit-reset").is_some_and(|reset| reset >= retry_after));

    // Operations endpoints are never limited, and carry no rate-limit headers.
    for _ in 0..5 {
        let health = send(app.client.get(app.url("/health"))).await;
        assert_eq!(health.status, StatusCode::OK);
        assert!(health.headers.get("x-ratelimit-limit").is_none());
    }

    let recorded = violations(&app, 1).await;
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    let violation = &recorded[0];
    assert_eq!(violation.rule, "verify-email");
    assert_eq!(violation.route, "POST /api/v1/auth/verify-email");
    assert_eq!(violation.scope, RateLimitScope::Ip);
    assert_eq!(violation.identifier, "ip:127.0.0.1");
    assert_eq!(violation.ip_address, Some("127.0.0.1".parse().expect("address")));

    // The refusal is audited with the request it refused, in the same transaction as the record.
    let request_id = refused.body["request_id"].as_str().expect("request id").to_owned();
    let query = dashtam_domain::audit::AuditQuery { request_id: Some(request_id), limit: 10, ..Default::default() };
    let audited = app.state.audit.query(&query).await.expect("read the audit log");
    assert_eq!(audited.len(), 1, "{audited:?}");
    assert_eq!((audited[0].action.as_str(), audited[0].outcome.as_str()), ("rate_limit.denied", "denied"));
    assert_eq!(audited[0].route.as_deref(), Some(VERIFY_EMAIL));
    assert_eq!(audited[0].resource_id, Some(violation.id.to_string()));
    assert!(audited[0].details.contains("\"rule\":\"verify-email\""), "{}", audited[0].details);

    let text = metrics(&app).await;
    for series in [
        r#"dashtam_rate_limit_decisions_total{rule="verify-email",outcome="admitted"} 3"#,
        r#"dashtam_rate_limit_decisions_total{rule="verify-email",outcome="denied"} 1"#,
        r#"dashtam_rate_limit_violations_total{outcome="recorded"} 1"#,
    ] {
        assert!(text.contains(series), "{series} missing from:\n{text}");
    }
}

#[tokio::test]
async fn login_is_limited_per_address_and_separately_per_target_account() {
    let app = spawn(|config| {
        config.trusted_proxies = vec!["127.0.0.1/32".parse().expect("network")];
        config.rate_limit.rules = vec![limit("login-ip", 100, "1/hour"), limit("login-account", 2, "1/hour")];
    })
    .await;
    let login = |email: &'static str, client: &'static str| {
        send(
            app.client
                .post(app.url("/api/v1/auth/login"))
                .header("x-forwarded-for", client)
                .json(&json!({"email": email, "password": "wrong password, long enough"})),
        )
    };
    // The same account, however it is spelled and from wherever, shares one bucket.
    assert_eq!(login("target@example.com", "198.51.100.1").await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(login(" Target@Example.COM ", "198.51.100.2").await.status, StatusCode::UNAUTHORIZED);
    let refused = login("TARGET@example.com", "198.51.100.3").await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    // Other accounts are unaffected, and the handler still reads the body the limiter read.
    assert_eq!(login("other@example.com", "198.51.100.3").await.status, StatusCode::UNAUTHORIZED);

    let recorded = violations(&app, 1).await;
    assert_eq!(recorded[0].scope, RateLimitScope::Account);
    assert!(recorded[0].identifier.starts_with("account:"));
    assert!(!recorded[0].identifier.contains("target"), "the address itself is never stored");
    assert_eq!(recorded[0].ip_address, Some("198.51.100.3".parse().expect("address")));

    // A body too large to be read for its email is refused as any too-large body is.
    let huge = json!({"email": "a@example.com", "password": "p".repeat(70_000)});
    let answer = send(app.client.post(app.url("/api/v1/auth/login")).json(&huge)).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn addresses_behind_a_trusted_proxy_get_their_own_buckets_and_spoofed_ones_do_not() {
    let behind_proxy = spawn(|config| {
        config.trusted_proxies = vec!["127.0.0.0/8".parse().expect("network")];
        config.rate_limit.rules = vec![limit("verify-email", 2, "1/hour")];
    })
    .await;
    for _ in 0..2 {
        assert_eq!(verify_email(&behind_proxy, Some("198.51.100.1")).await.status, StatusCode::BAD_REQUEST);
    }
    assert_eq!(verify_email(&behind_proxy, Some("198.51.100.1")).await.status, StatusCode::TOO_MANY_REQUESTS);
    // A different client behind the same proxy has its own bucket.
    assert_eq!(verify_email(&behind_proxy, Some("198.51.100.2")).await.status, StatusCode::BAD_REQUEST);
    // What the client prepends itself is not believed: the proxy's entry on the right names it.
    let spoofed = verify_email(&behind_proxy, Some("203.0.113.50, 198.51.100.1")).await;
    assert_eq!(spoofed.status, StatusCode::TOO_MANY_REQUESTS);
    let recorded = violations(&behind_proxy, 2).await;
    assert!(recorded.iter().all(|violation| violation.ip_address == Some("198.51.100.1".parse().expect("ip"))));

    // Without trusted proxies the header is ignored: every "client" is the socket peer.
    let direct = spawn(|config| config.rate_limit.rules = vec![limit("verify-email", 2, "1/hour")]).await;
    for forwarded in ["198.51.100.1", "198.51.100.2"] {
        assert_eq!(verify_email(&direct, Some(forwarded)).await.status, StatusCode::BAD_REQUEST);
    }
    let refused = verify_email(&direct, Some("198.51.100.3")).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn sessions_record_the_client_address_a_trusted_proxy_reports() {
    let app = spawn(|config| config.trusted_proxies = vec!["127.0.0.1/32".parse().expect("network")]).await;
    let password = "correct horse battery staple";
    app.state
        .auth
        .create_verified_user(
            dashtam_domain::Email::parse("proxied@example.com").expect("email"),
            dashtam_domain::UserName::parse("Proxied").expect("name"),
            &dashtam_domain::password::Password::new(password.to_owned()),
            dashtam_domain::Role::User,
            &dashtam_domain::RequestContext::command_line("user create"),
        )
        .await
        .expect("create a user");
    let login = send(
        app.client
            .post(app.url("/api/v1/auth/login"))
            .header("x-forwarded-for", "203.0.113.9, 198.51.100.77")
            .json(&json!({"email": "proxied@example.com", "password": password})),
    )
    .await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.body);
    let token = login.body["access_token"].as_str().expect("access token");
    let grant = app.state.access_tokens.verify(token, app.state.clock.now()).expect("a valid token");
    let session = app.state.store.session_by_id(grant.session_id).await.expect("read").expect("the session");
    assert_eq!(session.ip_address.as_deref(), Some("198.51.100.77"));
}

#[tokio::test]
async fn buckets_refill_as_the_injected_clock_moves() {
    // The in-process limiter reads the application's clock; Redis reads its own and is not used here.
    let app = spawn(|config| {
        config.redis_url = None;
        config.rate_limit.rules = vec![limit("verify-email", 2, "1/min")];
    })
    .await;
    for _ in 0..2 {
        assert_eq!(verify_email(&app, None).await.status, StatusCode::BAD_REQUEST);
    }
    let refused = verify_email(&app, None).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(refused.header("retry-after").is_some_and(|seconds| (59..=60).contains(&seconds)));

    app.clock.advance(Duration::from_secs(59));
    let almost = verify_email(&app, None).await;
    assert_eq!(almost.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(almost.header("retry-after"), Some(1), "never Retry-After: 0");

    app.clock.advance(Duration::from_secs(1));
    let refilled = verify_email(&app, None).await;
    assert_eq!(refilled.status, StatusCode::BAD_REQUEST);
    assert_eq!(refilled.header("x-ratelimit-remaining"), Some(0));
    assert_eq!(verify_email(&app, None).await.status, StatusCode::TOO_MANY_REQUESTS);

    // A long quiet spell refills the bucket to its burst, never beyond.
    app.clock.advance(Duration::from_secs(3_600));
    let full = verify_email(&app, None).await;
    assert_eq!(full.header("x-ratelimit-remaining"), Some(1));
}

/// The production application plus a stand-in for a provider route that does not exist yet, so rules keyed
/// on `{id}` can be exercised.
async fn spawn_with_provider_route(configure: impl FnOnce(&mut Config)) -> TestApp {
    TestApp::spawn_with(TestDatabase::preferred().await, configure, |state| {
        let routes = Router::new()
            .route("/api/v1/providers/{id}/sync", post(|| async { "synced" }))
            .route("/api/v1/widgets", get(|| async { "widgets" }));
        dashtam_api::with_middleware(routes, state)
    })
    .await
}

#[tokio::test]
async fn rules_follow_the_route_template_so_spelling_cannot_dodge_them() {
    let app = spawn_with_provider_route(|config| {
        config.rate_limit.rules = vec![limit("provider-sync", 2, "1/hour"), limit("api-reads", 2, "1/hour")];
    })
    .await;
    let sync = |path: String| send(app.client.post(app.url(&path)));
    let lower = format!("/api/v1/providers/{PROVIDER_ID}/sync");
    assert_eq!(sync(lower.clone()).await.status, StatusCode::OK);
    // Upper case and a query string are the same provider and the same route: the same bucket.
    let upper = format!("/api/v1/providers/{}/sync", PROVIDER_ID.to_uppercase());
    assert_eq!(sync(upper).await.status, StatusCode::OK);
    let refused = sync(format!("{lower}?force=true")).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    // A trailing slash or another case of the path is no route at all, so nothing is served.
    assert_eq!(sync(format!("{lower}/")).await.status, StatusCode::NOT_FOUND);
    assert_eq!(sync(lower.replace("/sync", "/SYNC")).await.status, StatusCode::NOT_FOUND);
    // Another provider of the same caller has a bucket of its own (scope user_provider).
    let other = format!("/api/v1/providers/{}/sync", uuid::Uuid::now_v7());
    assert_eq!(sync(other).await.status, StatusCode::OK);

    // The general read rule covers routes no rule names, HEAD as GET.
    assert_eq!(send(app.client.get(app.url("/api/v1/widgets?page=1"))).await.status, StatusCode::OK);
    assert_eq!(send(app.client.head(app.url("/api/v1/widgets"))).await.status, StatusCode::OK);
    assert_eq!(send(app.client.get(app.url("/api/v1/widgets"))).await.status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn signed_in_users_are_counted_by_user_not_by_address() {
    let app = spawn_with_provider_route(|config| {
        config.rate_limit.rules = vec![limit("api-reads", 1, "1/hour")];
    })
    .await;
    let token = |user: dashtam_domain::UserId| {
        app.state
            .access_tokens
            .issue(user, dashtam_domain::SessionId::generate(), 0, dashtam_domain::Role::User, app.state.clock.now())
            .expect("token")
    };
    let (ada, bob) = (token(dashtam_domain::UserId::generate()), token(dashtam_domain::UserId::generate()));
    let read = |bearer: &str| send(app.client.get(app.url("/api/v1/widgets")).bearer_auth(bearer));
    assert_eq!(read(&ada).await.status, StatusCode::OK);
    assert_eq!(read(&bob).await.status, StatusCode::OK);
    assert_eq!(read(&ada).await.status, StatusCode::TOO_MANY_REQUESTS);
    // A token with a bad signature is no user: it is counted by address, and that bucket is still full.
    let forged = format!("{}x", &ada[..ada.len() - 1]);
    assert_eq!(read(&forged).await.status, StatusCode::OK);
    assert_eq!(read("not-a-token").await.status, StatusCode::TOO_MANY_REQUESTS);
    let recorded = violations(&app, 2).await;
    let identifiers: Vec<&str> = recorded.iter().map(|violation| violation.identifier.as_str()).collect();
    assert!(identifiers.iter().any(|id| id.starts_with("user:")), "{identifiers:?}");
    assert!(identifiers.contains(&"ip:127.0.0.1"), "{identifiers:?}");
}

async fn with_redis_stopped(policy: FailurePolicy) -> (TestApp, Answer, Duration) {
    // Without redis-server installed, a closed port stands for a Redis already gone: the same failure path.
    let mut redis = RedisServer::try_start().await;
    let url = redis.as_ref().map_or_else(|| format!("redis://127.0.0.1:{}", vacant_port()), RedisServer::url);
    let app = spawn(move |config| {
        config.redis_url = Some(url.into());
        config.rate_limit.failure_policy = policy;
    })
    .await;
    if let Some(redis) = redis.as_mut() {
        let answer = verify_email(&app, None).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.body);
        assert!(answer.header("x-ratelimit-limit").is_some(), "checked in Redis while it runs");
        redis.kill();
    }
    let started = Instant::now();
    let answer = verify_email(&app, None).await;
    let elapsed = started.elapsed();
    // The next requests do not wait for Redis at all.
    for _ in 0..3 {
        let _ = verify_email(&app, None).await;
    }
    (app, answer, elapsed)
}

#[tokio::test]
async fn with_redis_stopped_requests_pass_unlimited_by_default() {
    let (app, answer, elapsed) = with_redis_stopped(FailurePolicy::Open).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.body);
    assert!(answer.header("x-ratelimit-limit").is_none());
    assert!(elapsed < Duration::from_secs(2), "waited {elapsed:?} for a dead Redis");
    let text = metrics(&app).await;
    let failures = text
        .lines()
        .find_map(|line| line.strip_prefix(r#"dashtam_rate_limit_backend_failures_total{backend="redis"} "#))
        .and_then(|count| count.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no failure count in:\n{text}"));
    assert!(failures >= 4, "{failures} failures counted");
}

#[tokio::test]
async fn with_redis_stopped_requests_are_refused_when_configured_closed() {
    let (_app, answer, elapsed) = with_redis_stopped(FailurePolicy::Closed).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE, "{}", answer.body);
    assert_eq!(answer.body["code"], "service_unavailable");
    assert_eq!(answer.header("retry-after"), Some(1));
    assert!(elapsed < Duration::from_secs(2), "waited {elapsed:?} for a dead Redis");
}

#[tokio::test]
async fn two_instances_sharing_postgres_and_redis_enforce_one_exact_limit() {
    const LIMIT: usize = 10;
    let (Some(database), Some(_)) = (TestDatabase::postgres().await, dashtam_testkit::redis_url()) else {
        eprintln!("skipped: needs {} and {}", dashtam_testkit::DATABASE_URL_VAR, dashtam_testkit::REDIS_URL_VAR);
        return;
    };
    let prefix = format!("two-instances-{}", uuid::Uuid::now_v7().simple());
    let configure = |prefix: String| {
        move |config: &mut Config| {
            config.rate_limit.redis_key_prefix = prefix;
            config.rate_limit.rules = vec![limit("verify-email", 10, "1/hour")];
        }
    };
    let shared_url = database.url.clone();
    let first = TestApp::spawn_configured(database, configure(prefix.clone())).await;
    let second =
        TestApp::spawn_configured(TestDatabase::unmanaged(shared_url, Backend::Postgres), configure(prefix)).await;
    let requests = (0..2 * LIMIT).map(|index| verify_email(if index % 2 == 0 { &first } else { &second }, None));
    let answers = futures::future::join_all(requests).await;
    let admitted = answers.iter().filter(|answer| answer.status == StatusCode::BAD_REQUEST).count();
    let refused = answers.iter().filter(|answer| answer.status == StatusCode::TOO_MANY_REQUESTS).count();
    assert_eq!((admitted, refused), (LIMIT, LIMIT));
    // Both instances recorded their refusals into the one database.
    assert_eq!(violations(&first, LIMIT).await.len(), LIMIT);
}
