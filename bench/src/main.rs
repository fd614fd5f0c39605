//! The bench (README: Benchmarks). `scripts/bench` builds what it measures and runs
//! `bench run`, which measures on this machine, in one run:
//!
//! - each function's init, from exec to its first `GET /2018-06-01/runtime/invocation/next`
//!   against a minimal Lambda Runtime API served here, beside a hello-world `lambda_runtime`
//!   function started the same way; the first invocation's latency and the peak RSS after it;
//! - warm invocation latency through `lambda_http` and that Runtime API, in-memory store and
//!   DynamoDB Local;
//! - each `bootstrap` zipped as Lambda receives it, x86_64 and arm64;
//! - argon2id hash and verify time;
//! - the local API server against the FastAPI peer under wrk, interleaved, and an authenticated
//!   GET's p99 alone and while logins are hashing;
//!
//! and writes the results between the markers of `BENCHMARKS.md`. `bench run --quick` is the
//! short iteration the test command runs. `bench purge` measures deleting an account
//! (`purge.rs`), and `scripts/bench` runs it after `bench run`. `bench sizes` measures each
//! function's warm latency and cost at Lambda's memory sizes, in containers limited to the CPU
//! share of each (`sizes.rs`, `cost.rs`).

#![allow(clippy::print_stdout)]

mod cost;
mod lambda;
mod load;
mod purge;
mod report;
mod runtime_api;
mod sizes;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use api_tests::TestApp;
use axum::body::Bytes;
use clap::{Parser, Subcommand};
use secrecy::SecretString;
use shared::auth::{Argon2Hasher, PasswordHasher};
use shared::{AppState, Config};

use crate::lambda::{Launch, event};
use crate::load::{Load, Peer};
use crate::report::{Cold, Report, Throughput, Warm};

#[derive(Debug, Parser)]
#[command(about = "Measure the functions and the local server (README: Benchmarks)")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Measure everything and write the results into --out.
    Run(RunArgs),
    /// Delete accounts of 300 and 20,000 items on DynamoDB Local and let the worker purge them;
    /// write the times into --out (its purge markers).
    Purge {
        /// Small accounts: the test command's check that it works.
        #[arg(long)]
        quick: bool,
        #[arg(long, default_value = "BENCHMARKS.md")]
        out: PathBuf,
    },
    /// Each function's warm latency, GB-s and cost at each memory size, in a container limited
    /// to that size's CPU share (`--cpus=<MB/1769>`); the table goes into --out (its sizes
    /// markers).
    Sizes(sizes::SizesArgs),
    /// A function's router on Lambda over an in-memory store with a user and an item (written to
    /// --fixtures): the in-memory rows of the warm latency.
    ServeFunction {
        name: String,
        #[arg(long)]
        fixtures: PathBuf,
    },
}

#[derive(Debug, Clone, clap::Args)]
struct RunArgs {
    /// One short iteration of everything (the test command's check that the bench works).
    #[arg(long)]
    quick: bool,
    /// The markdown file whose bench section is replaced with the results.
    #[arg(long, default_value = "BENCHMARKS.md")]
    out: PathBuf,
    /// Where the function binaries, `hello` and `server` are (default: beside this binary).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// The local API server to load (default: `server` in --bin-dir).
    #[arg(long)]
    server: Option<PathBuf>,
    /// cargo lambda's output for arm64 (`<dir>/<function>/bootstrap`); required unless --quick.
    #[arg(long)]
    arm64_dir: Option<PathBuf>,
    /// The Python with the FastAPI peer's requirements.
    #[arg(long, default_value = ".tools/venv/bin/python")]
    python: PathBuf,
    /// Cold starts per function (default 50; 2 with --quick).
    #[arg(long)]
    starts: Option<usize>,
    /// The command line to record in the report.
    #[arg(long, default_value = "scripts/bench")]
    command: String,
}

/// How much of each measurement a run takes.
#[derive(Debug, Clone, Copy)]
pub struct Counts {
    pub starts: usize,
    pub warm_up: usize,
    pub warm_get: usize,
    pub warm_token: usize,
    pub hashes: usize,
    pub rounds: usize,
    pub wrk_seconds: u32,
}

fn main() {
    let cli = Cli::parse();
    // One thread: a function runs on one, as the functions' own `main`s do; the bench's Runtime
    // API answers from one, so that its own hand-offs between threads stay out of the latency
    // it measures.
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => fail(format!("tokio: {e}")),
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Cmd::Run(args) => run(args).await,
            Cmd::ServeFunction { name, fixtures } => serve_function(&name, &fixtures).await,
            Cmd::Purge { quick, out } => purge::run(quick, &out).await,
            Cmd::Sizes(args) => sizes::run(args).await,
        }
    });
    if let Err(e) = result {
        fail(e);
    }
}

