//! The in-memory store: for fast in-process tests and the zero-setup local server. It keeps its
//! records in one ordered map under the very keys the DynamoDB store uses ([`super::keys`]), so
//! the two lay records out alike: a user's records are a range of the map as they are a
//! partition of the table, and a purge deletes the same records. One mutex
//! guards all of it, so every multi-record write is atomic as its DynamoDB transaction is. It
//! passes the same contract tests as [`super::dynamo::DynamoStore`].
//!
//! Laid out as the DynamoDB store is: this file's map, then one file per entity, and
//! [`purge`].

mod health;
mod idempotency;
mod key_ring;
mod mail;
mod migrations;
mod purge;
mod resources;
mod throttle;
mod tokens;
mod users;

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::sync::{Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::resources::Fields;
use super::{
    AttemptWindow, IdempotencyRecord, MailToken, MigrationRecord, OutboxMail, PurgeRecord, RefreshRecord,
    UserRecord,
};

/// A record's key: (partition key, sort key), as in the table.
type Key = (String, String);

fn key(pk: impl Into<String>, sk: impl Into<String>) -> Key {
    (pk.into(), sk.into())
}

/// One record, by kind.
#[derive(Debug, Clone)]
enum Entry {
    User(UserRecord),
    /// An email reservation: the user that holds the address.
    Email(Uuid),
    /// A user-owned resource, as its JSON object.
    Resource(Fields),
    /// A resource's owner pointer: the owner.
    Pointer(Uuid),
    /// A refresh-token family: its expiry.
    Family(DateTime<Utc>),
    Refresh(RefreshRecord),
    Attempts(AttemptWindow),
    /// A record that matters until a time: a remembered login address.
    Until(DateTime<Utc>),
    Migration(MigrationRecord),
    Lease {
        holder: Uuid,
        until: DateTime<Utc>,
    },
    Purge(PurgeRecord),
    /// A user's live token of one purpose.
    MailToken(MailToken),
    /// A message to send, and until when a sender has claimed it.
    Outbox(OutboxMail, Option<DateTime<Utc>>),
    Idempotency(IdempotencyRecord),
    KeyRing(super::key_ring::KeyRing),
}

#[derive(Debug, Default)]
struct State {
    records: BTreeMap<Key, Entry>,
    /// The users by id (= creation order): what `GSI1` is to the table.
    users: BTreeSet<Uuid>,
    /// Counted login attempts since expired throttle records were last swept away.
    writes_since_sweep: u32,
}

impl State {
    fn get(&self, pk: &str, sk: &str) -> Option<&Entry> {
        self.records.get(&key(pk, sk))
    }

    /// The records of partition `pk` whose sort key starts with `prefix` and (if given) sorts
    /// before `before`, in key order: a Query on a key condition.
    fn under(
        &self,
        pk: &str,
        prefix: &str,
        before: Option<&str>,
    ) -> impl DoubleEndedIterator<Item = (&Key, &Entry)> {
        // Every sort key that starts with `prefix` sorts below the prefix with its last
        // character incremented (the prefixes are ASCII: `ITEM#` .. `ITEM$`).
        let mut end = prefix.to_owned();
        if let Some(last) = end.pop() {
            end.push(char::from_u32(u32::from(last) + 1).unwrap_or(char::MAX));
        }
        let end = before.filter(|b| **b < *end).map_or(end, str::to_owned);
        self.records.range((Bound::Included(key(pk, prefix)), Bound::Excluded(key(pk, end))))
    }

    /// The keys of partition `pk` whose sort key starts with `prefix`, in order.
    fn keys_under(&self, pk: &str, prefix: &str) -> Vec<Key> {
        self.under(pk, prefix, None).map(|(k, _)| k.clone()).collect()
    }
}

#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
    /// Notified at each write of a purge record or an outbox message: what the table's stream
    /// is to the worker.
    work_written: tokio::sync::Notify,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave a half-applied write: every method
        // checks all conditions before it mutates anything.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until a purge record (a user deleted, or a purge's progress noted) or a message to
    /// send is written since the last wait returned: the local worker's trigger, as the table's
    /// stream is the `worker` function's.
    pub async fn work_written(&self) {
        self.work_written.notified().await;
    }

    /// The key of every record held, in order: what a Scan of the table would list. For tests
    /// (the repository contract checks every record's kind with it).
    pub fn keys(&self) -> Vec<(String, String)> {
        self.lock().records.keys().cloned().collect()
    }
}
