//! The key ring in memory: one record, versioned as in DynamoDB.

use async_trait::async_trait;

use super::{Entry, MemoryStore, key};
use crate::repo::key_ring::KeyRing;
use crate::repo::keys::KEY_RING_KEY;
use crate::repo::{KeyRingRepo, RepoResult};

#[async_trait]
impl KeyRingRepo for MemoryStore {
    async fn key_ring(&self) -> RepoResult<Option<KeyRing>> {
        Ok(match self.lock().get(KEY_RING_KEY, KEY_RING_KEY) {
            Some(Entry::KeyRing(ring)) => Some(ring.clone()),
            _ => None,
        })
    }

    async fn save_key_ring(&self, ring: &KeyRing) -> RepoResult<bool> {
        let mut s = self.lock();
        let stored = match s.get(KEY_RING_KEY, KEY_RING_KEY) {
            Some(Entry::KeyRing(stored)) => stored.version,
            _ => 0,
        };
        if stored != ring.version {
            return Ok(false);
        }
        let next = KeyRing { keys: ring.keys.clone(), version: ring.version + 1 };
        s.records.insert(key(KEY_RING_KEY, KEY_RING_KEY), Entry::KeyRing(next));
        Ok(true)
    }
}
