//! `Idempotency-Key` through the API (API.md, "Idempotency"): a retried `POST /v1/items` does
//! its work once and is answered with the first answer, marked `Idempotent-Replayed`; the same
//! key with another payload is a 422, a malformed key a 422 on the header; keys are the caller's.

// Test bodies: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use api_tests::{TestApp, TestResponse};
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::{Value, json};

#[derive(Debug, Clone, Copy)]
enum Backend {
    Memory,
    #[cfg(feature = "dynamodb")]
    DynamoDb,
}

impl Backend {
    async fn app(self) -> TestApp {
        match self {
            Self::Memory => TestApp::memory(),
            #[cfg(feature = "dynamodb")]
            Self::DynamoDb => TestApp::from_state(
                api_tests::dynamo::app_state().await.with_hasher(api_tests::fast_hasher()),
            ),
        }
    }
}

on_both_stores!(
    a_retried_create_does_its_work_once_and_replays_its_answer,
    the_same_key_with_another_payload_is_a_422_and_a_malformed_key_a_422_on_the_header,
    a_key_is_its_callers_own,
);

async fn keyed(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    key: &str,
    body: Value,
) -> TestResponse {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/json")
        .header("idempotency-key", key)
        .body(Body::from(body.to_string()))
        .unwrap();
    app.send(request).await
}

async fn a_retried_create_does_its_work_once_and_replays_its_answer(backend: Backend) {
    let app = backend.app().await;
    let user = app.user().await;
    let first = keyed(
        &app,
        Method::POST,
        "/v1/items",
        &user.access,
        "k-1",
        json!({"title": "once", "description": "d"}),
    )
    .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text());
    assert_eq!(first.header("idempotent-replayed"), None);
    // Key order and whitespace do not matter: the payload is compared as parsed JSON.
    let again = keyed(
        &app,
        Method::POST,
        "/v1/items",
        &user.access,
        "k-1",
        json!({"description": "d", "title": "once"}),
    )
    .await;
    assert_eq!(again.status, StatusCode::CREATED);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.body, first.body);
    assert_eq!(again.header("location"), first.header("location"));
    assert_eq!(again.header("etag"), first.header("etag"));
    let listed = app.get("/v1/items", &user.access).await.json();
    assert_eq!(listed["data"].as_array().unwrap().len(), 1, "one item");
    // Without the header, requests behave as before.
    app.item(&user.access, "unkeyed").await;
    app.item(&user.access, "unkeyed").await;
    assert_eq!(app.get("/v1/items", &user.access).await.json()["data"].as_array().unwrap().len(), 3);
}

async fn the_same_key_with_another_payload_is_a_422_and_a_malformed_key_a_422_on_the_header(
    backend: Backend,
) {
    let app = backend.app().await;
    let user = app.user().await;
    keyed(&app, Method::POST, "/v1/items", &user.access, "k-2", json!({"title": "one"})).await;
    let other = keyed(&app, Method::POST, "/v1/items", &user.access, "k-2", json!({"title": "two"})).await;
    assert_eq!(other.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(other.detail().is_string(), "{}", other.text());
    for bad in ["", &"x".repeat(256), "tab\there"] {
        let refused = keyed(&app, Method::POST, "/v1/items", &user.access, bad, json!({"title": "t"})).await;
        let errors = refused.validation_errors();
        assert_eq!(errors[0].0, json!(["header", "idempotency-key"]), "{bad:?}");
    }
}

async fn a_key_is_its_callers_own(backend: Backend) {
    let app = backend.app().await;
    let (a, b) = (app.user().await, app.user().await);
    let one = keyed(&app, Method::POST, "/v1/items", &a.access, "shared", json!({"title": "a's"})).await;
    let two = keyed(&app, Method::POST, "/v1/items", &b.access, "shared", json!({"title": "b's"})).await;
    assert_eq!((one.status, two.status), (StatusCode::CREATED, StatusCode::CREATED));
    assert_eq!(two.header("idempotent-replayed"), None);
    // An unauthenticated request with a key is the handler's 401, and records nothing.
    let anonymous =
        keyed(&app, Method::POST, "/v1/items", "not-a-token", "shared", json!({"title": "x"})).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
}
