//! Access tokens: RS256 JWTs naming their key (`kid`), with `sub`, `iat`, `exp`, `iss`, `aud`,
//! `jti` and `cv` (the user's credential version, so a password change ends every token issued
//! before it), explicitly typed `at+jwt` (RFC 8725 §3.11, RFC 9068) so no other JWT can pass for
//! one. The algorithm is pinned per key ([`Verifier`]): `alg: none`, HS256 made with a public
//! key and every other algorithm fail before a signature is considered. Expiry and `nbf` are
//! checked against the injected clock, not the system one, so tests can move time.
//!
//! Every function verifies, with the public keys of the key ring ([`super::ring`]) read at cold
//! start and again every [`REFRESH`] (or sooner, at most every [`UNKNOWN_KID_RETRY`], for a
//! token naming a key it does not know). Only a process given an [`Issuing`] (`auth`, the local
//! server) signs.

use std::sync::{Arc, Mutex, RwLock};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use jsonwebtoken::{Algorithm, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use super::issuing::{Issuing, RingRights};
use super::issuing::{lock, unavailable};
use super::keys::{PublicKey, Verifier};
use super::ring::{KeyEntry, KeyRing, REFRESH};
use super::verified::{Seen, Verified};
use crate::config::Config;
use crate::error::ApiError;
use crate::repo::KeyRingRepo;

/// The JOSE `typ` of our access tokens.
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";
/// Anything longer is not one of our tokens; refuse it before decoding.
pub const MAX_TOKEN_LEN: usize = 4096;
/// The soonest the ring is read again for a token naming an unknown key: forged `kid`s cost a
/// process one read per this long, whatever their number.
pub const UNKNOWN_KID_RETRY: Duration = Duration::seconds(30);

#[derive(Debug, Serialize, Deserialize)]
pub struct AccessClaims {
    pub sub: String,
    pub iat: i64,
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    pub iss: String,
    pub aud: String,
    pub jti: String,
    /// The user's credential version when the token was issued (required: a token without it
    /// predates the claim and is refused).
    pub cv: u64,
}

/// Who a valid access token speaks for: the user, and the credentials it was issued under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subject {
    pub user_id: Uuid,
    pub credential_version: u64,
}

/// What [`JwtKeys::ring`] does next.
enum Next {
    Use,
    Read { for_unknown: bool },
    Unavailable,
}

/// When reads of the ring were last made for a key it did not know, and last failed.
#[derive(Debug, Clone, Copy)]
struct Paced {
    for_unknown: i64,
    failed: i64,
}

impl Default for Paced {
    fn default() -> Self {
        Self { for_unknown: i64::MIN, failed: i64::MIN }
    }
}

/// The ring as this process last read it.
#[derive(Debug)]
struct Loaded {
    ring: KeyRing,
    verifier: Verifier,
    read_at: i64,
}

pub struct JwtKeys {
    repo: Arc<dyn KeyRingRepo>,
    issuing: Option<Issuing>,
    validation: Validation,
    issuer: String,
    audience: String,
    access_ttl_secs: i64,
    loaded: RwLock<Option<Arc<Loaded>>>,
    /// When the ring was last read because a token named a key it did not know (or it had no
    /// key to sign with), and when a read last failed: each paces the reads after it.
    paced: Mutex<Paced>,
    reading: tokio::sync::Mutex<()>,
    /// Tokens already verified: one RS256 check per token, not per request.
    verified: Verified,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtKeys")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("signs", &self.issuing.is_some())
            .finish_non_exhaustive()
    }
}

