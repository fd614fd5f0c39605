//! The login throttle's counters in memory, at the keys DynamoDB uses.

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};

use super::{Entry, MemoryStore, key};
use uuid::Uuid;

use crate::repo::keys::{ATTEMPTS_SK, LOGIN_ADDRESS, attempts_pk, user_pk};
use crate::repo::{AttemptWindow, RepoResult, ThrottleRepo};

/// Counted attempts between two sweeps of expired counters and addresses.
const SWEEP_EVERY: u32 = 1024;

/// Counts one attempt under `counter` in `s`, unless the open window holds `max` already.
fn count(
    s: &mut super::State,
    counter: &str,
    now: DateTime<Utc>,
    window_secs: i64,
    max: Option<u32>,
) -> Result<AttemptWindow, AttemptWindow> {
    // What DynamoDB's TTL does for the table: counters of closed windows, and remembered
    // addresses past their time, go (now and then, so a flood of new usernames cannot grow the
    // process without bound).
    s.writes_since_sweep += 1;
    if s.writes_since_sweep >= SWEEP_EVERY {
        s.writes_since_sweep = 0;
        s.records.retain(|_, entry| match entry {
            Entry::Attempts(w) => w.started_at + Duration::seconds(window_secs) > now,
            Entry::Until(until) => *until > now,
            _ => true,
        });
    }
    let at = key(attempts_pk(counter), ATTEMPTS_SK);
    let window = match s.records.get(&at) {
        Some(Entry::Attempts(w)) if w.started_at + Duration::seconds(window_secs) > now => {
            if max.is_some_and(|max| w.count >= max) {
                return Err(*w);
            }
            AttemptWindow { count: w.count + 1, started_at: w.started_at }
        }
        _ => AttemptWindow { count: 1, started_at: now },
    };
    s.records.insert(at, Entry::Attempts(window));
    Ok(window)
}

#[async_trait]
impl ThrottleRepo for MemoryStore {
    async fn count_attempt(
        &self,
        counter: &str,
        now: DateTime<Utc>,
        window_secs: i64,
    ) -> RepoResult<AttemptWindow> {
        Ok(count(&mut self.lock(), counter, now, window_secs, None).unwrap_or_else(|full| full))
    }

    async fn count_attempt_below(
        &self,
        counter: &str,
        now: DateTime<Utc>,
        window_secs: i64,
        max: u32,
    ) -> RepoResult<Result<AttemptWindow, AttemptWindow>> {
        // Under one lock, as atomic as DynamoDB's conditional write.
        Ok(count(&mut self.lock(), counter, now, window_secs, Some(max)))
    }

    async fn attempts(
        &self,
        counter: &str,
        now: DateTime<Utc>,
        window_secs: i64,
    ) -> RepoResult<Option<AttemptWindow>> {
        Ok(match self.lock().get(&attempts_pk(counter), ATTEMPTS_SK) {
            Some(Entry::Attempts(w)) if w.started_at + Duration::seconds(window_secs) > now => Some(*w),
            _ => None,
        })
    }

    async fn clear_attempts(&self, email_key: &str) -> RepoResult<()> {
        self.lock().records.remove(&key(attempts_pk(email_key), ATTEMPTS_SK));
        Ok(())
    }

    async fn forgive_attempt(&self, counter: &str, started_at: DateTime<Utc>) -> RepoResult<()> {
        let mut s = self.lock();
        let at = key(attempts_pk(counter), ATTEMPTS_SK);
        if let Some(Entry::Attempts(w)) = s.records.get_mut(&at)
            && w.started_at == started_at
            && w.count > 0
        {
            w.count -= 1;
            if w.count == 0 {
                s.records.remove(&at);
            }
        }
        Ok(())
    }

    async fn remember_address(&self, user_id: Uuid, address: &str, until: DateTime<Utc>) -> RepoResult<()> {
        let mut s = self.lock();
        // Only under a user that exists, as the cascade could not see a record written after it.
        if s.user(user_id).is_some() {
            s.records.insert(key(user_pk(user_id), LOGIN_ADDRESS.sk(address)), Entry::Until(until));
        }
        Ok(())
    }

    async fn knows_address(&self, user_id: Uuid, address: &str, now: DateTime<Utc>) -> RepoResult<bool> {
        Ok(matches!(
            self.lock().get(&user_pk(user_id), &LOGIN_ADDRESS.sk(address)),
            Some(Entry::Until(until)) if *until > now
        ))
    }
}
