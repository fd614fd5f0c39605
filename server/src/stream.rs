//! The worker, locally: what Lambda's event source mapping and schedule do for the `worker`
//! function in AWS, for the local server and `admin worker`. On DynamoDB Local, a poller reads
//! the table's stream, keeps what the template's filter keeps, and hands each batch to the
//! worker as Lambda would (the same JSON), retrying a batch from the record the worker names;
//! a sweep runs at start and every [`SWEEP_EVERY`]. On the memory store, each write of a purge
//! record wakes the worker. The worker is either in this process ([`Sink::InProcess`]) or a
//! function served by `cargo lambda watch` ([`Sink::Invoke`], through the Lambda invoke API).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodbstreams::types::{AttributeValue, Record, ShardIteratorType};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use shared::repo::memory::MemoryStore;
use tokio::time::Instant;
use worker::{Event, Worker};

/// How often the local worker sweeps (the template's schedule runs every 10 minutes).
pub const SWEEP_EVERY: Duration = Duration::from_secs(60);
/// How long a batch may run: the worker function's timeout.
const RUN_FOR: Duration = Duration::from_secs(60);
/// Deliveries of one batch before it is given up (the template's `MaximumRetryAttempts`, plus
/// the first); what is left is the sweep's.
const DELIVERIES: u32 = 11;

/// Where the worker runs.
#[derive(Debug, Clone)]
pub enum Sink {
    /// In this process.
    InProcess(Box<Worker>),
    /// A function behind the Lambda invoke API, e.g. `cargo lambda watch`'s
    /// `http://127.0.0.1:9000/2015-03-31/functions/worker/invocations`.
    Invoke(String),
}

impl Sink {
    /// Delivers one event and returns the worker's answer.
    pub async fn deliver(&self, event: Value) -> Result<Value, String> {
        match self {
            Self::InProcess(worker) => {
                let event: Event = serde_json::from_value(event).map_err(|e| e.to_string())?;
                worker
                    .handle(event, Instant::now() + RUN_FOR - worker::MARGIN)
                    .await
                    .map_err(|e| e.to_string())
            }
            Self::Invoke(url) => {
                let client = HttpClient::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
                let request = hyper::Request::post(url)
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from(event.to_string())))
                    .map_err(|e| e.to_string())?;
                let response = client.request(request).await.map_err(|e| format!("{url}: {e}"))?;
                let status = response.status();
                let body = response.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
                if !status.is_success() {
                    return Err(format!("{url}: {status}: {}", String::from_utf8_lossy(&body)));
                }
                let answer: Value = serde_json::from_slice(&body).map_err(|e| format!("{url}: {e}"))?;
                // The invoke API answers a function's error with 200 and the error as the body.
                if answer.get("errorMessage").is_some() {
                    return Err(format!("{url}: {answer}"));
                }
                Ok(answer)
            }
        }
    }

    /// A sweep of every pending purge, as `admin purge` asks for; logged, never fatal.
    pub async fn sweep(&self, idle_seconds: u64) {
        match self.deliver(json!({"sweep": {"idle_seconds": idle_seconds}})).await {
            Ok(answer) => tracing::debug!(%answer, "local sweep"),
            Err(error) => tracing::warn!(error, "local sweep failed; the next one tries again"),
        }
    }
}

/// The worker on the memory store: woken by each write of a purge record, and by the clock.
pub async fn run_on_memory(store: Arc<MemoryStore>, sink: Sink) {
    loop {
        sink.sweep(0).await;
        tokio::select! {
            () = store.work_written() => {}
            () = tokio::time::sleep(SWEEP_EVERY) => {}
        }
    }
}

