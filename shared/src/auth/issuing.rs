//! What a process that signs access tokens holds: its own key (the one `SIGNING_KEY` names, or
//! one it made), the clients that reach the keys the ring names, and the signers already made
//! ready. Only `auth` (and the local server) is given one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::keys::{KeyError, PublicKey, SigningKey};
use super::ring::KeyEntry;
use super::signer::{HeldSigner, KeyClients, KeySource, TokenSigner};
use crate::error::ApiError;

/// What a signing process may do to the key ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RingRights {
    /// Deployed `auth`: signs with whichever key the ring says, and never writes the ring (an
    /// operator does, with `admin keys`): it cannot put a key of its choosing in, nor back a key
    /// an operator withdrew.
    ReadOnly,
    /// A local process (its key a file, a PEM under `sam local`, or made at start): its key
    /// becomes the ring's at once, as a restart with a new random secret ended the old tokens.
    /// Only on a table no deployment reads (`shared::state::issuing` checks).
    TakeOver,
}

#[derive(Debug)]
pub struct Issuing {
    pub(super) own: KeySource,
    /// The private key itself, for a PEM or a key made here.
    pub(super) held: Option<Arc<SigningKey>>,
    clients: Option<KeyClients>,
    pub(super) rights: RingRights,
    signers: Mutex<HashMap<String, Arc<dyn TokenSigner>>>,
}

impl Issuing {
    /// Signing with a key held in memory, taking the ring over (tests, local runs).
    pub fn held(key: Arc<SigningKey>, source: KeySource) -> Self {
        Self {
            own: source,
            held: Some(key),
            clients: None,
            rights: RingRights::TakeOver,
            signers: Mutex::default(),
        }
    }

    /// Signing with the keys the ring names, reached through `clients`, never writing the ring
    /// (deployed `auth`; `source` is `SIGNING_KEY`, named in the error when the ring is empty).
    pub fn remote(source: KeySource, clients: KeyClients) -> Self {
        Self {
            own: source,
            held: None,
            clients: Some(clients),
            rights: RingRights::ReadOnly,
            signers: Mutex::default(),
        }
    }

    /// This process's own key, as the ring would record it.
    pub(super) fn own_public(&self) -> Result<PublicKey, ApiError> {
        self.held
            .as_ref()
            .map(|key| key.public().clone())
            .ok_or_else(|| ApiError::Internal("no key held".into()))
    }

    /// The signer of `entry`, made ready once and kept.
    pub(super) async fn signer(&self, entry: &KeyEntry) -> Result<Arc<dyn TokenSigner>, ApiError> {
        if let Some(signer) = lock(&self.signers).get(&entry.kid) {
            return Ok(signer.clone());
        }
        let signer: Arc<dyn TokenSigner> = match (&self.held, KeySource::from_ring(&entry.source)) {
            (Some(key), _) if key.kid() == entry.kid => Arc::new(HeldSigner(key.clone())),
            (_, Some(source)) => {
                let clients = self.clients.as_ref().ok_or_else(|| {
                    ApiError::Unavailable(format!("the signing key {} is not reachable from here", entry.kid))
                })?;
                clients.signer(&source, &entry.kid).await.map_err(unavailable)?
            }
            (_, None) => {
                return Err(ApiError::Unavailable(format!(
                    "the signing key {} ({}) is held by another process",
                    entry.kid, entry.source
                )));
            }
        };
        lock(&self.signers).insert(entry.kid.clone(), signer.clone());
        Ok(signer)
    }

    /// Forgets a signer that signed as another key than the ring's.
    pub(super) fn forget(&self, kid: &str) {
        lock(&self.signers).remove(kid);
    }
}

pub(super) fn unavailable(e: KeyError) -> ApiError {
    ApiError::Unavailable(format!("signing key: {e}"))
}

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
