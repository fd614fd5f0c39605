//! Access tokens: HS256 JWTs with `sub`, `iat`, `exp`, `iss`, `aud`, `jti` and `cv` (the user's
//! credential version, so a password change ends every token issued before it), explicitly typed
//! `at+jwt` (RFC 8725 §3.11, RFC 9068) so no other JWT can pass for one. The algorithm is
//! pinned: `alg: none` and every other algorithm fail before the signature is even considered.
//! Expiry and `nbf` are checked against the injected clock, not the system one, so tests can
//! move time.

use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::config::Config;
use crate::error::ApiError;

/// The JOSE `typ` of our access tokens.
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";
/// Anything longer is not one of our tokens; refuse it before decoding.
pub const MAX_TOKEN_LEN: usize = 4096;

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

pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
    audience: String,
    access_ttl_secs: i64,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtKeys")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

impl JwtKeys {
    pub fn new(config: &Config) -> Self {
        let secret = config.jwt_secret_bytes();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[&config.jwt_issuer]);
        validation.set_audience(&[&config.jwt_audience]);
        validation.set_required_spec_claims(&["exp", "iat", "sub", "iss", "aud"]);
        // Time is checked below against the injected clock.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.leeway = 0;
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            issuer: config.jwt_issuer.clone(),
            audience: config.jwt_audience.clone(),
            access_ttl_secs: config.access_token_ttl_secs,
        }
    }

    pub fn access_ttl_secs(&self) -> i64 {
        self.access_ttl_secs
    }

    /// Issues an access token for `subject`, valid from `now` for the configured lifetime.
    pub fn issue(&self, subject: Subject, now: DateTime<Utc>) -> Result<String, ApiError> {
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
        let mut header = Header::new(Algorithm::HS256);
        header.typ = Some(ACCESS_TOKEN_TYP.to_owned());
        encode(&header, &claims, &self.encoding).map_err(|e| ApiError::Internal(format!("jwt encode: {e}")))
    }

    /// Returns the subject of a valid access token; any failure is one answer, 401.
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<Subject, ApiError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(ApiError::InvalidToken);
        }
        let data = decode::<AccessClaims>(token, &self.decoding, &self.validation)
            .map_err(|_| ApiError::InvalidToken)?;
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

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;

    fn keys() -> JwtKeys {
        JwtKeys::new(&Config::for_tests("0123456789abcdef0123456789abcdef"))
    }

    #[test]
    fn a_fresh_token_verifies_and_expires_after_its_lifetime() {
        let keys = keys();
        let now = Utc::now();
        let user = Subject { user_id: Uuid::now_v7(), credential_version: 3 };
        let token = keys.issue(user, now).expect("issue");
        assert_eq!(keys.verify(&token, now).expect("valid"), user);
        assert_eq!(keys.verify(&token, now + Duration::seconds(899)).expect("valid"), user);
        assert!(keys.verify(&token, now + Duration::seconds(900)).is_err());
    }

    #[test]
    fn a_token_signed_with_another_secret_is_refused() {
        let other = JwtKeys::new(&Config::for_tests("another-secret-that-is-32-bytes!!"));
        let subject = Subject { user_id: Uuid::now_v7(), credential_version: 0 };
        let token = other.issue(subject, Utc::now()).expect("issue");
        assert!(keys().verify(&token, Utc::now()).is_err());
    }
}
