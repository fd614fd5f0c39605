//! The in-memory store: for fast in-process tests and the zero-setup local server. One mutex
//! guards all state, so every multi-record write is atomic as its DynamoDB transaction is. It
//! passes the same contract tests as [`super::dynamo::DynamoStore`].

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use super::*;
use crate::validate::Patch;

#[derive(Debug, Default)]
struct State {
    /// Users by id; a BTreeMap so listing is in id (= creation) order.
    users: BTreeMap<Uuid, UserRecord>,
    /// Email key → user id: the reservation.
    emails: HashMap<String, Uuid>,
    /// (owner, item id) → item; ordered so an owner's items are a range.
    items: BTreeMap<(Uuid, Uuid), ItemRecord>,
    /// Item id → owner, as the DynamoDB index answers it.
    item_owners: HashMap<Uuid, Uuid>,
    /// (user, family) → the family's expiry.
    families: BTreeMap<(Uuid, Uuid), DateTime<Utc>>,
    refresh: HashMap<String, RefreshRecord>,
    attempts: HashMap<String, AttemptWindow>,
    migrations: BTreeMap<String, MigrationRecord>,
    /// (holder, until) of the migration lease.
    migration_lease: Option<(Uuid, DateTime<Utc>)>,
}

#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
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
}

#[async_trait]
impl UserRepo for MemoryStore {
    async fn create_user(&self, user: &UserRecord) -> RepoResult<CreateUser> {
        let mut s = self.lock();
        let key = user.email.key();
        if s.emails.contains_key(&key) || s.users.contains_key(&user.id) {
            return Ok(CreateUser::EmailTaken);
        }
        s.emails.insert(key, user.id);
        s.users.insert(user.id, user.clone());
        Ok(CreateUser::Created)
    }

    async fn get_user(&self, id: Uuid) -> RepoResult<Option<UserRecord>> {
        Ok(self.lock().users.get(&id).cloned())
    }

    async fn find_user_by_email(&self, email_key: &str) -> RepoResult<Option<UserRecord>> {
        let s = self.lock();
        Ok(s.emails.get(email_key).and_then(|id| s.users.get(id)).cloned())
    }

    async fn update_user(
        &self,
        id: Uuid,
        changes: &UserChanges,
        now: DateTime<Utc>,
    ) -> RepoResult<UpdateUser> {
        let mut s = self.lock();
        let Some(current) = s.users.get(&id).cloned() else {
            return Ok(UpdateUser::NotFound);
        };
        let mut user = current.clone();
        if let Some(email) = &changes.email {
            let (old_key, new_key) = (current.email.key(), email.key());
            if old_key != new_key {
                if s.emails.contains_key(&new_key) {
                    return Ok(UpdateUser::EmailTaken);
                }
                s.emails.remove(&old_key);
                s.emails.insert(new_key, id);
            }
            user.email = email.clone();
        }
        if let Patch::Set(full_name) = &changes.full_name {
            user.full_name = full_name.clone();
        }
        if let Some(hash) = &changes.password_hash {
            user.password_hash = hash.clone();
        }
        if let Some(active) = changes.is_active {
            user.is_active = active;
        }
        if let Some(superuser) = changes.is_superuser {
            user.is_superuser = superuser;
        }
        user.updated_at = now;
        s.users.insert(id, user.clone());
        Ok(UpdateUser::Updated(user))
    }

    async fn delete_user(&self, id: Uuid) -> RepoResult<bool> {
        let mut s = self.lock();
        let Some(user) = s.users.remove(&id) else {
            return Ok(false);
        };
        s.emails.remove(&user.email.key());
        let owned: Vec<_> = s.items.range((id, Uuid::nil())..=(id, Uuid::max())).map(|(k, _)| *k).collect();
        for key in owned {
            s.items.remove(&key);
            s.item_owners.remove(&key.1);
        }
        s.families.retain(|(user_id, _), _| *user_id != id);
        s.refresh.retain(|_, r| r.user_id != id);
        Ok(true)
    }

    async fn list_users(&self, limit: usize, after: Option<Uuid>) -> RepoResult<Listing<UserRecord>> {
        let s = self.lock();
        let records =
            s.users.values().filter(|u| after.is_none_or(|a| u.id > a)).take(limit + 1).cloned().collect();
        Ok(listing(records, limit))
    }
}

#[async_trait]
impl ItemRepo for MemoryStore {
    async fn create_item(&self, item: &ItemRecord) -> RepoResult<bool> {
        let mut s = self.lock();
        if !s.users.contains_key(&item.owner_id) {
            return Ok(false);
        }
        s.items.insert((item.owner_id, item.id), item.clone());
        s.item_owners.insert(item.id, item.owner_id);
        Ok(true)
    }

    async fn get_item(&self, owner_id: Uuid, id: Uuid) -> RepoResult<Option<ItemRecord>> {
        Ok(self.lock().items.get(&(owner_id, id)).cloned())
    }

    async fn find_item_owner(&self, id: Uuid) -> RepoResult<Option<Uuid>> {
        Ok(self.lock().item_owners.get(&id).copied())
    }

