//! Purges in memory: the user's range of the map, a page at a time, as the DynamoDB store
//! purges the user's partition; and the purge records under `PURGES#<n>`. Each write to a purge
//! record wakes whoever waits on [`MemoryStore::work_written`], as the table's stream does
//! the worker.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Entry, MemoryStore, State, key};
use crate::repo::keys::{OWNED, POINTER_SK, PURGES_PREFIX, purge_sk, purges_pk, user_pk};
use crate::repo::{Listing, PurgePage, PurgeRecord, PurgeRepo, RepoResult};

impl State {
    /// Records the purge of `user` (with its deletion).
    pub(super) fn record_purge(&mut self, user: Uuid, now: DateTime<Utc>) {
        let record = PurgeRecord { user_id: user, requested_at: now, updated_at: now, deleted: 0 };
        self.records.insert(key(purges_pk(user), purge_sk(user)), Entry::Purge(record));
    }

    fn purge(&self, user: Uuid) -> Option<&PurgeRecord> {
        match self.get(&purges_pk(user), &purge_sk(user)) {
            Some(Entry::Purge(record)) => Some(record),
            _ => None,
        }
    }
}

#[async_trait]
impl PurgeRepo for MemoryStore {
    async fn purge_page(&self, user: Uuid, limit: usize) -> RepoResult<PurgePage> {
        let mut s = self.lock();
        if s.user(user).is_some() {
            return Ok(PurgePage::UserExists);
        }
        let partition = user_pk(user);
        let keys: Vec<_> = s
            .records
            .range(key(partition.clone(), "")..)
            .map(|(k, _)| k.clone())
            .take_while(|(pk, _)| *pk == partition)
            .take(limit.max(1))
            .collect();
        if keys.is_empty() {
            return Ok(PurgePage::Empty);
        }
        for (pk, sk) in &keys {
            if OWNED.iter().any(|kind| kind.pointer && sk.starts_with(kind.prefix)) {
                s.records.remove(&key(sk.clone(), POINTER_SK));
            }
            s.records.remove(&key(pk.clone(), sk.clone()));
        }
        Ok(PurgePage::Deleted(keys.len()))
    }

    async fn note_purge_progress(&self, user: Uuid, deleted: u64, now: DateTime<Utc>) -> RepoResult<()> {
        {
            let mut s = self.lock();
            if let Some(Entry::Purge(record)) = s.records.get_mut(&key(purges_pk(user), purge_sk(user))) {
                record.deleted += deleted;
                record.updated_at = now;
            } else {
                return Ok(());
            }
        }
        self.work_written.notify_one();
        Ok(())
    }

    async fn finish_purge(&self, user: Uuid) -> RepoResult<()> {
        self.lock().records.remove(&key(purges_pk(user), purge_sk(user)));
        Ok(())
    }

    async fn get_purge(&self, user: Uuid) -> RepoResult<Option<PurgeRecord>> {
        Ok(self.lock().purge(user).cloned())
    }

    async fn pending_purges(&self, limit: usize, after: Option<Uuid>) -> RepoResult<Listing<PurgeRecord>> {
        let s = self.lock();
        let mut records: Vec<PurgeRecord> = s
            .records
            .range(key(PURGES_PREFIX, "")..)
            .take_while(|((pk, _), _)| pk.starts_with(PURGES_PREFIX))
            .filter_map(|(_, entry)| match entry {
                Entry::Purge(record) if after.is_none_or(|after| record.user_id > after) => {
                    Some(record.clone())
                }
                _ => None,
            })
            .collect();
        records.sort_by_key(|r| r.user_id);
        records.truncate(limit.saturating_add(1));
        Ok(Listing::of(records, limit))
    }
}
