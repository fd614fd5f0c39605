//! Access tokens this process has already verified. A client presents one access token for its
//! whole life (15 minutes by default), and an RS256 check costs some 40 µs of CPU where HS256's
//! cost one: without this, the local server answered authenticated requests at less than half
//! the rate it had before (BENCHMARKS.md, "Signing keys").
//!
//! - Keyed by the token's SHA-256. Only a token whose signature and claims passed is put in,
//!   so a hit stands for exactly those bytes, signed by the key their header names (a `kid` is
//!   its key's thumbprint: it cannot name another key later).
//! - A hit skips the signature and the decoding, nothing else. What the token said ([`Seen`])
//!   is checked on every use against the clock and the ring as it is then
//!   ([`Seen::admitted`]): a key withdrawn, retired or no longer in the ring ends its tokens,
//!   cached or not, as soon as the process holds that ring (it reads it again every 5 minutes). (The credential version is checked after this, by `CurrentUser`,
//!   on every request.)
//! - Bounded ([`CAPACITY`] entries, quick_cache's CLOCK-Pro eviction). An entry is kept no
//!   longer than the soonest of its token's `exp` and its key's retirement: past that it is
//!   never used, and is dropped when met.

use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::jwt::{ACCESS_TOKEN_TYP, AccessClaims, Subject};
use super::keys::Verifier;
use super::ring::{CLOCK_SKEW, KeyRing, LONGEST_ACCESS_TOKEN};

/// How many verified tokens a process keeps (some 250 bytes each with the cache's own: 2 MB
/// at most).
pub const CAPACITY: usize = 8192;

/// What a verified token said that is checked against the clock and the ring on every use.
#[derive(Debug, Clone)]
pub struct Seen {
    pub kid: Arc<str>,
    pub iat: i64,
    pub exp: i64,
    pub nbf: Option<i64>,
    pub subject: Subject,
}

impl Seen {
    /// The signature and claims of a token not verified before, which names `kid`.
    pub fn decode(verifier: &Verifier, token: &str, kid: Arc<str>, now: i64) -> Option<Self> {
        let data = verifier.decode::<AccessClaims>(token, now)?;
        if data.header.typ.as_deref() != Some(ACCESS_TOKEN_TYP) || data.claims.jti.is_empty() {
            return None;
        }
        let claims = data.claims;
        let subject = Subject { user_id: claims.sub.parse().ok()?, credential_version: claims.cv };
        Some(Self { kid, iat: claims.iat, exp: claims.exp, nbf: claims.nbf, subject })
    }

    /// Whether the token is good at `now`, with the ring as it is: its key known and not
    /// withdrawn, the token current, and issued while its key could sign it.
    pub fn admitted(&self, ring: &KeyRing, verifier: &Verifier, now: i64) -> bool {
        let skew = CLOCK_SKEW.num_seconds();
        let sign_from = ring.keys.iter().find(|k| *k.kid == *self.kid).map_or(i64::MAX, |k| k.sign_from);
        let expired = self.exp <= now || self.nbf.is_some_and(|nbf| nbf > now);
        let impossible = self.iat > now.saturating_add(skew)
            || self.exp.saturating_sub(self.iat) > LONGEST_ACCESS_TOKEN.num_seconds()
            || self.iat < sign_from.saturating_sub(skew);
        verifier.knows(&self.kid, now) && !expired && !impossible
    }
}

#[derive(Debug, Clone)]
struct Entry {
    seen: Seen,
    /// The soonest of the token's `exp` and its key's retirement.
    until: i64,
}

/// The tokens this process verified, by their SHA-256.
pub struct Verified {
    cache: quick_cache::sync::Cache<[u8; 32], Entry>,
}

impl std::fmt::Debug for Verified {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verified").field("len", &self.cache.len()).finish()
    }
}

impl Default for Verified {
    fn default() -> Self {
        Self::with_capacity(CAPACITY)
    }
}

impl Verified {
    pub fn with_capacity(capacity: usize) -> Self {
        Self { cache: quick_cache::sync::Cache::new(capacity) }
    }

    /// The key of `token`.
    pub fn digest(token: &str) -> [u8; 32] {
        Sha256::digest(token.as_bytes()).into()
    }

    /// What the token of `digest` said, if it was verified and neither it nor its key has
    /// expired by `now`.
    pub fn get(&self, digest: &[u8; 32], now: i64) -> Option<Seen> {
        let entry = self.cache.get(digest)?;
        if now < entry.until {
            return Some(entry.seen);
        }
        // Not one that another request has just put back with a later lifetime.
        self.cache.remove_if(digest, |entry| entry.until <= now);
        None
    }

