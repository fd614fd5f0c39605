//! The key ring: which public keys verify access tokens, which one signs them, and when each
//! starts and stops. One record in the table (`KEYS`), written by an operator (`admin keys`) and,
//! on a local table only, by a local process taking it over; read by every function at cold
//! start. No deployed function writes it.
//!
//! A rotation is a schedule, not an event, so that no process has to hear of it at once:
//! the new key is published at once, signs from [`PROPAGATION`] later (by then every process
//! has re-read the ring, [`REFRESH`]), and the keys it replaces are withdrawn once the last
//! token they signed has expired. Every decision is a function of the ring and the clock, so
//! a test moves the clock through a whole rotation.

use chrono::Duration;

use super::keys::PublicKey;
pub use crate::repo::key_ring::{KeyEntry, KeyRing};

/// How long a process keeps the ring it read before it reads it again (the next request after
/// that re-reads it; a failed re-read keeps the old one).
pub const REFRESH: Duration = Duration::minutes(5);
/// How long after a rotation the new key starts to sign, by default: every process has read the
/// ring again ([`REFRESH`]), and a JWKS cached just before the rotation ([`JWKS_MAX_AGE_SECS`])
/// has expired, with room for clocks that disagree ([`CLOCK_SKEW`]). `admin keys rotate
/// --signs-after` takes longer, for caches that keep a JWKS longer (API Gateway's authorizer).
pub const PROPAGATION: Duration = Duration::minutes(15);
/// Slack for clocks that disagree (a token's `iat`, a key's withdrawal).
pub const CLOCK_SKEW: Duration = Duration::minutes(1);
/// `Cache-Control: max-age` of the published keys: with [`REFRESH`] and [`CLOCK_SKEW`], under
/// [`PROPAGATION`], so a cache has the new key before the first token it signs.
pub const JWKS_MAX_AGE_SECS: i64 = 300;
/// The longest `ACCESS_TOKEN_TTL_SECONDS` allows: how long an operator's rotation keeps the old
/// key by default, since the operator's machine does not know the deployment's lifetime.
pub const LONGEST_ACCESS_TOKEN: Duration = Duration::days(1);

/// When a rotation's new key signs, and how long a token lives at most (so when the keys it
/// replaces may go).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// From the rotation to the new key's first token; zero: at once, withdrawing the others.
    pub signs_after: Duration,
    pub longest_token: Duration,
}

impl Schedule {
    /// Publish now, sign after `signs_after`, keep the old keys until `longest_token` after that.
    pub fn overlapping(signs_after: Duration, longest_token: Duration) -> Self {
        Self { signs_after: signs_after.max(PROPAGATION), longest_token }
    }

    /// Sign now; every other key withdrawn now.
    pub fn at_once() -> Self {
        Self { signs_after: Duration::zero(), longest_token: Duration::zero() }
    }

    fn is_at_once(&self) -> bool {
        self.signs_after.is_zero()
    }
}

impl KeyEntry {
    pub fn new(public: &PublicKey, source: &str, sign_from: i64) -> Self {
        Self {
            kid: public.kid.clone(),
            n: public.n.clone(),
            e: public.e.clone(),
            source: source.to_owned(),
            sign_from,
            retire_at: None,
        }
    }

    pub fn public(&self) -> PublicKey {
        PublicKey { kid: self.kid.clone(), n: self.n.clone(), e: self.e.clone() }
    }