/// The worker on DynamoDB Local's stream of `table`, and the sweep, until the process ends.
pub async fn run_on_stream(
    dynamodb: aws_sdk_dynamodb::Client,
    streams: aws_sdk_dynamodbstreams::Client,
    table: String,
    sink: Sink,
) -> Result<(), String> {
    let arn = stream_arn(&dynamodb, &table).await?;
    let mut shards = Shards::default();
    // Reading from now on first; then what was written before is the first sweep's (and what
    // that sweep writes, the stream's).
    shards.discover(&streams, &arn).await?;
    sink.sweep(0).await;
    tracing::info!(table, "worker reading the table's stream");
    let mut next_sweep = Instant::now() + SWEEP_EVERY;
    let mut next_listing = Instant::now() + Duration::from_secs(5);
    loop {
        if Instant::now() >= next_listing {
            if let Err(e) = shards.discover(&streams, &arn).await {
                tracing::warn!(error = e, "cannot list the stream's shards; trying again");
            }
            next_listing = Instant::now() + Duration::from_secs(5);
        }
        let mut idle = true;
        for (shard, iterator) in shards.open() {
            match streams.get_records().shard_iterator(&iterator).send().await {
                Ok(out) => {
                    let records: Vec<Value> =
                        out.records().iter().filter(|r| is_work(r)).map(to_lambda_record).collect();
                    if !records.is_empty() {
                        idle = false;
                        deliver_batch(&sink, records).await;
                    }
                    shards.advance(&shard, out.next_shard_iterator);
                }
                Err(e) => {
                    let e = aws_sdk_dynamodbstreams::error::DisplayErrorContext(&e).to_string();
                    tracing::warn!(shard, error = e, "cannot read the stream; starting over from now");
                    shards.forget(&shard);
                }
            }
        }
        if Instant::now() >= next_sweep {
            sink.sweep(worker::SWEEP_IDLE.as_secs()).await;
            next_sweep = Instant::now() + SWEEP_EVERY;
        }
        if idle {
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

async fn stream_arn(dynamodb: &aws_sdk_dynamodb::Client, table: &str) -> Result<String, String> {
    let described = dynamodb.describe_table().table_name(table).send().await.map_err(|e| {
        format!("DescribeTable {table}: {}", aws_sdk_dynamodb::error::DisplayErrorContext(&e))
    })?;
    described.table.and_then(|t| t.latest_stream_arn).ok_or_else(|| {
        format!(
            "table {table:?} has no stream, so deleted users would never be purged: it was created \
             before the worker existed; enable one (view type KEYS_ONLY) or create the table again"
        )
    })
}

/// Delivers one batch until the worker takes all of it: from the record it names as failed,
/// as Lambda retries with `ReportBatchItemFailures`; given up after [`DELIVERIES`].
async fn deliver_batch(sink: &Sink, mut records: Vec<Value>) {
    for delivery in 1..=DELIVERIES {
        let failed_from = match sink.deliver(json!({"Records": records})).await {
            Ok(answer) => answer["batchItemFailures"]
                .as_array()
                .and_then(|failures| failures.first())
                .and_then(|f| f["itemIdentifier"].as_str().map(str::to_owned)),
            Err(error) => {
                tracing::warn!(error, delivery, "the worker failed the batch");
                records.first().and_then(|r| r["dynamodb"]["SequenceNumber"].as_str().map(str::to_owned))
            }
        };
        let Some(sequence) = failed_from else { return };
        let at = records.iter().position(|r| r["dynamodb"]["SequenceNumber"] == sequence.as_str());
        records = records.split_off(at.unwrap_or(0));
        tokio::time::sleep(Duration::from_millis(500 * u64::from(delivery))).await;
    }
    tracing::error!(
        records = records.len(),
        "a stream batch failed every delivery; the sweep will run its purges"
    );
}

/// What the template's filters let through to the worker (`worker::TRIGGERS`).
fn is_work(record: &Record) -> bool {
    let name = record.event_name().map(|n| n.as_str()).unwrap_or_default();
    let pk = record.dynamodb().and_then(|d| d.keys()).and_then(|k| k.get("PK"));
    let Some(AttributeValue::S(pk)) = pk else { return false };
    worker::TRIGGERS.iter().any(|(prefix, events)| pk.starts_with(prefix) && events.contains(&name))
}

/// A stream record as Lambda hands it to a function (the stream carries keys only).
fn to_lambda_record(record: &Record) -> Value {
    let change = record.dynamodb();
    let keys: serde_json::Map<String, Value> = change
        .and_then(|d| d.keys())
        .into_iter()
        .flatten()
        .map(|(name, value)| {
            let value = match value {
                AttributeValue::S(s) => json!({"S": s}),
                AttributeValue::N(n) => json!({"N": n}),
                _ => json!({"NULL": true}),
            };
            (name.clone(), value)
        })
        .collect();
    json!({
        "eventID": record.event_id(),
        "eventName": record.event_name().map(|n| n.as_str()),
        "eventVersion": record.event_version(),
        "eventSource": record.event_source(),
        "awsRegion": record.aws_region().unwrap_or("us-east-1"),
        "dynamodb": {
            "ApproximateCreationDateTime": change.and_then(|d| d.approximate_creation_date_time()).map(|t| t.secs()),
            "Keys": keys,
            "SequenceNumber": change.and_then(|d| d.sequence_number()),
            "SizeBytes": change.and_then(|d| d.size_bytes()).unwrap_or(0),
            "StreamViewType": change.and_then(|d| d.stream_view_type()).map(|v| v.as_str()),
        },
    })
}

/// The stream's shards and where the poller is in each.
#[derive(Debug, Default)]
struct Shards {
    /// Open shards by id, with the iterator to read next (none: ask for one).
    iterators: BTreeMap<String, Option<String>>,
    /// Shards being read, read to their end, or closed at the first listing (whose records
    /// the first sweep covers): not taken up again.
    known: HashSet<String>,
    listed_once: bool,
}

impl Shards {
    async fn discover(&mut self, streams: &aws_sdk_dynamodbstreams::Client, arn: &str) -> Result<(), String> {
        let mut start: Option<String> = None;
        loop {
            let out = streams
                .describe_stream()
                .stream_arn(arn)
                .set_exclusive_start_shard_id(start)
                .send()
                .await
                .map_err(|e| aws_sdk_dynamodbstreams::error::DisplayErrorContext(&e).to_string())?;
            let Some(description) = out.stream_description else { return Ok(()) };
            for shard in description.shards() {
                let Some(id) = shard.shard_id() else { continue };
                if self.known.contains(id) {
                    continue;
                }
                // Shards open at the start are read from now; later ones from their beginning.
                let from =
                    if self.listed_once { ShardIteratorType::TrimHorizon } else { ShardIteratorType::Latest };
                let closed = shard.sequence_number_range().and_then(|r| r.ending_sequence_number()).is_some();
                if closed && !self.listed_once {
                    self.known.insert(id.to_owned());
                    continue;
                }
                let iterator = streams
                    .get_shard_iterator()
                    .stream_arn(arn)
                    .shard_id(id)
                    .shard_iterator_type(from)
                    .send()
                    .await
                    .map_err(|e| aws_sdk_dynamodbstreams::error::DisplayErrorContext(&e).to_string())?;
                self.known.insert(id.to_owned());
                self.iterators.insert(id.to_owned(), iterator.shard_iterator);
            }
            start = description.last_evaluated_shard_id;
            if start.is_none() {
                self.listed_once = true;
                return Ok(());
            }
        }
    }

    /// The open shards with an iterator.
    fn open(&self) -> Vec<(String, String)> {
        self.iterators.iter().filter_map(|(id, it)| it.clone().map(|it| (id.clone(), it))).collect()
    }

    fn advance(&mut self, shard: &str, next: Option<String>) {
        match next {
            Some(next) => {
                self.iterators.insert(shard.to_owned(), Some(next));
            }
            // The shard is closed and read to its end.
            None => {
                self.iterators.remove(shard);
            }
        }
    }

    /// Drops a shard whose iterator failed (expired, trimmed): the next listing takes it up
    /// again from its beginning, and the worker does nothing twice that matters.
    fn forget(&mut self, shard: &str) {
        self.iterators.remove(shard);
        self.known.remove(shard);
    }
}
