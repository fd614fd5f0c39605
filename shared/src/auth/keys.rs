//! RS256 keys of access tokens: a signing key that only `auth` can use, the public keys every
//! verifier holds (from the key ring, `super::ring`), and the JWKS that publishes them.
//!
//! - A key's `kid` is its RFC 7638 thumbprint (SHA-256 of its public JWK): stable, and naming
//!   nothing but the key.
//! - [`Verifier`] pins RS256 per key: a token must name a `kid` it knows, and may carry none of
//!   the headers that point elsewhere for a key (`jku`, `jwk`, `x5u`, `x5c`, `x5t`, `x5t#S256`)
//!   or that ask for processing it does not do (`crit`). jsonwebtoken ignores those; here they are
//!   refused.
//! - [`PublicKey::from_jwk`] takes only RSA signing keys of at least 2048 bits, for RS256: a
//!   JWKS entry of another type (`oct`, which jsonwebtoken would turn into an HMAC secret, or EC)
//!   is refused, not trusted.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, Jwk, KeyAlgorithm, PublicKeyUse, RSAKeyParameters, RSAKeyType,
    ThumbprintHash,
};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, TokenData, Validation};
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::traits::PublicKeyParts;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The smallest RSA modulus accepted, in bits.
pub const MIN_RSA_BITS: usize = 2048;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("not an RSA private key in PKCS#8 or PKCS#1 PEM")]
    NotAPrivateKey,
    #[error("an RSA key of {0} bits: at least 2048 are needed")]
    TooSmall(usize),
    #[error("a JWK that is not an RSA signing key for RS256")]
    NotAnRs256Key,
    #[error("a JWK whose kid is not its thumbprint")]
    KidMismatch,
    #[error("the key could not be used: {0}")]
    Unusable(String),
    #[error("the key could not be reached: {0}")]
    Unavailable(String),
}

/// A public key as verifiers hold it and the JWKS publishes it: modulus and exponent,
/// base64url without padding, and its thumbprint as `kid`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    pub kid: String,
    pub n: String,
    pub e: String,
}

impl PublicKey {
    /// The key's JWK parameters and thumbprint, if it is big enough.
    pub fn of(key: &rsa::RsaPublicKey) -> Result<Self, KeyError> {
        if key.size() * 8 < MIN_RSA_BITS {
            return Err(KeyError::TooSmall(key.size() * 8));
        }
        let n = URL_SAFE_NO_PAD.encode(key.n().to_bytes_be());
        let e = URL_SAFE_NO_PAD.encode(key.e().to_bytes_be());
        let mut public = Self { kid: String::new(), n, e };
        public.kid = public.jwk_without_kid().thumbprint(ThumbprintHash::SHA256);
        Ok(public)
    }

    fn jwk_without_kid(&self) -> Jwk {
        Jwk {
            common: CommonParameters {
                public_key_use: Some(PublicKeyUse::Signature),
                key_algorithm: Some(KeyAlgorithm::RS256),
                ..CommonParameters::default()
            },
            algorithm: AlgorithmParameters::RSA(RSAKeyParameters {
                key_type: RSAKeyType::RSA,
                n: self.n.clone(),
                e: self.e.clone(),
            }),
        }
    }

    /// The key as SubjectPublicKeyInfo PEM (`BEGIN PUBLIC KEY`), for verifiers that take PEM.
    pub fn to_pem(&self) -> Result<String, KeyError> {
        use rsa::pkcs8::EncodePublicKey;
        let bytes = |text: &str| URL_SAFE_NO_PAD.decode(text).map_err(|_| KeyError::NotAnRs256Key);
        let key = rsa::RsaPublicKey::new(
            rsa::BigUint::from_bytes_be(&bytes(&self.n)?),
            rsa::BigUint::from_bytes_be(&bytes(&self.e)?),
        )
        .map_err(|e| KeyError::Unusable(e.to_string()))?;
        key.to_public_key_pem(rsa::pkcs8::LineEnding::LF).map_err(|e| KeyError::Unusable(e.to_string()))
    }

    /// The key as a JWK: `kty` RSA, `use` sig, `alg` RS256, its `kid`.
    pub fn jwk(&self) -> Jwk {
        let mut jwk = self.jwk_without_kid();
        jwk.common.key_id = Some(self.kid.clone());
        jwk
    }

