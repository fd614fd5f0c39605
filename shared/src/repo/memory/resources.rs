//! Every user-owned resource in memory: the record at `USER#<owner>` / `<prefix><id>` as its JSON
//! object, and its owner pointer, as the DynamoDB store keeps them.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use super::{Entry, MemoryStore, State, key};
use crate::repo::keys::{OwnedKind, POINTER_SK, USER_SK, user_pk};
use crate::repo::resources::{Fields, VERSION, changed};
use crate::repo::{Completion, Conditional, Listing, RepoError, RepoResult, ResourceStore, lock_passed};

impl State {
    fn resource(&self, kind: OwnedKind, owner: Uuid, id: Uuid) -> Option<&Fields> {
        match self.get(&user_pk(owner), &kind.sk(id)) {
            Some(Entry::Resource(fields)) => Some(fields),
            _ => None,
        }
    }

    /// The record, if it exists and (with `expected_version`) is at that version.
    fn resource_at(
        &self,
        kind: OwnedKind,
        owner: Uuid,
        id: Uuid,
        expected_version: Option<u64>,
    ) -> Result<&Fields, Conditional<()>> {
        let fields = self.resource(kind, owner, id).ok_or(Conditional::NotFound)?;
        let version = fields.get(VERSION).and_then(Value::as_u64);
        if expected_version.is_some_and(|v| Some(v) != version) {
            return Err(Conditional::VersionMismatch);
        }
        Ok(fields)
    }
}

/// What a refused conditional write answers, for any value type.
fn refused<T>(outcome: Conditional<()>) -> Conditional<T> {
    match outcome {
        Conditional::VersionMismatch => Conditional::VersionMismatch,
        _ => Conditional::NotFound,
    }
}

#[async_trait]
impl ResourceStore for MemoryStore {
    async fn create_resource(
        &self,
        kind: OwnedKind,
        owner: Uuid,
        id: Uuid,
        record: &Fields,
        completion: Option<&Completion>,
    ) -> RepoResult<bool> {
        let mut s = self.lock();
        if s.get(&user_pk(owner), USER_SK).is_none() {
            return Ok(false);
        }
        if !s.may_complete(completion) {
            return Err(lock_passed());
        }
        let (record_key, pointer_key) = (key(user_pk(owner), kind.sk(id)), key(kind.sk(id), POINTER_SK));
        if s.records.contains_key(&record_key) || (kind.pointer && s.records.contains_key(&pointer_key)) {
            return Err(RepoError::Internal(format!("{} id {id} is taken", kind.name)));
        }
        s.records.insert(record_key, Entry::Resource(record.clone()));
        if kind.pointer {
            s.records.insert(pointer_key, Entry::Pointer(owner));
        }
        s.complete(completion);
        Ok(true)
    }

    async fn get_resource(&self, kind: OwnedKind, owner: Uuid, id: Uuid) -> RepoResult<Option<Fields>> {
        Ok(self.lock().resource(kind, owner, id).cloned())
    }

    async fn find_resource_owner(&self, kind: OwnedKind, id: Uuid) -> RepoResult<Option<Uuid>> {
        Ok(match self.lock().get(&kind.sk(id), POINTER_SK) {
            Some(Entry::Pointer(owner)) => Some(*owner),
            _ => None,
        })
    }

    async fn update_resource(
        &self,
        kind: OwnedKind,
        owner: Uuid,
        id: Uuid,
        changes: &Fields,
        expected_version: Option<u64>,
        now: DateTime<Utc>,
    ) -> RepoResult<Conditional<Fields>> {
        let mut s = self.lock();
        let current = match s.resource_at(kind, owner, id, expected_version) {
            Ok(fields) => fields.clone(),
            Err(outcome) => return Ok(refused(outcome)),
        };
        let fields = changed(current, changes, now);
        s.records.insert(key(user_pk(owner), kind.sk(id)), Entry::Resource(fields.clone()));
        Ok(Conditional::Done(fields))
    }

    async fn update_resource_at(
        &self,
        kind: OwnedKind,
        owner: Uuid,
        id: Uuid,
        changes: &Fields,
        expected_version: u64,
        now: DateTime<Utc>,
        completion: Option<&Completion>,
    ) -> RepoResult<Conditional<()>> {
        let mut s = self.lock();
        let current = match s.resource_at(kind, owner, id, Some(expected_version)) {
            Ok(fields) => fields.clone(),
            Err(outcome) => return Ok(outcome),
        };
        if !s.may_complete(completion) {
            return Err(lock_passed());
        }
        s.records.insert(key(user_pk(owner), kind.sk(id)), Entry::Resource(changed(current, changes, now)));
        s.complete(completion);
        Ok(Conditional::Done(()))
    }

    async fn delete_resource(
        &self,
        kind: OwnedKind,
        owner: Uuid,
        id: Uuid,
        expected_version: Option<u64>,
    ) -> RepoResult<Conditional<()>> {
        let mut s = self.lock();
        if let Err(outcome) = s.resource_at(kind, owner, id, expected_version) {
            return Ok(outcome);
        }
        s.records.remove(&key(user_pk(owner), kind.sk(id)));
        if kind.pointer {
            s.records.remove(&key(kind.sk(id), POINTER_SK));
        }
        Ok(Conditional::Done(()))
    }

    async fn list_resources(
        &self,
        kind: OwnedKind,
        owner: Uuid,
        limit: usize,
        before: Option<Uuid>,
    ) -> RepoResult<Listing<Fields>> {
        let s = self.lock();
        let before = before.map(|id| kind.sk(id));
        let records = s
            .under(&user_pk(owner), kind.prefix, before.as_deref())
            .rev()
            .filter_map(|(_, entry)| match entry {
                Entry::Resource(fields) => Some(fields.clone()),
                _ => None,
            })
            .take(limit + 1)
            .collect();
        Ok(Listing::of(records, limit))
    }
}
