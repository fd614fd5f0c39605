//! Running purges: what the `worker` function does with each purge record the table's stream
//! hands it, what its scheduled sweep and `admin purge` do with every pending one, and what the
//! local server's in-process worker does. A run deletes pages until the user's partition is
//! empty (then removes the purge record) or its time is up (then notes its progress on the
//! record, a write that the stream hands to the next run). Every page that a run deletes stays
//! deleted, so each attempt, interrupted anywhere, leaves less to do.

use std::time::Duration;

use tokio::time::Instant;
use uuid::Uuid;

use crate::deps::Clock;
use crate::repo::{PurgePage, PurgeRepo, RepoResult};

/// Records read and deleted at a time: one Query page and a few `BatchWriteItem`s.
pub const PAGE: usize = 100;

/// How a run of one purge ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Run {
    /// Every record of the user is gone, and so is the purge record.
    Done { deleted: u64 },
    /// Time ran out; the progress is noted on the purge record, which hands on the rest.
    Continues { deleted: u64 },
    /// The user exists: the purge record was not for a deleted user. It is removed, and
    /// nothing of the user is touched.
    UserExists,
}

/// Purges `user` until its records are all gone or `deadline` passes.
pub async fn run(
    purges: &dyn PurgeRepo,
    clock: &dyn Clock,
    user: Uuid,
    deadline: Instant,
) -> RepoResult<Run> {
    let mut deleted = 0u64;
    loop {
        match purges.purge_page(user, PAGE).await? {
            PurgePage::Deleted(n) => deleted += n as u64,
            PurgePage::Empty => {
                purges.finish_purge(user).await?;
                tracing::info!(%user, deleted, "purge done");
                return Ok(Run::Done { deleted });
            }
            PurgePage::UserExists => {
                tracing::error!(%user, "a purge record names a user that exists: removed, nothing purged");
                purges.finish_purge(user).await?;
                return Ok(Run::UserExists);
            }
        }
        if Instant::now() >= deadline {
            purges.note_purge_progress(user, deleted, clock.now()).await?;
            tracing::info!(%user, deleted, "purge continues in the next run");
            return Ok(Run::Continues { deleted });
        }
    }
}

/// What a sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    /// Purges found pending and not touched for `idle` or longer.
    pub stale: usize,
    /// Of those, purges run to the end.
    pub done: usize,
    /// Records deleted.
    pub deleted: u64,
}

/// Runs every pending purge that no run has touched for `idle` (the stream's run of it was lost,
/// or failed for good), until `deadline`. What the scheduled sweep and `admin purge` do; `idle`
/// of zero takes every pending purge.
pub async fn sweep(
    purges: &dyn PurgeRepo,
    clock: &dyn Clock,
    idle: Duration,
    deadline: Instant,
) -> RepoResult<Swept> {
    let mut swept = Swept::default();
    let mut failed = None;
    let mut after = None;
    let idle = chrono::Duration::from_std(idle).unwrap_or(chrono::Duration::MAX);
    loop {
        let listing = purges.pending_purges(PAGE, after).await?;
        for record in &listing.records {
            if clock.now() - record.updated_at < idle {
                continue;
            }
            // The first purge always gets its run (whose first page is always deleted), so
            // every sweep makes progress; later ones only while time is left.
            if swept.stale > 0 && Instant::now() >= deadline {
                return failed.map_or(Ok(swept), Err);
            }
            swept.stale += 1;
            // One purge that fails (a store refusing one of its records) does not hold up the
            // others: it is logged, the rest run, and the sweep fails at its end.
            match run(purges, clock, record.user_id, deadline).await {
                Ok(Run::Done { deleted }) => {
                    swept.done += 1;
                    swept.deleted += deleted;
                }
                Ok(Run::Continues { deleted }) => swept.deleted += deleted,
                Ok(Run::UserExists) => {}
                Err(e) => {
                    tracing::warn!(user = %record.user_id, error = %e, "purge failed; the sweep goes on");
                    failed.get_or_insert(e);
                }
            }
        }
        if !listing.more {
            return match failed {
                Some(e) => Err(e),
                None => Ok(swept),
            };
        }
        after = listing.records.last().map(|r| r.user_id);
    }
}
