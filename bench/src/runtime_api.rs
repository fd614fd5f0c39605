//! A minimal Lambda Runtime API, as the Lambda service serves it to a function's process
//! (<https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html>): `GET .../invocation/next`
//! hands out the next event, `POST .../invocation/{id}/response` (or `/error`) takes its answer,
//! `POST .../init/error` reports a failed start. One instance serves one process.
//!
//! It records when the process first asks for an event (the end of its init) and, per
//! invocation, the time from handing out the event to receiving the answer: what Lambda bills
//! as the invocation's duration.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

/// The answer to one invocation.
#[derive(Debug)]
pub struct Outcome {
    /// From the moment the event was handed out to the moment the answer arrived.
    pub latency: Duration,
    pub body: Bytes,
    /// Posted to `/error` rather than `/response`.
    pub error: bool,
}

impl Outcome {
    /// The HTTP status in a `lambda_http` answer (`{"statusCode": 200, ...}`).
    pub fn status(&self) -> Option<u16> {
        let value: serde_json::Value = serde_json::from_slice(&self.body).ok()?;
        value.get("statusCode")?.as_u64().and_then(|s| u16::try_from(s).ok())
    }
}

struct Invocation {
    id: String,
    event: Bytes,
    reply: oneshot::Sender<Outcome>,
}

struct Pending {
    handed_out: Instant,
    reply: oneshot::Sender<Outcome>,
}

struct Shared {
    first_next: watch::Sender<Option<Instant>>,
    init_error: watch::Sender<Option<String>>,
    queue: tokio::sync::Mutex<mpsc::Receiver<Invocation>>,
    pending: Mutex<HashMap<String, Pending>>,
}

#[derive(Debug)]
pub struct RuntimeApi {
    /// `host:port`, the value of `AWS_LAMBDA_RUNTIME_API`.
    pub address: String,
    sender: mpsc::Sender<Invocation>,
    first_next: watch::Receiver<Option<Instant>>,
    init_error: watch::Receiver<Option<String>>,
    server: JoinHandle<()>,
}

impl RuntimeApi {
    pub async fn start() -> Self {
        let (sender, receiver) = mpsc::channel(1);
        let (first_next, first_next_rx) = watch::channel(None);
        let (init_error, init_error_rx) = watch::channel(None);
        let shared = Arc::new(Shared {
            first_next,
            init_error,
            queue: tokio::sync::Mutex::new(receiver),
            pending: Mutex::new(HashMap::new()),
        });
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route("/2018-06-01/runtime/invocation/{id}/response", post(response))
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error_route))
            .with_state(shared);
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap_or_else(|e| panic!("bind the Runtime API: {e}"));
        let address = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { address, sender, first_next: first_next_rx, init_error: init_error_rx, server }
    }

    /// When the process first asked for an event, waiting up to `timeout`. An init error the
    /// process reported, or the timeout, is an `Err`.
    pub async fn first_next(&mut self, timeout: Duration) -> Result<Instant, String> {
        let mut init_error = self.init_error.clone();
        let wait = async {
            tokio::select! {
                at = self.first_next.wait_for(Option::is_some) => {
                    at.ok().and_then(|at| *at).ok_or_else(|| "the Runtime API stopped".to_owned())
                }
                reported = init_error.wait_for(Option::is_some) => {
                    Err(format!("init error: {}", reported.ok().and_then(|r| r.clone()).unwrap_or_default()))
                }
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .unwrap_or_else(|_| Err(format!("no GET /invocation/next within {timeout:?}")))
    }

    /// Hands `event` to the process and waits for its answer (30 s at most).
    pub async fn invoke(&self, event: Bytes) -> Result<Outcome, String> {
        let (reply, answer) = oneshot::channel();
        let invocation = Invocation { id: uuid::Uuid::new_v4().to_string(), event, reply };
        self.sender.send(invocation).await.map_err(|_| "the Runtime API stopped".to_owned())?;
        match tokio::time::timeout(Duration::from_secs(30), answer).await {
            Ok(Ok(outcome)) => Ok(outcome),
            Ok(Err(_)) => Err("the invocation was dropped".to_owned()),
            Err(_) => Err("no answer to the invocation within 30 s".to_owned()),
        }
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn next(State(shared): State<Arc<Shared>>) -> Response {
    let arrived = Instant::now();
    shared.first_next.send_if_modified(|first| {
        let unset = first.is_none();
        if unset {
            *first = Some(arrived);
        }
        unset
    });
    let Some(invocation) = shared.queue.lock().await.recv().await else {
        return StatusCode::GONE.into_response();
    };
    let deadline = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default() + Duration::from_secs(30);
    let mut headers = HeaderMap::new();
    let pairs = [
        ("lambda-runtime-aws-request-id", invocation.id.clone()),
        ("lambda-runtime-deadline-ms", deadline.as_millis().to_string()),
        (
            "lambda-runtime-invoked-function-arn",
            "arn:aws:lambda:us-east-1:123456789012:function:bench".to_owned(),
        ),
        ("lambda-runtime-trace-id", "Root=1-00000000-000000000000000000000000;Sampled=0".to_owned()),
        ("content-type", "application/json".to_owned()),
    ];
    for (name, value) in pairs {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
    let pending = Pending { handed_out: Instant::now(), reply: invocation.reply };
    shared.pending.lock().unwrap_or_else(|e| e.into_inner()).insert(invocation.id, pending);
    (StatusCode::OK, headers, invocation.event).into_response()
}

fn answer(shared: &Shared, id: &str, body: Bytes, error: bool) -> StatusCode {
    let arrived = Instant::now();
    let pending = shared.pending.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
    match pending {
        Some(p) => {
            let _ = p.reply.send(Outcome { latency: arrived - p.handed_out, body, error });
            StatusCode::ACCEPTED
        }
        None => StatusCode::BAD_REQUEST,
    }
}

async fn response(State(shared): State<Arc<Shared>>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    answer(&shared, &id, body, false)
}

async fn error(State(shared): State<Arc<Shared>>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    answer(&shared, &id, body, true)
}

async fn init_error_route(State(shared): State<Arc<Shared>>, body: Bytes) -> StatusCode {
    let _ = shared.init_error.send(Some(String::from_utf8_lossy(&body).into_owned()));
    StatusCode::ACCEPTED
}
