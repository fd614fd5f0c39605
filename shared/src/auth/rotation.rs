//! Rotating the key that signs access tokens (`admin keys rotate`, docs/signing-keys.md has the
//! runbook): the ring's schedule ([`super::ring`]) written back under its version, so two
//! operators (or an operator and `auth` putting its first key in) never overwrite each other.

use chrono::{DateTime, Utc};

use super::ring::{KeyRing, RingError, Schedule};
use super::signer::{KeyClients, KeySource};
use crate::repo::{KeyRingRepo, RepoError};

#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    #[error(transparent)]
    Ring(#[from] RingError),
    #[error("the new key: {0}")]
    Key(#[from] super::keys::KeyError),
    #[error(transparent)]
    Store(#[from] RepoError),
    #[error("the key ring kept changing while this ran: run it again")]
    Contended,
}

/// What a rotation scheduled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotated {
    pub kid: String,
    pub sign_from: DateTime<Utc>,
    /// The keys it replaces, and when each is withdrawn.
    pub retiring: Vec<(String, DateTime<Utc>)>,
}

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).unwrap_or_default()
}

/// Rotates to the key `to` names, at `now`: see [`KeyRing::rotate`]. A KMS key is recorded by
/// its ARN, and only if it is an RSA signing key (`kms:GetPublicKey` says).
pub async fn rotate(
    repo: &dyn KeyRingRepo,
    clients: &KeyClients,
    to: &KeySource,
    now: DateTime<Utc>,
    schedule: Schedule,
) -> Result<Rotated, RotationError> {
    let (public, to) = clients.public_key(to).await?;
    for _ in 0..3 {
        let ring = repo.key_ring().await?.unwrap_or_default();
        let (next, sign_from) = ring.rotate(&public, &to.ring_source(), now.timestamp(), schedule)?;
        if repo.save_key_ring(&next).await? {
            let retiring = next
                .keys
                .iter()
                .filter(|k| k.kid != public.kid)
                .filter_map(|k| Some((k.kid.clone(), at(k.retire_at?))))
                .collect();
            return Ok(Rotated { kid: public.kid, sign_from: at(sign_from), retiring });
        }
    }
    Err(RotationError::Contended)
}

/// Withdraws `kid` at once: every token it signed ends (a key that leaked, after a rotation
/// `at_once` to its successor).
pub async fn withdraw(
    repo: &dyn KeyRingRepo,
    kid: &str,
    now: DateTime<Utc>,
) -> Result<KeyRing, RotationError> {
    for _ in 0..3 {
        let ring = repo.key_ring().await?.unwrap_or_default();
        let next = ring.withdraw(kid, now.timestamp())?;
        if repo.save_key_ring(&next).await? {
            return Ok(next);
        }
    }
    Err(RotationError::Contended)
}