    /// A published key back: only an RSA key for signing with RS256, of at least 2048 bits,
    /// whose `kid` is its thumbprint.
    pub fn from_jwk(jwk: &Jwk) -> Result<Self, KeyError> {
        let AlgorithmParameters::RSA(rsa) = &jwk.algorithm else { return Err(KeyError::NotAnRs256Key) };
        let use_ok = matches!(jwk.common.public_key_use, None | Some(PublicKeyUse::Signature));
        let alg_ok = matches!(jwk.common.key_algorithm, None | Some(KeyAlgorithm::RS256));
        if !use_ok || !alg_ok {
            return Err(KeyError::NotAnRs256Key);
        }
        let bytes = |text: &str| URL_SAFE_NO_PAD.decode(text).map_err(|_| KeyError::NotAnRs256Key);
        let key = rsa::RsaPublicKey::new(
            rsa::BigUint::from_bytes_be(&bytes(&rsa.n)?),
            rsa::BigUint::from_bytes_be(&bytes(&rsa.e)?),
        )
        .map_err(|e| KeyError::Unusable(e.to_string()))?;
        let public = Self::of(&key)?;
        if jwk.common.key_id.as_deref() != Some(public.kid.as_str()) {
            return Err(KeyError::KidMismatch);
        }
        Ok(public)
    }
}

fn new_rsa_key() -> Result<rsa::RsaPrivateKey, KeyError> {
    rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, MIN_RSA_BITS)
        .map_err(|e| KeyError::Unusable(e.to_string()))
}

/// A new key of 2048 bits as PKCS#8 PEM (`admin keys generate`, for a `file:` key).
pub fn generate_pem() -> Result<String, KeyError> {
    use rsa::pkcs8::EncodePrivateKey;
    let pem = new_rsa_key()?
        .to_pkcs8_pem(rsa::pkcs8::LineEnding::LF)
        .map_err(|e| KeyError::Unusable(e.to_string()))?;
    Ok(pem.as_str().to_owned())
}

/// The private key that signs access tokens, with its public half.
pub struct SigningKey {
    encoding: EncodingKey,
    public: PublicKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key itself.
        f.debug_struct("SigningKey").field("kid", &self.public.kid).finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A key from PEM: PKCS#8 (`BEGIN PRIVATE KEY`) or PKCS#1 (`BEGIN RSA PRIVATE KEY`).
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        use rsa::pkcs1::DecodeRsaPrivateKey;
        let key = rsa::RsaPrivateKey::from_pkcs8_pem(pem)
            .or_else(|_| rsa::RsaPrivateKey::from_pkcs1_pem(pem))
            .map_err(|_| KeyError::NotAPrivateKey)?;
        Self::of(&key)
    }

    fn of(key: &rsa::RsaPrivateKey) -> Result<Self, KeyError> {
        let public = PublicKey::of(&key.to_public_key())?;
        let der = key.to_pkcs1_der().map_err(|e| KeyError::Unusable(e.to_string()))?;
        Ok(Self { encoding: EncodingKey::from_rsa_der(der.as_bytes()), public })
    }

    /// A new key of 2048 bits (a local run's, when none is configured).
    pub fn generate() -> Result<Self, KeyError> {
        Self::of(&new_rsa_key()?)
    }

    pub fn kid(&self) -> &str {
        &self.public.kid
    }

    /// The base64url RS256 signature of a JWS signing input.
    pub fn sign_input(&self, input: &[u8]) -> Result<String, KeyError> {
        jsonwebtoken::crypto::sign(input, &self.encoding, Algorithm::RS256)
            .map_err(|e| KeyError::Unusable(e.to_string()))
    }

    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    /// `claims` as an RS256 JWT of type `typ`, naming this key.
    pub fn sign<C: Serialize>(&self, claims: &C, typ: &str) -> Result<String, KeyError> {
        let mut header = Header::new(Algorithm::RS256);
        header.typ = Some(typ.to_owned());
        header.kid = Some(self.public.kid.clone());
        self.encode(&header, claims)
    }

    /// `claims` under exactly `header`, signed with this key (tests forge tokens with it).
    pub fn encode<C: Serialize>(&self, header: &Header, claims: &C) -> Result<String, KeyError> {
        jsonwebtoken::encode(header, claims, &self.encoding).map_err(|e| KeyError::Unusable(e.to_string()))
    }
}

