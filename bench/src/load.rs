//! Load on a whole HTTP server: the project's local API server and the FastAPI peer
//! (`bench/fastapi/app.py`), each started with a superuser, logged in, given one item, and
//! driven by wrk (`bench/wrk/report.lua` prints wrk's summary as JSON).

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use api_tests::process::{HOST_VARIABLES, Running, http};
use http::Method;
use serde::Deserialize;

pub const EMAIL: &str = "bench@example.com";
pub const PASSWORD: &str = "bench password 0123";

/// A server under load, ready: logged in and holding one item.
#[derive(Debug)]
pub struct Peer {
    pub name: &'static str,
    pub url: String,
    pub token: String,
    pub item_id: String,
    _process: Running,
}

fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).map_err(|e| e.to_string())
}

/// The FastAPI peer's HS256 secret (it is the peer's; ours signs with the tests' RSA key).
pub const PEER_SECRET: &str = "fastapi-peer-secret-for-the-benchmarks-0123456789";

impl Peer {
    /// The local API server (`server`, in-memory store), its access log off.
    pub async fn ours(server: &Path, signing_key: &str) -> Result<Self, String> {
        let port = free_port()?.to_string();
        let mut command = Command::new(server);
        for name in HOST_VARIABLES {
            command.env_remove(name);
        }
        command.args(["--port", &port]).envs([
            ("SIGNING_KEY", signing_key),
            ("FIRST_SUPERUSER_EMAIL", EMAIL),
            ("FIRST_SUPERUSER_PASSWORD", PASSWORD),
            ("RUST_LOG", "warn"),
        ]);
        let mut process = Running::spawn(command);
        let url = process
            .wait_for(Duration::from_secs(60), |l| l.strip_prefix("API listening on ").map(str::to_owned));
        process.wait_until_answers(&format!("{url}/openapi.json"), Duration::from_secs(60)).await;
        Self::ready("Rust local server", url, process).await
    }

    /// The FastAPI peer under uvicorn, one worker, its access log off.
    pub async fn fastapi(python: &Path, workspace: &Path, secret: &str) -> Result<Self, String> {
        let port = free_port()?.to_string();
        let mut command = Command::new(python);
        command
            .args(["-m", "uvicorn", "app:app", "--host", "127.0.0.1", "--port", &port])
            .args(["--workers", "1", "--no-access-log", "--log-level", "info"])
            .arg("--app-dir")
            .arg(workspace.join("bench/fastapi"))
            .envs([
                ("JWT_SECRET", secret),
                ("FIRST_SUPERUSER_EMAIL", EMAIL),
                ("FIRST_SUPERUSER_PASSWORD", PASSWORD),
            ]);
        let mut process = Running::spawn(command);
        // Ready when it answers: uvicorn says "Application startup complete" before it binds.
        let url = format!("http://127.0.0.1:{port}");
        process.wait_until_answers(&format!("{url}/openapi.json"), Duration::from_secs(60)).await;
        Self::ready("FastAPI peer", url, process).await
    }

    async fn ready(name: &'static str, url: String, process: Running) -> Result<Self, String> {
        let mut peer = Self { name, url, token: String::new(), item_id: String::new(), _process: process };
        peer.login().await?;
        let created = http(
            Method::POST,
            &format!("{}/v1/items", peer.url),
            &[("content-type", "application/json"), ("authorization", &format!("Bearer {}", peer.token))],
            r#"{"title":"bench item","description":"read under load"}"#,
        )
        .await;
        if created.status != 201 {
            return Err(format!(
                "{name}: create item: {} {}",
                created.status,
                String::from_utf8_lossy(&created.body)
            ));
        }
        peer.item_id = created.json()["id"].as_str().unwrap_or_default().to_owned();
        Ok(peer)
    }

    /// A fresh access token (they live 15 minutes).
    pub async fn login(&mut self) -> Result<(), String> {
        let reply = http(
            Method::POST,
            &format!("{}/v1/auth/token", self.url),
            &[("content-type", "application/x-www-form-urlencoded")],
            login_form(EMAIL, PASSWORD),
        )
        .await;
        if reply.status != 200 {
            return Err(format!(
                "{}: login: {} {}",
                self.name,
                reply.status,
                String::from_utf8_lossy(&reply.body)
            ));
        }
        self.token = reply.json()["access_token"].as_str().unwrap_or_default().to_owned();
        Ok(())
    }

