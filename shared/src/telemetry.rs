//! Logging: JSON lines through tracing-subscriber, the level from `AWS_LAMBDA_LOG_LEVEL` (set by
//! Lambda's advanced logging controls) or `RUST_LOG`, `info` by default.
//!
//! Whatever the level, the runtime, HTTP and AWS SDK crates are capped at `info`: at `debug` and
//! `trace` they log whole events and DynamoDB requests and responses, which carry passwords,
//! tokens, the `Authorization` header and password hashes.

use tracing_subscriber::EnvFilter;

/// Crates whose debug output contains request or response bodies.
const CAPPED: &[&str] = &[
    "lambda_runtime",
    "lambda_http",
    "aws_smithy_runtime",
    "aws_smithy_runtime_api",
    "aws_smithy_http_client",
    "aws_sdk_dynamodb",
    "aws_config",
    "hyper",
    "hyper_util",
    "h2",
    "rustls",
    "tower_http",
    "axum",
];

/// The filter for a requested level or `RUST_LOG`-style directives.
pub fn filter(requested: &str) -> EnvFilter {
    let mut filter = EnvFilter::try_new(requested.to_lowercase()).unwrap_or_else(|_| EnvFilter::new("info"));
    for target in CAPPED {
        if let Ok(directive) = format!("{target}=info").parse() {
            filter = filter.add_directive(directive);
        }
    }
    filter
}

pub fn init() {
    let requested = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".to_owned());
    // Lambda already stamps every line with the time.
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter(&requested))
        .with_current_span(false)
        .with_target(false)
        .without_time()
        .try_init();
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap_or_else(|e| e.into_inner()).extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn trace_never_reaches_the_crates_that_log_bodies() {
        let capture = Capture::default();
        let writer = capture.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_env_filter(super::filter("TRACE"))
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::trace!(target: "lambda_runtime::layers::api_response", "raw event with password=hunter2");
            tracing::debug!(target: "aws_smithy_runtime::client::orchestrator", "response body with password_hash");
            tracing::info!(target: "lambda_runtime", "runtime started");
            tracing::trace!(target: "shared::web", "our own trace line");
        });
        let out = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
        assert!(!out.contains("hunter2") && !out.contains("password_hash"), "{out}");
        assert!(out.contains("runtime started") && out.contains("our own trace line"), "{out}");
    }
}
