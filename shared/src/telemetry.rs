//! Logging: JSON lines through tracing-subscriber, the level from `AWS_LAMBDA_LOG_LEVEL` (set by
//! Lambda's advanced logging controls) or `RUST_LOG`, `info` by default.
//!
//! Whatever the level, the runtime, HTTP and AWS SDK crates are capped at `info`: at `debug` and
//! `trace` they log whole events and DynamoDB requests and responses, which carry passwords,
//! tokens, the `Authorization` header and password hashes.
//!
//! The filter is tracing-subscriber's `Targets`: a level, or `target=level` directives separated
//! by commas. Its `EnvFilter` also matches spans and fields, by regular expressions, and linking
//! those into every function cost 177 KB of each zip (BENCHMARKS.md, tuning log, step 6).

use tracing::Level;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;

/// Crates whose debug output contains request or response bodies, headers or signatures. A
/// directive's target matches by prefix, so `aws` covers every AWS SDK crate (`aws_sigv4` logs the
/// request it signs at TRACE, and its body too when `LOG_SIGNABLE_BODY` is set), `hyper` covers
/// `hyper_util`, and `tower` covers `tower_http`.
const CAPPED: &[&str] = &["lambda_runtime", "lambda_http", "aws", "hyper", "h2", "rustls", "tower", "axum"];

/// The filter for a requested level or `target=level` directives (`debug`, `info,shared=debug`);
/// what does not parse as such (a span or field directive, a typo) is `info`.
///
/// The most specific directive for a target wins, so a requested `aws_sigv4=trace` would beat
/// the cap `aws=info`: requested directives at or below a capped crate are dropped first.
pub fn filter(requested: &str) -> Targets {
    let requested = requested.to_lowercase();
    let kept: Vec<&str> = requested
        .split(',')
        .map(str::trim)
        .filter(|directive| !directive.is_empty())
        .filter(|directive| {
            let target = directive.split(['[', '=']).next().unwrap_or_default().trim();
            !CAPPED.iter().any(|capped| target.starts_with(capped))
        })
        .collect();
    // `Targets` reads `=debug` or `shared=` as a directive of its own (the error level); here
    // they are typos, like a level that is not one.
    let well_formed = kept.iter().all(|directive| match directive.split_once('=') {
        Some((target, level)) => !target.trim().is_empty() && !level.trim().is_empty(),
        None => true,
    });
    let parsed = if kept.is_empty() || !well_formed { None } else { kept.join(",").parse().ok() };
    let filter: Targets = parsed.unwrap_or_else(|| Targets::new().with_default(Level::INFO));
    filter.with_targets(CAPPED.iter().map(|target| (*target, Level::INFO)))
}

/// How log lines are written. Lambda says which through `AWS_LAMBDA_LOG_FORMAT` (`JSON` or
/// `Text`, from the function's `LoggingConfig`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line: what CloudWatch Logs Insights queries.
    Json,
    /// One human-readable line per event, for a terminal.
    Text,
}

impl LogFormat {
    /// `AWS_LAMBDA_LOG_FORMAT` when it is set, otherwise `default`.
    pub fn from_env(default: LogFormat) -> LogFormat {
        match std::env::var("AWS_LAMBDA_LOG_FORMAT") {
            Ok(v) if v.eq_ignore_ascii_case("json") => LogFormat::Json,
            Ok(v) if v.eq_ignore_ascii_case("text") => LogFormat::Text,
            _ => default,
        }
    }
}

/// The requested level: `AWS_LAMBDA_LOG_LEVEL` (Lambda's logging config), else `RUST_LOG`, else
/// `info`.
pub fn requested_level() -> String {
    std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".into())
}