    pub fn item_url(&self) -> String {
        format!("{}/v1/items/{}", self.url, self.item_id)
    }

    pub fn token_url(&self) -> String {
        format!("{}/v1/auth/token", self.url)
    }
}

/// The token endpoint's form for a password grant (the bench's emails and passwords need no
/// escaping beyond `@` and spaces).
pub fn login_form(email: &str, password: &str) -> String {
    format!(
        "grant_type=password&username={}&password={}",
        email.replace('@', "%40"),
        password.replace(' ', "+")
    )
}

/// wrk's summary, as `report.lua` prints it.
#[derive(Debug, Clone, Deserialize)]
pub struct WrkResult {
    pub requests: u64,
    pub duration_us: u64,
    pub connect_errors: u64,
    pub read_errors: u64,
    pub write_errors: u64,
    pub status_errors: u64,
    pub timeouts: u64,
    pub p50_us: u64,
    pub p99_us: u64,
}

impl WrkResult {
    pub fn rps(&self) -> f64 {
        self.requests as f64 / (self.duration_us.max(1) as f64 / 1e6)
    }
}

/// One wrk run.
#[derive(Debug, Clone)]
pub struct Load {
    pub url: String,
    pub connections: u32,
    pub seconds: u32,
    pub method: &'static str,
    pub body: Option<String>,
    pub token: Option<String>,
}

impl Load {
    pub fn get(url: String, token: &str, connections: u32, seconds: u32) -> Self {
        Self { url, connections, seconds, method: "GET", body: None, token: Some(token.to_owned()) }
    }

    pub fn login(url: String, connections: u32, seconds: u32) -> Self {
        Self {
            url,
            connections,
            seconds,
            method: "POST",
            body: Some(login_form(EMAIL, PASSWORD)),
            token: None,
        }
    }

    pub fn command(&self, workspace: &Path) -> Command {
        let mut command = Command::new("wrk");
        command
            .args([
                "-t1",
                &format!("-c{}", self.connections),
                &format!("-d{}s", self.seconds),
                "--timeout",
                "10s",
            ])
            .arg("-s")
            .arg(workspace.join("bench/wrk/report.lua"))
            .env("WRK_METHOD", self.method)
            .env("WRK_BODY", self.body.as_deref().unwrap_or(""));
        if let Some(token) = &self.token {
            command.args(["-H", &format!("Authorization: Bearer {token}")]);
        }
        command.arg(&self.url);
        command
    }
}

/// Reads the JSON line of a finished wrk; every request must have been answered with a 2xx.
pub fn result(output: std::process::Output, what: &str) -> Result<WrkResult, String> {
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!("wrk ({what}) failed: {}\n{stdout}", String::from_utf8_lossy(&output.stderr)));
    }
    let line =
        stdout.lines().rev().find(|l| l.starts_with('{')).ok_or_else(|| format!("wrk ({what}): {stdout}"))?;
    let result: WrkResult = serde_json::from_str(line).map_err(|e| format!("wrk ({what}): {e}: {line}"))?;
    let failed = result.connect_errors
        + result.read_errors
        + result.write_errors
        + result.status_errors
        + result.timeouts;
    if failed > 0 || result.requests == 0 {
        return Err(format!("wrk ({what}): {failed} failed requests of {}: {line}", result.requests));
    }
    Ok(result)
}

pub fn run(load: &Load, workspace: &Path, what: &str) -> Result<WrkResult, String> {
    let output = load.command(workspace).output().map_err(|e| format!("wrk: {e} (apt-get install wrk)"))?;
    result(output, what)
}

/// `probe` while `background` runs: the background starts first and ends after the probe.
pub fn run_during(
    probe: &Load,
    background: &Load,
    workspace: &Path,
    what: &str,
) -> Result<(WrkResult, WrkResult), String> {
    let mut background = background.clone();
    background.seconds = probe.seconds + 2;
    let child = background
        .command(workspace)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("wrk: {e}"))?;
    std::thread::sleep(Duration::from_secs(1));
    let probed = run(probe, workspace, what);
    let output = child.wait_with_output().map_err(|e| e.to_string())?;
    let background = result(output, &format!("{what}, background"))?;
    Ok((probed?, background))
}
