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

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use jsonwebtoken::{Algorithm, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::keys::{PublicKey, SigningKey, Verifier};
use super::ring::{KeyEntry, KeyRing, REFRESH};
use super::signer::{KeyClients, KeySource, TokenSigner};
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

/// The ring as this process last read it.
#[derive(Debug)]
struct Loaded {
    ring: KeyRing,
    verifier: Verifier,
    read_at: i64,
}

/// What a signing process holds: its own key (the one `SIGNING_KEY` names, or one it made),
/// the clients that reach the others the ring may name, and the signers already resolved.
#[derive(Debug)]
pub struct Issuing {
    own: KeySource,
    /// The private key itself, for a PEM or a key made here.
    held: Option<Arc<SigningKey>>,
    clients: Option<KeyClients>,
    /// A local process whose key is not the ring's makes it the ring's at once (a restart with
    /// a new key ends the old tokens, as a new random secret did).
    takeover: bool,
    signers: Mutex<HashMap<String, Arc<dyn TokenSigner>>>,
}

impl Issuing {
    /// Signing with a key held in memory (tests, local runs). `takeover`: see the field.
    pub fn held(key: Arc<SigningKey>, source: KeySource, takeover: bool) -> Self {
        Self { own: source, held: Some(key), clients: None, takeover, signers: Mutex::default() }
    }

    /// Signing with the key `source` names, reached through `clients` (deployed `auth`).
    pub fn remote(source: KeySource, clients: KeyClients) -> Self {
        Self { own: source, held: None, clients: Some(clients), takeover: false, signers: Mutex::default() }
    }

    pub fn with_clients(mut self, clients: KeyClients) -> Self {
        self.clients = Some(clients);
        self
    }

    /// This process's own key, as the ring would record it.
    async fn own_public(&self) -> Result<PublicKey, ApiError> {
        if let Some(key) = &self.held {
            return Ok(key.public().clone());
        }
        let clients = self.clients.as_ref().ok_or_else(|| ApiError::Internal("no key clients".into()))?;
        clients.public_key(&self.own).await.map_err(unavailable)
    }

    async fn signer(&self, entry: &KeyEntry) -> Result<Arc<dyn TokenSigner>, ApiError> {
        if let Some(signer) = lock(&self.signers).get(&entry.kid) {
            return Ok(signer.clone());
        }
        let signer: Arc<dyn TokenSigner> = match (&self.held, KeySource::from_ring(&entry.source)) {
            (Some(key), _) if key.kid() == entry.kid => key.clone(),
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
}

fn unavailable(e: super::keys::KeyError) -> ApiError {
    ApiError::Unavailable(format!("signing key: {e}"))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub struct JwtKeys {
    repo: Arc<dyn KeyRingRepo>,
    issuing: Option<Issuing>,
    validation: Validation,
    issuer: String,
    audience: String,
    access_ttl_secs: i64,
    loaded: RwLock<Option<Arc<Loaded>>>,
    /// When the ring was last read, or a read of it failed.
    last_read_attempt: Mutex<i64>,
    reading: tokio::sync::Mutex<()>,
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
            last_read_attempt: Mutex::new(i64::MIN),
            reading: tokio::sync::Mutex::const_new(()),
        }
    }

    pub fn with_issuing(mut self, issuing: Issuing) -> Self {
        self.issuing = Some(issuing);
        self
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

    /// Takes a ring read elsewhere (the cold start's warm-up read), as read at `now`.
    pub fn install(&self, ring: KeyRing, now: DateTime<Utc>) -> Result<(), ApiError> {
        let verifier =
            Verifier::until(ring.keys.iter().map(|k| (k.public(), k.retire_at)), self.validation.clone())
                .map_err(|e| ApiError::Internal(format!("key ring: {e}")))?;
        *self.loaded.write().unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some(Arc::new(Loaded { ring, verifier, read_at: now.timestamp() }));
        Ok(())
    }

    fn current(&self) -> Option<Arc<Loaded>> {
        self.loaded.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// The ring, read again if it is older than [`REFRESH`] or does not know `kid` (at most
    /// every [`UNKNOWN_KID_RETRY`]). A failed read keeps the ring held, if there is one.
    async fn ring(&self, now: i64, kid: Option<&str>) -> Result<Arc<Loaded>, ApiError> {
        let stale = |held: &Option<Arc<Loaded>>| match held {
            None => true,
            Some(l) if now - l.read_at >= REFRESH.num_seconds() => true,
            Some(l) => kid.is_some_and(|kid| {
                !l.verifier.knows(kid, now)
                    && now - *lock(&self.last_read_attempt) >= UNKNOWN_KID_RETRY.num_seconds()
            }),
        };
        let held = self.current();
        if !stale(&held) {
            return held.ok_or_else(|| ApiError::Internal("no key ring".into()));
        }
        let _one_reader = self.reading.lock().await;
        let held = self.current();
        if !stale(&held) {
            return held.ok_or_else(|| ApiError::Internal("no key ring".into()));
        }
        *lock(&self.last_read_attempt) = now;
        match self.repo.key_ring().await {
            Ok(ring) => {
                let at = DateTime::from_timestamp(now, 0).unwrap_or_default();
                self.install(ring.unwrap_or_default(), at)?;
                self.current().ok_or_else(|| ApiError::Internal("no key ring".into()))
            }
            Err(e) => match held {
                Some(held) => {
                    tracing::warn!(error = %e, "the key ring could not be read again; keeping the one held");
                    Ok(held)
                }
                None => Err(e.into()),
            },
        }
    }

    /// Issues an access token for `subject`, valid from `now` for the configured lifetime,
    /// signed by the ring's signing key.
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
        Ok(format!("{input}.{signature}"))
    }

    /// The key that signs at `now`; a signing process whose ring has none (its first start), or
    /// a local one whose key is not the ring's, puts its own key in first.
    async fn signing_entry(&self, issuing: &Issuing, now: i64) -> Result<KeyEntry, ApiError> {
        let loaded = self.ring(now, None).await?;
        let current = loaded.ring.signing(now).cloned();
        let own_kid = issuing.held.as_ref().map(|k| k.kid().to_owned());
        match current {
            Some(entry) if !issuing.takeover || own_kid.as_deref() == Some(entry.kid.as_str()) => Ok(entry),
            // A deployed `auth` puts its key into an empty ring only: never back into one an
            // operator withdrew it from.
            None if !issuing.takeover && loaded.ring.verifying(now).next().is_some() => {
                Err(ApiError::Unavailable("no key of the ring signs now".into()))
            }
            _ => self.put_own_key(issuing, now).await,
        }
    }

    /// Makes this process's key the ring's signing key: the first key of an empty ring, or
    /// (a local process) a rotation at once. (A ring withdrawn to nothing is a ring with no
    /// keys at all: `withdraw` never leaves a ring without a signing key.)
    async fn put_own_key(&self, issuing: &Issuing, now: i64) -> Result<KeyEntry, ApiError> {
        let public = issuing.own_public().await?;
        let _one_writer = self.reading.lock().await;
        for _ in 0..3 {
            let ring = self.repo.key_ring().await?.unwrap_or_default();
            if let Some(entry) = ring.signing(now).filter(|e| e.kid == public.kid) {
                let entry = entry.clone();
                self.install(ring, DateTime::from_timestamp(now, 0).unwrap_or_default())?;
                return Ok(entry);
            }
            let at_once = issuing.takeover || ring.signing(now).is_none();
            // Our key may be in the ring already, scheduled for later: it signs now instead.
            let ring = ring.withdraw(&public.kid, now).unwrap_or(ring);
            let (next, _) = ring
                .rotate(&public, &issuing.own.ring_source(), now, self.access_ttl_secs, at_once)
                .map_err(|e| ApiError::Internal(format!("key ring: {e}")))?;
            if self.repo.save_key_ring(&next).await? {
                tracing::info!(kid = %public.kid, "signing key put in the key ring");
            }
        }
        Err(ApiError::Unavailable("the key ring kept changing under this process".into()))
    }

    /// Prepares a signing process at its start: its key in the ring if need be, and the signer
    /// of the current key resolved (a secret read now rather than in the first login).
    pub async fn prepare(&self, now: DateTime<Utc>) -> Result<(), ApiError> {
        let issuing =
            self.issuing.as_ref().ok_or_else(|| ApiError::Internal("this function signs nothing".into()))?;
        let entry = self.signing_entry(issuing, now.timestamp()).await?;
        issuing.signer(&entry).await.map(drop)
    }

    /// The public keys to publish at `now` (`GET /.well-known/jwks.json`).
    pub async fn published(&self, now: DateTime<Utc>) -> Result<Vec<PublicKey>, ApiError> {
        Ok(self.ring(now.timestamp(), None).await?.ring.published(now.timestamp()))
    }

    /// Returns the subject of a valid access token; any failure is one answer, 401 (but the
    /// ring unreadable, with none held, is a 503).
    pub async fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<Subject, ApiError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(ApiError::InvalidToken);
        }
        let kid =
            jsonwebtoken::decode_header(token).ok().and_then(|h| h.kid).ok_or(ApiError::InvalidToken)?;
        let loaded = self.ring(now.timestamp(), Some(&kid)).await?;
        let data =
            loaded.verifier.decode::<AccessClaims>(token, now.timestamp()).ok_or(ApiError::InvalidToken)?;
        if data.header.typ.as_deref() != Some(ACCESS_TOKEN_TYP) {
            return Err(ApiError::InvalidToken);
        }
        let claims = data.claims;
        let now = now.timestamp();
        if claims.exp <= now || claims.nbf.is_some_and(|nbf| nbf > now) || claims.jti.is_empty() {
            return Err(ApiError::InvalidToken);
        }
        let user_id = claims.sub.parse().map_err(|_| ApiError::InvalidToken)?;
        Ok(Subject { user_id, credential_version: claims.cv })
    }
}
