//! Purges: what is left of a deleted user. Deleting a user removes at once (in one transaction)
//! the user record and its email reservation, and writes a durable purge record; the user's
//! other records (every kind of `keys::OWNED`, owner pointers included) are deleted afterwards, a
//! page at a time, by the `worker` function (`shared::purge` drives it). Nothing can be added to a
//! deleted user's partition (every such write is conditional on the user existing), so a purge
//! only ever shrinks it, and any number of purges of one user, interrupted anywhere, converge.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Listing, RepoResult};

/// A purge still to do: a user deleted at `requested_at` whose records are not all gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurgeRecord {
    pub user_id: Uuid,
    pub requested_at: DateTime<Utc>,
    /// When a worker last recorded progress (or the request, before any).
    pub updated_at: DateTime<Utc>,
    /// Records deleted so far, as recorded.
    pub deleted: u64,
}

/// One page of a purge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PurgePage {
    /// This many records (owner pointers not counted) were deleted; there may be more.
    Deleted(usize),
    /// Nothing of the user was left.
    Empty,
    /// The user exists: there is nothing to purge (and nothing was touched).
    UserExists,
}

#[async_trait]
pub trait PurgeRepo: Send + Sync + std::fmt::Debug {
    /// Deletes up to `limit` records of `user`'s partition, each with its owner pointer, unless
    /// the user exists.
    async fn purge_page(&self, user: Uuid, limit: usize) -> RepoResult<PurgePage>;
    /// Adds `deleted` to the purge record's count and sets its `updated_at`, if the record is
    /// still there; the write is what hands the rest of the purge to the next worker run.
    async fn note_purge_progress(&self, user: Uuid, deleted: u64, now: DateTime<Utc>) -> RepoResult<()>;
    /// Removes the purge record: every record of the user is gone.
    async fn finish_purge(&self, user: Uuid) -> RepoResult<()>;
    /// The purge record of `user`, if one is pending.
    async fn get_purge(&self, user: Uuid) -> RepoResult<Option<PurgeRecord>>;
    /// Pending purges in order of user id, after `after`.
    async fn pending_purges(&self, limit: usize, after: Option<Uuid>) -> RepoResult<Listing<PurgeRecord>>;
}