    /// Keeps a verified token until `key_until` (its key's retirement, if it has one) or its
    /// `exp`, whichever is sooner.
    pub fn insert(&self, digest: [u8; 32], seen: Seen, key_until: Option<i64>, now: i64) {
        let until = key_until.map_or(seen.exp, |at| at.min(seen.exp));
        if now < until {
            self.cache.insert(digest, Entry { seen, until });
        }
    }

    /// Drops a token that is no longer admitted.
    pub fn forget(&self, digest: &[u8; 32]) {
        self.cache.remove(digest);
    }

    pub fn len(&self) -> usize {
        self.cache.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cache.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    fn seen(exp: i64) -> Seen {
        let subject = Subject { user_id: Uuid::nil(), credential_version: 1 };
        Seen { kid: "k".into(), iat: exp - 900, exp, nbf: None, subject }
    }

    #[test]
    fn a_token_is_kept_until_its_exp() {
        let verified = Verified::default();
        let digest = Verified::digest("a.b.c");
        verified.insert(digest, seen(1_000), None, 100);
        assert_eq!(verified.get(&digest, 999).map(|s| s.exp), Some(1_000));
        assert!(verified.get(&digest, 1_000).is_none());
        assert!(verified.is_empty(), "an expired entry is dropped when met");
    }

    #[test]
    fn a_token_is_kept_no_longer_than_its_key() {
        let verified = Verified::default();
        let digest = Verified::digest("a.b.c");
        verified.insert(digest, seen(1_000), Some(500), 100);
        assert!(verified.get(&digest, 499).is_some());
        assert!(verified.get(&digest, 500).is_none());
    }

    #[test]
    fn nothing_expired_is_put_in() {
        let verified = Verified::default();
        verified.insert(Verified::digest("a.b.c"), seen(1_000), None, 1_000);
        verified.insert(Verified::digest("d.e.f"), seen(1_000), Some(50), 100);
        assert!(verified.is_empty());
    }

    #[test]
    fn another_token_is_a_miss() {
        let verified = Verified::default();
        verified.insert(Verified::digest("a.b.c"), seen(1_000), None, 100);
        assert!(verified.get(&Verified::digest("a.b.d"), 100).is_none());
        assert!(verified.get(&Verified::digest("a.b.c"), 100).is_some());
    }

    /// The test key, signing from `sign_from`, withdrawn at `retire_at`: its ring and verifier.
    fn keys_of(sign_from: i64, retire_at: Option<i64>) -> (KeyRing, Verifier, Arc<str>) {
        use crate::auth::keys::SigningKey;
        use crate::auth::ring::KeyEntry;
        let key = SigningKey::from_pem(include_str!("testdata/test_signing_key.pem")).unwrap();
        let public = key.public().clone();
        let mut entry = KeyEntry::new(&public, "file:test", sign_from);
        entry.retire_at = retire_at;
        let validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        let verifier = Verifier::until([(public.clone(), retire_at)], validation).unwrap();
        (KeyRing { keys: vec![entry], version: 1 }, verifier, public.kid.as_str().into())
    }

    #[test]
    fn what_a_token_said_is_checked_against_the_clock_and_the_ring() {
        let (ring, verifier, kid) = keys_of(0, None);
        let token = Seen { kid: kid.clone(), ..seen(10_900) };
        let admitted = |seen: &Seen, now: i64| seen.admitted(&ring, &verifier, now);
        assert!(admitted(&token, 10_000) && admitted(&token, 10_899));
        assert!(!admitted(&token, 10_900), "expired");
        assert!(!admitted(&Seen { nbf: Some(10_500), ..token.clone() }, 10_000), "not yet valid");
        assert!(admitted(&token, 10_000 - 60), "issued within the clocks' slack");
        assert!(!admitted(&token, 10_000 - 61), "issued in the future");
        let long = Seen { exp: 10_000 + 86_401, ..token.clone() };
        assert!(!admitted(&long, 10_000), "living longer than a day");
        assert!(!admitted(&Seen { kid: "another".into(), ..token.clone() }, 10_000), "a key not in the ring");
        let (ring, verifier, _) = keys_of(10_061, None);
        assert!(!token.admitted(&ring, &verifier, 10_100), "issued before its key's turn to sign");
        let (ring, verifier, _) = keys_of(0, Some(10_500));
        assert!(token.admitted(&ring, &verifier, 10_499));
        assert!(!token.admitted(&ring, &verifier, 10_500), "its key withdrawn");
    }

    #[test]
    fn it_is_bounded() {
        let verified = Verified::with_capacity(64);
        for n in 0..10_000 {
            verified.insert(Verified::digest(&format!("token {n}")), seen(1_000), None, 100);
        }
        assert!(verified.len() <= 64, "{} entries", verified.len());
    }
}
