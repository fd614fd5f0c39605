//! Idempotency records in memory, under the keys the DynamoDB store uses.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{Entry, MemoryStore, State, key};
use crate::repo::{
    Begin, Completion, IdempotencyKey, IdempotencyRecord, IdempotencyRepo, IdempotencyState, KeptAnswer,
    RepoResult,
};

/// Whether `record` may be taken over at `now`: expired, or its lock passed.
fn free(record: &IdempotencyRecord, now: DateTime<Utc>) -> bool {
    record.expires_at <= now
        || matches!(record.state, IdempotencyState::InProgress { locked_until } if locked_until <= now)
}

impl State {
    /// Whether the request that took `idem` with `locked_until` still holds it.
    fn holds(&self, idem: &IdempotencyKey, locked_until: DateTime<Utc>) -> bool {
        let (pk, sk) = idem.location();
        matches!(
            self.get(&pk, &sk),
            Some(Entry::Idempotency(record)) if record.state == IdempotencyState::InProgress { locked_until }
        )
    }

    /// Whether `completion` may be written: checked with a write's other conditions, before the
    /// write changes anything.
    pub(super) fn may_complete(&self, completion: Option<&Completion>) -> bool {
        completion.is_none_or(|c| self.holds(&c.key, c.locked_until))
    }

    /// Keeps the answer of `completion` (after [`State::may_complete`]), in the same lock as the
    /// write it belongs to.
    pub(super) fn complete(&mut self, completion: Option<&Completion>) {
        let Some(c) = completion else { return };
        let (pk, sk) = c.key.location();
        if let Some(Entry::Idempotency(record)) = self.records.get_mut(&key(pk, sk)) {
            record.state = IdempotencyState::Complete(c.answer.clone());
        }
    }
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
        let completion = Completion { key: idem.clone(), locked_until, answer: answer.clone() };
        let mut s = self.lock();
        if !s.may_complete(Some(&completion)) {
            return Ok(false);
        }
        s.complete(Some(&completion));
        Ok(true)
    }

    async fn release(&self, idem: &IdempotencyKey, locked_until: DateTime<Utc>) -> RepoResult<()> {
        let mut s = self.lock();
        if s.holds(idem, locked_until) {
            let (pk, sk) = idem.location();
            s.records.remove(&key(pk, sk));
        }
        Ok(())
    }
}
