//! The login throttle's counters.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::RepoResult;

/// Login attempts for one email within the current window that no successful login has cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptWindow {
    pub count: u32,
    pub started_at: DateTime<Utc>,
}

/// The throttle of password checks. An attempt is counted *before* its password is checked,
/// atomically, under each counter it falls under (`shared::auth::throttle` names them), so
/// concurrent guesses cannot all slip in under a limit; a success clears or forgives it.
#[async_trait]
pub trait ThrottleRepo: Send + Sync + std::fmt::Debug {
    /// Counts one attempt under `counter`, in the window open at `now` or in a new one, and
    /// returns the window.
    async fn count_attempt(
        &self,
        counter: &str,
        now: DateTime<Utc>,
        window_secs: i64,
    ) -> RepoResult<AttemptWindow>;
    /// As [`ThrottleRepo::count_attempt`], but only while the open window holds fewer than `max`
    /// attempts, in the same conditional write: `Err(window)` (nothing counted) when it holds
    /// `max` already, so concurrent requests cannot overshoot the limit.
    async fn count_attempt_below(
        &self,
        counter: &str,
        now: DateTime<Utc>,
        window_secs: i64,
        max: u32,
    ) -> RepoResult<Result<AttemptWindow, AttemptWindow>>;
    /// The window open at `now` under `counter`, if any, without counting anything.
    async fn attempts(
        &self,
        counter: &str,
        now: DateTime<Utc>,
        window_secs: i64,
    ) -> RepoResult<Option<AttemptWindow>>;
    /// Forgets every attempt under `counter`.
    async fn clear_attempts(&self, counter: &str) -> RepoResult<()>;
    /// Takes back one attempt counted in the window that started at `started_at` (a check that
    /// succeeded); nothing when that window is gone or empty. A counter left at nothing is
    /// deleted.
    async fn forgive_attempt(&self, counter: &str, started_at: DateTime<Utc>) -> RepoResult<()>;
    /// Records that the user logged in from `address`, until `until`.
    async fn remember_address(&self, user_id: Uuid, address: &str, until: DateTime<Utc>) -> RepoResult<()>;
    /// Whether the user logged in from `address` recently enough to be remembered at `now`.
    async fn knows_address(&self, user_id: Uuid, address: &str, now: DateTime<Utc>) -> RepoResult<bool>;
}
