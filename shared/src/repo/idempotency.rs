//! Idempotency records (API.md, "Idempotency"; draft-ietf-httpapi-idempotency-key-header): one
//! per (caller, method, concrete path, key), taken as a lock by the first request with the key,
//! then completed with the answer it kept, and expiring (24 hours by default: the TTL attribute,
//! and a check in code, as DynamoDB deletes expired items up to days late).
//!
//! An authenticated caller's records live in its own partition (`USER#<id> / IDEM#<hash>`), so
//! they are purged with the user; an anonymous caller's (a signup's, by source address) in
//! `IDEM#<hash of the address>`, where only their TTL removes them. `<hash>` is the SHA-256 of the
//! method, the path and the key: a key is up to 255 characters, and a sort key should not carry
//! what a client chose verbatim.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{RepoError, RepoResult, keys};

/// Whose key it is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Caller {
    /// An authenticated user.
    User(Uuid),
    /// An anonymous request, by its source address (API.md's, `web::SourceAddress`).
    Address(String),
}

/// Which request a key belongs to: its caller, method and concrete path (`/v1/items/<id>`, not
/// the route template), and the key the client chose.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey {
    pub caller: Caller,
    pub method: String,
    pub path: String,
    pub key: String,
}

impl IdempotencyKey {
    /// Where its record lives: (partition key, sort key).
    pub fn location(&self) -> (String, String) {
        let request = sha256_hex(&[self.method.as_bytes(), self.path.as_bytes(), self.key.as_bytes()]);
        let pk = match &self.caller {
            Caller::User(id) => keys::user_pk(*id),
            Caller::Address(address) => keys::caller_pk(&sha256_hex(&[address.as_bytes()])),
        };
        (pk, keys::idempotency_sk(&request))
    }
}

/// The SHA-256 of the parts, each preceded by its length (so no two lists of parts run
/// together into one), in hex.
fn sha256_hex(parts: &[&[u8]]) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    hasher.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The answer kept for a replay: the status, the headers API.md names, and the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptAnswer {
    pub status: u16,
    pub location: Option<String>,
    pub etag: Option<String>,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

/// A key's answer, written by a repository in the operation's own transaction: the resource and
/// the completed record land together or not at all, so a request whose answer was lost on the
/// way back can never do its work twice. Written only while the request still holds its lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    pub key: IdempotencyKey,
    /// The lock as the request took it.
    pub locked_until: DateTime<Utc>,
    pub answer: KeptAnswer,
}

/// What a write with a [`Completion`] fails with when the request no longer holds its lock (it
/// ran past its deadline, and another request may have taken the key): nothing was written, and
/// a retry finds the key's state as it is now.
pub fn lock_passed() -> RepoError {
    RepoError::Unavailable("the request's idempotency lock passed before its work was written".into())
}

/// Where a record stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdempotencyState {
    /// The first request is still running, or died: its lock holds until `locked_until` (its
    /// deadline), after which the key is free again.
    InProgress {
        locked_until: DateTime<Utc>,
    },
    Complete(KeptAnswer),
}

/// A record as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    /// What the payload was (never a fast hash of a secret: see `web::idempotency`).
    pub fingerprint: String,
    pub state: IdempotencyState,
    pub expires_at: DateTime<Utc>,
}

/// The outcome of taking a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begin {
    /// The key was free (never used, expired, or its lock passed): this request holds it.
    Started,
    /// Another request has it: its record, as the refused write found it.
    Existing(IdempotencyRecord),
}

#[async_trait]
pub trait IdempotencyRepo: Send + Sync + std::fmt::Debug {
    /// Takes `idem` for a request with `fingerprint`, locked until `locked_until`, the record
    /// expiring at `expires_at`: one conditional write, which returns the record it found when
    /// the key is taken (no read of its own). A record that has expired, or whose lock has passed,
    /// at `now`, is taken over.
    async fn begin(
        &self,
        idem: &IdempotencyKey,
        fingerprint: &str,
        locked_until: DateTime<Utc>,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> RepoResult<Begin>;
    /// Keeps `answer` for `idem`, while this request still holds its lock (`locked_until` as
    /// taken); false when it does not (its lock passed and another request took the key).
    async fn complete(
        &self,
        idem: &IdempotencyKey,
        locked_until: DateTime<Utc>,
        answer: &KeptAnswer,
    ) -> RepoResult<bool>;
    /// Frees `idem` (an answer that is never kept: 5xx, 401, 403, 429), if this request still
    /// holds it.
    async fn release(&self, idem: &IdempotencyKey, locked_until: DateTime<Utc>) -> RepoResult<()>;
}
