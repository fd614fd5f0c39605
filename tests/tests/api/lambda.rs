//! The Lambda path: an API Gateway HTTP API (payload v2) event, parsed by lambda_http itself,
//! reaches a function's router exactly as a local request does, and the Lambda request id comes
//! back as `x-request-id`.

// Test helpers as well as #[test]s: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use api_tests::PASSWORD;
use http_body_util::BodyExt;
use serde_json::json;
use shared::AppState;
use tower::ServiceExt;

fn event(method: &str, path: &str, body: Option<serde_json::Value>) -> String {
    json!({
        "version": "2.0",
        "routeKey": format!("{method} {path}"),
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"content-type": "application/json", "host": "abc123.execute-api.eu-west-1.amazonaws.com"},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "domainName": "abc123.execute-api.eu-west-1.amazonaws.com",
            "domainPrefix": "abc123",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "192.0.2.1", "userAgent": "test"},
            "requestId": "gateway-request-id",
            "routeKey": format!("{method} {path}"),
            "stage": "$default",
            "time": "24/Nov/2026:11:00:00 +0000",
            "timeEpoch": 1_795_000_000_000_i64
        },
        "body": body.map(|b| b.to_string()),
        "isBase64Encoded": false
    })
    .to_string()
}

async fn invoke(router: axum::Router, event: &str) -> (u16, Option<String>, serde_json::Value) {
    let mut request = lambda_http::request::from_str(event).expect("a valid API Gateway event");
    let mut context = lambda_http::Context::default();
    context.request_id = "lambda-request-id".into();
    request.extensions_mut().insert(context);
    let response = router.oneshot(request).await.unwrap_or_else(|e| match e {});
    let id = response.headers().get("x-request-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await.expect("body").to_bytes();
    (status, id, serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null))
}

#[tokio::test]
async fn an_api_gateway_event_reaches_the_router() {
    let state = AppState::in_memory(api_tests::config()).with_hasher(api_tests::fast_hasher());
    let router = (catalog::function("users").unwrap().router)(state);
    let signup =
        event("POST", "/v1/users/signup", Some(json!({"email": "gw@example.com", "password": PASSWORD})));
    let (status, request_id, body) = invoke(router.clone(), &signup).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["email"], "gw@example.com");
    assert_eq!(request_id.as_deref(), Some("lambda-request-id"));
    let (status, _, body) = invoke(router, &event("GET", "/v1/users/me", None)).await;
    assert_eq!((status, body["detail"].as_str()), (401, Some("Not authenticated")));
}
