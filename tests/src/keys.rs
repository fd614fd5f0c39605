//! The fixed signing key of the tests (`shared/src/auth/testdata/`), and tokens made with it:
//! genuine-looking tokens whose claims a test chooses, for the forged-token corpus.

use std::sync::{Arc, OnceLock};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, Header};
use serde_json::Value;
use shared::auth::jwt::Issuing;
use shared::auth::keys::SigningKey;
use shared::auth::ring::Schedule;
use shared::auth::rotation;
use shared::auth::signer::{KeyClients, KeySource};
use shared::repo::Repos;

/// The test key's PEM file, for processes given `SIGNING_KEY=file:<it>`.
pub const TEST_KEY_FILE: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/src/auth/testdata/test_signing_key.pem");
/// Another key, never in any ring the tests make (unless a test puts it there).
pub const OTHER_KEY_FILE: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/src/auth/testdata/other_signing_key.pem");
pub const TEST_KEY_PEM: &str = include_str!("../../shared/src/auth/testdata/test_signing_key.pem");
pub const OTHER_KEY_PEM: &str = include_str!("../../shared/src/auth/testdata/other_signing_key.pem");

fn parsed(cell: &'static OnceLock<Arc<SigningKey>>, pem: &str) -> Arc<SigningKey> {
    cell.get_or_init(|| Arc::new(SigningKey::from_pem(pem).expect("a test key"))).clone()
}

/// The tests' signing key.
pub fn test_key() -> Arc<SigningKey> {
    static KEY: OnceLock<Arc<SigningKey>> = OnceLock::new();
    parsed(&KEY, TEST_KEY_PEM)
}

/// A key the tests' rings do not hold.
pub fn other_key() -> Arc<SigningKey> {
    static KEY: OnceLock<Arc<SigningKey>> = OnceLock::new();
    parsed(&KEY, OTHER_KEY_PEM)
}

/// The key services' clients, reaching nothing: enough for `file:` keys.
pub fn offline_clients() -> KeyClients {
    KeyClients::new(&aws_config::SdkConfig::builder().build(), None)
}

/// Signing as a deployed `auth` does: with whichever key the ring says signs (reached here
/// through files), never writing the ring. See [`put_first_key`].
pub fn deployed_issuing() -> Issuing {
    Issuing::remote(KeySource::File(TEST_KEY_FILE.to_owned()), offline_clients())
}

/// The test key into an empty ring, as the operator's first `admin keys rotate` does after the
/// first deploy.
pub async fn put_first_key(repos: &Repos, now: chrono::DateTime<chrono::Utc>) {
    let to = KeySource::File(TEST_KEY_FILE.to_owned());
    rotation::rotate(repos.key_ring.as_ref(), &offline_clients(), &to, now, Schedule::at_once())
        .await
        .expect("the first key");
}

/// Signing as the local server does, with the test key: it becomes the ring's key at once.
pub fn test_issuing() -> Issuing {
    Issuing::held(test_key(), KeySource::File(TEST_KEY_FILE.to_owned()))
}

/// A token of `claims` signed by `key`, under exactly `header` (nothing is added to it).
pub fn signed_by(key: &SigningKey, header: &Header, claims: &Value) -> String {
    key.encode(header, claims).expect("sign")
}

/// A header as our tokens have: RS256, `at+jwt`, the key's `kid`.
pub fn header_of(key: &SigningKey) -> Header {
    let mut header = Header::new(Algorithm::RS256);
    header.typ = Some("at+jwt".to_owned());
    header.kid = Some(key.kid().to_owned());
    header
}

/// A token's header and claims, read back unverified; panics unless it is three segments whose
/// first two are base64url JSON.
pub fn parts_of(token: &str) -> (Value, Value) {
    let parts: Vec<_> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "a JWS in compact form");
    let decode = |s: &str| {
        serde_json::from_slice::<Value>(&URL_SAFE_NO_PAD.decode(s).expect("base64url")).expect("JSON")
    };
    (decode(parts[0]), decode(parts[1]))
}

/// A token's claims, read back unverified.
pub fn claims_of(token: &str) -> Value {
    parts_of(token).1
}

/// The `kid` a token's header names.
pub fn kid_of(token: &str) -> String {
    parts_of(token).0["kid"].as_str().expect("a kid").to_owned()
}
