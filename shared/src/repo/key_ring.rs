//! The key ring's record (`shared::auth::ring`): read at every cold start, written by `admin
//! keys` (and a local process on a local table), each write conditional on the version it read.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::RepoResult;

/// One key of the ring: its public half, where its private half is, and its schedule
/// (seconds since the epoch).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyEntry {
    pub kid: String,
    pub n: String,
    pub e: String,
    /// Where `auth` finds the private key: `kms:<key id or ARN>`, `secretsmanager:<secret id>`,
    /// `file:<path>`, or `generated` (made by the local process at start). Never the key.
    pub source: String,
    /// From when it signs (it verifies from the moment it is in the ring).
    pub sign_from: i64,
    /// When it is withdrawn: it verifies nothing from then on, and is left out of the JWKS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retire_at: Option<i64>,
}

/// The ring as stored, with the version the store gave it (for the conditional write).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRing {
    pub keys: Vec<KeyEntry>,
    #[serde(skip)]
    pub version: u64,
}

#[async_trait]
pub trait KeyRingRepo: Send + Sync + std::fmt::Debug {
    /// The ring, with its version; `None` before its first key.
    async fn key_ring(&self) -> RepoResult<Option<KeyRing>>;
    /// Writes `ring` as the next version of the one read (`ring.version`; 0: there was none).
    /// False, and nothing written, when another write came first: read again and retry.
    async fn save_key_ring(&self, ring: &KeyRing) -> RepoResult<bool>;
}
