//! Structured logs: one JSON line per request with its request id, route, status and latency,
//! and never a password, a token, an `Authorization` value, a password hash or the JWT secret —
//! even at TRACE, where the runtime and the AWS SDK would log whole requests.
//!
//! This test binary installs the production subscriber (JSON, the production filter at TRACE)
//! process-wide, writing into memory (which is why it is a binary of its own), and runs every
//! flow that handles a secret against the in-memory store and (with the `dynamodb` feature)
//! DynamoDB Local with sentinel values.

// Test helpers as well as #[test]s: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::sync::OnceLock;

use api_tests::TestApp;
use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use shared::telemetry::{self, LogFormat, MemoryWriter};
use uuid::Uuid;

fn capture() -> &'static MemoryWriter {
    static CAPTURE: OnceLock<MemoryWriter> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        let capture = MemoryWriter::default();
        let writer = capture.clone();
        let subscriber =
            telemetry::subscriber(LogFormat::Json, telemetry::filter("TRACE"), move || writer.clone());
        tracing::subscriber::set_global_default(subscriber).unwrap();
        capture
    })
}

/// Every flow that carries a secret, with the secrets it used.
async fn exercise(app: &TestApp) -> Vec<String> {
    let tag = Uuid::new_v4().simple().to_string();
    let password = format!("sentinel-password-{tag}");
    let new_password = format!("sentinel-new-password-{tag}");
    let email = format!("logs-{tag}@example.com");
    assert_eq!(app.signup(&email, &password).await.status, StatusCode::CREATED);
    // Failures echo nothing into the log: a wrong password, a too-short one, a malformed body.
    assert_eq!(app.login(&email, &format!("sentinel-wrong-{tag}")).await.status, StatusCode::BAD_REQUEST);
    let short = app.json(
        Method::POST,
        "/v1/users/signup",
        None,
        json!({"email": "x@example.com", "password": "sn-7"}),
    );
    assert_eq!(short.await.status, StatusCode::UNPROCESSABLE_ENTITY);
    let token = app.login(&email, &password).await.json();
    let access = token["access_token"].as_str().unwrap().to_owned();
    let refresh = token["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(app.get("/v1/users/me", &access).await.status, StatusCode::OK);
    assert_eq!(app.get("/v1/users/me", &format!("{access}x")).await.status, StatusCode::UNAUTHORIZED);
    let rotated = app.refresh(&refresh).await.json();
    let second_refresh = rotated["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(app.refresh(&refresh).await.status, StatusCode::BAD_REQUEST, "reuse");
    // Before the password change, which ends this access token's session.
    let body = app.raw(
        Method::POST,
        "/v1/items",
        Some(&access),
        "application/json",
        format!("{{\"title\": \"{password}\""),
    );
    assert_eq!(body.await.status, StatusCode::UNPROCESSABLE_ENTITY);
    let change = json!({"current_password": password, "new_password": new_password});
    let changed = app.json(Method::PATCH, "/v1/users/me/password", Some(&access), change).await;
    assert_eq!(changed.status, StatusCode::NO_CONTENT);
    assert_eq!(app.form("/v1/auth/revoke", &[("token", &second_refresh)]).await.status, StatusCode::OK);
    // Account mail: the links' tokens are in the messages only; redeeming them logs none.
    let asked = app.json(Method::POST, "/v1/auth/password-recovery", None, json!({"email": email})).await;
    assert_eq!(asked.status, StatusCode::ACCEPTED);
    app.deliver_mail().await;
    let verify = app.mailbox.token(&email, worker::mail::MailKind::VerifyEmail);
    let reset = app.mailbox.token(&email, worker::mail::MailKind::ResetPassword);
    let verified = app.json(Method::POST, "/v1/auth/verify-email", None, json!({"token": verify})).await;
    assert_eq!(verified.status, StatusCode::NO_CONTENT);
    let reset_password = format!("sentinel-reset-password-{tag}");
    let body = json!({"token": reset, "new_password": reset_password});
    assert_eq!(
        app.json(Method::POST, "/v1/auth/reset-password", None, body).await.status,
        StatusCode::NO_CONTENT
    );
    let again = json!({"token": reset, "new_password": reset_password});
    assert_eq!(
        app.json(Method::POST, "/v1/auth/reset-password", None, again).await.status,
        StatusCode::BAD_REQUEST
    );
    vec![
        password,
        new_password,
        format!("sentinel-wrong-{tag}"),
        access,
        refresh,
        second_refresh,
        verify,
        reset,
        reset_password,
    ]
}

fn lines() -> Vec<Value> {
    capture()
        .contents()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect()
}

fn assert_clean(secrets: &[String]) {
    let all = capture().contents();
    assert!(!all.is_empty());
    for secret in secrets {
        assert!(!all.contains(secret.as_str()), "a secret reached the log: {secret}");
    }
    for marker in [
        "Bearer",
        "authorization",
        "Authorization",
        "$argon2id$",
        "sn-7",
        "PRIVATE KEY",
        &api_tests::keys::TEST_KEY_PEM[28..90],
    ] {
        assert!(
            !all.contains(marker),
            "{marker:?} reached the log: {}",
            all.lines().filter(|l| l.contains(marker)).take(3).collect::<Vec<_>>().join("\n")
        );
    }
}

#[tokio::test]
async fn no_secret_reaches_a_log_line_with_the_in_memory_store() {
    capture();
    let secrets = exercise(&TestApp::memory()).await;
    assert_clean(&secrets);
    let requests: Vec<Value> = lines().into_iter().filter(|l| l["fields"]["message"] == "request").collect();
    assert!(requests.len() >= 11, "one line per request: {requests:#?}");
    for line in &requests {
        let fields = &line["fields"];
        assert!(fields["request_id"].as_str().is_some_and(|id| id.len() == 36), "{line}");
        assert!(
            fields["status"].is_u64() && fields["latency_ms"].is_f64() && fields["method"].is_string(),
            "{line}"
        );
        assert!(fields["route"].as_str().is_some_and(|r| r.starts_with("/v1/")), "{line}");
    }
}

#[cfg(feature = "dynamodb")]
#[tokio::test]
async fn no_secret_reaches_a_log_line_with_dynamodb_even_at_trace() {
    capture();
    let state = api_tests::dynamo::app_state().await.with_hasher(api_tests::fast_hasher());
    let secrets = exercise(&TestApp::from_state(state)).await;
    assert_clean(&secrets);
}

/// A message given up is an ERROR line with the field `outcome` = `given_up`: what an operator
/// looks for when the `MailGivenUp` alarm fires (its count is the worker's metric line:
/// `metrics.rs`).
#[tokio::test]
async fn a_message_given_up_is_an_error_line_saying_so() {
    capture();
    let app = TestApp::memory();
    let email = format!("given-up-{}@example.com", Uuid::new_v4().simple());
    assert_eq!(app.signup(&email, "correct horse battery").await.status, StatusCode::CREATED);
    app.mailbox.fail_next([worker::mail::SendError::Permanent("MessageRejected".into())]);
    assert_eq!(app.deliver_mail().await.given_up, 1);
    let given_up: Vec<Value> = lines().into_iter().filter(|l| l["fields"]["outcome"] == "given_up").collect();
    assert!(!given_up.is_empty(), "a line with outcome given_up");
    assert!(given_up.iter().all(|l| l["level"] == "ERROR"), "{given_up:?}");
}
