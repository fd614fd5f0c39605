//! The health check in memory: the store is this process; it always answers.

use async_trait::async_trait;

use super::MemoryStore;
use crate::repo::{HealthRepo, RepoResult};

#[async_trait]
impl HealthRepo for MemoryStore {
    async fn reachable(&self) -> RepoResult<()> {
        drop(self.lock());
        Ok(())
    }
}
