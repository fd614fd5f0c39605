//! A password hasher that holds one call at a gate: how a test keeps a request in flight (a
//! login while the password changes, a signup while its retry arrives) without timing.

use std::sync::{Arc, Mutex};

use secrecy::SecretString;
use shared::ApiError;
use shared::auth::PasswordHasher;
use tokio::sync::oneshot;

/// A hasher whose first call of one kind (a verification, or a hash) waits at a gate once armed:
/// it says when it got there, and goes on when released. Every other call goes straight on.
#[derive(Debug)]
pub struct GatedHasher {
    inner: Arc<shared::auth::Argon2Hasher>,
    gate_hash: bool,
    gate: Mutex<Option<(oneshot::Sender<()>, oneshot::Receiver<()>)>>,
}

impl GatedHasher {
    /// `gate_hash`: the gate holds a hash (a signup's, a password change's); otherwise a
    /// verification (a login's), after its verdict.
    pub fn new(gate_hash: bool) -> Arc<Self> {
        Arc::new(Self { inner: crate::fast_hasher(), gate_hash, gate: Mutex::new(None) })
    }

    /// Arms the gate: the receiver hears of the arrival, the sender releases.
    pub fn arm(&self) -> (oneshot::Receiver<()>, oneshot::Sender<()>) {
        let (arrived_tx, arrived) = oneshot::channel();
        let (release, release_rx) = oneshot::channel();
        *self.gate.lock().unwrap_or_else(|e| e.into_inner()) = Some((arrived_tx, release_rx));
        (arrived, release)
    }

    async fn wait_at_gate(&self) {
        let gate = self.gate.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some((arrived, release)) = gate {
            let _ = arrived.send(());
            let _ = release.await;
        }
    }
}

#[async_trait::async_trait]
impl PasswordHasher for GatedHasher {
    async fn hash(&self, password: SecretString) -> Result<String, ApiError> {
        if self.gate_hash {
            self.wait_at_gate().await;
        }
        self.inner.hash(password).await
    }

    async fn verify(&self, password: SecretString, hash: Option<String>) -> Result<bool, ApiError> {
        // The verdict on the credentials as they were read, then the wait at the gate: the
        // request goes on with a verified password that has meanwhile been replaced.
        let verdict = self.inner.verify(password, hash).await;
        if !self.gate_hash {
            self.wait_at_gate().await;
        }
        verdict
    }
}