    async fn update_item(
        &self,
        owner_id: Uuid,
        id: Uuid,
        changes: &ItemChanges,
        expected_version: Option<u64>,
        now: DateTime<Utc>,
    ) -> RepoResult<Conditional<ItemRecord>> {
        let mut s = self.lock();
        let Some(item) = s.items.get_mut(&(owner_id, id)) else {
            return Ok(Conditional::NotFound);
        };
        if expected_version.is_some_and(|v| v != item.version) {
            return Ok(Conditional::VersionMismatch);
        }
        if let Some(title) = &changes.title {
            item.title = title.clone();
        }
        if let Patch::Set(description) = &changes.description {
            item.description = description.clone();
        }
        item.version += 1;
        item.updated_at = now;
        Ok(Conditional::Done(item.clone()))
    }

    async fn delete_item(
        &self,
        owner_id: Uuid,
        id: Uuid,
        expected_version: Option<u64>,
    ) -> RepoResult<Conditional<()>> {
        let mut s = self.lock();
        let Some(item) = s.items.get(&(owner_id, id)) else {
            return Ok(Conditional::NotFound);
        };
        if expected_version.is_some_and(|v| v != item.version) {
            return Ok(Conditional::VersionMismatch);
        }
        s.items.remove(&(owner_id, id));
        s.item_owners.remove(&id);
        Ok(Conditional::Done(()))
    }

    async fn list_items(
        &self,
        owner_id: Uuid,
        limit: usize,
        before: Option<Uuid>,
    ) -> RepoResult<Listing<ItemRecord>> {
        let s = self.lock();
        let upper = before.unwrap_or(Uuid::max());
        let records = s
            .items
            .range((owner_id, Uuid::nil())..=(owner_id, upper))
            .rev()
            .filter(|((_, id), _)| before.is_none_or(|b| *id < b))
            .take(limit + 1)
            .map(|(_, item)| item.clone())
            .collect();
        Ok(listing(records, limit))
    }
}

#[async_trait]
impl TokenRepo for MemoryStore {
    async fn create_family(&self, first: &RefreshRecord) -> RepoResult<()> {
        let mut s = self.lock();
        s.families.insert((first.user_id, first.family_id), first.expires_at);
        s.refresh.insert(first.token_hash.clone(), first.clone());
        Ok(())
    }

    async fn get_refresh(&self, user_id: Uuid, token_hash: &str) -> RepoResult<Option<RefreshRecord>> {
        Ok(self.lock().refresh.get(token_hash).filter(|r| r.user_id == user_id).cloned())
    }

    async fn rotate_refresh(
        &self,
        old: &RefreshRecord,
        new: &RefreshRecord,
        now: DateTime<Utc>,
    ) -> RepoResult<Rotation> {
        let mut s = self.lock();
        let family = (old.user_id, old.family_id);
        match s.refresh.get(&old.token_hash) {
            Some(r) if !r.used => {}
            _ => return Ok(Rotation::AlreadyUsed),
        }
        match s.families.get(&family) {
            Some(expires_at) if *expires_at > now => {}
            _ => return Ok(Rotation::FamilyGone),
        }
        if let Some(r) = s.refresh.get_mut(&old.token_hash) {
            r.used = true;
        }
        s.families.insert(family, new.expires_at);
        s.refresh.insert(new.token_hash.clone(), new.clone());
        Ok(Rotation::Rotated)
    }

    async fn revoke_family(&self, user_id: Uuid, family_id: Uuid) -> RepoResult<()> {
        self.lock().families.remove(&(user_id, family_id));
        Ok(())
    }

    async fn revoke_user_tokens(&self, user_id: Uuid) -> RepoResult<()> {
        self.lock().families.retain(|(u, _), _| *u != user_id);
        Ok(())
    }
}

#[async_trait]
impl ThrottleRepo for MemoryStore {
    async fn count_attempt(
        &self,
        email_key: &str,
        now: DateTime<Utc>,
        window_secs: i64,
    ) -> RepoResult<AttemptWindow> {
        let mut s = self.lock();
        let window = match s.attempts.get(email_key) {
            Some(w) if w.started_at + Duration::seconds(window_secs) > now => {
                AttemptWindow { count: w.count + 1, started_at: w.started_at }
            }
            _ => AttemptWindow { count: 1, started_at: now },
        };
        s.attempts.insert(email_key.to_owned(), window);
        Ok(window)
    }

    async fn clear_attempts(&self, email_key: &str) -> RepoResult<()> {
        self.lock().attempts.remove(email_key);
        Ok(())
    }
}

#[async_trait]
impl MigrationRepo for MemoryStore {
    async fn migrations(&self) -> RepoResult<Vec<MigrationRecord>> {
        Ok(self.lock().migrations.values().cloned().collect())
    }

    async fn save_migration(
        &self,
        record: &MigrationRecord,
        holder: Uuid,
        now: DateTime<Utc>,
    ) -> RepoResult<bool> {
        let mut s = self.lock();
        if !s.migration_lease.is_some_and(|(h, until)| h == holder && until > now) {
            return Ok(false);
        }
        s.migrations.insert(record.id.clone(), record.clone());
        Ok(true)
    }

    async fn acquire_migration_lease(
        &self,
        holder: Uuid,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> RepoResult<bool> {
        let mut s = self.lock();
        match s.migration_lease {
            Some((other, other_until)) if other != holder && other_until > now => Ok(false),
            _ => {
                s.migration_lease = Some((holder, until));
                Ok(true)
            }
        }
    }

    async fn release_migration_lease(&self, holder: Uuid) -> RepoResult<()> {
        let mut s = self.lock();
        if s.migration_lease.is_some_and(|(h, _)| h == holder) {
            s.migration_lease = None;
        }
        Ok(())
    }
}