fn fail(message: String) -> ! {
    eprintln!("bench: {message}");
    std::process::exit(1)
}

async fn serve_function(name: &str, fixtures: &Path) -> Result<(), String> {
    let router = catalog::function(name).ok_or_else(|| format!("no function {name} in the catalog"))?.router;
    shared::telemetry::init();
    let config = Config::from_env().map_err(|e| e.to_string())?;
    // As `auth` would, with the tests' key (SIGNING_KEY names it too).
    let state = AppState::in_memory(config).with_issuing(api_tests::keys::test_issuing());
    let setup = TestApp::from_state(state.clone());
    let user = setup.user().await;
    let item = setup.item(&user.access, "bench item").await;
    let written = serde_json::json!({
        "email": user.email,
        "password": api_tests::PASSWORD,
        "user_id": user.id,
        "item_id": item["id"],
    });
    std::fs::write(fixtures, written.to_string()).map_err(|e| e.to_string())?;
    lambda_http::run(router(state)).await.map_err(|e| e.to_string())
}

/// Percentile by nearest rank over sorted samples.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn get_item_event(item_id: &str, token: &str) -> Bytes {
    event("GET", &format!("/v1/items/{item_id}"), &[("authorization", &bearer(token))], None)
}

fn token_event(email: &str, password: &str) -> Bytes {
    event(
        "POST",
        "/v1/auth/token",
        &[("content-type", "application/x-www-form-urlencoded")],
        Some(&load::login_form(email, password)),
    )
}

/// A fresh access token for `user` (the setup's own clock stands still).
async fn token_for(state: &AppState, user: uuid::Uuid) -> Result<String, String> {
    let subject = shared::auth::jwt::Subject { user_id: user, credential_version: 0 };
    state.jwt.issue(subject, chrono::Utc::now()).await.map_err(|e| format!("issue a token: {e:?}"))
}

/// The signing key of every process the bench starts: the tests' fixed key, as a file.
fn signing_key_var() -> String {
    format!("file:{}", api_tests::keys::TEST_KEY_FILE)
}

