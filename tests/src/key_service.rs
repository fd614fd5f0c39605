//! A stand-in for AWS KMS and Secrets Manager on loopback (both speak awsJson1_1, told apart by
//! `X-Amz-Target`), for the signing key's two homes: KMS `Sign` (RSASSA-PKCS1-v1_5 SHA-256, the
//! message raw) and `GetPublicKey` (DER SubjectPublicKeyInfo) with the key held here, and
//! Secrets Manager `GetSecretValue` answering the key's PEM. What `KEYS_ENDPOINT` points at in
//! the tests and in the bench's measurement of the two (docs/signing-keys.md).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use shared::auth::keys::SigningKey;

/// The key id and secret id the stand-in answers to.
pub const KEY_ID: &str = "arn:aws:kms:us-east-1:111122223333:key/0d7a2a5c-signing";
pub const SECRET_ID: &str = "arn:aws:secretsmanager:us-east-1:111122223333:secret:signing-key";

#[derive(Debug)]
struct Held {
    key: Arc<SigningKey>,
    pem: String,
    calls: AtomicU64,
}

/// The stand-in; stopped when dropped.
#[derive(Debug)]
pub struct KeyService {
    address: SocketAddr,
    held: Arc<Held>,
    server: tokio::task::JoinHandle<()>,
}

impl KeyService {
    /// Holding `pem` (PKCS#8), listening on a free loopback port when it returns.
    pub async fn start(pem: &str) -> Self {
        let key = Arc::new(SigningKey::from_pem(pem).expect("a key for the stand-in"));
        let held = Arc::new(Held { key, pem: pem.to_owned(), calls: AtomicU64::new(0) });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the key stand-in");
        let address = listener.local_addr().expect("its address");
        let app = Router::new().fallback(answer).with_state(held.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { address, held, server }
    }

    /// `http://127.0.0.1:<port>`, for `KEYS_ENDPOINT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Calls answered so far (of any operation).
    pub fn calls(&self) -> u64 {
        self.held.calls.load(Ordering::SeqCst)
    }
}

impl Drop for KeyService {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn error(kind: &str, message: &str) -> Response {
    let body = json!({"__type": kind, "message": message}).to_string();
    (StatusCode::BAD_REQUEST, [("content-type", "application/x-amz-json-1.1")], body).into_response()
}

fn ok(body: Value) -> Response {
    (StatusCode::OK, [("content-type", "application/x-amz-json-1.1")], body.to_string()).into_response()
}

/// The public key as DER SubjectPublicKeyInfo, as KMS returns it.
fn public_der(key: &SigningKey) -> Vec<u8> {
    let pem = key.public().to_pem().expect("PEM of the public key");
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    STANDARD.decode(body).expect("base64 PEM body")
}

async fn answer(State(held): State<Arc<Held>>, headers: HeaderMap, body: Bytes) -> Response {
    held.calls.fetch_add(1, Ordering::SeqCst);
    let target = headers.get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return error("SerializationException", "not JSON");
    };
    match target {
        "TrentService.Sign" => {
            if request["KeyId"] != KEY_ID {
                return error("NotFoundException", "no such key");
            }
            if request["MessageType"] != "RAW" || request["SigningAlgorithm"] != "RSASSA_PKCS1_V1_5_SHA_256" {
                return error("ValidationException", "RAW messages, RSASSA_PKCS1_V1_5_SHA_256 only");
            }
            let Some(message) = request["Message"].as_str().and_then(|m| STANDARD.decode(m).ok()) else {
                return error("ValidationException", "Message is base64");
            };
            let signature = held.key.sign_input(&message).expect("sign");
            let signature = URL_SAFE_NO_PAD.decode(signature).expect("base64url signature");
            ok(json!({
                "KeyId": KEY_ID,
                "Signature": STANDARD.encode(signature),
                "SigningAlgorithm": "RSASSA_PKCS1_V1_5_SHA_256",
            }))
        }
        "TrentService.GetPublicKey" => {
            if request["KeyId"] != KEY_ID {
                return error("NotFoundException", "no such key");
            }
            ok(json!({
                "KeyId": KEY_ID,
                "PublicKey": STANDARD.encode(public_der(&held.key)),
                "KeySpec": "RSA_2048",
                "KeyUsage": "SIGN_VERIFY",
                "SigningAlgorithms": ["RSASSA_PKCS1_V1_5_SHA_256"],
            }))
        }
        "secretsmanager.GetSecretValue" => {
            if request["SecretId"] != SECRET_ID {
                return error("ResourceNotFoundException", "no such secret");
            }
            ok(json!({
                "ARN": SECRET_ID,
                "Name": "signing-key",
                "SecretString": held.pem,
                "VersionId": "00000000-0000-4000-8000-000000000001",
                "VersionStages": ["AWSCURRENT"],
                "CreatedDate": 1_767_225_600.0,
            }))
        }
        other => error("UnknownOperationException", &format!("{other:?} is not served here")),
    }
}
