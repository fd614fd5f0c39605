//! The `worker` function: the background half of deleting a user (API.md, `DELETE /v1/users/me`)
//! and of account mail (password recovery, email verification: [`outbox`]). Deleting a user writes a purge record into a `PURGES#<n>` partition in the same transaction;
//! the table's DynamoDB stream, filtered to those partitions (`template.yaml`), invokes this
//! function with it, and it purges the user's records page by page ([`shared::purge`]). A run
//! that runs out of time notes its progress on the record, and that write comes back through
//! the stream as the next run. A batch that fails is retried from the failed record (bisected,
//! then sent to the on-failure queue); the purge record stays until the purge is done, and a
//! scheduled sweep (and `admin purge`) runs whatever is left. Outbox inserts (`OUTBOX#<n>`)
//! come through the same stream and are sent by [`outbox::Outbox`]; the sweep sends what is
//! left of those too. The local server runs the same handler in-process.

pub mod mail;
pub mod outbox;
pub mod tally;

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::dynamodb::{Event as StreamEvent, EventRecord};
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use serde::Deserialize;
use shared::deps::Clock;
use shared::purge::{self, Run};
use shared::repo::PurgeRepo;
use shared::repo::keys::{OUTBOX_PREFIX, PURGES_PREFIX, SK};
use tokio::time::Instant;
use uuid::Uuid;

use self::mail::{MailDir, MailSettings, Mailer, SesMailer};
use self::outbox::Outbox;
pub use self::tally::Tally;

/// What the stream hands to the worker (the template's filters, one per pair): the partitions'
/// prefix, and the events that carry work there. A purge recorded, or its progress noted; a
/// message to send written (a claim on it, a change, is no new work).
pub const TRIGGERS: [(&str, &[&str]); 2] =
    [(PURGES_PREFIX, &["INSERT", "MODIFY"]), (OUTBOX_PREFIX, &["INSERT"])];
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

/// The worker's dependencies: the purges, the outbox, the clock and where its metrics go. It
/// holds no key that signs an access token; the tokens it mints are random, and recorded only
/// as their hashes.
#[derive(Debug, Clone)]
pub struct Worker {
    pub purges: Arc<dyn PurgeRepo>,
    pub outbox: Outbox,
    pub clock: Arc<dyn Clock>,
    pub metrics: shared::metrics::Metrics,
}

impl Worker {
    /// The worker over `state`'s stores, sending mail through `mailer`.
    pub fn new(state: &shared::AppState, mailer: Arc<dyn Mailer>) -> Self {
        let outbox = Outbox {
            mail: state.repos.mail.clone(),
            users: state.repos.users.clone(),
            throttle: state.repos.throttle.clone(),
            mailer,
            settings: settings(&state.config),
            config: state.config.clone(),
            clock: state.clock.clone(),
        };
        Self {
            purges: state.repos.purges.clone(),
            outbox,
            clock: state.clock.clone(),
            metrics: state.metrics.clone(),
        }
    }

    /// Handles one invocation, to be done by `deadline`. A stream batch answers with the
    /// record to retry from (if any), as `ReportBatchItemFailures` expects; a sweep with what
    /// it did. A sweep that fails is an error (the schedule's retry policy retries it). Either
    /// way, one metrics line says what it did.
    pub async fn handle(
        &self,
        event: Event,
        deadline: Instant,
    ) -> Result<serde_json::Value, shared::repo::RepoError> {
        let mut tally = Tally::default();
        let result = self.run(event, deadline, &mut tally).await;
        if result.is_err() {
            tally.work_failed += 1;
        }
        // A stack deployed without a sender gives every message up at once, by design: still
        // logged, but no failure for the MailGivenUp alarm to page anyone about.
        if !self.outbox.mailer.sends() {
            tally.mail_given_up = 0;
        }
        self.metrics.counts(&tally.metrics(), self.clock.now().timestamp_millis());
        result
    }

