//! Where the signing key should live (issue 17, docs/signing-keys.md): a KMS key (`kms:Sign` for
//! every token, the key never leaves KMS) or PEM in Secrets Manager (read once per cold start,
//! then signing in-process), against a stand-in for both on loopback (`api_tests::key_service`),
//! with a PEM file (no service at all) as the floor. For each:
//!
//! - cold: what the key adds to `auth`'s cold start (`JwtKeys::prepare`: the ring read, and the
//!   signer made ready, over a new SDK configuration as a new process has) and then its first
//!   token (for KMS, the first connection);
//! - warm: one more token;
//! - login: a whole `POST /v1/auth/token` in-process (memory store, the tests' cheap argon2, so
//!   the key's share shows; the real argon2's cost is in BENCHMARKS.md).
//!
//! `cargo bench -p api-tests --bench signing_cost` (`-- --rounds 400` for more). It prints a
//! markdown table.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use api_tests::key_service::{KEY_ID, KeyService, SECRET_ID};
use api_tests::keys::{TEST_KEY_FILE, TEST_KEY_PEM};
use api_tests::stats::{arg, median, ms, percentile};
use api_tests::{PASSWORD, TestApp};
use shared::AppState;
use shared::auth::jwt::{Issuing, Subject};
use shared::auth::ring::Schedule;
use shared::auth::rotation;
use shared::auth::signer::{KeyClients, KeySource};
use shared::repo::Repos;
use shared::repo::memory::MemoryStore;

struct Samples {
    name: &'static str,
    cold: Vec<Duration>,
    warm: Vec<Duration>,
    login: Vec<Duration>,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rounds: usize = arg(&args, "--rounds").and_then(|n| n.parse().ok()).unwrap_or(200);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async move {
        let service = KeyService::start(TEST_KEY_PEM).await;
        let endpoint = service.endpoint();
        let sources = [
            ("PEM file (no service)", KeySource::File(TEST_KEY_FILE.to_owned())),
            ("Secrets Manager stand-in", KeySource::SecretsManager(SECRET_ID.to_owned())),
            ("KMS stand-in", KeySource::Kms(KEY_ID.to_owned())),
        ];
        let config = api_tests::config();
        let subject = Subject { user_id: uuid::Uuid::now_v7(), credential_version: 0 };
        let mut all = Vec::new();
        for (name, source) in sources {
            // One store whose ring already names the key, as at any cold start after the first.
            let repos = Repos::from_store(Arc::new(MemoryStore::new()));
            let clients = || async {
                let sdk = shared::state::sdk_config(&config).await;
                KeyClients::new(&sdk, Some(&endpoint))
            };
            let issuing = |clients| Issuing::remote(source.clone(), clients);
            let app = TestApp::signing(
                AppState::new(config.clone(), repos.clone()).with_hasher(api_tests::fast_hasher()),
                issuing(clients().await),
            );
            let to = &source;
            let now = chrono::Utc::now();
            rotation::rotate(repos.key_ring.as_ref(), &clients().await, to, now, Schedule::at_once()).await.unwrap();
            let user = app.user().await;
            let mut samples = Samples { name, cold: Vec::new(), warm: Vec::new(), login: Vec::new() };
            for _ in 0..rounds {
                let started = Instant::now();
                let state = AppState::new(config.clone(), repos.clone()).signing(issuing(clients().await)).await;
                let state = state.unwrap();
                state.jwt.issue(subject, chrono::Utc::now()).await.unwrap();
                samples.cold.push(started.elapsed());
                let started = Instant::now();
                state.jwt.issue(subject, chrono::Utc::now()).await.unwrap();
                samples.warm.push(started.elapsed());
                let started = Instant::now();
                let login = app.login(&user.email, PASSWORD).await;
                samples.login.push(started.elapsed());
                assert_eq!(login.status, axum::http::StatusCode::OK);
            }
            all.push(samples);
        }
        println!("{rounds} rounds each; {} calls answered by the stand-in\n", service.calls());
        println!("| key | cold: key ready + first token, median (p90) | warm token, median (p90) | login, median (p90) |");
        println!("| --- | ---: | ---: | ---: |");
        for s in all {
            let cell = |v: &Vec<Duration>| {
                format!("{:.2} ms ({:.2})", ms(median(v.clone())), ms(percentile(v.clone(), 0.9)))
            };
            println!("| {} | {} | {} | {} |", s.name, cell(&s.cold), cell(&s.warm), cell(&s.login));
        }
    });
}
