//! schemathesis against the running API (the local server here; `sam_local.rs` runs the same check under
//! `sam local start-api`): every check, at least 100 generated cases per operation, the stateful phase
//! on, authenticated as a real (super)user — and 0 failures. The
//! document is exact enough that a property-based fuzzer finds nothing it does not promise.
//!
//! schemathesis comes from PyPI (`requirements-dev.txt`); `./scripts/test` installs it into
//! `.tools/venv`. Its settings are `schemathesis.toml`. `SCHEMATHESIS_SEED` changes the seed.

// Test helpers as well as #[test]s: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Command;

use api_tests::process::{Finished, LocalServer, finish, http, workspace};
use axum::http::{Method, StatusCode};

fn schemathesis() -> PathBuf {
    let installed = workspace().join(".tools/venv/bin/st");
    if installed.exists() {
        return installed;
    }
    panic!(
        "schemathesis is not installed: run ./scripts/test (it installs requirements-dev.txt into \
         .tools/venv), or `python3 -m venv .tools/venv && .tools/venv/bin/pip install -r requirements-dev.txt`"
    );
}

/// The operations of the document.
fn operations() -> u64 {
    let document = serde_json::to_value(catalog::openapi()).unwrap();
    document["paths"].as_object().unwrap().values().map(|item| item.as_object().unwrap().len() as u64).sum()
}

#[tokio::test]
async fn schemathesis_finds_no_failure_in_the_whole_api() {
    let email = "fuzz-admin@example.com";
    let password = "schemathesis superuser password";
    let server = LocalServer::start(
        &["--port", "0"],
        &[("FIRST_SUPERUSER_EMAIL", email), ("FIRST_SUPERUSER_PASSWORD", password)],
    )
    .await;
    let summary = check(&server.url, email, password, Host::LocalServer).await;
    println!("schemathesis against the local server: {summary}");
}

/// What serves the API that schemathesis checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Host {
    LocalServer,
    /// `sam local start-api`, whose emulation of API Gateway differs from it in two ways that no
    /// function sees, so the run leaves out just those requests
    /// (`tests/schemathesis/sam_local_hooks.py`; README: "With Docker: sam local"): a request
    /// body that is not UTF-8 gets SAM's own 502 (API Gateway would pass it on base64-encoded),
    /// and SAM routes only the seven methods it knows, so a `TRACE` gets its 403 instead of the
    /// function's 405.
    SamLocal,
}

/// Runs schemathesis against the API at `url` as the superuser `email`, and asserts that it
/// found no failure in any operation, ran every phase, and stayed authenticated to the end.
/// Returns its summary line. The local server's test and scripts/sam-local's run it.
pub async fn check(url: &str, email: &str, password: &str, host: Host) -> String {
    let st = schemathesis();
    let form = serde_urlencoded::to_string([("username", email), ("password", password)]).unwrap();
    let login = http(
        Method::POST,
        &format!("{url}/v1/auth/token"),
        &[("content-type", "application/x-www-form-urlencoded")],
        form,
    )
    .await;
    assert_eq!(login.status, StatusCode::OK, "{:?}", login.body);
    let token = login.json()["access_token"].as_str().unwrap().to_owned();
    let seed = std::env::var("SCHEMATHESIS_SEED").unwrap_or_else(|_| "20261124".into());

    let bearer = format!("Bearer {token}");
    let me = http(Method::GET, &format!("{url}/v1/users/me"), &[("authorization", &bearer)], "").await;
    let own_id = me.json()["id"].as_str().unwrap().to_owned();
    let mut run = Command::new(st);
    run.current_dir(workspace())
        .args(["run", &format!("{url}/openapi.json"), "--checks", "all", "--max-examples", "100"])
        .args(["--phases", "examples,coverage,fuzzing,stateful", "--seed", &seed])
        .args(["--generation-database", "none", "--no-color", "--request-timeout", "30"])
        .args(["--header", &format!("Authorization: Bearer {token}")]);
    // The run never ends its own session (tests/schemathesis/own_session.py).
    let hooks = if host == Host::SamLocal { "sam_local_hooks" } else { "local_hooks" };
    run.env("PYTHONPATH", workspace().join("tests/schemathesis"))
        .env("SCHEMATHESIS_HOOKS", hooks)
        .env("SCHEMATHESIS_OWN_USER_ID", &own_id);
    let Finished { status, stdout, stderr } = finish(run).await;
    let summary = stdout.lines().find(|l| l.contains(" generated, ")).unwrap_or("(no summary line)").trim();
    assert!(status.success(), "schemathesis failed ({status}):\n{stdout}\n{stderr}");
    // "N generated, N passed": every case, and enough of them.
    let counts: Vec<u64> =
        summary.split(|c: char| !c.is_ascii_digit()).filter_map(|n| n.parse().ok()).collect();
    assert!(counts.len() >= 2 && counts[0] == counts[1], "{summary}");
    // Every operation of the document, each with enough cases.
    let operations = operations();
    assert!(counts[0] >= operations * 100 / 2, "too few cases: {summary}");
    for phase in ["Examples", "Coverage", "Fuzzing", "Stateful"] {
        assert!(stdout.contains(phase), "phase {phase} missing:\n{stdout}");
    }
    let selected = format!("Selected: {operations}/{operations}");
    assert!(stdout.contains(&selected) && stdout.contains(&format!("Tested: {operations}")), "{stdout}");
    // The run stayed authenticated as a superuser to the end: the fuzzer cannot have passed by
    // locking itself out (every answer after that would be a documented 401 or 403).
    let me = http(Method::GET, &format!("{url}/v1/users/me"), &[("authorization", &bearer)], "").await;
    assert_eq!(me.status, StatusCode::OK, "{:?}", me.body);
    assert_eq!(
        (me.json()["is_superuser"].as_bool(), me.json()["is_active"].as_bool()),
        (Some(true), Some(true))
    );
    summary.to_owned()
}
