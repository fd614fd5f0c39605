//! The layers every function shares (`shared::web::finish`): a bug is a 500 in the contract's
//! shape with nothing internal in it, and still carries `x-request-id`.

// Test helpers as well as #[test]s: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use http_body_util::BodyExt;
use shared::AppState;
use tower::ServiceExt;

#[tokio::test]
async fn a_panicking_handler_is_a_500_with_a_request_id_and_no_internals() {
    async fn boom() -> &'static str {
        panic!("secret internal detail")
    }
    let state = AppState::in_memory(api_tests::config());
    let router = shared::web::finish(Router::new().route("/boom", get(boom)), state);
    let response = router.oneshot(Request::get("/boom").body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(response.headers().contains_key("x-request-id"));
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&body).unwrap(),
        serde_json::json!({"detail": "Internal Server Error"})
    );
}
