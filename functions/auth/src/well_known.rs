//! The published keys (`GET /.well-known/jwks.json`) and the OpenID discovery document that
//! points at them (`GET /.well-known/openid-configuration`), as identity providers publish
//! theirs: what a verifier outside this API (API Gateway's JWT authorizer, another service)
//! needs to check our access tokens, with no secret. Served by `auth`, which owns the keys.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use shared::auth::ring::JWKS_MAX_AGE_SECS;
use shared::openapi::Unavailable;
use shared::{ApiResult, AppState};
use utoipa::ToSchema;

/// A public key (RFC 7517): RSA, for signatures, RS256.
#[derive(Debug, Serialize, ToSchema)]
pub struct Jwk {
    #[schema(pattern = "^RSA$", example = "RSA")]
    pub kty: &'static str,
    #[serde(rename = "use")]
    #[schema(pattern = "^sig$", example = "sig")]
    pub use_: &'static str,
    #[schema(pattern = "^RS256$", example = "RS256")]
    pub alg: &'static str,
    /// The key's RFC 7638 thumbprint, as every token it signs names it.
    pub kid: String,
    /// The modulus, base64url.
    pub n: String,
    /// The exponent, base64url.
    pub e: String,
}

/// The public keys that verify access tokens now: during a rotation, both.
#[derive(Debug, Serialize, ToSchema)]
pub struct Jwks {
    pub keys: Vec<Jwk>,
}

/// OpenID Connect Discovery 1.0 §3 (RFC 8414's metadata), for the parts this API has: it is an
/// OAuth2 token endpoint with published keys, not an OpenID provider (no authorization
/// endpoint, no ID tokens), so it supports no response type.
#[derive(Debug, Serialize, ToSchema)]
pub struct OpenIdConfiguration {
    /// Exactly the `iss` of every access token: the API's public base URL.
    pub issuer: String,
    pub jwks_uri: String,
    pub token_endpoint: String,
    pub revocation_endpoint: String,
    pub grant_types_supported: Vec<&'static str>,
    pub token_endpoint_auth_methods_supported: Vec<&'static str>,
    /// Empty: there is no authorization endpoint (RFC 8414 §2 requires the member).
    pub response_types_supported: Vec<&'static str>,
    pub subject_types_supported: Vec<&'static str>,
    pub id_token_signing_alg_values_supported: Vec<&'static str>,
}

/// `Cache-Control` of both documents: shorter than a rotation's overlap, so a cache holds the
/// next key before any token names it.
fn cacheable(body: impl Serialize) -> Response {
    let mut response = axum::Json(body).into_response();
    let value = format!("public, max-age={JWKS_MAX_AGE_SECS}");
    if let Ok(value) = HeaderValue::from_str(&value) {
        response.headers_mut().insert(header::CACHE_CONTROL, value);
    }
    response
}

#[utoipa::path(
    get, path = "/.well-known/jwks.json", tag = "auth", operation_id = "get_jwks",
    responses(
        (status = 200, description = "The public keys of access tokens (RFC 7517): the signing key, and during a rotation the next or the previous one too", body = Jwks,
            headers(("cache-control" = String, description = "public, max-age=300: shorter than a rotation's overlap"))),
        (status = 503, response = Unavailable),
    )
)]
pub(crate) async fn jwks(State(state): State<AppState>) -> ApiResult<Response> {
    let keys = state.jwt.published(state.clock.now()).await?;
    let keys = keys
        .into_iter()
        .map(|k| Jwk { kty: "RSA", use_: "sig", alg: "RS256", kid: k.kid, n: k.n, e: k.e })
        .collect();
    Ok(cacheable(Jwks { keys }))
}

#[utoipa::path(
    get, path = "/.well-known/openid-configuration", tag = "auth", operation_id = "get_openid_configuration",
    responses(
        (status = 200, description = "Where the keys are and what they sign: `issuer` is every access token's `iss` (PUBLIC_BASE_URL), never a request's Host", body = OpenIdConfiguration,
            headers(("cache-control" = String, description = "public, max-age=300"))),
    )
)]
pub(crate) async fn openid_configuration(State(state): State<AppState>) -> Response {
    let issuer = state.jwt.issuer().to_owned();
    cacheable(OpenIdConfiguration {
        jwks_uri: format!("{issuer}/.well-known/jwks.json"),
        token_endpoint: format!("{issuer}/v1/auth/token"),
        revocation_endpoint: format!("{issuer}/v1/auth/revoke"),
        issuer,
        grant_types_supported: vec!["password", "refresh_token"],
        token_endpoint_auth_methods_supported: vec!["none"],
        response_types_supported: vec![],
        subject_types_supported: vec!["public"],
        id_token_signing_alg_values_supported: vec!["RS256"],
    })
}
