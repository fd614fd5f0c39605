//! Data migrations in memory: the `MIGRATIONS` partition, as in DynamoDB.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Entry, MemoryStore, key};
use crate::repo::keys::{LEASE_SK, MIGRATION_PREFIX, MIGRATIONS_PK};
use crate::repo::{MigrationRecord, MigrationRepo, RepoResult};

#[async_trait]
impl MigrationRepo for MemoryStore {
    async fn migrations(&self) -> RepoResult<Vec<MigrationRecord>> {
        let s = self.lock();
        Ok(s.under(MIGRATIONS_PK, MIGRATION_PREFIX, None)
            .filter_map(|(_, entry)| match entry {
                Entry::Migration(record) => Some(record.clone()),
                _ => None,
            })
            .collect())
    }

    async fn save_migration(
        &self,
        record: &MigrationRecord,
        holder: Uuid,
        now: DateTime<Utc>,
    ) -> RepoResult<bool> {
        let mut s = self.lock();
        let held = matches!(s.get(MIGRATIONS_PK, LEASE_SK), Some(Entry::Lease { holder: h, until }) if *h == holder && *until > now);
        if !held {
            return Ok(false);
        }
        let at = key(MIGRATIONS_PK, format!("{MIGRATION_PREFIX}{}", record.id));
        s.records.insert(at, Entry::Migration(record.clone()));
        Ok(true)
    }

    async fn acquire_migration_lease(
        &self,
        holder: Uuid,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> RepoResult<bool> {
        let mut s = self.lock();
        if let Some(Entry::Lease { holder: other, until: other_until }) = s.get(MIGRATIONS_PK, LEASE_SK)
            && *other != holder
            && *other_until > now
        {
            return Ok(false);
        }
        s.records.insert(key(MIGRATIONS_PK, LEASE_SK), Entry::Lease { holder, until });
        Ok(true)
    }

    async fn release_migration_lease(&self, holder: Uuid) -> RepoResult<()> {
        let mut s = self.lock();
        if matches!(s.get(MIGRATIONS_PK, LEASE_SK), Some(Entry::Lease { holder: h, .. }) if *h == holder) {
            s.records.remove(&key(MIGRATIONS_PK, LEASE_SK));
        }
        Ok(())
    }
}
