//! A stand-in for Amazon SES v2 on loopback, for the worker's `SesMailer`: it answers `SendEmail`
//! (`POST /v2/email/outbound-emails`) as SES does, records every request it gets (signed or not,
//! its JSON, the raw message decoded), and answers errors on demand, in SES's restJson1 shape.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use aws_sdk_dynamodb::config::{Credentials, SharedCredentialsProvider};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Value, json};

/// SES v2's `SendEmail`.
pub const SEND_EMAIL_PATH: &str = "/v2/email/outbound-emails";

/// One request the fake received.
#[derive(Debug, Clone, PartialEq)]
pub struct SesRequest {
    pub method: String,
    pub path: String,
    /// An `authorization` header with a SigV4 signature (`AWS4-HMAC-SHA256 ...`) was present.
    pub signed: bool,
    /// The JSON body (`Value::Null` if it was not JSON).
    pub body: Value,
    /// `Content.Raw.Data`, base64-decoded: the whole message (empty if absent or not base64).
    pub raw: Vec<u8>,
    /// The status the fake answered it with.
    pub status: u16,
}

impl SesRequest {
    /// `FromEmailAddress`, `Destination.ToAddresses`, `ConfigurationSetName`.
    pub fn from_address(&self) -> Option<&str> {
        self.body["FromEmailAddress"].as_str()
    }

    pub fn to_addresses(&self) -> Vec<&str> {
        self.body["Destination"]["ToAddresses"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect()
    }

    pub fn configuration_set(&self) -> Option<&str> {
        self.body["ConfigurationSetName"].as_str()
    }
}

#[derive(Debug, Default)]
struct Inner {
    sent: Vec<SesRequest>,
    /// The answers owed to the next `SendEmail` calls: (status, error type).
    faults: VecDeque<(u16, String)>,
    answered: u64,
}

/// The fake; stopped when dropped.
#[derive(Debug)]
pub struct FakeSes {
    address: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    server: tokio::task::JoinHandle<()>,
}

impl FakeSes {
    /// Listening on a free loopback port when it returns.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the fake SES");
        let address = listener.local_addr().expect("its address");
        let inner = Arc::new(Mutex::new(Inner::default()));
        let app = Router::new().fallback(answer).with_state(inner.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { address, inner, server }
    }

    /// `http://127.0.0.1:<port>`: the endpoint to give `SesMailer`.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Every request received so far, in order (failed ones too: see `status`).
    pub fn sent(&self) -> Vec<SesRequest> {
        self.lock().sent.clone()
    }

    /// The next `n` `SendEmail` calls answer `status` with SES's error `error_type`: a 5xx in the
    /// body (`{"__type": ...}`), anything else in the `x-amzn-errortype` header (with a
    /// `{"message": ...}` body), as SES's two shapes of error.
    pub fn fail_next(&self, n: usize, status: u16, error_type: &str) {
        let mut inner = self.lock();
        inner.faults.extend(std::iter::repeat_n((status, error_type.to_owned()), n));
    }

    /// An SDK configuration for a client of the fake: region `us-east-1`, static test
    /// credentials (so requests are signed), and no retries (each call is one request).
    pub fn sdk_config() -> aws_config::SdkConfig {
        aws_config::SdkConfig::builder()
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
                "test", "test", None, None, "test",
            )))
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .behavior_version(aws_config::BehaviorVersion::latest())
            .build()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for FakeSes {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn answer(
    State(inner): State<Arc<Mutex<Inner>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let signed = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("AWS4-HMAC-SHA256 "));
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let raw = body["Content"]["Raw"]["Data"]
        .as_str()
        .and_then(|data| base64::engine::general_purpose::STANDARD.decode(data).ok())
        .unwrap_or_default();
    let mut inner = inner.lock().unwrap_or_else(PoisonError::into_inner);
    let is_send_email = method == Method::POST && uri.path() == SEND_EMAIL_PATH;
    let response = if !is_send_email {
        error(404, "UnknownOperationException")
    } else if let Some((status, error_type)) = inner.faults.pop_front() {
        error(status, &error_type)
    } else {
        inner.answered += 1;
        let id = format!("0100fake{:012}-ses", inner.answered);
        (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], json!({"MessageId": id}).to_string())
            .into_response()
    };
    let status = response.status().as_u16();
    inner.sent.push(SesRequest {
        method: method.to_string(),
        path: uri.path().to_owned(),
        signed,
        body,
        raw,
        status,
    });
    response
}

fn error(status: u16, error_type: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let json = (header::CONTENT_TYPE, "application/json");
    if status.is_server_error() {
        (status, [json], json!({"__type": error_type}).to_string()).into_response()
    } else {
        let message = json!({"message": format!("{error_type} (injected by the fake SES)")}).to_string();
        (status, [json, (header::HeaderName::from_static("x-amzn-errortype"), error_type)], message)
            .into_response()
    }
}
