//! Logging: JSON lines through tracing-subscriber, the level from `RUST_LOG` (the template's
//! `LogLevel`) or `AWS_LAMBDA_LOG_LEVEL` (Lambda's advanced logging controls), `info` by default.
//! The template opens Lambda's own filter wide (`ApplicationLogLevel: TRACE`), since below its
//! level Lambda drops every JSON line without a level, the metrics' EMF lines among them.
//!
//! Whatever the level, the runtime, HTTP and AWS SDK crates are capped at `info`: at `debug` and
//! `trace` they log whole events and DynamoDB requests and responses, which carry passwords,
//! tokens, the `Authorization` header and password hashes.
//!
//! The filter is tracing-subscriber's `Targets`: a level, or `target=level` directives separated
//! by commas. Its `EnvFilter` also matches spans and fields, by regular expressions, and linking
//! those into every function cost 177 KB of each zip (BENCHMARKS.md, tuning log, step 6).

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;

/// Crates whose debug output contains request or response bodies, headers or signatures. A
/// directive's target matches by prefix, so `aws` covers every AWS SDK crate (`aws_sigv4` logs the
/// request it signs at TRACE, and its body too when `LOG_SIGNABLE_BODY` is set), `hyper` covers
/// `hyper_util`, and `tower` covers `tower_http`.
const CAPPED: &[&str] = &["lambda_runtime", "lambda_http", "aws", "hyper", "h2", "rustls", "tower", "axum"];

/// The filter for a requested level (`debug`; Lambda's `FATAL` is `error`) or comma-separated
/// `target=level` directives (`warn,shared=debug`). Anything else (a span or field directive, a
/// word that is not a level, an empty target or level) makes the whole request `info`: a typo
/// must not silence the function's own errors.
///
/// The capped crates log at the requested default level, but nothing more verbose than `info`.
/// The most specific directive for a target wins, so a requested `aws_sigv4=trace` would beat
/// the cap `aws=info`: requested directives for a capped crate are dropped (and a request of
/// nothing else is `info`).
pub fn filter(requested: &str) -> Targets {
    let requested = requested.to_lowercase();
    let (default, targets) = match parse_directives(&requested) {
        Some((default, mut targets)) => {
            targets.retain(|(target, _)| !CAPPED.iter().any(|capped| target.starts_with(capped)));
            match (default, targets.is_empty()) {
                (None, true) => (Some(LevelFilter::INFO), targets),
                _ => (default, targets),
            }
        }
        None => (Some(LevelFilter::INFO), Vec::new()),
    };
    let cap = default.unwrap_or(LevelFilter::OFF).min(LevelFilter::INFO);
    let mut filter = Targets::new().with_targets(targets);
    if let Some(level) = default {
        filter = filter.with_default(level);
    }
    filter.with_targets(CAPPED.iter().map(|target| (*target, cap)))
}

/// A request's default level, if it names one, and its `target=level` pairs.
type Directives<'a> = (Option<LevelFilter>, Vec<(&'a str, LevelFilter)>);

/// The directives of a request; `None` when any part of it is neither a level nor
/// `target=level`, or it names nothing.
fn parse_directives(requested: &str) -> Option<Directives<'_>> {
    // `LevelFilter` itself reads an empty level as `error`.
    let level = |text: &str| match text.trim() {
        "" => None,
        "fatal" => Some(LevelFilter::ERROR),
        other => other.parse::<LevelFilter>().ok(),
    };
    let mut default = None;
    let mut targets = Vec::new();
    for directive in requested.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        match directive.split_once('=') {
            None => default = Some(level(directive)?),
            Some((target, to)) => {
                let target = target.trim();
                let plain = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
                if target.is_empty() || !target.chars().all(plain) {
                    return None;
                }
                targets.push((target, level(to)?));
            }
        }
    }
    (default.is_some() || !targets.is_empty()).then_some((default, targets))
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

/// The requested level: `RUST_LOG`, else `AWS_LAMBDA_LOG_LEVEL` (Lambda's logging config), else
/// `info`.
pub fn requested_level() -> String {
    std::env::var("RUST_LOG")
        .or_else(|_| std::env::var("AWS_LAMBDA_LOG_LEVEL"))
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
    // The filter sits under the formatting layer, for every event: its level is the
    // subscriber's hint, so a disabled `debug!` costs a comparison.
    let filtered = tracing_subscriber::registry().with(filter);
    match format {
        // Lambda stamps every line with the time and the request id already.
        LogFormat::Json => Box::new(
            filtered.with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_current_span(false)
                    .with_target(false)
                    .without_time()
                    .with_writer(writer),
            ),
        ),
        LogFormat::Text => Box::new(
            filtered.with(
                tracing_subscriber::fmt::layer()
                    .compact()
                    .with_target(false)
                    .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
                    .with_writer(writer),
            ),
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
        assert!(enabled("shared::web=trace", "shared::web", Level::TRACE));
        assert!(!enabled("shared::web=trace", "shared::repo", Level::ERROR), "no default: only it");
        assert!(!enabled("off", "shared", Level::ERROR));
        assert!(enabled(" info, ", "shared", Level::INFO), "an empty directive changes nothing");
        // Lambda's levels include FATAL.
        assert!(enabled("FATAL", "shared", Level::ERROR) && !enabled("FATAL", "shared", Level::WARN));
        // Span and field directives are not this filter's, and a typo is not a level: `info`.
        for unparsed in [
            "shared[request{id=1}]=debug",
            "shared[request]=debug",
            "[request]=debug",
            "shared[{password}]=trace",
            "verbose",
            "warning",
            "level=loud",
            "=",
            "shared=",
            "=debug",
            "warn,=",
            ",,",
            "",
            "aws=debug",
        ] {
            assert!(enabled(unparsed, "shared", Level::INFO), "{unparsed:?}");
            assert!(enabled(unparsed, "items", Level::ERROR), "{unparsed:?}");
            assert!(!enabled(unparsed, "shared", Level::DEBUG), "{unparsed:?}");
        }
    }

    #[test]
    fn the_crates_that_log_bodies_log_at_the_requested_level_and_never_below_info() {
        use tracing::Level;
        let enabled = |requested: &str, target: &str, level: Level| {
            super::filter(requested).would_enable(target, &level)
        };
        assert!(!enabled("trace", "aws_smithy_runtime::client", Level::DEBUG));
        assert!(!enabled("trace,hyper_util=trace", "hyper_util::client", Level::TRACE));
        assert!(!enabled("trace,AWS_SIGV4=trace", "aws_sigv4::http_request", Level::TRACE));
        assert!(enabled("trace", "aws_config", Level::INFO));
        assert!(!enabled("error", "aws_config", Level::INFO) && enabled("error", "aws_config", Level::ERROR));
        assert!(!enabled("off", "lambda_runtime", Level::ERROR));
        assert!(!enabled("shared=debug", "lambda_runtime", Level::ERROR), "no default: only shared");
    }

    #[test]
    fn the_subscriber_tells_tracing_the_level_it_lets_through() {
        use tracing::Subscriber;
        use tracing_subscriber::filter::LevelFilter;
        let hint = |requested: &str| {
            super::subscriber(super::LogFormat::Json, super::filter(requested), std::io::sink)
                .max_level_hint()
        };
        assert_eq!(hint("info"), Some(LevelFilter::INFO));
        assert_eq!(hint("warn,shared=debug"), Some(LevelFilter::DEBUG));
        assert_eq!(hint("off"), Some(LevelFilter::OFF));
    }
}
