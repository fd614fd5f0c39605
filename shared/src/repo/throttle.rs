//! The login throttle's counters.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::RepoResult;

/// Login attempts for one email within the current window that no successful login has cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptWindow {
    pub count: u32,
    pub started_at: DateTime<Utc>,
}

/// The login throttle. An attempt is counted *before* its password is checked, atomically, so
/// concurrent guesses cannot all slip in under the limit; a successful login clears the count.
#[async_trait]
pub trait ThrottleRepo: Send + Sync + std::fmt::Debug {
    /// Counts one attempt, in the window open at `now` or in a new one, and returns the window.
    async fn count_attempt(
        &self,
        email_key: &str,
        now: DateTime<Utc>,
        window_secs: i64,
    ) -> RepoResult<AttemptWindow>;
    async fn clear_attempts(&self, email_key: &str) -> RepoResult<()>;
}
