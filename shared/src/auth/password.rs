//! Password hashing with argon2id at OWASP's parameters (m=19456 KiB, t=2, p=1).
//!
//! Hashing takes tens of milliseconds of pure CPU, so it runs on tokio's blocking pool: on the
//! async executor it would stall every other request on that worker (see realworld-axum-sqlx's
//! `hash_password`). argon2's 19 MiB of working memory is kept between hashes ([`with_blocks`]):
//! argon2's own `hash_password` allocates it afresh for every hash, glibc's allocator did not
//! give it back (the small allocations between two hashes split the freed block, and the next
//! hash took a new one), a process that hashed two dozen passwords held 200 MiB more, and the
//! 256 MB users function was killed for memory during a run of password changes (under `sam
//! local`, scripts/sam-local). Unknown emails are verified against a dummy hash of the same
//! cost, so that a wrong email and a wrong password take the same time.

use std::sync::{Arc, Mutex, OnceLock};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
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

/// argon2's working memory, kept between hashes: at most [`hashing_slots`] buffers (as many as
/// hashes may run at once), of the OWASP cost's size.
static BLOCKS: Mutex<Vec<Vec<Block>>> = Mutex::new(Vec::new());

/// The largest cost a stored hash may ask for: four times OWASP's memory, iterations and lanes.
/// A hash beyond it is not computed (a row written by someone with access to the table must not
/// make a login take gigabytes or forever).
const MAX_M_COST: u32 = 4 * 19_456;
const MAX_T_COST: u32 = 8;
const MAX_P_COST: u32 = 4;

/// argon2 of `password` and `salt` into `out`, in a kept buffer, zeroed after use (it holds
/// blocks derived from the password). The same result as argon2's own `hash_password_into`,
/// which allocates the memory for each hash.
fn with_blocks(argon2: &Argon2<'_>, password: &[u8], salt: &[u8], out: &mut [u8]) -> argon2::Result<()> {
    let mut blocks = BLOCKS.lock().map(|mut kept| kept.pop()).unwrap_or_default().unwrap_or_default();
    let needed = argon2.params().block_count();
    if blocks.len() < needed {
        blocks.resize(needed, Block::default());
    }
    let result = argon2.hash_password_into_with_memory(password, salt, out, &mut blocks[..needed]);
    blocks[..needed].fill(Block::default());
    // Kept only at a cost this service hashes at, and only as many as may be in use at once.
    if blocks.len() <= Params::new(19_456, 2, 1, None).map_or(0, |p| p.block_count())
        && let Ok(mut kept) = BLOCKS.lock()
        && kept.len() < hashing_slots()
    {
        kept.push(blocks);
    }
    result
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

    /// A PHC string, as argon2's `hash_password` makes it, computed in the kept memory.
    fn hash_blocking(&self, password: &str) -> Result<String, ApiError> {
        let fail = |e: argon2::password_hash::Error| ApiError::Internal(format!("argon2 hash: {e}"));
        let argon2 = self.argon2();
        let salt = SaltString::generate(&mut OsRng);
        let salt = salt.as_salt();
        let mut salt_bytes = [0u8; 64];
        let salt_bytes = salt.decode_b64(&mut salt_bytes).map_err(fail)?;
        let length = argon2.params().output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
        let output =
            Output::init_with(length, |out| Ok(with_blocks(&argon2, password.as_bytes(), salt_bytes, out)?))
                .map_err(fail)?;
        let hash = PasswordHash {
            algorithm: Algorithm::Argon2id.ident(),
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(argon2.params()).map_err(fail)?,
            salt: Some(salt),
            hash: Some(output),
        };
        Ok(hash.to_string())
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
        // With the algorithm, version and parameters recorded in the hash itself, as argon2's
        // own verifier reads them; and as it does, a hash that cannot be checked verifies nothing.
        match Self::matches(&parsed, password.as_bytes()) {
            Ok(matches) => Ok(matches && known),
            Err(reason) => {
                tracing::warn!(%reason, "a stored password hash cannot be checked");
                Ok(false)
            }
        }
    }

    /// Whether `password` gives `parsed`'s hash; Err: the hash cannot be checked (its cost
    /// exceeds the policy, or a part is missing or invalid).
    fn matches(parsed: &PasswordHash<'_>, password: &[u8]) -> Result<bool, String> {
        let algorithm = Algorithm::try_from(parsed.algorithm).map_err(|e| e.to_string())?;
        let version =
            parsed.version.map(Version::try_from).transpose().map_err(|e| e.to_string())?.unwrap_or_default();
        let params = Params::try_from(parsed).map_err(|e| e.to_string())?;
        if params.m_cost() > MAX_M_COST || params.t_cost() > MAX_T_COST || params.p_cost() > MAX_P_COST {
            return Err(format!("its cost {params:?} exceeds the policy"));
        }
        let (Some(expected), Some(salt)) = (parsed.hash, parsed.salt) else {
            return Err("no salt or no hash".into());
        };
        let mut salt_bytes = [0u8; 64];
        let salt_bytes = salt.decode_b64(&mut salt_bytes).map_err(|e| e.to_string())?;
        let argon2 = Argon2::new(algorithm, version, params);
        let actual =
            Output::init_with(expected.len(), |out| Ok(with_blocks(&argon2, password, salt_bytes, out)?))
                .map_err(|e| e.to_string())?;
        // Output's equality is constant-time.
        Ok(actual == expected)
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

    /// Hashes made by argon2's own `hash_password` (every stored hash before the kept memory)
    /// verify, and ours verify with argon2's own verifier: the same function.
    #[test]
    fn hashes_are_argon2s_own_both_ways() {
        use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
        let hasher = Argon2Hasher::with_params(1024, 2, 1);
        let salt = SaltString::generate(&mut OsRng);
        let theirs = hasher.argon2().hash_password(b"correct horse", &salt).expect("hash").to_string();
        assert!(hasher.verify_blocking("correct horse", Some(&theirs)).expect("verify"));
        assert!(!hasher.verify_blocking("correct horsf", Some(&theirs)).expect("verify"));
        let ours = hasher.hash_blocking("correct horse").expect("hash");
        let parsed = PasswordHash::new(&ours).expect("a PHC string");
        assert!(hasher.argon2().verify_password(b"correct horse", &parsed).is_ok());
        assert!(hasher.argon2().verify_password(b"correct horsf", &parsed).is_err());
        // Another cost on the same thread: its memory grows to fit, and stays right.
        let owasp = Argon2Hasher::owasp();
        let big = owasp.hash_blocking("correct horse").expect("hash");
        assert!(owasp.verify_blocking("correct horse", Some(&big)).expect("verify"));
        assert!(hasher.verify_blocking("correct horse", Some(&ours)).expect("verify"));
    }

    /// A stored hash that cannot be checked verifies nothing (as with argon2's own verifier),
    /// and one whose cost exceeds the policy is not computed at all.
    #[test]
    fn a_hash_that_cannot_be_checked_verifies_nothing() {
        let hasher = Argon2Hasher::with_params(1024, 2, 1);
        let good = hasher.hash_blocking("correct horse").expect("hash");
        let costly = good.replace("m=1024", "m=4000000");
        let no_hash = good.rsplit_once('$').map(|(rest, _)| rest.to_owned()).expect("a PHC string");
        for stored in [costly, no_hash, good.replace("argon2id", "argon2x")] {
            assert!(!hasher.verify_blocking("correct horse", Some(&stored)).unwrap_or(false), "{stored}");
        }
        assert!(hasher.verify_blocking("correct horse", Some(&good)).expect("verify"));
    }

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
