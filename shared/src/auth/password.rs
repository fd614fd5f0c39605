//! Password hashing with argon2id at OWASP's parameters (m=19456 KiB, t=2, p=1).
//!
//! Hashing takes tens of milliseconds of pure CPU, so it runs off the async executor: there it
//! would stall every other request on that worker (see realworld-axum-sqlx's `hash_password`).
//! It runs on a few threads of its own ([`on_hashing_thread`]), each of which keeps the 19 MiB of
//! argon2's memory from one hash to the next ([`with_blocks`]). argon2's own `hash_password`
//! allocates those 19 MiB afresh for every hash, and glibc's allocator does not give them back:
//! the small allocations made between two hashes split the freed block, the next hash takes a
//! new one, and a process that hashed two dozen passwords held 200 MiB more. A Lambda function
//! at 256 MB was killed for memory during a run of password changes that way (under `sam
//! local`, scripts/sam-local). Unknown emails are verified against a dummy hash of the same
//! cost, so that a wrong email and a wrong password take the same time.

use std::cell::RefCell;
use std::sync::mpsc::{Sender, channel};
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

thread_local! {
    /// argon2's working memory on this thread, kept from one hash to the next.
    static BLOCKS: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// argon2 of `password` and `salt` into `out`, in this thread's kept memory (grown to the
/// largest cost it has hashed at, never given back). The same result as argon2's own
/// `hash_password_into`, which allocates the memory for each hash.
fn with_blocks(argon2: &Argon2<'_>, password: &[u8], salt: &[u8], out: &mut [u8]) -> argon2::Result<()> {
    BLOCKS.with_borrow_mut(|blocks| {
        let needed = argon2.params().block_count();
        if blocks.len() < needed {
            blocks.resize(needed, Block::default());
        }
        argon2.hash_password_into_with_memory(password, salt, out, &mut blocks[..needed])
    })
}

type Job = Box<dyn FnOnce() + Send>;

/// The process's hashing threads, [`hashing_slots`] of them, started at the first hash.
fn hashing_threads() -> Result<&'static Sender<Job>, ApiError> {
    static THREADS: OnceLock<Result<Sender<Job>, String>> = OnceLock::new();
    let threads = THREADS.get_or_init(|| {
        let (jobs, queue) = channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..hashing_slots() {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("argon2-{n}"))
                .spawn(move || {
                    loop {
                        // The lock is held only while waiting for the next job.
                        let next = match queue.lock() {
                            Ok(queue) => queue.recv(),
                            Err(_) => return,
                        };
                        let Ok(job) = next else { return };
                        // A job that panics drops its answer (the caller gets an error) and
                        // leaves the thread to take the next.
                        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                    }
                })
                .map_err(|e| format!("start a hashing thread: {e}"))?;
        }
        Ok(jobs)
    });
    threads.as_ref().map_err(|e| ApiError::Internal(e.clone()))
}

/// Runs `work` on one of the hashing threads and waits for its result without blocking the
/// executor.
async fn on_hashing_thread<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    let (answer, result) = tokio::sync::oneshot::channel();
    let job: Job = Box::new(move || {
        let _ = answer.send(work());
    });
    hashing_threads()?.send(job).map_err(|_| ApiError::Internal("the hashing threads have ended".into()))?;
    result.await.map_err(|_| ApiError::Internal("a hashing job failed".into()))
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
        let fail = |e: argon2::password_hash::Error| ApiError::Internal(format!("stored hash: {e}"));
        let parsed = PasswordHash::new(&hash).map_err(fail)?;
        // With the algorithm, version and parameters recorded in the hash itself, as argon2's
        // own verifier does.
        let algorithm = Algorithm::try_from(parsed.algorithm).map_err(fail)?;
        let version = parsed
            .version
            .map(Version::try_from)
            .transpose()
            .map_err(|e| fail(e.into()))?
            .unwrap_or_default();
        let params = Params::try_from(&parsed).map_err(fail)?;
        let (Some(expected), Some(salt)) = (parsed.hash, parsed.salt) else {
            return Err(ApiError::Internal("stored hash: no salt or no hash".into()));
        };
        let mut salt_bytes = [0u8; 64];
        let salt_bytes = salt.decode_b64(&mut salt_bytes).map_err(fail)?;
        let argon2 = Argon2::new(algorithm, version, params);
        let actual = Output::init_with(expected.len(), |out| {
            Ok(with_blocks(&argon2, password.as_bytes(), salt_bytes, out)?)
        })
        .map_err(fail)?;
        // Output's equality is constant-time.
        Ok(actual == expected && known)
    }
}

#[async_trait]
impl PasswordHasher for Argon2Hasher {
    async fn hash(&self, password: SecretString) -> Result<String, ApiError> {
        let _slot = self.slot().await?;
        let this = self.clone();
        on_hashing_thread(move || this.hash_blocking(password.expose_secret())).await?
    }

    async fn verify(&self, password: SecretString, hash: Option<String>) -> Result<bool, ApiError> {
        let _slot = self.slot().await?;
        let this = self.clone();
        on_hashing_thread(move || this.verify_blocking(password.expose_secret(), hash.as_deref())).await?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The resident memory of this process, from /proc (Linux).
    #[cfg(target_os = "linux")]
    fn resident_bytes() -> u64 {
        let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
        let pages: u64 =
            statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).expect("resident pages");
        pages * 4096
    }

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

    /// 24 hashes, asked for from threads that each live for one hash, leave no more memory
    /// behind than the hashing threads' kept blocks: with argon2's own allocation per hash, this
    /// process held about 200 MiB more after them.
    #[cfg(target_os = "linux")]
    #[test]
    fn hashes_from_threads_that_come_and_go_leave_bounded_memory_behind() {
        let hasher = Argon2Hasher::owasp();
        let hash_on_a_new_thread = |hasher: &Argon2Hasher| {
            let hasher = hasher.clone();
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
                runtime.block_on(hasher.hash("correct horse".into())).expect("hash")
            })
            .join()
            .expect("the thread")
        };
        // The hashing threads' own memory, once.
        hash_on_a_new_thread(&hasher);
        let before = resident_bytes();
        for _ in 0..24 {
            hash_on_a_new_thread(&hasher);
        }
        let grown = resident_bytes().saturating_sub(before);
        // Other tests of this binary hash at the same time, on their own threads.
        assert!(grown < 64 << 20, "{} MiB more after 24 hashes", grown >> 20);
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
