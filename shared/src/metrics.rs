//! Metrics as CloudWatch Embedded Metric Format (EMF): each request writes one JSON line to
//! stdout, which CloudWatch Logs turns into metrics. No API call, no agent, no extra latency.
//!
//! This is a small writer, not the `metrics` facade with `metrics_cloudwatch_embedded`: one
//! middleware (`web::finish`) sees every request, and what it writes is one object of fixed
//! shape, which `serde_json` (already in every function) renders. The crate would add a global
//! recorder, its registry and a flush per invocation through its own Lambda wrapper. What this
//! writer adds at cold start is two environment reads; the crate's cost was not measured
//! against it.
//!
//! What is measured, per request:
//! - `Requests`, `Latency` and `Status2xx`/`Status4xx`/`Status5xx`, by function and route, and
//!   by function alone;
//! - `ColdStart` on the first request of a process;
//! - the events a request reports in its response ([`Counted`]): logins (ok, failed,
//!   throttled), refresh-token reuse, idempotent replays, and 503s (DynamoDB, or the key
//!   service, out of reach or throttling).
//!
//! Dimensions are kept to two (`FunctionName`, as Lambda's own metrics name the function, and
//! `Route`) because each distinct combination is a custom metric, which costs. The route is
//! the template's (`/v1/items/{item_id}`), never a concrete path.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{Map, Value, json};

/// The dimension sets of every request's metrics: by route, and by service.
pub const DIMENSION_SETS: [&[&str]; 2] = [&["FunctionName", "Route"], &["FunctionName"]];

/// Something a request did that is counted, put in its response's extensions by the code that
/// knows (the token endpoint, the idempotency layer, the error body).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    LoginOk,
    LoginFailed,
    LoginThrottled,
    RefreshReuse,
    IdempotentReplay,
    /// A 503: DynamoDB (or the key service) out of reach or throttling.
    Unavailable,
}

impl Event {
    pub const ALL: [Event; 6] = [
        Event::LoginOk,
        Event::LoginFailed,
        Event::LoginThrottled,
        Event::RefreshReuse,
        Event::IdempotentReplay,
        Event::Unavailable,
    ];

    /// The metric's name.
    pub fn name(self) -> &'static str {
        match self {
            Event::LoginOk => "LoginOk",
            Event::LoginFailed => "LoginFailed",
            Event::LoginThrottled => "LoginThrottled",
            Event::RefreshReuse => "RefreshReuse",
            Event::IdempotentReplay => "IdempotentReplay",
            Event::Unavailable => "Unavailable",
        }
    }
}

/// The events of one response (its extension).
#[derive(Debug, Clone, Default)]
pub struct Counted(pub Vec<Event>);

impl Counted {
    /// Adds `event` to `response`'s events.
    pub fn add(response: &mut http::Response<axum::body::Body>, event: Event) {
        match response.extensions_mut().get_mut::<Counted>() {
            Some(counted) => counted.0.push(event),
            None => {
                response.extensions_mut().insert(Counted(vec![event]));
            }
        }
    }
}

/// Where the lines go: stdout on Lambda, nowhere for the local server (unless asked), a buffer
/// in tests.
pub trait MetricsSink: Send + Sync + std::fmt::Debug {
    fn write(&self, line: String);
}

/// Stdout, a whole line at a time (Lambda sends it to CloudWatch Logs).
#[derive(Debug, Default)]
pub struct Stdout;

impl MetricsSink for Stdout {
    fn write(&self, line: String) {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
    }
}

/// No metrics (the local server, the in-process tests that do not look).
#[derive(Debug, Default)]
pub struct Discard;

impl MetricsSink for Discard {
    fn write(&self, _line: String) {}
}

/// Kept in memory: tests read the lines back.
#[derive(Debug, Default)]
pub struct Captured(std::sync::Mutex<Vec<String>>);

