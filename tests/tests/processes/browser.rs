//! `/docs` in a real browser: headless Chromium (Debian's `chromium`, driven by `playwright-core`
//! from npm) opens Swagger UI on the local API server, authorizes through the OAuth2 password
//! form with a user's email and password, runs `GET /v1/users/me` from the page, and sees the
//! user's email in the response. The page may load nothing from any other host (the docs work
//! offline), and the server listens on 127.0.0.2 so that Swagger UI's localhost exceptions do not
//! hide a call to the internet. The screenshot is kept at `target/test-artifacts/docs.png`.

// Test helpers as well as #[test]s: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Command;

use api_tests::process::{Finished, LocalServer, finish, workspace};

#[tokio::test]
async fn swagger_ui_authorizes_and_runs_an_operation_in_chromium() {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        PathBuf::from(&chromium).exists(),
        "Chromium is not installed: `apt-get install chromium` (./scripts/test does), or set CHROMIUM"
    );
    assert!(
        workspace().join("node_modules/playwright-core").exists(),
        "playwright-core is not installed: run `npm ci` (./scripts/test does)"
    );
    let email = "browser@example.com";
    let password = "a browser's own password";
    let server = LocalServer::start(
        &["--host", "127.0.0.2", "--port", "0"],
        &[("FIRST_SUPERUSER_EMAIL", email), ("FIRST_SUPERUSER_PASSWORD", password)],
    )
    .await;
    assert!(server.url.starts_with("http://127.0.0.2:"), "{}", server.url);
    let screenshot = api_tests::process::bin_dir().join("../test-artifacts/docs.png");
    let _ = std::fs::remove_file(&screenshot);
    let url = server.url.clone();
    let shot = screenshot.clone();
    let mut node = Command::new("node");
    node.current_dir(workspace())
        .arg("tests/browser/docs.mjs")
        .env("BASE_URL", url)
        .env("EMAIL", email)
        .env("PASSWORD", password)
        .env("SCREENSHOT", shot)
        .env("CHROMIUM", chromium);
    let Finished { status, stdout, stderr } = finish(node).await;
    assert!(status.success(), "the browser run failed:\n{stdout}\n{stderr}");
    let result: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!((result["ok"].as_bool(), result["status"].as_u64()), (Some(true), Some(200)), "{stdout}");
    assert_eq!(result["email"], email);
    let size = std::fs::metadata(&screenshot).map(|m| m.len()).unwrap_or(0);
    assert!(size > 10_000, "no screenshot at {}", screenshot.display());
    // The login went through the server itself: its log has the token request and the call.
    let log = server.process.output().join("\n");
    assert!(log.contains("route=\"/v1/auth/token\" status=200"), "{log}");
    assert!(log.contains("route=\"/v1/users/me\" status=200"), "{log}");
    assert!(!log.contains(password));
}
