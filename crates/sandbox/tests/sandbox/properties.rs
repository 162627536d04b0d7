//! Whatever a query string holds, the sandbox answers without panicking or failing inside.

use axum::{
    body::Body,
    http::{Request, StatusCode, header},
};
use proptest::prelude::*;
use tower::ServiceExt;

use crate::support::*;

/// Query strings from URL-ish characters, plus ones built from plausible parameter names and values.
fn query_strategy() -> impl Strategy<Value = String> {
    let raw = "[a-zA-Z0-9=&%+._~:,;/?-]{0,120}";
    let names = prop::sample::select(vec![
        "response_type",
        "client_id",
        "redirect_uri",
        "state",
        "code_challenge",
        "code_challenge_method",
        "customer",
        "startDate",
        "endDate",
        "types",
        "symbol",
        "decision",
    ]);
    let values = prop_oneof![
        Just("code".to_owned()),
        Just(CLIENT_ID.to_owned()),
        Just(REDIRECT_URI.to_owned()),
        Just("S256".to_owned()),
        Just("2025-01-01T00:00:00.000Z".to_owned()),
        Just("2025-12-31T23:59:59.999Z".to_owned()),
        Just("TRADE,JOURNAL".to_owned()),
        "\\PC{0,40}",
    ];
    let structured = prop::collection::vec((names, values), 0..8).prop_map(|pairs| {
        let pairs: Vec<(String, String)> = pairs.into_iter().map(|(n, v)| (n.to_owned(), v)).collect();
        query(&pairs)
    });
    prop_oneof![raw, structured]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_queries_never_fail_inside(authorize_query in query_strategy(), transactions_query in query_strategy()) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async {
            let harness = Harness::start().await;
            let tokens = harness.login(&[]).await;
            let hash = harness.hashes(&tokens.access).await.remove(0);
            let router = harness.router.clone();

            let request = Request::get(format!("/sandbox/v1/oauth/authorize?{authorize_query}")).body(Body::empty());
            if let Ok(request) = request {
                let response = router.clone().oneshot(request).await.expect("infallible");
                prop_assert!(matches!(response.status(), StatusCode::OK | StatusCode::BAD_REQUEST));
            }
            let request = Request::post("/sandbox/v1/oauth/authorize")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(authorize_query.clone()))
                .expect("request");
            let response = router.clone().oneshot(request).await.expect("infallible");
            prop_assert!(matches!(response.status(), StatusCode::FOUND | StatusCode::BAD_REQUEST));

            let uri = format!("/sandbox/trader/v1/accounts/{hash}/transactions?{transactions_query}");
            if let Ok(request) = Request::get(uri).header(header::AUTHORIZATION, format!("Bearer {}", tokens.access)).body(Body::empty()) {
                let response = router.clone().oneshot(request).await.expect("infallible");
                prop_assert!(matches!(response.status(), StatusCode::OK | StatusCode::BAD_REQUEST), "{}", response.status());
            }
            Ok(())
        })?;
    }
}
