//! Users in memory: the user record at `USER#<id>` / `USER`, and the email reservation.

use std::ops::Bound;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Entry, MemoryStore, State, key};
use crate::domain::Patch;
use crate::repo::keys::{EMAIL_SK, USER_SK, email_pk, user_pk};
use crate::repo::{
    Completion, CreateUser, Listing, OutboxMail, RepoResult, UpdateUser, UserChanges, UserRecord, UserRepo,
    lock_passed,
};

impl State {
    pub(super) fn user(&self, id: Uuid) -> Option<&UserRecord> {
        match self.get(&user_pk(id), USER_SK) {
            Some(Entry::User(user)) => Some(user),
            _ => None,
        }
    }

    pub(super) fn reserved(&self, email_key: &str) -> Option<Uuid> {
        match self.get(&email_pk(email_key), EMAIL_SK) {
            Some(Entry::Email(user)) => Some(*user),
            _ => None,
        }
    }
}

/// Applies `changes` to user `id`, with the messages they send, all or nothing.
pub(super) fn apply_changes(
    s: &mut State,
    id: Uuid,
    changes: &UserChanges,
    now: DateTime<Utc>,
) -> UpdateUser {
    let Some(current) = s.user(id).cloned() else {
        return UpdateUser::NotFound;
    };
    if !changes.expected_of(&current) {
        return UpdateUser::Changed;
    }
    let mut user = current.clone();
    if let Some(email) = &changes.email {
        let (old_key, new_key) = (current.email.key(), email.key());
        if old_key != new_key {
            let legacy_held = email.legacy_keys().iter().any(|k| *k != old_key && s.reserved(k).is_some());
            if s.reserved(&new_key).is_some() || legacy_held {
                return UpdateUser::EmailTaken;
            }
            s.records.remove(&key(email_pk(&old_key), EMAIL_SK));
            s.records.insert(key(email_pk(&new_key), EMAIL_SK), Entry::Email(id));
        }
        user.email = email.clone();
    }
    if let Patch::Set(full_name) = &changes.full_name {
        user.full_name = full_name.clone();
    }
    if let Some(hash) = &changes.password_hash {
        user.password_hash = hash.clone();
        user.credential_version += 1;
    }
    if let Some(active) = changes.is_active {
        user.is_active = active;
    }
    if let Some(superuser) = changes.is_superuser {
        user.is_superuser = superuser;
    }
    if let Some(verified) = changes.email_verified {
        user.email_verified = verified;
    }
    user.updated_at = now;
    s.records.insert(key(user_pk(id), USER_SK), Entry::User(user.clone()));
    for mail in &changes.mail {
        s.record_mail(mail);
    }
    UpdateUser::Updated(user)
}

#[async_trait]
impl UserRepo for MemoryStore {
    async fn create_user_with(
        &self,
        user: &UserRecord,
        mail: &[OutboxMail],
        completion: Option<&Completion>,
    ) -> RepoResult<CreateUser> {
        let mut s = self.lock();
        if !s.may_complete(completion) {
            return Err(lock_passed());
        }
        let email_key = user.email.key();
        // Not while an account holds the address under a key of before v1.1 (Email::legacy_keys).
        let legacy_held = user.email.legacy_keys().iter().any(|k| s.reserved(k).is_some());
        if s.reserved(&email_key).is_some() || legacy_held || s.user(user.id).is_some() {
            return Ok(CreateUser::EmailTaken);
        }
        s.records.insert(key(email_pk(&email_key), EMAIL_SK), Entry::Email(user.id));
        s.records.insert(key(user_pk(user.id), USER_SK), Entry::User(user.clone()));
        s.users.insert(user.id);
        for mail in mail {
            s.record_mail(mail);
        }
        s.complete(completion);
        drop(s);
        if !mail.is_empty() {
            self.work_written.notify_one();
        }
        Ok(CreateUser::Created)
    }

    async fn get_user(&self, id: Uuid) -> RepoResult<Option<UserRecord>> {
        Ok(self.lock().user(id).cloned())
    }

    async fn find_user_by_email(&self, email_key: &str) -> RepoResult<Option<UserRecord>> {
        let s = self.lock();
        Ok(s.reserved(email_key).and_then(|id| s.user(id)).cloned())
    }

    async fn update_user(
        &self,
        id: Uuid,
        changes: &UserChanges,
        now: DateTime<Utc>,
    ) -> RepoResult<UpdateUser> {
        let updated = apply_changes(&mut self.lock(), id, changes, now);
        if matches!(updated, UpdateUser::Updated(_)) && !changes.mail.is_empty() {
            self.work_written.notify_one();
        }
        Ok(updated)
    }

    async fn delete_user(&self, id: Uuid, now: DateTime<Utc>) -> RepoResult<bool> {
        {
            let mut s = self.lock();
            let Some(user) = s.user(id).cloned() else {
                return Ok(false);
            };
            s.records.remove(&key(user_pk(id), USER_SK));
            s.records.remove(&key(email_pk(&user.email.key()), EMAIL_SK));
            s.users.remove(&id);
            s.record_purge(id, now);
        }
        self.work_written.notify_one();
        Ok(true)
    }

    async fn list_users(&self, limit: usize, after: Option<Uuid>) -> RepoResult<Listing<UserRecord>> {
        let s = self.lock();
        let from = after.map_or(Bound::Unbounded, Bound::Excluded);
        let records = s
            .users
            .range((from, Bound::Unbounded))
            .filter_map(|id| s.user(*id).cloned())
            .take(limit + 1)
            .collect();
        Ok(Listing::of(records, limit))
    }

    async fn users_index_active(&self) -> RepoResult<bool> {
        Ok(true)
    }

    async fn empty_users_index_of_before(&self) -> RepoResult<u64> {
        Ok(0)
    }

    async fn index_user(&self, _id: Uuid) -> RepoResult<()> {
        // The memory store's listing is its ordered set of users: there is no index to fill.
        Ok(())
    }
}
