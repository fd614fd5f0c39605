//! A fault-injecting proxy on loopback in front of DynamoDB Local: it forwards every request, but
//! for the operations a rule names it answers an error instead, answers late, or forwards the
//! request and then loses the answer (the write lands, the client never hears). Tests see what
//! the API answers and then read the real table to prove nothing was left half-written.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What to do to a matching request.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer with this HTTP status and DynamoDB error type, without forwarding.
    Error { status: u16, kind: &'static str },
    /// Forward after this delay.
    Delay(Duration),
    /// Forward (the write lands), then answer 500 as if the response had been lost.
    LoseResponse,
    /// Forward (the write lands), then answer with this status and error type instead of
    /// DynamoDB's answer: e.g. `TransactionInProgressException`, which DynamoDB gives a resent
    /// transaction while the first is still committing.
    LandThenAnswer { status: u16, kind: &'static str },
}

/// Applies `fault` to requests for `operation` (`PutItem`, `TransactWriteItems`, ...), after
/// letting `skip` of them through, at most `times` times.
#[derive(Debug, Clone)]
pub struct Rule {
    pub operation: &'static str,
    pub fault: Fault,
    pub skip: usize,
    pub times: usize,
}

impl Rule {
    pub fn always(operation: &'static str, fault: Fault) -> Self {
        Self { operation, fault, skip: 0, times: usize::MAX }
    }
}

#[derive(Debug, Default)]
struct Shared {
    rules: Mutex<Vec<(Rule, usize)>>,
    injected: AtomicUsize,
    forwarded: AtomicUsize,
}

/// The proxy; its endpoint replaces DynamoDB Local's in a test's configuration.
#[derive(Debug, Clone)]
pub struct FaultProxy {
    pub endpoint: String,
    shared: Arc<Shared>,
}

impl FaultProxy {
    /// Starts a proxy in front of `upstream` (e.g. DynamoDB Local's endpoint).
    pub async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the proxy");
        let endpoint = format!("http://{}", listener.local_addr().expect("address"));
        let shared = Arc::new(Shared::default());
        let state = shared.clone();
        tokio::spawn(async move {
            let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
            while let Ok((socket, _)) = listener.accept().await {
                let (state, client, upstream) = (state.clone(), client.clone(), upstream.clone());
                tokio::spawn(async move {
                    let _ = serve(socket, &state, &client, &upstream).await;
                });
            }
        });
        Self { endpoint, shared }
    }

    pub fn add(&self, rule: Rule) {
        self.shared.rules.lock().unwrap_or_else(|e| e.into_inner()).push((rule, 0));
    }

    pub fn clear(&self) {
        self.shared.rules.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// Faults injected so far.
    pub fn injected(&self) -> usize {
        self.shared.injected.load(Ordering::SeqCst)
    }

    /// Requests that reached DynamoDB Local.
    pub fn forwarded(&self) -> usize {
        self.shared.forwarded.load(Ordering::SeqCst)
    }
}

fn fault_for(shared: &Shared, operation: &str) -> Option<Fault> {
    let mut rules = shared.rules.lock().unwrap_or_else(|e| e.into_inner());
    for (rule, seen) in rules.iter_mut() {
        if rule.operation != operation {
            continue;
        }
        *seen += 1;
        if *seen > rule.skip && *seen - rule.skip <= rule.times {
            shared.injected.fetch_add(1, Ordering::SeqCst);
            return Some(rule.fault.clone());
        }
    }
    None
}

/// Reads one HTTP/1.1 request (head, then the body Content-Length announces).
async fn read_request(socket: &mut TcpStream) -> Option<(Vec<(String, String)>, String, Bytes)> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
        let Some(head_end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") else { continue };
        let head = String::from_utf8_lossy(&buffer[..head_end]).to_string();
        let mut lines = head.lines();
        let request_line = lines.next()?.to_owned();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| {
                l.split_once(':').map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            })
            .collect();
        let length = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .and_then(|(_, v)| v.parse::<usize>().ok())
            .unwrap_or(0);
        if buffer.len() >= head_end + 4 + length {
            let body = Bytes::copy_from_slice(&buffer[head_end + 4..head_end + 4 + length]);
            return Some((headers, request_line, body));
        }
    }
}

async fn respond(socket: &mut TcpStream, status: u16, headers: &[(String, String)], body: &[u8]) {
    let mut head =
        format!("HTTP/1.1 {status} Proxy\r\ncontent-length: {}\r\nconnection: close\r\n", body.len());
    for (name, value) in headers {
        if !["content-length", "connection", "transfer-encoding"].contains(&name.as_str()) {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    head.push_str("\r\n");
    let _ = socket.write_all(head.as_bytes()).await;
    let _ = socket.write_all(body).await;
}

async fn error(socket: &mut TcpStream, status: u16, kind: &str) {
    let body = format!(
        r#"{{"__type":"com.amazonaws.dynamodb.v20120810#{kind}","message":"injected by the test proxy"}}"#
    );
    let headers = [("content-type".to_owned(), "application/x-amz-json-1.0".to_owned())];
    respond(socket, status, &headers, body.as_bytes()).await;
}

async fn serve(
    mut socket: TcpStream,
    shared: &Shared,
    client: &Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    upstream: &str,
) -> Option<()> {
    let (headers, request_line, body) = read_request(&mut socket).await?;
    let target =
        headers.iter().find(|(k, _)| k == "x-amz-target").map(|(_, v)| v.clone()).unwrap_or_default();
    let operation = target.rsplit('.').next().unwrap_or_default().to_owned();
    let fault = fault_for(shared, &operation);
    match fault {
        Some(Fault::Error { status, kind }) => {
            error(&mut socket, status, kind).await;
            return Some(());
        }
        Some(Fault::Delay(delay)) => tokio::time::sleep(delay).await,
        _ => {}
    }
    let path = request_line.split_whitespace().nth(1).unwrap_or("/");
    let mut request = hyper::Request::post(format!("{upstream}{path}"));
    for (name, value) in &headers {
        if !["host", "content-length", "connection"].contains(&name.as_str()) {
            request = request.header(name.as_str(), value.as_str());
        }
    }
    let response = client.request(request.body(Full::new(body)).ok()?).await.ok()?;
    shared.forwarded.fetch_add(1, Ordering::SeqCst);
    match fault {
        Some(Fault::LoseResponse) => {
            error(&mut socket, 500, "InternalServerError").await;
            return Some(());
        }
        Some(Fault::LandThenAnswer { status, kind }) => {
            error(&mut socket, status, kind).await;
            return Some(());
        }
        _ => {}
    }
    let status = response.status().as_u16();
    let response_headers: Vec<(String, String)> = response
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or_default().to_owned()))
        .collect();
    let bytes = response.into_body().collect().await.ok()?.to_bytes();
    respond(&mut socket, status, &response_headers, &bytes).await;
    Some(())
}