    async fn run(
        &self,
        event: Event,
        deadline: Instant,
        tally: &mut Tally,
    ) -> Result<serde_json::Value, shared::repo::RepoError> {
        match event {
            Event::Stream(batch) => Ok(to_json(&self.stream_counted(&batch.records, deadline, tally).await)),
            Event::Sweep(SweepEvent { sweep }) => {
                let idle = sweep.idle_seconds.map(Duration::from_secs);
                // Messages first, in at most half the time (someone waits for them, and a slow
                // SES must not starve the purges); purges take what is left.
                let now = Instant::now();
                let half = now + deadline.saturating_duration_since(now) / 2;
                let mail = self.outbox.sweep(idle.unwrap_or(outbox::SWEEP_AFTER), half).await;
                let purges = purge::sweep(
                    self.purges.as_ref(),
                    self.clock.as_ref(),
                    idle.unwrap_or(SWEEP_IDLE),
                    deadline,
                )
                .await;
                // What each half did counts, whether or not the other failed.
                if let Ok(mail) = &mail {
                    tally.mail_sent += mail.sent as u64;
                    tally.mail_given_up += mail.given_up as u64;
                    tally.mail_deferred += mail.retry_later as u64;
                }
                if let Ok(swept) = &purges {
                    tally.purges_done += swept.done as u64;
                    tally.purged_records += swept.deleted;
                }
                let (mail, swept) = (mail?, purges?);
                tracing::info!(
                    stale = swept.stale,
                    done = swept.done,
                    deleted = swept.deleted,
                    mail_sent = mail.sent,
                    mail_given_up = mail.given_up,
                    mail_retry_later = mail.retry_later,
                    "sweep"
                );
                Ok(serde_json::json!({
                    "stale": swept.stale, "done": swept.done, "deleted": swept.deleted,
                    "mail_sent": mail.sent, "mail_given_up": mail.given_up, "mail_retry_later": mail.retry_later,
                }))
            }
        }
    }

    /// Runs the work of each record of a stream batch, in order: a purge, or a message to send.
    /// On the first that fails it stops and names it: Lambda retries the batch from it.
    pub async fn stream(&self, records: &[EventRecord], deadline: Instant) -> DynamoDbEventResponse {
        self.stream_counted(records, deadline, &mut Tally::default()).await
    }

    /// [`Self::stream`], counting what it does into `tally`.
    async fn stream_counted(
        &self,
        records: &[EventRecord],
        deadline: Instant,
        tally: &mut Tally,
    ) -> DynamoDbEventResponse {
        let mut response = DynamoDbEventResponse::default();
        // Each piece of work once, in the batch's order.
        let mut work: Vec<(Work, &EventRecord)> = Vec::new();
        for record in records {
            if let Some(item) = work_of(record)
                && !work.iter().any(|(w, _)| *w == item)
            {
                work.push((item, record));
            }
        }
        let purges = work.iter().filter(|(w, _)| matches!(w, Work::Purge(_))).count();
        let mut purges_done = 0;
        for (item, record) in work {
            let failed = match item {
                Work::Mail(id) => match self.outbox.send(id).await {
                    Ok(sent) => {
                        match sent {
                            outbox::Sent::Sent => tally.mail_sent += 1,
                            outbox::Sent::GivenUp => tally.mail_given_up += 1,
                            _ => {}
                        }
                        None
                    }
                    // Kept in the outbox, its claim given back: the sweep sends it.
                    Err(outbox::Retry::Mail(error)) => {
                        tracing::warn!(mail_id = %id, %error, "left for the sweep");
                        tally.mail_deferred += 1;
                        None
                    }
                    Err(error @ outbox::Retry::Store(_)) => Some(error.to_string()),
                },
                Work::Purge(user) => {
                    // Each purge gets an equal part of what time is left (a purge that finishes
                    // early leaves the rest to those after it), and at least a page: a large
                    // account slows the purges it shares a batch with, and never holds them up,
                    // whatever the order in which their notes of progress come back through the
                    // stream.
                    let now = Instant::now();
                    let left = u32::try_from(purges - purges_done).unwrap_or(u32::MAX).max(1);
                    purges_done += 1;
                    let until = now + deadline.saturating_duration_since(now) / left;
                    match purge::run(self.purges.as_ref(), self.clock.as_ref(), user, until).await {
                        Ok(Run::Done { deleted }) => {
                            tally.purges_done += 1;
                            tally.purged_records += deleted;
                            None
                        }
                        Ok(Run::Continues { deleted }) => {
                            tally.purged_records += deleted;
                            None
                        }
                        Ok(Run::UserExists) => None,
                        Err(error) => Some(format!("purge of {user}: {error}")),
                    }
                }
            };
            if let Some(error) = failed {
                tracing::warn!(error, "the batch is retried from this record");
                tally.work_failed += 1;
                let mut failure = DynamoDbBatchItemFailure::default();
                failure.item_identifier = record.change.sequence_number.clone();
                response.batch_item_failures.push(failure);
                break;
            }
        }
        response
    }
}

/// A piece of work a stream record carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work {
    /// Purge this deleted user's records.
    Purge(Uuid),
    /// Send this outbox message.
    Mail(Uuid),
}

