//! Outside dependencies a handler uses besides the repositories: the clock and id generation.
//! Both come through `AppState` as trait objects so that a test can replace them, as FastAPI's
//! `dependency_overrides` allows: expiry and throttle windows are tested by moving a
//! [`TestClock`], never by sleeping.

use std::sync::Mutex;

use chrono::{DateTime, Duration, SubsecRound, Utc};
use uuid::Uuid;

pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> DateTime<Utc>;
}

/// The wall clock, truncated to microseconds (the precision of the timestamps we return).
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now().trunc_subsecs(6)
    }
}

/// A clock that only moves when told to.
#[derive(Debug)]
pub struct TestClock(Mutex<DateTime<Utc>>);

impl TestClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        Self(Mutex::new(start.trunc_subsecs(6)))
    }

    pub fn advance(&self, by: Duration) {
        let mut now = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *now += by;
    }
}

impl Default for TestClock {
    fn default() -> Self {
        Self::new(Utc::now())
    }
}

impl Clock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub trait IdGenerator: Send + Sync + std::fmt::Debug {
    /// A new UUIDv7 for the given instant, so ids sort by creation time.
    fn new_id(&self, at: DateTime<Utc>) -> Uuid;
}

/// UUIDv7 ids, monotonic within this process: ids minted in the same millisecond still sort in
/// the order they were made (RFC 9562 §6.2, method 1, via `ContextV7`), so "newest first" holds
/// for items created together.
#[derive(Debug, Default)]
pub struct UuidV7(Mutex<uuid::ContextV7>);

impl IdGenerator for UuidV7 {
    fn new_id(&self, at: DateTime<Utc>) -> Uuid {
        let context = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let ts = uuid::Timestamp::from_unix(&*context, at.timestamp() as u64, at.timestamp_subsec_nanos());
        Uuid::new_v7(ts)
    }
}

/// RFC 3339 in UTC with `Z` and microseconds, as Pydantic serialises `datetime`.
pub fn format_timestamp(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// Reads a timestamp written by [`format_timestamp`] (any RFC 3339 time, in fact).
pub fn parse_timestamp(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&Utc))
}

/// Serde adapter for [`format_timestamp`] and [`parse_timestamp`].
pub mod rfc3339 {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_timestamp(t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(d)?;
        super::parse_timestamp(&text).ok_or_else(|| serde::de::Error::custom("not an RFC 3339 timestamp"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_made_at_one_instant_still_sort_in_creation_order() {
        let ids = UuidV7::default();
        let at = Utc::now();
        let made: Vec<Uuid> = (0..1000).map(|_| ids.new_id(at)).collect();
        let mut sorted = made.clone();
        sorted.sort();
        assert_eq!(made, sorted);
        assert!(made.iter().all(|id| id.get_version_num() == 7));
    }
}
