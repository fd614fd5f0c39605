//! The DynamoDB store: one table, the single-table design of `docs/table-design.md`, keyed by
//! [`super::keys`]. Every multi-record write is a transaction, every write that must not race
//! carries a condition, and every listing is a Query on a key or an index (never a Scan).
//!
//! By concern: the plumbing ([`retry`] classifies errors and decides what may be resent,
//! [`transact`] runs transactions whose failures name the action that failed, [`paging`] reads
//! and deletes whole partitions, [`attrs`] maps attributes, [`table`] creates the table for local
//! runs), then one file per entity, and [`purge`], which deletes what a deleted user owned.

mod attrs;
mod health;
mod idempotency;
mod key_ring;
mod mail;
mod migrations;
mod paging;
mod purge;
mod resources;
mod retry;
pub mod table;
mod throttle;
mod tokens;
mod transact;
mod user_listing;
mod users;

use std::time::Duration as StdDuration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;

use self::attrs::{Attrs, key};
use self::retry::sdk_error;
use super::RepoResult;
use super::key_ring::KeyRing;
use super::keys::KEY_RING_KEY;

/// The most a cold start waits for its warm-up read.
pub const WARM_UP_TIMEOUT: StdDuration = StdDuration::from_secs(1);

#[derive(Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
    /// Whether the users index (`GSI2`) has been filled (`keys::USERS_INDEX_MIGRATION`
    /// applied): once seen, for the life of the process.
    users_index_ready: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// The table only: the client's own `Debug` prints its whole configuration, and linking it into
/// every function (the repositories are `Debug`) costs kilobytes of each zip for nothing.
impl std::fmt::Debug for DynamoStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamoStore").field("table", &self.table).finish_non_exhaustive()
    }
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into(), users_index_ready: Default::default() }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// Opens the way to DynamoDB before the first request needs it: credentials, endpoint
    /// resolution, DNS, TCP and TLS, paid once during a Lambda cold start (whose init phase runs
    /// at full CPU) instead of inside the first request. The one read is of the key ring
    /// (`shared::auth::ring`), which every function needs anyway, bounded by
    /// [`WARM_UP_TIMEOUT`]; a failure is logged and the start goes on (the request that follows
    /// reads the ring again, or says 503 if DynamoDB is really down). Returns the ring read:
    /// `Some(None)` when there is none yet, `None` when the read failed.
    pub async fn warm_up(&self) -> Option<Option<KeyRing>> {
        let started = std::time::Instant::now();
        let read = self
            .client
            .get_item()
            .table_name(&self.table)
            .consistent_read(true)
            .set_key(Some(key(KEY_RING_KEY.into(), KEY_RING_KEY)));
        match tokio::time::timeout(WARM_UP_TIMEOUT, read.send()).await {
            Ok(Ok(read)) => {
                tracing::debug!(
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "DynamoDB connection warmed"
                );
                match read.item.as_ref().map(key_ring::ring_from_item).transpose() {
                    Ok(ring) => Some(ring),
                    Err(e) => {
                        tracing::error!(error = %e, "the key ring read at warm-up is malformed");
                        None
                    }
                }
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %DisplayErrorContext(&e), "DynamoDB warm-up failed; starting anyway");
                None
            }
            Err(_) => {
                tracing::warn!("DynamoDB warm-up took over {WARM_UP_TIMEOUT:?}; starting anyway");
                None
            }
        }
    }

    /// Deletes one record, resent freely (a delete repeated deletes nothing more).
    async fn delete_record(&self, pk: String, sk: &str) -> RepoResult<()> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(pk, sk)))
            .customize()
            .config_override(retry::resend::<DeleteItemError>(retry::Resend::Idempotent))
            .send()
            .await
            .map_err(|e| sdk_error("DeleteItem", e))?;
        Ok(())
    }

    /// One record, read consistently.
    async fn get(&self, pk: String, sk: &str) -> RepoResult<Option<Attrs>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(pk, sk)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_error("GetItem", e))?;
        Ok(out.item)
    }
}