/// The work a stream record asks for, if any (the template's filters let nothing else through).
pub fn work_of(record: &EventRecord) -> Option<Work> {
    if let Some(user) = purge_of(record) {
        return Some(Work::Purge(user));
    }
    let keys = keys_of(record, OUTBOX_PREFIX)?;
    let id = keys.sk.strip_prefix("MAIL#").and_then(|id| id.parse().ok());
    if id.is_none() {
        tracing::warn!(sk = keys.sk, "an outbox record whose {SK} is not a message's: ignored");
    }
    id.map(Work::Mail)
}

/// The keys of a stream record of an event that carries work in the partitions of `prefix`.
fn keys_of(record: &EventRecord, prefix: &str) -> Option<Keys> {
    let (_, events) = TRIGGERS.iter().find(|(p, _)| *p == prefix)?;
    if !events.contains(&record.event_name.as_str()) {
        return None;
    }
    let keys: Keys = match serde_dynamo::from_item(record.change.keys.clone()) {
        Ok(keys) => keys,
        Err(e) => {
            tracing::warn!(error = %e, "a stream record without string keys: ignored");
            return None;
        }
    };
    keys.pk.starts_with(prefix).then_some(keys)
}

/// The settings every message is rendered with, from the configuration.
pub fn settings(config: &shared::Config) -> MailSettings {
    MailSettings {
        product_name: config.mail.product_name.clone(),
        app_url: config.mail.app_url.clone(),
        from: config.mail.from.clone().unwrap_or_else(|| LOCAL_SENDER.to_owned()),
        reset_minutes: config.mail.reset_token_ttl_secs / 60,
        verify_hours: config.mail.verify_token_ttl_secs / 3600,
    }
}

/// The sender of local mail when `MAIL_FROM` is unset.
pub const LOCAL_SENDER: &str = "no-reply@localhost";

/// Where the worker's mail goes: `.eml` files in `MAIL_DIR` when it is set (locally); an SES
/// stand-in at `SES_ENDPOINT` (which is signed with stand-in credentials: no real key ever signs
/// for a stand-in); Amazon SES from `MAIL_FROM`; or, with neither, nowhere: every message is
/// refused for good, and logged.
pub async fn mailer(config: &shared::Config) -> Arc<dyn Mailer> {
    match local_mailer(config) {
        Some(mailer) => mailer,
        None => mailer_with(config, &shared::state::sdk_config(config).await),
    }
}

/// As [`mailer`], with the AWS SDK configuration the process loaded already (the worker's cold
/// start loads it once, for DynamoDB and SES both): the DynamoDB client's settings, so the same
/// HTTPS client, region and timeouts (a stalled SES answer must not outlast a message's claim).
pub fn mailer_with(config: &shared::Config, sdk: &aws_config::SdkConfig) -> Arc<dyn Mailer> {
    if let Some(mailer) = local_mailer(config) {
        return mailer;
    }
    let mail = &config.mail;
    let has_region = sdk.region().is_some();
    let mut sdk = sdk.clone().into_builder();
    if mail.ses_endpoint.is_some() {
        let local = aws_sdk_sesv2::config::Credentials::new("local", "local", None, None, "ses-stand-in");
        sdk.set_credentials_provider(Some(aws_sdk_sesv2::config::SharedCredentialsProvider::new(local)));
        if !has_region {
            sdk.set_region(Some(aws_config::Region::new("us-east-1")));
        }
    }
    let from = mail.from.clone().unwrap_or_else(|| LOCAL_SENDER.to_owned());
    Arc::new(SesMailer::new(&sdk.build(), mail.ses_endpoint.as_deref(), from, mail.configuration_set.clone()))
}

/// The mailers that need no AWS SDK: a folder, or none at all.
fn local_mailer(config: &shared::Config) -> Option<Arc<dyn Mailer>> {
    let mail = &config.mail;
    if let Some(dir) = &mail.mail_dir {
        return Some(Arc::new(MailDir::new(dir.into())));
    }
    (mail.ses_endpoint.is_none() && mail.from.is_none()).then(|| Arc::new(Unconfigured) as Arc<dyn Mailer>)
}

/// The mailer of a worker given no sender (`MAIL_FROM` unset, in AWS): it refuses every message
/// for good, so that each is logged and given up at once, not retried for a day.
#[derive(Debug, Clone, Copy)]
pub struct Unconfigured;

#[async_trait::async_trait]
impl Mailer for Unconfigured {
    async fn send(&self, _mail: &mail::OutgoingMail) -> Result<(), mail::SendError> {
        Err(mail::SendError::Permanent("MAIL_FROM is not set: no message can be sent".into()))
    }

    fn sends(&self) -> bool {
        false
    }
}

/// The user whose purge a stream record asks for: an insert or a change of a purge record.
pub fn purge_of(record: &EventRecord) -> Option<Uuid> {
    let keys = keys_of(record, PURGES_PREFIX)?;
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