impl JwtKeys {
    /// Verification only, with the ring in `repo`.
    pub fn new(config: &Config, repo: Arc<dyn KeyRingRepo>) -> Self {
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&[&config.jwt_issuer]);
        validation.set_audience(&[&config.jwt_audience]);
        validation.set_required_spec_claims(&["exp", "iat", "sub", "iss", "aud"]);
        // Time is checked below against the injected clock.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.leeway = 0;
        Self {
            repo,
            issuing: None,
            validation,
            issuer: config.jwt_issuer.clone(),
            audience: config.jwt_audience.clone(),
            access_ttl_secs: config.access_token_ttl_secs,
            loaded: RwLock::default(),
            paced: Mutex::default(),
            reading: tokio::sync::Mutex::const_new(()),
            verified: Verified::default(),
        }
    }

    /// These keys, signing as `issuing` says; the ring already read (the warm-up's) is kept.
    pub fn with_issuing(&self, issuing: Issuing) -> Self {
        Self {
            repo: self.repo.clone(),
            issuing: Some(issuing),
            validation: self.validation.clone(),
            issuer: self.issuer.clone(),
            audience: self.audience.clone(),
            access_ttl_secs: self.access_ttl_secs,
            loaded: RwLock::new(self.current()),
            paced: Mutex::new(*lock(&self.paced)),
            reading: tokio::sync::Mutex::const_new(()),
            verified: Verified::default(),
        }
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn audience(&self) -> &str {
        &self.audience
    }

    pub fn access_ttl_secs(&self) -> i64 {
        self.access_ttl_secs
    }

    /// Takes a ring read at `now` (here, or by the cold start's warm-up read). A key of it that
    /// is not an RSA key of at least 2048 bits whose `kid` is its thumbprint verifies nothing
    /// (and is logged): the ring is trusted, but not that far.
    pub fn install(&self, mut ring: KeyRing, now: DateTime<Utc>) -> Result<(), ApiError> {
        let mut usable = Vec::with_capacity(ring.keys.len());
        ring.keys.retain(|k| match PublicKey::from_jwk(&k.public().jwk()) {
            Ok(public) => {
                usable.push((public, k.retire_at));
                true
            }
            Err(e) => {
                tracing::error!(kid = %k.kid, error = %e, "a key of the key ring is unusable: it verifies and signs nothing, and is not published");
                false
            }
        });
        let verifier = Verifier::until(usable, self.validation.clone())
            .map_err(|e| ApiError::Unavailable(format!("key ring: {e}")))?;
        *self.loaded.write().unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some(Arc::new(Loaded { ring, verifier, read_at: now.timestamp() }));
        Ok(())
    }

    fn current(&self) -> Option<Arc<Loaded>> {
        self.loaded.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// The ring, read again when it is older than [`REFRESH`], does not know `kid`, or
    /// (`signing`) has no key that signs now.
    /// - Reads for a key it does not know are paced: at most one every [`UNKNOWN_KID_RETRY`],
    ///   however many forged `kid`s arrive (a genuine new key is learned by the first of them;
    ///   within the pace, a `kid` just looked up and not found is a 401).
    /// - A failed read keeps the ring held, but for a `kid` it does not know (that could be a
    ///   key it should know): 503. For [`UNKNOWN_KID_RETRY`] after a failure no read is made,
    ///   and such a `kid` is a 503 too; with no ring held, a second after a failure, 503.
    /// - The ring unreadable is a 503, never a 401 nor a 500.
    async fn ring(&self, now: i64, kid: Option<&str>, signing: bool) -> Result<Arc<Loaded>, ApiError> {
        let since = |at: i64, secs: i64| now.saturating_sub(at) >= secs;
        let retry = UNKNOWN_KID_RETRY.num_seconds();
        let decide = |held: &Option<Arc<Loaded>>| -> Next {
            let paced = *lock(&self.paced);
            let Some(l) = held else {
                return if since(paced.failed, 1) {
                    Next::Read { for_unknown: false }
                } else {
                    Next::Unavailable
                };
            };
            let unknown = kid.is_some_and(|kid| !l.verifier.knows(kid, now));
            if !since(paced.failed, retry) {
                return if unknown { Next::Unavailable } else { Next::Use };
            }
            let unsigned = signing && l.ring.signing(now).is_none();
            if (unknown || unsigned) && since(paced.for_unknown, retry) {
                return Next::Read { for_unknown: true };
            }
            if since(l.read_at, REFRESH.num_seconds()) {
                Next::Read { for_unknown: false }
            } else {
                Next::Use
            }
        };
        let unavailable = || ApiError::Unavailable("key ring: a recent read failed".into());
        let held = self.current();
        match (decide(&held), &held) {
            (Next::Use, Some(held)) => return Ok(held.clone()),
            (Next::Unavailable, _) => return Err(unavailable()),
            _ => {}
        }
        let _one_reader = self.reading.lock().await;
        let held = self.current();
        let for_unknown = match (decide(&held), &held) {
            (Next::Use, Some(held)) => return Ok(held.clone()),
            (Next::Read { for_unknown }, _) => for_unknown,
            _ => return Err(unavailable()),
        };
        if for_unknown {
            lock(&self.paced).for_unknown = now;
        }
        match self.repo.key_ring().await {
            Ok(ring) => {
                self.install(ring.unwrap_or_default(), DateTime::from_timestamp(now, 0).unwrap_or_default())?;
                self.current().ok_or_else(|| ApiError::Internal("no key ring".into()))
            }
            Err(e) => {
                lock(&self.paced).failed = now;
                match held {
                    Some(held) if kid.is_none_or(|kid| held.verifier.knows(kid, now)) => {
                        tracing::warn!(error = %e, "the key ring could not be read again; keeping the one held");
                        Ok(held)
                    }
                    _ => Err(ApiError::Unavailable(format!("key ring: {e}"))),
                }
            }
        }
    }

    /// Issues an access token for `subject`, valid from `now` for the configured lifetime,
    /// signed by the ring's signing key. A token this process would not accept (a signer that
    /// is not the ring's key: a KMS key id pointing elsewhere) is never handed out: 503.
    pub async fn issue(&self, subject: Subject, now: DateTime<Utc>) -> Result<String, ApiError> {
        let issuing =
            self.issuing.as_ref().ok_or_else(|| ApiError::Internal("this function signs nothing".into()))?;
        let entry = self.signing_entry(issuing, now.timestamp()).await?;
        let claims = AccessClaims {
            sub: subject.user_id.to_string(),
            iat: now.timestamp(),
            exp: now.timestamp() + self.access_ttl_secs,
            nbf: None,
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            jti: Uuid::new_v4().to_string(),
            cv: subject.credential_version,
        };
        let header = serde_json::json!({"alg": "RS256", "typ": ACCESS_TOKEN_TYP, "kid": entry.kid});
        let json = |v: Result<Vec<u8>, serde_json::Error>| {
            v.map(|bytes| URL_SAFE_NO_PAD.encode(bytes)).map_err(|e| ApiError::Internal(format!("jwt: {e}")))
        };
        let input = format!("{}.{}", json(serde_json::to_vec(&header))?, json(serde_json::to_vec(&claims))?);
        let signature = issuing.signer(&entry).await?.sign(input.as_bytes()).await.map_err(unavailable)?;
        let token = format!("{input}.{signature}");
        let checked = self.current().and_then(|l| l.verifier.decode::<AccessClaims>(&token, now.timestamp()));
        if checked.is_none() {
            issuing.forget(&entry.kid);
            tracing::error!(kid = %entry.kid, source = %entry.source, "the signing key does not sign as the ring's key");
            return Err(ApiError::Unavailable(format!(
                "the signing key {} does not sign as the ring's key",
                entry.kid
            )));
        }
        Ok(token)
    }

    /// The key that signs at `now`. A deployed `auth` signs with the ring's, or answers 503
    /// when it has none; a local process makes its own key the ring's first.
    async fn signing_entry(&self, issuing: &Issuing, now: i64) -> Result<KeyEntry, ApiError> {
        let loaded = self.ring(now, None, true).await?;
        let current = loaded.ring.signing(now).cloned();
        let own_kid = issuing.held.as_ref().map(|k| k.kid().to_owned());
        match (current, issuing.rights) {
            (Some(entry), RingRights::ReadOnly) => Ok(entry),
            (Some(entry), RingRights::TakeOver) if own_kid.as_deref() == Some(entry.kid.as_str()) => {
                Ok(entry)
            }
            (None, RingRights::ReadOnly) => Err(ApiError::Unavailable(format!(
                "no key of the key ring signs now: an operator puts one in with `admin keys rotate --to {}`",
                issuing.own.ring_source()
            ))),
            (_, RingRights::TakeOver) => self.take_over(issuing, now).await,
        }
    }

    /// Makes a local process's own key the ring's signing key, at once.
    async fn take_over(&self, issuing: &Issuing, now: i64) -> Result<KeyEntry, ApiError> {
        let public = issuing.own_public()?;
        let _one_writer = self.reading.lock().await;
        let at = DateTime::from_timestamp(now, 0).unwrap_or_default();
        for _ in 0..3 {
            let ring = self.repo.key_ring().await?.unwrap_or_default();
            if let Some(entry) = ring.signing(now).filter(|e| e.kid == public.kid).cloned() {
                self.install(ring, at)?;
                return Ok(entry);
            }
            // Our key may be in the ring already, scheduled for later: it signs now instead.
            let ring = ring.withdraw(&public.kid, now).unwrap_or(ring);
            let schedule = super::ring::Schedule::at_once();
            let (mut next, _) = ring
                .rotate(&public, &issuing.own.ring_source(), now, schedule)
                .map_err(|e| ApiError::Internal(format!("key ring: {e}")))?;
            if self.repo.save_key_ring(&next).await? {
                tracing::info!(kid = %public.kid, "this process's key made the key ring's");
                next.version += 1;
                let entry = next.signing(now).cloned();
                self.install(next, at)?;
                return entry.ok_or_else(|| ApiError::Internal("the key just put in does not sign".into()));
            }
        }
        Err(ApiError::Unavailable("the key ring kept changing under this process".into()))
    }

    /// Prepares a signing process at its start: the signer of the ring's key made ready (a
    /// secret is read now rather than in the first login).
    pub async fn prepare(&self, now: DateTime<Utc>) -> Result<(), ApiError> {
        let issuing =
            self.issuing.as_ref().ok_or_else(|| ApiError::Internal("this function signs nothing".into()))?;
        let entry = self.signing_entry(issuing, now.timestamp()).await?;
        issuing.signer(&entry).await.map(drop)
    }

    /// The public keys to publish at `now` (`GET /.well-known/jwks.json`).
    pub async fn published(&self, now: DateTime<Utc>) -> Result<Vec<PublicKey>, ApiError> {
        Ok(self.ring(now.timestamp(), None, false).await?.ring.published(now.timestamp()))
    }

    /// Returns the subject of a valid access token; any failure is one answer, 401 (but the
    /// ring unreadable is a 503). Beyond the signature and the claims: a token may not live
    /// longer than this API can issue one for (a day: not this function's own lifetime, which a
    /// deploy may change before auth's), nor come from the future, nor predate its key's turn
    /// to sign (a key published for later cannot vouch for anything yet). A token verified once
    /// is kept ([`Verified`]): its later uses skip the signature, never the checks of its time.
    pub async fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<Subject, ApiError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(ApiError::InvalidToken);
        }
        let at = now.timestamp();
        let digest = Verified::digest(token);
        let cached = self.verified.get(&digest, at);
        let kid = match &cached {
            Some(seen) => seen.kid.clone(),
            None => jsonwebtoken::decode_header(token)
                .ok()
                .and_then(|h| h.kid)
                .ok_or(ApiError::InvalidToken)?
                .into(),
        };
        let loaded = self.ring(at, Some(&kid), false).await?;
        let fresh = cached.is_none();
        let seen = match cached {
            Some(seen) => seen,
            None => Seen::decode(&loaded.verifier, token, kid, at).ok_or(ApiError::InvalidToken)?,
        };
        if !seen.admitted(&loaded.ring, &loaded.verifier, at) {
            self.verified.forget(&digest);
            return Err(ApiError::InvalidToken);
        }
        let subject = seen.subject;
        if fresh {
            let key_until = loaded.verifier.withdrawn_at(&seen.kid);
            self.verified.insert(digest, seen, key_until, at);
        }
        Ok(subject)
    }
}
