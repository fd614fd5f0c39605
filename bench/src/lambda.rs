//! Function processes started as Lambda starts them: exec'd with Lambda's environment, pointed
//! at a [`RuntimeApi`] of their own, and API Gateway HTTP API (payload v2) events.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use serde_json::json;

use crate::runtime_api::{Outcome, RuntimeApi};

/// A function process with its Runtime API.
#[derive(Debug)]
pub struct Function {
    pub api: RuntimeApi,
    child: Child,
    /// From exec to its first `GET /invocation/next`.
    pub init: Duration,
}

/// How to start one function.
#[derive(Debug, Clone)]
pub struct Launch {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Where its stdout and stderr go.
    pub log: PathBuf,
}

impl Launch {
    /// `program` with Lambda's own variables (those of a provided.al2023 function with the
    /// template's memory and JSON logs) and `env`; nothing else from the bench's environment.
    pub fn new(program: &Path, name: &str, env: &[(&str, &str)], log: &Path) -> Self {
        // Later entries win when the process is started, so `env` overrides these.
        let all: Vec<(String, String)> = [
            ("AWS_LAMBDA_FUNCTION_NAME", name),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256"),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
            ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/bench"),
            ("AWS_LAMBDA_LOG_STREAM_NAME", "bench"),
            ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
            ("AWS_LAMBDA_LOG_LEVEL", "INFO"),
            ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_DEFAULT_REGION", "us-east-1"),
            // As Lambda hands a role's credentials to the function; DynamoDB Local keeps one
            // database per access key, and the bench's setup writes with this one.
            ("AWS_ACCESS_KEY_ID", "local"),
            ("AWS_SECRET_ACCESS_KEY", "local"),
            ("LANG", "en_US.UTF-8"),
            ("TZ", ":UTC"),
        ]
        .into_iter()
        .chain(env.iter().copied())
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        Self { program: program.to_path_buf(), args: Vec::new(), env: all, log: log.to_path_buf() }
    }

    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn with_env(mut self, name: &str, value: &str) -> Self {
        self.env.retain(|(k, _)| k != name);
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Starts the process and waits for its first `GET /invocation/next`.
    pub async fn start(&self) -> Result<Function, String> {
        let mut api = RuntimeApi::start().await;
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| format!("open {}: {e}", self.log.display()))?;
        let err_log = log.try_clone().map_err(|e| e.to_string())?;
        let mut command = Command::new(&self.program);
        command
            .args(&self.args)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("AWS_LAMBDA_RUNTIME_API", &api.address)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err_log);
        let spawned = Instant::now();
        let mut child = command.spawn().map_err(|e| format!("start {}: {e}", self.program.display()))?;
        match api.first_next(Duration::from_secs(30)).await {
            Ok(at) => Ok(Function { init: at - spawned, api, child }),
            Err(e) => {
                let _ = child.kill();
                let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
                let tail = std::fs::read_to_string(&self.log).unwrap_or_default();
                let tail: Vec<&str> = tail.lines().rev().take(10).collect();
                Err(format!(
                    "{} did not start ({e}; {status}); last lines of {}:\n{}",
                    self.program.display(),
                    self.log.display(),
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                ))
            }
        }
    }
}

impl Function {
    /// One invocation that must answer `expect`.
    pub async fn invoke(&self, event: &Bytes, expect: u16) -> Result<Outcome, String> {
        let outcome = self.api.invoke(event.clone()).await?;
        match outcome.status() {
            Some(status) if status == expect && !outcome.error => Ok(outcome),
            _ => Err(format!(
                "expected status {expect}, got {}{}",
                String::from_utf8_lossy(&outcome.body),
                if outcome.error { " (posted to /error)" } else { "" }
            )),
        }
    }

    /// The process's peak resident set (`VmHWM`), in bytes.
    pub fn peak_rss(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    }
}

impl Drop for Function {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An API Gateway HTTP API (payload format 2.0) event, as `events/` holds them.
pub fn event(method: &str, path: &str, headers: &[(&str, &str)], body: Option<&str>) -> Bytes {
    let mut all = serde_json::Map::new();
    for (name, value) in [
        ("accept", "application/json"),
        ("host", "abc123.execute-api.us-east-1.amazonaws.com"),
        ("user-agent", "bench"),
        ("x-forwarded-for", "192.0.2.10"),
        ("x-forwarded-port", "443"),
        ("x-forwarded-proto", "https"),
    ]
    .into_iter()
    .chain(headers.iter().copied())
    {
        all.insert(name.to_owned(), json!(value));
    }
    let value = json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": all,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "abc123",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "192.0.2.10",
                "userAgent": "bench"
            },
            "requestId": "bench",
            "routeKey": "$default",
            "stage": "$default",
            "time": "24/Nov/2026:12:00:00 +0000",
            "timeEpoch": 1_795_521_600_000_u64
        },
        "body": body,
        "isBase64Encoded": false
    });
    Bytes::from(value.to_string())
}