/// One key a [`Verifier`] holds.
struct Held {
    /// For the claims' decoding only: the signature is checked with `ring`, below.
    decoding: DecodingKey,
    /// Big-endian modulus and exponent, for `ring`.
    n: Vec<u8>,
    e: Vec<u8>,
    /// When it is withdrawn (seconds since the epoch).
    until: Option<i64>,
}

/// Verifies tokens against the public keys it holds, RS256 only, each by its `kid`. The
/// signature is checked with `ring` (already linked, for TLS): constant-time, and some twenty
/// times faster than the `rsa` crate's big numbers, which made every authenticated request
/// several hundred microseconds slower. Only then are the claims decoded and checked by
/// jsonwebtoken, with its own signature check turned off.
pub struct Verifier {
    keys: HashMap<String, Held>,
    /// The claims' checks; the signature is ours.
    claims: Validation,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("kids", &self.keys.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// A verifier of `keys`, checking the claims as `validation` says (its algorithms are
    /// replaced by RS256 alone).
    pub fn new(keys: &[PublicKey], validation: Validation) -> Result<Self, KeyError> {
        Self::until(keys.iter().map(|key| (key.clone(), None)), validation)
    }

    /// As [`Verifier::new`], each key verifying only before its withdrawal time, if it has one.
    pub fn until(
        keys: impl IntoIterator<Item = (PublicKey, Option<i64>)>,
        mut validation: Validation,
    ) -> Result<Self, KeyError> {
        validation.algorithms = vec![Algorithm::RS256];
        // The signature is checked with `ring` in `decode`, before jsonwebtoken sees the token;
        // jsonwebtoken checks the claims.
        #[allow(deprecated)]
        validation.insecure_disable_signature_validation();
        let bytes = |text: &str| URL_SAFE_NO_PAD.decode(text).map_err(|e| KeyError::Unusable(e.to_string()));
        let keys = keys
            .into_iter()
            .map(|(key, until)| {
                let decoding = DecodingKey::from_rsa_components(&key.n, &key.e)
                    .map_err(|e| KeyError::Unusable(e.to_string()))?;
                let held = Held { decoding, n: bytes(&key.n)?, e: bytes(&key.e)?, until };
                Ok((key.kid.clone(), held))
            })
            .collect::<Result<_, KeyError>>()?;
        Ok(Self { keys, claims: validation })
    }

    /// Whether a token naming `kid` could verify at `now` (false: read the ring again).
    pub fn knows(&self, kid: &str, now: i64) -> bool {
        self.keys.get(kid).is_some_and(|held| held.until.is_none_or(|at| now < at))
    }

    /// When the key `kid` is withdrawn, if it is held and has a time for it.
    pub fn withdrawn_at(&self, kid: &str) -> Option<i64> {
        self.keys.get(kid).and_then(|held| held.until)
    }

    /// The token's header and claims, if it is an RS256 token of a known key with no header that
    /// points elsewhere, signed by that key; `None` for anything else (one answer: the caller's
    /// 401).
    pub fn decode<C: DeserializeOwned>(&self, token: &str, now: i64) -> Option<TokenData<C>> {
        let header = jsonwebtoken::decode_header(token).ok()?;
        let elsewhere = header.jku.is_some()
            || header.jwk.is_some()
            || header.x5u.is_some()
            || header.x5c.is_some()
            || header.x5t.is_some()
            || header.x5t_s256.is_some()
            || header.crit.is_some();
        if elsewhere || header.alg != Algorithm::RS256 {
            return None;
        }
        let held = self.keys.get(header.kid.as_deref()?)?;
        if held.until.is_some_and(|at| now >= at) {
            return None;
        }
        // Exactly three segments; the signature over the first two, by this key.
        let (message, signature) = token.rsplit_once('.')?;
        if message.matches('.').count() != 1 {
            return None;
        }
        let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
        let public = ring::signature::RsaPublicKeyComponents { n: &held.n, e: &held.e };
        public.verify(&ring::signature::RSA_PKCS1_2048_8192_SHA256, message.as_bytes(), &signature).ok()?;
        jsonwebtoken::decode::<C>(token, &held.decoding, &self.claims).ok()
    }
}

#[cfg(test)]
mod tests;
