//! Password hashing with argon2id at OWASP's parameters (m=19456 KiB, t=2, p=1).
//!
//! Hashing takes tens of milliseconds of pure CPU, so it runs on tokio's blocking pool: on the
//! async executor it would stall every other request on that worker (see realworld-axum-sqlx's
//! `hash_password`). Unknown emails are verified against a dummy hash of the same cost, so that
//! a wrong email and a wrong password take the same time.

use std::sync::{Arc, OnceLock};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;

use crate::error::ApiError;

/// An argon2id hash at OWASP's parameters of a random password that was thrown away: verifying
/// against it costs exactly what verifying a real user's hash costs, and nothing matches it.
const OWASP_DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$iR3rDfGzYX3N7wWXSJqZSA$Cm8DTts3dHHw9L88h972arSxRFEOEu5I3gjhyN2cX80";

#[async_trait]
pub trait PasswordHasher: Send + Sync + std::fmt::Debug {
    async fn hash(&self, password: SecretString) -> Result<String, ApiError>;
    /// Verifies against `hash`; with `None`, against a dummy hash of the same cost, returning
    /// false, so that callers spend the same time whether or not the account exists.
    async fn verify(&self, password: SecretString, hash: Option<String>) -> Result<bool, ApiError>;
}

#[derive(Debug, Clone)]
pub struct Argon2Hasher {
    params: Params,
    dummy: Arc<OnceLock<String>>,
    /// Hashes that may run at once (see [`hashing_slots`]); more wait here, off the executor.
    slots: Arc<Semaphore>,
}

/// One fewer than the cores, at least one: a core is always left to the async executor, so a
/// burst of logins queues for the hasher instead of taking the CPU from requests that do not
/// hash (BENCHMARKS.md: a GET's p99 while logins hash). It also bounds memory, 19 MiB a hash.
pub fn hashing_slots() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1).max(1))
}

impl Argon2Hasher {
    /// OWASP's recommended argon2id parameters: 19 MiB, 2 iterations, 1 lane.
    pub fn owasp() -> Self {
        let hasher = Self::with_params(19_456, 2, 1);
        // Ready from the start, so the first unknown email after a cold start costs one
        // verification like every other, not a hash and a verification.
        let _ = hasher.dummy.set(OWASP_DUMMY_HASH.to_owned());
        hasher
    }

    /// Other costs, for tests that hash many passwords. Production code uses [`Self::owasp`].
    pub fn with_params(m_cost: u32, t_cost: u32, p_cost: u32) -> Self {
        #[allow(clippy::expect_used)] // constant, valid parameters; a failure is a programming error
        let params = Params::new(m_cost, t_cost, p_cost, None).expect("valid argon2 parameters");
        Self { params, dummy: Arc::new(OnceLock::new()), slots: Arc::new(Semaphore::new(hashing_slots())) }
    }

    /// Waits for one of the [`hashing_slots`], held until the returned permit drops.
    async fn slot(&self) -> Result<tokio::sync::SemaphorePermit<'_>, ApiError> {
        self.slots.acquire().await.map_err(|e| ApiError::Internal(format!("hashing slots: {e}")))
    }

    fn argon2(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }

    fn hash_blocking(&self, password: &str) -> Result<String, ApiError> {
        let salt = SaltString::generate(&mut OsRng);
        self.argon2()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| ApiError::Internal(format!("argon2 hash: {e}")))
    }

    fn dummy_hash(&self) -> Result<String, ApiError> {
        if let Some(h) = self.dummy.get() {
            return Ok(h.clone());
        }
        let h = self.hash_blocking("dummy password for unknown accounts")?;
        Ok(self.dummy.get_or_init(|| h).clone())
    }

    fn verify_blocking(&self, password: &str, hash: Option<&str>) -> Result<bool, ApiError> {
        let (hash, known) = match hash {
            Some(h) => (h.to_owned(), true),
            None => (self.dummy_hash()?, false),
        };
        let parsed = PasswordHash::new(&hash).map_err(|e| ApiError::Internal(format!("stored hash: {e}")))?;
        // Verify with the parameters recorded in the hash itself (the `argon2` verifier reads them).
        let ok = self.argon2().verify_password(password.as_bytes(), &parsed).is_ok();
        Ok(ok && known)
    }
}

#[async_trait]
impl PasswordHasher for Argon2Hasher {
    async fn hash(&self, password: SecretString) -> Result<String, ApiError> {
        let _slot = self.slot().await?;
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.hash_blocking(password.expose_secret()))
            .await
            .map_err(|e| ApiError::Internal(format!("hashing task: {e}")))?
    }

    async fn verify(&self, password: SecretString, hash: Option<String>) -> Result<bool, ApiError> {
        let _slot = self.slot().await?;
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.verify_blocking(password.expose_secret(), hash.as_deref()))
            .await
            .map_err(|e| ApiError::Internal(format!("verifying task: {e}")))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_with_owasp_argon2id_parameters_and_verifies() {
        let hasher = Argon2Hasher::owasp();
        let hash = hasher.hash("correct horse".into()).await.expect("hash");
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
        assert!(hasher.verify("correct horse".into(), Some(hash.clone())).await.expect("verify"));
        assert!(!hasher.verify("wrong horse".into(), Some(hash)).await.expect("verify"));
    }

    #[tokio::test]
    async fn the_built_in_dummy_hash_has_the_owasp_parameters_of_real_hashes() {
        let parsed = PasswordHash::new(OWASP_DUMMY_HASH).expect("a PHC string");
        let real = Argon2Hasher::owasp().hash("whatever".into()).await.expect("hash");
        let real = PasswordHash::new(&real).expect("a PHC string");
        assert_eq!((parsed.algorithm, parsed.version), (real.algorithm, real.version));
        assert_eq!(parsed.params, real.params, "the same cost to verify");
        let hasher = Argon2Hasher::owasp();
        assert!(!hasher.verify("whatever".into(), None).await.expect("verify"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_more_hashes_run_at_once_than_there_are_slots() {
        // A hasher whose one slot is taken: a second hash waits until the slot is given back.
        let hasher = Argon2Hasher::with_params(64, 1, 1);
        let taken = hasher.slots.clone().acquire_many_owned(hashing_slots() as u32).await.expect("slots");
        let waiting = tokio::spawn({
            let hasher = hasher.clone();
            async move { hasher.hash("queued".into()).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert!(!waiting.is_finished(), "hashed without a free slot");
        drop(taken);
        let hash = waiting.await.expect("task").expect("hash");
        assert!(hasher.verify("queued".into(), Some(hash)).await.expect("verify"));
        assert!(hashing_slots() >= 1);
        assert!(hashing_slots() <= std::thread::available_parallelism().map_or(1, |n| n.get()));
    }

    #[tokio::test]
    async fn the_dummy_hash_never_verifies() {
        let hasher = Argon2Hasher::with_params(64, 1, 1);
        assert!(!hasher.verify("dummy password for unknown accounts".into(), None).await.expect("verify"));
    }
}