/// The subscriber every host installs, writing to `writer`; tests capture its output.
pub fn subscriber<W>(
    format: LogFormat,
    filter: Targets,
    writer: W,
) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    match format {
        // Lambda stamps every line with the time and the request id already.
        LogFormat::Json => Box::new(
            tracing_subscriber::fmt()
                .json()
                .with_max_level(LevelFilter::TRACE)
                .with_current_span(false)
                .with_target(false)
                .without_time()
                .with_writer(writer)
                .finish()
                .with(filter),
        ),
        LogFormat::Text => Box::new(
            tracing_subscriber::fmt()
                .compact()
                .with_max_level(LevelFilter::TRACE)
                .with_target(false)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
                .with_writer(writer)
                .finish()
                .with(filter),
        ),
    }
}

/// Logging for a host: the format from `AWS_LAMBDA_LOG_FORMAT` or `default`, the level from
/// [`requested_level`], to stdout.
pub fn init_with(default: LogFormat) {
    let subscriber = subscriber(LogFormat::from_env(default), filter(&requested_level()), std::io::stdout);
    let _ = tracing::subscriber::set_global_default(subscriber);
}

/// Logging on Lambda: JSON lines unless the function's logging config says `Text`.
pub fn init() {
    init_with(LogFormat::Json);
}

/// A log writer that keeps everything in memory: tests read back exactly what the production
/// subscriber would have written.
#[derive(Debug, Clone, Default)]
pub struct MemoryWriter(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl MemoryWriter {
    /// Everything written so far.
    pub fn contents(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }
}

impl std::io::Write for MemoryWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::MemoryWriter as Capture;

    #[test]
    fn trace_never_reaches_the_crates_that_log_bodies() {
        let capture = Capture::default();
        let writer = capture.clone();
        let subscriber = super::subscriber(
            super::LogFormat::Json,
            super::filter("TRACE,aws_sigv4=trace,aws=debug,tower_http::trace=trace"),
            move || writer.clone(),
        );
        tracing::subscriber::with_default(subscriber, || {
            tracing::trace!(target: "tower_http::trace", "request headers with authorization");
            tracing::trace!(target: "lambda_runtime::layers::api_response", "raw event with password=hunter2");
            tracing::debug!(target: "aws_smithy_runtime::client::orchestrator", "response body with password_hash");
            tracing::trace!(target: "aws_sigv4::http_request::sign", "signing request with authorization");
            tracing::info!(target: "lambda_runtime", "runtime started");
            tracing::trace!(target: "shared::web", "our own trace line");
        });
        let out = capture.contents();
        assert!(
            !out.contains("hunter2") && !out.contains("password_hash") && !out.contains("signing"),
            "{out}"
        );
        assert!(!out.contains("authorization"), "not even when asked for by name: {out}");
        assert!(out.contains("runtime started") && out.contains("our own trace line"), "{out}");
    }

    #[test]
    fn a_level_or_target_directives_and_anything_else_is_info() {
        use tracing::Level;
        let enabled = |requested: &str, target: &str, level: Level| {
            super::filter(requested).would_enable(target, &level)
        };
        assert!(enabled("DEBUG", "shared::web", Level::DEBUG));
        assert!(!enabled("warn", "shared::web", Level::INFO));
        assert!(enabled("warn,shared=debug", "shared::web", Level::DEBUG));
        assert!(!enabled("warn,shared=debug", "items", Level::INFO));
        assert!(!enabled("off", "shared", Level::ERROR));
        assert!(enabled(" info, ", "shared", Level::INFO), "an empty directive changes nothing");
        // Span and field directives are not this filter's, and a typo is not a level: `info`.
        for unparsed in
            ["shared[request{id=1}]=debug", "level=loud", "=", "shared=", "=debug", ",,", "", "aws=debug"]
        {
            assert!(enabled(unparsed, "shared", Level::INFO), "{unparsed}");
            assert!(!enabled(unparsed, "shared", Level::DEBUG), "{unparsed}");
        }
        // The capped crates stay at info whatever is asked, by level or by name.
        assert!(!enabled("trace", "aws_smithy_runtime::client", Level::DEBUG));
        assert!(!enabled("trace,hyper_util=trace", "hyper_util::client", Level::TRACE));
        assert!(enabled("trace", "aws_config", Level::INFO));
    }
}
