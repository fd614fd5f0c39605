//! Black-box support: the workspace's binaries as processes (the local API server, the admin
//! command), their output captured line by line, and a plain HTTP client to talk to them.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// The workspace's root folder.
pub fn workspace() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// What a finished command printed.
#[derive(Debug)]
pub struct Finished {
    pub status: std::process::ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `command` to its end off the async executor (a test's server keeps answering meanwhile).
pub async fn finish(mut command: Command) -> Finished {
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("the command's thread")
        .unwrap_or_else(|e| panic!("could not run the command: {e}"));
    Finished {
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Where cargo puts this build's binaries: beside the test executable's `deps/`.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    exe.parent().and_then(|deps| deps.parent()).expect("target/<profile>").to_path_buf()
}

/// Builds the `server` package's binaries (a no-op when `cargo test` already has), so a test
/// never runs a stale one. Cargo holds no lock while tests run.
pub fn build_server() -> PathBuf {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let result = BUILT.get_or_init(|| {
        // The profile of this test binary's own directory (`debug` is cargo's `dev`).
        let profile = match bin_dir().file_name().and_then(|n| n.to_str()) {
            Some("debug") | None => "dev".to_owned(),
            Some(other) => other.to_owned(),
        };
        let status = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "-p", "server", "--bins", "--profile", &profile])
            .current_dir(workspace())
            .status()
            .map_err(|e| format!("cargo: {e}"))?;
        if status.success() { Ok(()) } else { Err(format!("cargo build -p server: {status}")) }
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    bin_dir()
}

/// Environment variables of the developer's shell that would change what a test starts.
pub const HOST_VARIABLES: &[&str] = &[
    "SIGNING_KEY",
    "SIGNING_KEY_FILE",
    "PUBLIC_BASE_URL",
    "KEYS_ENDPOINT",
    "DYNAMODB_ENDPOINT",
    "TABLE_NAME",
    "PORT",
    "WORKERS",
    "HOST",
    "CORS_ALLOWED_ORIGINS",
    "FIRST_SUPERUSER_EMAIL",
    "FIRST_SUPERUSER_PASSWORD",
    "ADMIN_PASSWORD",
    "RUST_LOG",
    "AWS_LAMBDA_LOG_FORMAT",
    "AWS_LAMBDA_LOG_LEVEL",
    "MAIL_DIR",
    "SES_ENDPOINT",
    "APP_URL",
    "PRODUCT_NAME",
    "REQUIRE_EMAIL_VERIFICATION",
];

/// A running process whose stdout and stderr lines are kept; killed when dropped.
#[derive(Debug)]
pub struct Running {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    /// Started in a process group of its own, which is stopped as a whole.
    group: bool,
}

impl Running {
    /// Starts `command` with piped output (its environment as the caller set it).
    pub fn spawn(command: Command) -> Self {
        Self::start(command, false)
    }

    /// As [`Running::spawn`], for a command that starts processes of its own (a watcher and
    /// the binaries it runs): all of them are stopped together.
    pub fn spawn_group(mut command: Command) -> Self {
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        Self::start(command, true)
    }

    fn start(mut command: Command, group: bool) -> Self {
        command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = command.spawn().unwrap_or_else(|e| panic!("start {command:?}: {e}"));
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>);
        let stderr = child.stderr.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>);
        for stream in [stdout, stderr].into_iter().flatten() {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    lines.lock().unwrap_or_else(|e| e.into_inner()).push(line);
                }
            });
        }
        Self { child, lines, group }
    }

    fn kill(&mut self) {
        if self.group {
            // `--` first: procps' kill reads `-<pgid>` right after a signal option as more
            // options (`-12345` became `kill(-1, SIGKILL)`: every process of the user).
            let group = format!("-{}", self.child.id());
            let _ = Command::new("kill").args(["-s", "KILL", "--", &group]).status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn output(&self) -> Vec<String> {
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Waits for a line that `pick` accepts; panics with everything printed so far if the
    /// process exits or `timeout` passes first.
    pub fn wait_for<T>(&mut self, timeout: Duration, pick: impl Fn(&str) -> Option<T>) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(found) = self.output().iter().find_map(|l| pick(l)) {
                return found;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                std::thread::sleep(Duration::from_millis(100));
                panic!("exited with {status} before it was ready:\n{}", self.output().join("\n"));
            }
            if Instant::now() > deadline {
                panic!("not ready after {timeout:?}:\n{}", self.output().join("\n"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until `url` answers an HTTP request (whatever its status): a server is ready when
    /// it answers, not when it says so (uvicorn prints "Application startup complete" before it
    /// binds its socket). Panics with everything printed so far if the process exits or
    /// `timeout` passes first.
    pub async fn wait_until_answers(&mut self, url: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if try_http(Method::GET, url, &[], Bytes::new()).await.is_ok() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                tokio::time::sleep(Duration::from_millis(100)).await;
                panic!("exited with {status} before it answered:\n{}", self.output().join("\n"));
            }
            if Instant::now() > deadline {
                panic!("{url} did not answer within {timeout:?}:\n{}", self.output().join("\n"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Asks the process to stop (SIGTERM, to it alone: a script stops its own children) and
    /// waits up to `timeout` for it to exit; returns its exit status (None: it had to be killed)
    /// and everything it printed.
    pub fn terminate(mut self, timeout: Duration) -> (Option<std::process::ExitStatus>, Vec<String>) {
        let _ = Command::new("kill").args(["-s", "TERM", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + timeout;
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
                _ => break None,
            }
        };
        std::thread::sleep(Duration::from_millis(100));
        (status, self.stop())
    }

    /// Stops the process (SIGKILL) and returns everything it printed.
    pub fn stop(mut self) -> Vec<String> {
        self.kill();
        // Let the reader threads drain the pipes.
        std::thread::sleep(Duration::from_millis(100));
        self.output()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The local API server, started and ready.
#[derive(Debug)]
pub struct LocalServer {
    pub process: Running,
    /// `http://127.0.0.1:<port>`, from its banner.
    pub url: String,
    /// Where it writes account mail: `MAIL_DIR` if the test gave one, else a new folder under
    /// `target/test-artifacts/mail/`.
    pub mail_dir: PathBuf,
}

impl LocalServer {
    /// Starts `target/<profile>/server` with `args` and `env`, nothing else from the host's
    /// configuration, and waits for its banner (which names its port) and then for it to answer.
    pub async fn start(args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut command = Command::new(build_server().join("server"));
        command.args(args);
        for name in HOST_VARIABLES {
            command.env_remove(name);
        }
        let mail_dir = match env.iter().find(|(name, _)| *name == "MAIL_DIR") {
            Some((_, dir)) => PathBuf::from(dir),
            None => {
                let dir =
                    workspace().join("target/test-artifacts/mail").join(uuid::Uuid::new_v4().to_string());
                command.env("MAIL_DIR", &dir);
                dir
            }
        };
        command.envs(env.iter().copied());
        let mut process = Running::spawn(command);
        let url = process.wait_for(Duration::from_secs(60), |line| {
            line.strip_prefix("API listening on ").map(str::to_owned)
        });
        process.wait_until_answers(&format!("{url}/openapi.json"), Duration::from_secs(60)).await;
        Self { process, url, mail_dir }
    }
}

/// One HTTP response, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Sends one request over real HTTP/1.1.
pub async fn http(method: Method, url: &str, headers: &[(&str, &str)], body: impl Into<Bytes>) -> Reply {
    try_http(method, url, headers, body).await.unwrap_or_else(|e| panic!("{e}"))
}

/// As [`http`], with a connection failure or a 30 s silence as an error.
pub async fn try_http(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Result<Reply, String> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut request = Request::builder().method(method).uri(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Full::new(body.into())).map_err(|e| e.to_string())?;
    let response = tokio::time::timeout(Duration::from_secs(30), client.request(request))
        .await
        .map_err(|_| format!("no answer from {url} in 30 s"))?
        .map_err(|e| format!("{url}: {e}"))?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await.map_err(|e| format!("{url}: {e}"))?.to_bytes();
    Ok(Reply { status: parts.status, headers: parts.headers, body })
}
