//! Refresh tokens in memory: families and tokens in their user's range, as in DynamoDB.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Entry, MemoryStore, key};
use crate::repo::keys::{FAMILY, REFRESH, user_pk};
use crate::repo::{NewFamily, RefreshRecord, RepoResult, Rotation, TokenRepo};

#[async_trait]
impl TokenRepo for MemoryStore {
    async fn create_family(&self, first: &RefreshRecord) -> RepoResult<NewFamily> {
        let mut s = self.lock();
        if !s
            .user(first.user_id)
            .is_some_and(|u| u.is_active && u.credential_version == first.credential_version)
        {
            return Ok(NewFamily::CredentialsChanged);
        }
        let pk = user_pk(first.user_id);
        s.records.insert(key(&pk, FAMILY.sk(first.family_id)), Entry::Family(first.expires_at));
        s.records.insert(key(&pk, REFRESH.sk(&first.token_hash)), Entry::Refresh(first.clone()));
        Ok(NewFamily::Created)
    }

    async fn get_refresh(&self, user_id: Uuid, token_hash: &str) -> RepoResult<Option<RefreshRecord>> {
        Ok(match self.lock().get(&user_pk(user_id), &REFRESH.sk(token_hash)) {
            Some(Entry::Refresh(record)) => Some(record.clone()),
            _ => None,
        })
    }

    async fn rotate_refresh(
        &self,
        old: &RefreshRecord,
        new: &RefreshRecord,
        now: DateTime<Utc>,
    ) -> RepoResult<Rotation> {
        let mut s = self.lock();
        let pk = user_pk(old.user_id);
        let (old_key, family_key) =
            (key(&pk, REFRESH.sk(&old.token_hash)), key(&pk, FAMILY.sk(old.family_id)));
        match s.records.get(&old_key) {
            Some(Entry::Refresh(r)) if !r.used => {}
            _ => return Ok(Rotation::AlreadyUsed),
        }
        match s.records.get(&family_key) {
            Some(Entry::Family(expires_at)) if *expires_at > now => {}
            _ => return Ok(Rotation::FamilyGone),
        }
        if s.user(old.user_id).is_none_or(|u| u.credential_version != old.credential_version) {
            return Ok(Rotation::FamilyGone);
        }
        if let Some(Entry::Refresh(r)) = s.records.get_mut(&old_key) {
            r.used = true;
        }
        s.records.insert(family_key, Entry::Family(new.expires_at));
        s.records.insert(key(&pk, REFRESH.sk(&new.token_hash)), Entry::Refresh(new.clone()));
        Ok(Rotation::Rotated)
    }

    async fn revoke_family(&self, user_id: Uuid, family_id: Uuid) -> RepoResult<bool> {
        Ok(self.lock().records.remove(&key(user_pk(user_id), FAMILY.sk(family_id))).is_some())
    }

    async fn revoke_user_tokens(&self, user_id: Uuid) -> RepoResult<()> {
        let mut s = self.lock();
        for family in s.keys_under(&user_pk(user_id), FAMILY.prefix) {
            s.records.remove(&family);
        }
        Ok(())
    }
}
