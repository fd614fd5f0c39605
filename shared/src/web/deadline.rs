//! A request's deadline: on Lambda the invocation's own (`lambda_http`'s context); on the local
//! server (and in-process, through `catalog::app`) 30 s from its arrival, which
//! [`local_deadline`] enforces as a Lambda function's timeout does. An idempotency key is locked
//! until it (`web::idempotency`).

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
/// server's; 30 s where neither is known (a context without a deadline); `None` once it has
/// passed.
pub fn remaining(parts: &Parts) -> Option<chrono::Duration> {
    let lambda = parts
        .extensions
        .get::<lambda_http::Context>()
        .filter(|context| context.deadline > 0)
        .and_then(|context| i64::try_from(context.deadline).ok())
        .and_then(DateTime::<Utc>::from_timestamp_millis);
    match lambda.or_else(|| parts.extensions.get::<Deadline>().map(|Deadline(at)| *at)) {
        Some(at) => Some(at - Utc::now()).filter(|left| *left > chrono::Duration::zero()),
        None => chrono::Duration::from_std(LOCAL_DEADLINE).ok(),
    }
}

/// The local server's deadline: each request gets 30 s, as a Lambda function gets its timeout,
/// and one that runs past them is stopped and answered 504.
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
