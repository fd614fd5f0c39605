//! A request's deadline: on Lambda the invocation's own (`lambda_http`'s context); on the local
//! server 30 s from its arrival, which [`local_deadline`] enforces as Lambda's timeout does. An
//! idempotency key is locked until it (`web::idempotency`).

use std::time::Duration;

use axum::extract::Request;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};

/// How long a request may run where no Lambda deadline says otherwise.
pub const LOCAL_DEADLINE: Duration = Duration::from_secs(30);

/// When a request on the local server must be done by (a request extension).
#[derive(Debug, Clone, Copy)]
pub struct Deadline(pub DateTime<Utc>);

/// What is left of the request's time: until the Lambda invocation's deadline, or the local
/// server's; 30 s where neither is known (in-process tests); nothing once it has passed.
pub fn remaining(parts: &Parts) -> chrono::Duration {
    let deadline = match (parts.extensions.get::<lambda_http::Context>(), parts.extensions.get::<Deadline>())
    {
        (Some(context), _) => {
            i64::try_from(context.deadline).ok().and_then(DateTime::<Utc>::from_timestamp_millis)
        }
        (None, Some(Deadline(at))) => Some(*at),
        (None, None) => None,
    };
    match deadline {
        Some(at) => (at - Utc::now()).max(chrono::Duration::zero()),
        None => chrono::Duration::from_std(LOCAL_DEADLINE).unwrap_or_default(),
    }
}

/// The local server's deadline: each request gets 30 s, as a Lambda function's timeout gives
/// it, and one that runs past them is stopped and answered 504 (API Gateway's answer to a
/// function that timed out).
pub async fn local_deadline(mut request: Request, next: Next) -> Response {
    let at = Utc::now() + chrono::Duration::from_std(LOCAL_DEADLINE).unwrap_or_default();
    request.extensions_mut().insert(Deadline(at));
    match tokio::time::timeout(LOCAL_DEADLINE, next.run(request)).await {
        Ok(response) => response,
        Err(_) => (
            StatusCode::GATEWAY_TIMEOUT,
            axum::Json(serde_json::json!({"detail": "The request ran past its 30 s deadline"})),
        )
            .into_response(),
    }
}
