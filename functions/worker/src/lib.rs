//! The `worker` function: the background half of deleting a user (API.md, `DELETE /v1/users/me`).
//! Deleting a user writes a purge record into a `PURGES#<n>` partition in the same transaction;
//! the table's DynamoDB stream, filtered to those partitions (`template.yaml`), invokes this
//! function with it, and it purges the user's records page by page ([`shared::purge`]). A run
//! that runs out of time notes its progress on the record, and that write comes back through
//! the stream as the next run. A batch that fails is retried from the failed record (bisected,
//! then sent to the on-failure queue); the purge record stays until the purge is done, and a
//! scheduled sweep (and `admin purge`) runs whatever is left. The local server runs the same
//! handler in-process.

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::dynamodb::{Event as StreamEvent, EventRecord};
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use serde::Deserialize;
use shared::deps::Clock;
use shared::purge::{self, Run};
use shared::repo::PurgeRepo;
use shared::repo::keys::{PURGES_PREFIX, SK};
use tokio::time::Instant;
use uuid::Uuid;

/// The partitions whose writes the stream hands to the worker (the template's filter: a prefix).
pub const TRIGGER_PREFIX: &str = PURGES_PREFIX;
/// The stream events that carry work: a purge recorded, or its progress noted.
pub const TRIGGER_EVENTS: [&str; 2] = ["INSERT", "MODIFY"];
/// How long a pending purge must have been left alone before the sweep takes it over: a purge
/// the stream is driving notes its progress far more often.
pub const SWEEP_IDLE: Duration = Duration::from_secs(600);
/// The time a run leaves unused before the invocation's deadline, for its last page and its
/// progress note (each DynamoDB call gives up within 5 s).
pub const MARGIN: Duration = Duration::from_secs(12);

/// What invokes the worker: a batch of the table's stream, or the schedule (`{"sweep": {}}`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Event {
    Stream(StreamEvent),
    Sweep(SweepEvent),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepEvent {
    pub sweep: SweepOptions,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepOptions {
    /// Take purges idle this long (default [`SWEEP_IDLE`]); 0 takes every pending one.
    #[serde(default)]
    pub idle_seconds: Option<u64>,
}

/// The keys of a stream record (the stream carries keys only).
#[derive(Debug, Deserialize)]
struct Keys {
    #[serde(rename = "PK")]
    pk: String,
    #[serde(rename = "SK")]
    sk: String,
}

/// The worker's dependencies: the purges and the clock. It holds no token key.
#[derive(Debug, Clone)]
pub struct Worker {
    pub purges: Arc<dyn PurgeRepo>,
    pub clock: Arc<dyn Clock>,
}

impl Worker {
    pub fn new(state: &shared::AppState) -> Self {
        Self { purges: state.repos.purges.clone(), clock: state.clock.clone() }
    }

    /// Handles one invocation, to be done by `deadline`. A stream batch answers with the
    /// record to retry from (if any), as `ReportBatchItemFailures` expects; a sweep with what
    /// it did. A sweep that fails is an error (the schedule's retry policy retries it).
    pub async fn handle(
        &self,
        event: Event,
        deadline: Instant,
    ) -> Result<serde_json::Value, shared::repo::RepoError> {
        match event {
            Event::Stream(batch) => Ok(to_json(&self.stream(&batch.records, deadline).await)),
            Event::Sweep(SweepEvent { sweep }) => {
                let idle = sweep.idle_seconds.map_or(SWEEP_IDLE, Duration::from_secs);
                let swept = purge::sweep(self.purges.as_ref(), self.clock.as_ref(), idle, deadline).await?;
                tracing::info!(stale = swept.stale, done = swept.done, deleted = swept.deleted, "sweep");
                Ok(serde_json::json!({"stale": swept.stale, "done": swept.done, "deleted": swept.deleted}))
            }
        }
    }

    /// Runs the purge of each record of a stream batch, in order. On the first that fails it
    /// stops and names it: Lambda retries the batch from it.
    pub async fn stream(&self, records: &[EventRecord], deadline: Instant) -> DynamoDbEventResponse {
        let mut response = DynamoDbEventResponse::default();
        // Each purge once, in the batch's order.
        let mut work: Vec<(Uuid, &EventRecord)> = Vec::new();
        for record in records {
            if let Some(user) = purge_of(record)
                && !work.iter().any(|(u, _)| *u == user)
            {
                work.push((user, record));
            }
        }
        let count = work.len();
        for (n, (user, record)) in work.into_iter().enumerate() {
            // Each purge gets an equal part of what time is left (a purge that finishes early
            // leaves the rest to those after it), and at least a page: a large account slows the
            // purges it shares a batch with, and never holds them up, whatever the order in
            // which their notes of progress come back through the stream.
            let now = Instant::now();
            let left = u32::try_from(count - n).unwrap_or(u32::MAX);
            let until = now + deadline.saturating_duration_since(now) / left;
            match purge::run(self.purges.as_ref(), self.clock.as_ref(), user, until).await {
                Ok(Run::Done { .. } | Run::Continues { .. } | Run::UserExists) => {}
                Err(error) => {
                    tracing::warn!(%user, error = %error, "purge failed; the batch is retried from this record");
                    let mut failure = DynamoDbBatchItemFailure::default();
                    failure.item_identifier = record.change.sequence_number.clone();
                    response.batch_item_failures.push(failure);
                    break;
                }
            }
        }
        response
    }
}

/// The user whose purge a stream record asks for: an insert or a change of a purge record.
/// Anything else (the template's filter lets nothing else through) is ignored.
pub fn purge_of(record: &EventRecord) -> Option<Uuid> {
    if !TRIGGER_EVENTS.contains(&record.event_name.as_str()) {
        return None;
    }
    let keys: Keys = match serde_dynamo::from_item(record.change.keys.clone()) {
        Ok(keys) => keys,
        Err(e) => {
            tracing::warn!(error = %e, "a stream record without string keys: ignored");
            return None;
        }
    };
    if !keys.pk.starts_with(TRIGGER_PREFIX) {
        return None;
    }
    let user = keys.sk.strip_prefix("USER#").and_then(|id| id.parse().ok());
    if user.is_none() {
        tracing::warn!(sk = keys.sk, "a purge record whose {SK} is not a user's: ignored");
    }
    user
}

fn to_json(response: &DynamoDbEventResponse) -> serde_json::Value {
    serde_json::to_value(response).unwrap_or_else(|e| serde_json::json!({"error": e.to_string()}))
}

/// The deadline of an invocation whose Lambda deadline is `deadline_ms` (milliseconds since the
/// epoch), less [`MARGIN`], or half of what is left when that is less than twice the margin
/// (a short timeout, as emulators give).
pub fn deadline_of(deadline_ms: u64) -> Instant {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let left = Duration::from_millis(deadline_ms.saturating_sub(now_ms));
    let budget = if left >= MARGIN * 2 { left - MARGIN } else { left / 2 };
    Instant::now() + budget
}