    /// Not yet withdrawn at `now`.
    pub fn verifies_at(&self, now: i64) -> bool {
        self.retire_at.is_none_or(|at| now < at)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RingError {
    #[error("key {0} is already in the ring")]
    AlreadyThere(String),
    #[error("the ring has no key {0}")]
    Unknown(String),
    #[error("{0} is the key that signs: rotate to another with --at-once first (which withdraws it)")]
    Signing(String),
    #[error("a rotation to {0} is under way: let it finish (admin keys list), or withdraw {0} first")]
    Pending(String),
}

impl KeyRing {
    /// The keys that verify at `now`: the signing one, those being withdrawn, and any next one.
    pub fn verifying(&self, now: i64) -> impl Iterator<Item = &KeyEntry> {
        self.keys.iter().filter(move |k| k.verifies_at(now))
    }

    /// The key that signs at `now`: of those already signing and not withdrawn, the newest.
    pub fn signing(&self, now: i64) -> Option<&KeyEntry> {
        self.verifying(now).filter(|k| k.sign_from <= now).max_by_key(|k| k.sign_from)
    }

    /// The public keys that verify at `now`, to publish.
    pub fn published(&self, now: i64) -> Vec<PublicKey> {
        self.verifying(now).map(KeyEntry::public).collect()
    }

    /// The ring after rotating to `next` at `now`, and the time it starts to sign.
    ///
    /// Normally `next` is published now and signs from `schedule.signs_after` later; every key it
    /// replaces keeps verifying until the last token it can still sign has expired
    /// (`schedule.longest_token` after the switch, plus [`CLOCK_SKEW`]): nobody is logged out.
    /// [`Schedule::at_once`] (a key that leaked): `next` signs now and the others are withdrawn
    /// now, ending every token they signed. An empty ring takes its first key at once. Keys
    /// already withdrawn are dropped from the record.
    pub fn rotate(
        &self,
        next: &PublicKey,
        source: &str,
        now: i64,
        schedule: Schedule,
    ) -> Result<(Self, i64), RingError> {
        if self.keys.iter().any(|k| k.kid == next.kid && k.verifies_at(now)) {
            return Err(RingError::AlreadyThere(next.kid.clone()));
        }
        let at_once = schedule.is_at_once();
        if let Some(pending) = self.verifying(now).find(|k| k.sign_from > now)
            && !at_once
        {
            return Err(RingError::Pending(pending.kid.clone()));
        }
        let first = self.verifying(now).next().is_none();
        let sign_from = if at_once || first { now } else { now + schedule.signs_after.num_seconds() };
        let retire_at = if at_once {
            now
        } else {
            sign_from + schedule.longest_token.num_seconds() + CLOCK_SKEW.num_seconds()
        };
        let mut keys: Vec<KeyEntry> =
            self.keys.iter().filter(|k| k.verifies_at(now) && k.kid != next.kid).cloned().collect();
        for key in &mut keys {
            key.retire_at = Some(key.retire_at.map_or(retire_at, |at| at.min(retire_at)));
        }
        keys.push(KeyEntry::new(next, source, sign_from));
        Ok((Self { keys, version: self.version }, sign_from))
    }

    /// The ring without `kid`, at once: every token it signed ends. A key that is retiring
    /// (one that leaked, after a rotation to its successor), or the next key before it signs
    /// (a rotation called off: the key it was to replace is then no longer scheduled to go).
    /// Never the key that signs: a rotation at once replaces it.
    pub fn withdraw(&self, kid: &str, now: i64) -> Result<Self, RingError> {
        let Some(withdrawn) = self.verifying(now).find(|k| k.kid == kid) else {
            return Err(RingError::Unknown(kid.to_owned()));
        };
        if self.signing(now).is_some_and(|k| k.kid == kid) {
            return Err(RingError::Signing(kid.to_owned()));
        }
        let called_off = withdrawn.sign_from > now;
        let mut keys: Vec<KeyEntry> =
            self.keys.iter().filter(|k| k.kid != kid && k.verifies_at(now)).cloned().collect();
        if called_off && let Some(signing) = keys.iter_mut().max_by_key(|k| k.sign_from) {
            signing.retire_at = None;
        }
        Ok(Self { keys, version: self.version })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(kid: &str) -> PublicKey {
        PublicKey { kid: kid.to_owned(), n: "n".to_owned(), e: "AQAB".to_owned() }
    }

    fn overlapping() -> Schedule {
        Schedule::overlapping(PROPAGATION, Duration::seconds(900))
    }

    fn kids(ring: &KeyRing, now: i64) -> Vec<String> {
        ring.published(now).into_iter().map(|k| k.kid).collect()
    }

    #[test]
    fn a_rotation_publishes_first_switches_later_and_withdraws_after_the_last_token_expires() {
        let (first, from) =
            KeyRing::default().rotate(&key("a"), "file:a", 1_000, overlapping()).expect("first");
        assert_eq!(from, 1_000, "the first key signs at once");
        let ring = first.clone();
        assert_eq!(ring.signing(1_000).map(|k| k.kid.as_str()), Some("a"));

        let t = 5_000;
        let (ring, from) = ring.rotate(&key("b"), "kms:b", t, overlapping()).expect("rotate");
        assert_eq!(from, t + PROPAGATION.num_seconds());
        assert_eq!(kids(&ring, t), ["a", "b"], "the next key is published at once");
        assert_eq!(ring.signing(from - 1).map(|k| k.kid.as_str()), Some("a"));
        assert_eq!(ring.signing(from).map(|k| k.kid.as_str()), Some("b"));
        let last_old_token_expires = from + 900;
        assert_eq!(kids(&ring, last_old_token_expires), ["a", "b"]);
        assert_eq!(kids(&ring, last_old_token_expires + CLOCK_SKEW.num_seconds()), ["b"]);
        assert!(ring.rotate(&key("b"), "kms:b", t, overlapping()).is_err(), "the same key twice");
        // A shorter wait than the propagation is not taken.
        let hurried = Schedule::overlapping(Duration::seconds(1), Duration::seconds(900));
        assert_eq!(first.rotate(&key("c"), "kms:c", t, hurried).expect("rotate").1, from);
    }

    #[test]
    fn the_caches_have_the_next_key_before_it_signs() {
        let cached = REFRESH + Duration::seconds(JWKS_MAX_AGE_SECS) + CLOCK_SKEW;
        assert!(cached < PROPAGATION, "{cached} against {PROPAGATION}");
    }

    #[test]
    fn a_rotation_at_once_withdraws_the_old_key_now() {
        let (ring, _) = KeyRing::default().rotate(&key("a"), "file:a", 0, overlapping()).expect("first");
        let (ring, from) = ring.rotate(&key("b"), "file:b", 100, Schedule::at_once()).expect("rotate");
        assert_eq!(from, 100);
        assert_eq!(kids(&ring, 100), ["b"]);
        assert_eq!(ring.withdraw("b", 100), Err(RingError::Signing("b".into())));
        assert_eq!(ring.withdraw("a", 100), Err(RingError::Unknown("a".into())), "already withdrawn");
    }

    #[test]
    fn a_rotation_called_off_keeps_the_key_it_was_to_replace_for_good() {
        let (ring, _) = KeyRing::default().rotate(&key("c"), "file:c", 200, overlapping()).expect("first");
        let (ring, _) = ring.rotate(&key("d"), "file:d", 300, overlapping()).expect("rotate");
        assert!(ring.keys[0].retire_at.is_some());
        assert_eq!(ring.rotate(&key("e"), "file:e", 301, overlapping()), Err(RingError::Pending("d".into())));
        let ring = ring.withdraw("d", 300).expect("the next key, before it signs");
        assert_eq!(ring.keys[0].retire_at, None, "c is no longer scheduled to go");
        let much_later = 300 + 10 * LONGEST_ACCESS_TOKEN.num_seconds();
        assert_eq!(ring.signing(much_later).map(|k| k.kid.as_str()), Some("c"));
    }

    #[test]
    fn withdrawing_a_retiring_key_brings_nothing_back() {
        let (ring, _) = KeyRing::default().rotate(&key("a"), "file:a", 0, overlapping()).expect("first");
        let (ring, from) = ring.rotate(&key("b"), "file:b", 100, overlapping()).expect("rotate");
        let now = from + 10;
        assert_eq!(ring.withdraw("b", now), Err(RingError::Signing("b".into())), "b signs");
        let ring = ring.withdraw("a", now).expect("a is retiring");
        assert_eq!(kids(&ring, now), ["b"]);
        assert_eq!(ring.signing(now + LONGEST_ACCESS_TOKEN.num_seconds()).map(|k| k.kid.as_str()), Some("b"));
    }
}
