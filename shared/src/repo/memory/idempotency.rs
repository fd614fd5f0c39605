//! Idempotency records in memory, under the keys the DynamoDB store uses.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{Entry, MemoryStore, key};
use crate::repo::{
    Begin, IdempotencyKey, IdempotencyRecord, IdempotencyRepo, IdempotencyState, KeptAnswer, RepoResult,
};

/// Whether `record` may be taken over at `now`: expired, or its lock passed.
fn free(record: &IdempotencyRecord, now: DateTime<Utc>) -> bool {
    record.expires_at <= now
        || matches!(record.state, IdempotencyState::InProgress { locked_until } if locked_until <= now)
}

#[async_trait]
impl IdempotencyRepo for MemoryStore {
    async fn begin(
        &self,
        idem: &IdempotencyKey,
        fingerprint: &str,
        locked_until: DateTime<Utc>,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> RepoResult<Begin> {
        let (pk, sk) = idem.location();
        let mut s = self.lock();
        if let Some(Entry::Idempotency(record)) = s.get(&pk, &sk)
            && !free(record, now)
        {
            return Ok(Begin::Existing(record.clone()));
        }
        let record = IdempotencyRecord {
            fingerprint: fingerprint.to_owned(),
            state: IdempotencyState::InProgress { locked_until },
            expires_at,
        };
        s.records.insert(key(pk, sk), Entry::Idempotency(record));
        Ok(Begin::Started)
    }

    async fn complete(
        &self,
        idem: &IdempotencyKey,
        locked_until: DateTime<Utc>,
        answer: &KeptAnswer,
    ) -> RepoResult<bool> {
        let (pk, sk) = idem.location();
        let mut s = self.lock();
        match s.records.get_mut(&key(pk, sk)) {
            Some(Entry::Idempotency(record))
                if record.state == IdempotencyState::InProgress { locked_until } =>
            {
                record.state = IdempotencyState::Complete(answer.clone());
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn release(&self, idem: &IdempotencyKey, locked_until: DateTime<Utc>) -> RepoResult<()> {
        let (pk, sk) = idem.location();
        let mut s = self.lock();
        let held = matches!(
            s.records.get(&key(pk.clone(), sk.clone())),
            Some(Entry::Idempotency(record)) if record.state == IdempotencyState::InProgress { locked_until }
        );
        if held {
            s.records.remove(&key(pk, sk));
        }
        Ok(())
    }
}