impl Captured {
    pub fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

impl MetricsSink for Captured {
    fn write(&self, line: String) {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(line);
    }
}

/// A process's metrics: where they go, under which namespace and function name.
#[derive(Debug, Clone)]
pub struct Metrics {
    namespace: String,
    function: String,
    sink: Arc<dyn MetricsSink>,
    cold: Arc<AtomicBool>,
}

/// One request, as [`Metrics::request`] records it.
#[derive(Debug, Clone)]
pub struct RequestRecord<'a> {
    /// The route template, or `<unmatched>`.
    pub route: &'a str,
    pub status: u16,
    pub latency_ms: f64,
    pub events: &'a [Event],
    /// Lambda's request id (a property, not a dimension: it finds the log lines of a point).
    pub request_id: &'a str,
}

impl Metrics {
    pub fn new(namespace: &str, function: &str, sink: Arc<dyn MetricsSink>) -> Self {
        Self {
            namespace: namespace.to_owned(),
            function: function.to_owned(),
            sink,
            cold: Arc::new(AtomicBool::new(true)),
        }
    }

    /// None written.
    pub fn discard() -> Self {
        Self::new("lambda-api", "local", Arc::new(Discard))
    }

    /// On Lambda (`AWS_LAMBDA_FUNCTION_NAME` set): to stdout, under the namespace
    /// `METRICS_NAMESPACE` (the stack's name, in the template) or `lambda-api`. Elsewhere (the
    /// local server): none.
    pub fn from_env() -> Self {
        match std::env::var("AWS_LAMBDA_FUNCTION_NAME") {
            Ok(function) if !function.is_empty() => {
                let namespace = std::env::var("METRICS_NAMESPACE")
                    .ok()
                    .filter(|n| !n.trim().is_empty())
                    .unwrap_or_else(|| "lambda-api".to_owned());
                Self::new(&namespace, &function, Arc::new(Stdout))
            }
            _ => Self::discard(),
        }
    }

    /// Writes one request's metrics.
    pub fn request(&self, record: &RequestRecord<'_>, timestamp_ms: i64) {
        let mut values: Vec<(&str, &str, f64)> = vec![
            ("Requests", "Count", 1.0),
            ("Latency", "Milliseconds", record.latency_ms),
            ("Status2xx", "Count", f64::from(u8::from((200..300).contains(&record.status)))),
            ("Status4xx", "Count", f64::from(u8::from((400..500).contains(&record.status)))),
            ("Status5xx", "Count", f64::from(u8::from(record.status >= 500))),
        ];
        if self.cold.swap(false, Ordering::Relaxed) {
            values.push(("ColdStart", "Count", 1.0));
        }
        for event in Event::ALL {
            let n = record.events.iter().filter(|e| **e == event).count();
            if n > 0 {
                values.push((event.name(), "Count", n as f64));
            }
        }
        let dimensions = [("FunctionName", self.function.as_str()), ("Route", record.route)];
        let properties = [("requestId", record.request_id), ("status", &record.status.to_string())];
        self.sink.write(document(&self.namespace, &dimensions, &values, &properties, timestamp_ms));
    }
}

/// One EMF document as a line: `_aws` with the timestamp and one metric directive (the
/// [`DIMENSION_SETS`]), each dimension and metric a top-level member, and the properties.
pub fn document(
    namespace: &str,
    dimensions: &[(&str, &str)],
    metrics: &[(&str, &str, f64)],
    properties: &[(&str, &str)],
    timestamp_ms: i64,
) -> String {
    let mut root = Map::new();
    for (name, value) in properties {
        root.insert((*name).to_owned(), Value::from(*value));
    }
    for (name, value) in dimensions {
        root.insert((*name).to_owned(), Value::from(*value));
    }
    for (name, _, value) in metrics {
        root.insert((*name).to_owned(), json!(value));
    }
    let definitions: Vec<Value> =
        metrics.iter().map(|(name, unit, _)| json!({"Name": name, "Unit": unit})).collect();
    root.insert(
        "_aws".to_owned(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": namespace,
                "Dimensions": DIMENSION_SETS,
                "Metrics": definitions,
            }],
        }),
    );
    Value::Object(root).to_string()
}
