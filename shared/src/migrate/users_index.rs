//! The users listing's index moved to `GSI2` (keys only, sharded) in two migrations:
//! `0003_users_index` fills it, `0004_users_index_of_before` empties `GSI1`
//! (`docs/table-design.md`, "Rolling out the users index").

use async_trait::async_trait;
use uuid::Uuid;

use super::{MigrateError, Migration, Progress};
use crate::repo::Repos;
use crate::repo::keys::USERS_INDEX_MIGRATION;

/// The users listing's new index (`GSI2`: keys only, sharded): every user written before it
/// existed is put into it. Until this is recorded as applied, the listing reads `GSI1`, which
/// every user is in; from then on, `GSI2`. So the listing is whole before, during and after the
/// run (`docs/table-design.md`, "Rolling out the users index").
#[derive(Debug)]
pub struct UsersIndex;

#[async_trait]
impl Migration for UsersIndex {
    fn id(&self) -> &'static str {
        USERS_INDEX_MIGRATION
    }

    fn description(&self) -> &'static str {
        "the users listing's index: keys only, over 8 partitions (GSI2); every user put into it"
    }

    async fn apply(&self, repos: &Repos, progress: &mut Progress) -> Result<(), MigrateError> {
        let failed = |reason: String| MigrateError::Failed { id: self.id().to_owned(), reason };
        if !repos.users.users_index_active().await? {
            return Err(failed(
                "the table's index GSI2 is missing or still being built: wait until the stack update that \
                 adds it has finished (a local table made before it: create it again), then run migrate again"
                    .into(),
            ));
        }
        let mut after = match progress.checkpoint() {
            Some(checkpoint) => Some(checkpoint.parse::<Uuid>().map_err(|e| failed(e.to_string()))?),
            None => None,
        };
        loop {
            // Not yet applied, so this reads the index of before, in which every user is.
            let page = repos.users.list_users(100, after).await?;
            for user in &page.records {
                repos.users.index_user(user.id).await?;
            }
            if let Some(last) = page.records.last() {
                after = Some(last.id);
                progress.save(last.id.to_string()).await?;
            }
            if !page.more {
                return Ok(());
            }
        }
    }
}

/// The users index of before (`GSI1`, which copies every attribute, password hashes included)
/// emptied: every user taken out of it. It runs once `0003_users_index` is applied, when the
/// listing reads `GSI2` and new users are no longer put into `GSI1`; dropping `GSI1` in the next
/// release is then only clean-up.
#[derive(Debug)]
pub struct UsersIndexOfBefore;

#[async_trait]
impl Migration for UsersIndexOfBefore {
    fn id(&self) -> &'static str {
        "0004_users_index_of_before"
    }

    fn description(&self) -> &'static str {
        "the users index of before (GSI1, every attribute copied) emptied"
    }

    async fn apply(&self, repos: &Repos, _progress: &mut Progress) -> Result<(), MigrateError> {
        // Migrations run in order and stop at the first that fails: `0003_users_index` is
        // applied, so no user is put into GSI1 any more, and this empties it for good. It reads
        // GSI1 itself (not the listing) until it finds nothing there.
        let taken = repos.users.empty_users_index_of_before().await?;
        tracing::info!(taken, "users taken out of GSI1");
        Ok(())
    }
}
