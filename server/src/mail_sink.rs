//! A stand-in for Amazon SES v2 on this machine: it takes `SendEmail` (a raw message) as SES
//! would and writes the message as an `.eml` file into a folder, as the local server's worker
//! does. What `scripts/sam-local` points the worker function in its container at
//! (`SES_ENDPOINT`), so that `sam local` sends no mail anywhere and a developer reads it from
//! files (`admin mail-sink`).

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine;
use serde_json::{Value, json};
use worker::mail::MailDir;

/// SES v2's `SendEmail`.
pub const SEND_EMAIL_PATH: &str = "/v2/email/outbound-emails";

/// The stand-in over `dir`.
pub fn router(dir: std::path::PathBuf) -> Router {
    Router::new().route(SEND_EMAIL_PATH, post(send_email)).with_state(std::sync::Arc::new(MailDir::new(dir)))
}

async fn send_email(State(dir): State<std::sync::Arc<MailDir>>, Json(request): Json<Value>) -> Response {
    let Some(data) = request["Content"]["Raw"]["Data"].as_str() else {
        return refuse("BadRequestException", "only raw messages (Content.Raw.Data) are taken here");
    };
    let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(data) else {
        return refuse("BadRequestException", "Content.Raw.Data is not base64");
    };
    match dir.write_raw(raw).await {
        Ok(path) => {
            tracing::info!(path = %path.display(), "mail written");
            let id = uuid::Uuid::new_v4().to_string();
            (StatusCode::OK, Json(json!({"MessageId": id}))).into_response()
        }
        Err(error) => {
            tracing::warn!(%error, "mail not written");
            let body = json!({"__type": "InternalFailure", "message": error.to_string()});
            (StatusCode::INTERNAL_SERVER_ERROR, Json(body)).into_response()
        }
    }
}

fn refuse(kind: &'static str, message: &'static str) -> Response {
    let mut response = (StatusCode::BAD_REQUEST, Json(json!({"message": message}))).into_response();
    response.headers_mut().insert("x-amzn-errortype", axum::http::HeaderValue::from_static(kind));
    response
}
