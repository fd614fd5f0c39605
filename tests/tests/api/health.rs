//! `GET /v1/health` (API.md v1.1): 200 `{"status": "ok"}` when the table answers, on both
//! stores, never cached, for anyone; only GET (and HEAD). Its 503s, whatever DynamoDB's fault:
//! `dynamodb_faults.rs`. That it reads one key and nothing else: `iam.rs` and `template.rs`.

// Test helpers as well as #[test]s: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use api_tests::{Backend, TestApp};
use axum::http::{Method, StatusCode};
use serde_json::json;
use shared::AppState;

on_both_stores!(the_api_is_healthy_while_its_table_answers);

async fn the_api_is_healthy_while_its_table_answers(backend: Backend) {
    let app = TestApp::from_state(AppState::new(api_tests::config(), backend.repos().await));
    let health = app.call(Method::GET, "/v1/health", None).await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.json(), json!({"status": "ok"}));
    assert_eq!(health.header("cache-control"), Some("no-store"));
    assert_eq!(health.header("content-type"), Some("application/json"));
    // A bearer token, even a bad one, changes nothing: the route checks none.
    let with_token = app.call(Method::GET, "/v1/health", Some("not-a-token")).await;
    assert_eq!(with_token.status, StatusCode::OK);
    let head = app.call(Method::HEAD, "/v1/health", None).await;
    assert_eq!(head.status, StatusCode::OK);
    let post = app.call(Method::POST, "/v1/health", None).await;
    assert_eq!((post.status, post.header("allow")), (StatusCode::METHOD_NOT_ALLOWED, Some("GET,HEAD")));
}

/// The docs function's own state (`shared::run_health_only_lambda`): no connection to DynamoDB
/// until the first check; a table that is not there is a 503, and once it is there the same
/// state answers 200 (a failed first check leaves nothing stuck).
#[cfg(feature = "dynamodb")]
#[tokio::test]
async fn the_docs_functions_state_reaches_the_table_only_at_its_first_check() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    // An endpoint that counts connections and answers none.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut counted = api_tests::dynamo::config();
    counted.dynamodb_endpoint = Some(format!("http://{}", listener.local_addr().unwrap()));
    let connections = Arc::new(AtomicUsize::new(0));
    let seen = connections.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            seen.fetch_add(1, Ordering::SeqCst);
            drop(socket);
        }
    });
    let docs = TestApp::from_state(AppState::health_only(counted));
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(connections.load(Ordering::SeqCst), 0, "no connection before the first check");
    let health = docs.call(Method::GET, "/v1/health", None).await;
    assert_eq!(health.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(connections.load(Ordering::SeqCst), 1, "one attempt");
    // DynamoDB Local, before and after its table is made.
    let config = api_tests::dynamo::config();
    let docs = TestApp::from_state(AppState::health_only(config.clone()));
    let missing = docs.call(Method::GET, "/v1/health", None).await;
    assert_eq!(missing.status, StatusCode::SERVICE_UNAVAILABLE);
    api_tests::dynamo::store_with(&config).await;
    let health = docs.call(Method::GET, "/v1/health", None).await;
    assert_eq!((health.status, health.json()), (StatusCode::OK, json!({"status": "ok"})));
}