async fn run(args: RunArgs) -> Result<(), String> {
    let workspace = api_tests::process::workspace();
    let counts = if args.quick {
        Counts { starts: 2, warm_up: 1, warm_get: 5, warm_token: 2, hashes: 2, rounds: 1, wrk_seconds: 1 }
    } else {
        Counts {
            starts: 50,
            warm_up: 20,
            warm_get: 2000,
            warm_token: 40,
            hashes: 20,
            rounds: 3,
            wrk_seconds: 5,
        }
    };
    let counts = Counts { starts: args.starts.unwrap_or(counts.starts), ..counts };
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let bin_dir = match &args.bin_dir {
        Some(dir) => dir.clone(),
        None => exe.parent().ok_or("the bench's directory")?.to_path_buf(),
    };
    if !args.quick && args.arm64_dir.is_none() {
        return Err("--arm64-dir is needed for a full run (scripts/bench passes it)".into());
    }
    let python = if args.python.is_absolute() { args.python.clone() } else { workspace.join(&args.python) };
    let logs = workspace.join("target/bench-logs");
    std::fs::create_dir_all(&logs).map_err(|e| e.to_string())?;
    let mut report = Report::new(&workspace, &args.command, args.quick, counts);

    // DynamoDB Local with a fresh table and the fixtures the sample events name (two users, a
    // record of each resource), as the functions will find them.
    println!("==> DynamoDB Local");
    let state = api_tests::dynamo::app_state().await;
    let fixtures = api_tests::fixtures::fixtures(state.clone()).await;
    let events = api_tests::fixtures::all_events();
    let user_id: uuid::Uuid = catalog::events::USER_ID.parse().map_err(|e| format!("{e}"))?;
    let user_email = catalog::events::USER_EMAIL;
    let parameters = catalog::events::path_parameters(&catalog::routes().map_err(|e| e.to_string())?);
    let item_id = catalog::events::fixture_id("item_id", &parameters);
    let endpoint = api_tests::dynamo::endpoint();
    let table = state.config.table_name.clone();
    let signing_key = signing_key_var();
    let store_env = [
        ("TABLE_NAME", table.as_str()),
        ("SIGNING_KEY", signing_key.as_str()),
        ("DYNAMODB_ENDPOINT", endpoint.as_str()),
    ];

    // Cold starts: every function of the catalog once per round, in turn, so drift hits them all
    // alike, each with its probe (a sample event); beside them the hello-world yardstick, and the
    // items function without its warm-up read.
    println!("==> cold starts ({} per function)", counts.starts);
    let bin = |name: &str| bin_dir.join(name);
    let log = |name: &str| logs.join(format!("{name}.log"));
    let probe = |name: &str| -> Result<(String, Bytes), String> {
        let function = catalog::function(name).ok_or_else(|| format!("no function {name}"))?;
        let event = events.iter().find(|e| e.name == function.probe).ok_or("no probe event")?;
        let text = api_tests::fixtures::fill(event, &fixtures.substitutions);
        Ok((format!("`{} {}`", event.method, event.route), Bytes::from(text)))
    };
    let mut colds: Vec<(String, String, Launch, Bytes)> = vec![(
        "hello".into(),
        "any event".into(),
        Launch::new(&bin("hello"), "hello", &[], &log("hello")),
        Bytes::from_static(b"{}"),
    )];
    for function in catalog::FUNCTIONS {
        let (request, event) = probe(function.name)?;
        let launch = Launch::new(&bin(function.name), function.name, &store_env, &log(function.name));
        colds.push((function.name.into(), request, launch, event));
    }
    let (request, event) = probe("items")?;
    let launch =
        Launch::new(&bin("items"), "items", &store_env, &log("items")).with_env("DYNAMODB_WARM_UP", "false");
    colds.push(("items, no warm-up".into(), request, launch, event));
    let mut cold: Vec<Cold> = colds.iter().map(|(name, request, _, _)| Cold::new(name, request)).collect();
    for _ in 0..counts.starts {
        for ((_, _, launch, event), samples) in colds.iter().zip(cold.iter_mut()) {
            let function = launch.start().await?;
            let first = function.invoke(event, 200).await?;
            samples.init.push(function.init);
            samples.first.push(first.latency);
            if let Some(rss) = function.peak_rss() {
                samples.rss.push(rss);
            }
        }
    }
    report.cold = cold;

    // Warm invocations, in-memory store (the bench serving the function's router on Lambda) and
    // DynamoDB Local (the function's own binary).
    println!("==> warm invocations");
    let token = token_for(&state, user_id).await?;
    // The floor: the hello-world function's round trip through the same Runtime API.
    let hello = Launch::new(&bin("hello"), "hello", &[], &log("hello")).start().await?;
    let hello_event = Bytes::from_static(b"{}");
    for _ in 0..counts.warm_up {
        hello.invoke(&hello_event, 200).await?;
    }
    let mut samples = Vec::with_capacity(counts.warm_get);
    for _ in 0..counts.warm_get {
        samples.push(hello.invoke(&hello_event, 200).await?.latency);
    }
    drop(hello);
    report.warm.push(Warm::new("hello-world (any event)", "none", samples));
    for (name, memory) in [("items", true), ("auth", true), ("items", false), ("auth", false)] {
        let store = if memory { "in-memory" } else { "DynamoDB Local" };
        let (function, event, route) = if memory {
            let fixtures = logs.join(format!("{name}-fixtures.json"));
            let _ = std::fs::remove_file(&fixtures);
            let launch = Launch::new(
                &exe,
                name,
                &[("SIGNING_KEY", signing_key.as_str())],
                &log(&format!("{name}-memory")),
            )
            .arg("serve-function")
            .arg(name)
            .arg("--fixtures")
            .arg(fixtures.display().to_string());
            let function = launch.start().await?;
            let text = std::fs::read_to_string(&fixtures).map_err(|e| format!("fixtures: {e}"))?;
            let f: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
            let (email, password) =
                (f["email"].as_str().unwrap_or_default(), f["password"].as_str().unwrap_or_default());
            let memory_user: uuid::Uuid =
                f["user_id"].as_str().and_then(|s| s.parse().ok()).ok_or("fixture user")?;
            let memory_item = f["item_id"].as_str().unwrap_or_default();
            let memory_token = token_for(&state, memory_user).await?;
            match name {
                "items" => (function, get_item_event(memory_item, &memory_token), "GET /v1/items/{item_id}"),
                _ => (function, token_event(email, password), "POST /v1/auth/token"),
            }
        } else {
            let function = Launch::new(&bin(name), name, &store_env, &log(name)).start().await?;
            match name {
                "items" => (function, get_item_event(&item_id, &token), "GET /v1/items/{item_id}"),
                _ => (function, token_event(user_email, api_tests::PASSWORD), "POST /v1/auth/token"),
            }
        };
        let n = if name == "items" { counts.warm_get } else { counts.warm_token };
        for _ in 0..counts.warm_up {
            function.invoke(&event, 200).await?;
        }
        let mut samples = Vec::with_capacity(n);
        for _ in 0..n {
            samples.push(function.invoke(&event, 200).await?.latency);
        }
        report.warm.push(Warm::new(route, store, samples));
    }

    // The reads of an authenticated GET against DynamoDB Local: the caller then the item (as
    // before), against both at once (as `read_item` does now), interleaved.
    println!("==> user and item reads, one after the other and at once");
    let item_uuid: uuid::Uuid = item_id.parse().map_err(|e| format!("item id: {e}"))?;
    let (mut sequential, mut concurrent) = (Vec::new(), Vec::new());
    let repos = &state.repos;
    let items = repos.resources::<items::Item>();
    for round in 0..(counts.warm_get / 4).max(2) {
        for order in [round % 2 == 0, round % 2 != 0] {
            let started = Instant::now();
            if order {
                let user = repos.users.get_user(user_id).await.map_err(|e| e.to_string())?;
                let item = items.get(user.map(|u| u.id).unwrap_or_default(), item_uuid).await;
                item.map_err(|e| e.to_string())?.ok_or("the item")?;
                sequential.push(started.elapsed());
            } else {
                let (user, item) = tokio::join!(repos.users.get_user(user_id), items.get(user_id, item_uuid));
                user.map_err(|e| e.to_string())?.ok_or("the user")?;
                item.map_err(|e| e.to_string())?.ok_or("the item")?;
                concurrent.push(started.elapsed());
            }
        }
    }
    report.reads = Some((sequential, concurrent));

    // Sizes: each bootstrap zipped with deflate, as `sam build`/`cargo lambda` package it.
    println!("==> sizes");
    for name in catalog::FUNCTIONS.iter().map(|f| f.name).chain(["hello"]) {
        let x86 = report::zipped(&bin(name))?;
        let arm = match &args.arm64_dir {
            Some(dir) => Some(report::zipped(&dir.join(name).join("bootstrap"))?),
            None => None,
        };
        report.sizes.push((name.to_owned(), x86, arm));
    }

    // argon2id at the production parameters, on this thread (what one blocking-pool task does).
    println!("==> argon2id");
    let hasher = Argon2Hasher::owasp();
    let mut hash = Vec::new();
    let mut verify = Vec::new();
    for _ in 0..counts.hashes {
        let started = Instant::now();
        let stored = hasher.hash(SecretString::from("bench password")).await.map_err(|e| format!("{e:?}"))?;
        hash.push(started.elapsed());
        let started = Instant::now();
        hasher
            .verify(SecretString::from("bench password"), Some(stored))
            .await
            .map_err(|e| format!("{e:?}"))?;
        verify.push(started.elapsed());
    }
    report.argon2 = Some((hash, verify));

    // The local server and the FastAPI peer, one process and one worker each, interleaved.
    println!("==> wrk: local server and FastAPI peer");
    let server = args.server.clone().unwrap_or_else(|| bin_dir.join("server"));
    let mut ours = Peer::ours(&server, &signing_key).await?;
    let mut peer = Peer::fastapi(&python, &workspace, load::PEER_SECRET).await?;
    let secs = counts.wrk_seconds;
    let mut throughput = Throughput::default();
    for round in 0..counts.rounds {
        ours.login().await?;
        peer.login().await?;
        let order: [&Peer; 2] = if round % 2 == 0 { [&ours, &peer] } else { [&peer, &ours] };
        for p in order {
            let r = load::run(&Load::get(p.item_url(), &p.token, 16, secs), &workspace, "GET")?;
            throughput.get.push((p.name, r));
        }
        for p in order {
            let r = load::run(&Load::login(p.token_url(), 4, secs), &workspace, "login")?;
            throughput.login.push((p.name, r));
        }
        // One connection reading while four log in, against the same connection alone.
        for p in order {
            let probe = Load::get(p.item_url(), &p.token, 1, secs);
            let alone = load::run(&probe, &workspace, "GET alone")?;
            let (during, logins) = load::run_during(
                &probe,
                &Load::login(p.token_url(), 4, secs),
                &workspace,
                "GET during logins",
            )?;
            throughput.under_logins.push((p.name, alone, during, logins));
        }
    }
    report.throughput = throughput;
    drop((ours, peer));

    let written = report.write(&args.out)?;
    println!("{written}");
    println!("==> wrote {}", args.out.display());
    Ok(())
}
