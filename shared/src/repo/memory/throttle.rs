//! The login throttle's counters in memory, at the keys DynamoDB uses.

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};

use super::{Entry, MemoryStore, key};
use crate::repo::keys::{ATTEMPTS_SK, attempts_pk};
use crate::repo::{AttemptWindow, RepoResult, ThrottleRepo};

#[async_trait]
impl ThrottleRepo for MemoryStore {
    async fn count_attempt(
        &self,
        email_key: &str,
        now: DateTime<Utc>,
        window_secs: i64,
    ) -> RepoResult<AttemptWindow> {
        let mut s = self.lock();
        let at = key(attempts_pk(email_key), ATTEMPTS_SK);
        let window = match s.records.get(&at) {
            Some(Entry::Attempts(w)) if w.started_at + Duration::seconds(window_secs) > now => {
                AttemptWindow { count: w.count + 1, started_at: w.started_at }
            }
            _ => AttemptWindow { count: 1, started_at: now },
        };
        s.records.insert(at, Entry::Attempts(window));
        Ok(window)
    }

    async fn clear_attempts(&self, email_key: &str) -> RepoResult<()> {
        self.lock().records.remove(&key(attempts_pk(email_key), ATTEMPTS_SK));
        Ok(())
    }
}
