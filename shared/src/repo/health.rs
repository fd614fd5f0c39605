//! Whether the store answers (`GET /v1/health`, from the `docs` function, whose only table
//! permission is this one read).

use async_trait::async_trait;

use super::RepoResult;

/// What `GET /v1/health` reads, partition and sort key: a record never written (its absence
/// is the answer), the one key the `docs` function may read.
pub const HEALTH_KEY: &str = "HEALTH";

#[async_trait]
pub trait HealthRepo: Send + Sync + std::fmt::Debug {
    /// Ok when the store answers a read of [`HEALTH_KEY`] (a record never
    /// written: its absence is an answer); the store's fault otherwise (a 503).
    async fn reachable(&self) -> RepoResult<()>;
}

#[cfg(test)]
mod tests {
    use super::HEALTH_KEY;
    use crate::repo::keys::{OWNED, classify};

    #[test]
    fn the_health_key_is_no_record_of_the_schema() {
        assert_eq!(classify(HEALTH_KEY, HEALTH_KEY), None);
        for kind in OWNED {
            assert!(
                !HEALTH_KEY.starts_with(kind.prefix) && !kind.prefix.starts_with(HEALTH_KEY),
                "{}",
                kind.prefix
            );
        }
    }
}
