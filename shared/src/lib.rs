//! The library every function shares, in layers that only use the ones below them (a test,
//! `tests/tests/api/structure.rs`, keeps it so):
//!
//! 1. [`domain`] values (`Email`, `Password`, `Patch`, ...), [`deps`] (clock, ids), [`config`],
//!    [`telemetry`], [`metrics`]: nothing of this crate.
//! 2. [`repo`]: records, repository traits, the DynamoDB and memory stores, the key schema.
//! 3. [`error`] (the one `ApiError` and its wire bodies), then [`validate`] (request bodies),
//!    [`cursor`], [`auth`] (hashing, JWTs, refresh tokens).
//! 4. [`state`]: `AppState`, every dependency a handler uses, replaceable in tests.
//! 5. [`web`] (extractors, paging, resources, the router's finish), [`openapi`], [`admin`],
//!    [`migrate`].

pub mod admin;
pub mod auth;
pub mod config;
pub mod cursor;
pub mod deps;
pub mod domain;
pub mod error;
pub mod metrics;
pub mod migrate;
pub mod openapi;
pub mod purge;
pub mod repo;
pub mod state;
pub mod telemetry;
pub mod validate;
pub mod web;

/// What this crate's macros (`bounded_string!`, `request_schema!`, `path_id!`) expand to, so a
/// crate that uses them needs no dependency of its own on these.
#[doc(hidden)]
pub mod __macro {
    pub use {axum, serde_json, utoipa, uuid};
}

pub use config::Config;
pub use error::{ApiError, ApiResult};
pub use state::AppState;

/// Runs a function's router on Lambda: the whole of each function's `main`. A configuration
/// error stops the function at start with a message that says what to set.
///
/// Every function's `main` runs this on tokio's current-thread runtime: Lambda hands an
/// execution environment one request at a time, so worker threads would only add cross-thread
/// wake-ups to every invocation and time to every cold start (argon2 still runs on tokio's
/// blocking pool). BENCHMARKS.md measures both.
pub async fn run_lambda(router: fn(AppState) -> axum::Router) -> Result<(), lambda_http::Error> {
    telemetry::init();
    let state = or_exit(AppState::from_env().await);
    lambda_http::run(router(state)).await
}

/// As [`run_lambda`], for the one function that signs access tokens (`auth`): see
/// [`AppState::signing_from_env`].
pub async fn run_signing_lambda(router: fn(AppState) -> axum::Router) -> Result<(), lambda_http::Error> {
    telemetry::init();
    let state = or_exit(AppState::signing_from_env().await);
    lambda_http::run(router(state)).await
}

/// As [`run_lambda`], for a function that checks no token and reads no record but the health
/// check's (the docs): see [`AppState::health_only`]. Its cold start builds no DynamoDB client
/// and reads nothing (no key ring, which it may not read).
pub async fn run_health_only_lambda(router: fn(AppState) -> axum::Router) -> Result<(), lambda_http::Error> {
    telemetry::init();
    let config = or_exit(Config::from_env());
    lambda_http::run(router(AppState::health_only(config))).await
}

fn or_exit<T>(result: Result<T, config::ConfigError>) -> T {
    match result {
        Ok(value) => value,
        Err(e) => {
            tracing::error!("configuration error: {e}");
            eprintln!("configuration error: {e}");
            std::process::exit(1);
        }
    }
}
