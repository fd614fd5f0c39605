//! The key ring as verifiers read it: again for an unknown `kid` at most every 30 s whatever the
//! number of forged `kid`s, and every 5 minutes; a ring that cannot be read is a 503, never a
//! 401; a ring key of the wrong kind verifies nothing; and the ring's conditional writes on
//! both stores.

// Test helpers as well as #[test]s: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use api_tests::keys::{
    OTHER_KEY_FILE, claims_of, header_of, offline_clients, other_key, signed_by, test_key,
};
use api_tests::{Backend, TestApp};
use axum::http::{Method, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use shared::AppState;
use shared::auth::ring::{KeyRing, PROPAGATION, Schedule};
use shared::auth::rotation;
use shared::auth::signer::KeySource;
use shared::deps::Clock;
use shared::repo::{KeyRingRepo, RepoError, RepoResult};

on_both_stores!(the_key_ring_is_written_only_over_the_version_read);

async fn the_key_ring_is_written_only_over_the_version_read(backend: Backend) {
    let repos = backend.repos().await;
    let repo = repos.key_ring.as_ref();
    assert_eq!(repo.key_ring().await.unwrap(), None);
    let (ring, _) = KeyRing::default().rotate(test_key().public(), "file:a", 0, Schedule::at_once()).unwrap();
    assert!(repo.save_key_ring(&ring).await.unwrap(), "the first ring");
    assert!(!repo.save_key_ring(&ring).await.unwrap(), "a second first ring");
    let read = repo.key_ring().await.unwrap().unwrap();
    assert_eq!((read.keys.clone(), read.version), (ring.keys.clone(), 1));
    let schedule = Schedule::overlapping(PROPAGATION, Duration::minutes(15));
    let (next, _) = read.rotate(other_key().public(), "file:b", 100, schedule).unwrap();
    assert!(repo.save_key_ring(&next).await.unwrap());
    assert!(!repo.save_key_ring(&next).await.unwrap(), "over a version that is gone");
    let read = repo.key_ring().await.unwrap().unwrap();
    assert_eq!((read.keys.len(), read.version), (2, 2));
}

/// The ring of another store, counting reads, or failing them while `failing` is set.
#[derive(Debug)]
struct Watched {
    inner: Arc<dyn KeyRingRepo>,
    reads: AtomicUsize,
    failing: AtomicBool,
}

#[async_trait::async_trait]
impl KeyRingRepo for Watched {
    async fn key_ring(&self) -> RepoResult<Option<KeyRing>> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        if self.failing.load(Ordering::SeqCst) {
            return Err(RepoError::Unavailable("the ring is out of reach".into()));
        }
        self.inner.key_ring().await
    }

    async fn save_key_ring(&self, ring: &KeyRing) -> RepoResult<bool> {
        self.inner.save_key_ring(ring).await
    }
}

/// A verifying function's state (no key, as items and users) over `app`'s store, its ring
/// read through a [`Watched`].
fn verifier_of(app: &TestApp) -> (AppState, Arc<Watched>) {
    let mut repos = app.state.repos.clone();
    let watched = Arc::new(Watched {
        inner: repos.key_ring.clone(),
        reads: AtomicUsize::new(0),
        failing: AtomicBool::new(false),
    });
    repos.key_ring = watched.clone();
    (AppState::new(api_tests::config(), repos), watched)
}

#[tokio::test]
async fn a_verifier_reads_the_ring_again_for_an_unknown_kid_at_most_every_30_seconds() {
    let app = TestApp::memory();
    let user = app.user().await;
    let (verifier, ring) = verifier_of(&app);
    let t0: DateTime<Utc> = app.clock.now();
    assert!(verifier.jwt.verify(&user.access, t0).await.is_ok());
    assert_eq!(ring.reads.load(Ordering::SeqCst), 1);
    // The other key signs from now on (a rotation at once).
    let repo = app.state.repos.key_ring.as_ref();
    let to = KeySource::File(OTHER_KEY_FILE.to_owned());
    rotation::rotate(repo, &offline_clients(), &to, t0, Schedule::at_once()).await.unwrap();
    let claims = claims_of(&user.access);
    let by_new = signed_by(&other_key(), &header_of(&other_key()), &claims);
    // The first token of a key it does not know is looked up at once: the new key verifies, the
    // withdrawn one no more.
    assert_eq!(verifier.jwt.verify(&by_new, t0).await.unwrap().user_id, user.id);
    assert_eq!(ring.reads.load(Ordering::SeqCst), 2);
    assert!(verifier.jwt.verify(&user.access, t0).await.is_err(), "withdrawn at once");
    // Forged kids, however many, cost one read per 30 s.
    let forged = |n: u32| {
        let mut header = header_of(&other_key());
        header.kid = Some(format!("forged-{n}"));
        signed_by(&other_key(), &header, &claims)
    };
    for n in 0..50 {
        assert!(verifier.jwt.verify(&forged(n), t0 + Duration::seconds(29)).await.is_err());
    }
    assert_eq!(ring.reads.load(Ordering::SeqCst), 2, "within 30 s of the last lookup");
    for n in 0..50 {
        assert!(verifier.jwt.verify(&forged(n), t0 + Duration::seconds(30)).await.is_err());
    }
    assert_eq!(ring.reads.load(Ordering::SeqCst), 3, "one lookup for fifty forged kids");
    // And every 5 minutes anyway.
    assert!(verifier.jwt.verify(&by_new, t0 + Duration::seconds(30) + Duration::minutes(5)).await.is_ok());
    assert_eq!(ring.reads.load(Ordering::SeqCst), 4);
}

/// A token is verified once and kept (shared/src/auth/verified.rs); what it said is checked at
/// every use against the clock and the ring, so neither its expiry nor its key's withdrawal is
/// skipped by the cache.
#[tokio::test]
async fn a_token_verified_before_still_expires_and_ends_with_its_key() {
    let app = TestApp::memory();
    let user = app.user().await;
    let (verifier, reads) = verifier_of(&app);
    let t0 = DateTime::from_timestamp(app.clock.now().timestamp(), 0).unwrap();
    let ttl = Duration::seconds(app.state.config.access_token_ttl_secs);
    // A token of the first key that lives two hours, used while the ring rotates to the other.
    let mut claims = claims_of(&user.access);
    claims["iat"] = json!(t0.timestamp());
    claims["exp"] = json!((t0 + Duration::hours(2)).timestamp());
    let long = signed_by(&test_key(), &header_of(&test_key()), &claims);
    for token in [&user.access, &long] {
        assert!(verifier.jwt.verify(token, t0).await.is_ok());
    }
    let repo = app.state.repos.key_ring.as_ref();
    let to = KeySource::File(OTHER_KEY_FILE.to_owned());
    let schedule = Schedule::overlapping(PROPAGATION, Duration::hours(3));
    rotation::rotate(repo, &offline_clients(), &to, t0, schedule).await.unwrap();
    let last = t0 + ttl - Duration::seconds(1);
    assert!(verifier.jwt.verify(&user.access, last).await.is_ok());
    assert!(verifier.jwt.verify(&user.access, t0 + ttl).await.is_err(), "expired, though verified before");
    assert_eq!(reads.reads.load(Ordering::SeqCst), 2, "read at t0 and again at {last}");
    // The new key signs; the old one verifies for hours yet, in the ring as read now.
    let switched = last + Duration::minutes(5);
    assert!(verifier.jwt.verify(&long, switched).await.is_ok());
    assert_eq!(reads.reads.load(Ordering::SeqCst), 3);
    // The old key leaked: withdrawn now. Once the verifier has read the ring again, its token
    // is refused, though it was verified before and its `exp` is an hour away.
    rotation::withdraw(repo, test_key().kid(), switched).await.unwrap();
    let reread = switched + Duration::minutes(5);
    assert!(verifier.jwt.verify(&long, reread).await.is_err(), "withdrawn, though verified before");
    assert_eq!(reads.reads.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn a_ring_that_cannot_be_read_is_a_503_never_a_401_and_a_held_ring_outlives_a_failed_read() {
    let app = TestApp::memory();
    let user = app.user().await;
    let (verifier, ring) = verifier_of(&app);
    let now = app.clock.now();
    ring.failing.store(true, Ordering::SeqCst);
    let unavailable = verifier.jwt.verify(&user.access, now).await.unwrap_err();
    assert_eq!(unavailable.status(), StatusCode::SERVICE_UNAVAILABLE, "{unavailable:?}");
    ring.failing.store(false, Ordering::SeqCst);
    assert!(verifier.jwt.verify(&user.access, now).await.is_err(), "no read again within a second");
    assert!(verifier.jwt.verify(&user.access, now + Duration::seconds(1)).await.is_ok());
    ring.failing.store(true, Ordering::SeqCst);
    let stale = now + Duration::minutes(6);
    assert!(verifier.jwt.verify(&user.access, stale).await.is_ok(), "the ring held, after a failed read");
    // But a kid the held ring does not know may be a key it should: not a 401, a 503.
    let by_other = signed_by(&other_key(), &header_of(&other_key()), &claims_of(&user.access));
    let unknown = verifier.jwt.verify(&by_other, stale + Duration::minutes(1)).await.unwrap_err();
    assert_eq!(unknown.status(), StatusCode::SERVICE_UNAVAILABLE, "{unknown:?}");
    // The published keys: from the ring held, or none that can be read: 503.
    let held = TestApp::from_state(verifier.clone());
    assert_eq!(held.call(Method::GET, "/.well-known/jwks.json", None).await.status, StatusCode::OK);
    let (blind, ring) = verifier_of(&app);
    ring.failing.store(true, Ordering::SeqCst);
    let jwks = TestApp::from_state(blind).call(Method::GET, "/.well-known/jwks.json", None).await;
    assert_eq!(jwks.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(jwks.header("retry-after"), Some("2"));
}

/// A ring entry that is not an RSA signing key of at least 2048 bits whose `kid` is its own
/// thumbprint (a JWKS key of the wrong type, in the one place keys come from) verifies nothing.
#[tokio::test]
async fn a_ring_key_of_the_wrong_kind_or_under_another_kid_verifies_nothing() {
    use rsa::pkcs1::EncodeRsaPrivateKey;
    use rsa::traits::PublicKeyParts;
    let app = TestApp::memory();
    let user = app.user().await;
    let claims = claims_of(&user.access);
    let small = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 1024).unwrap();
    let b64 = |n: &rsa::BigUint| URL_SAFE_NO_PAD.encode(n.to_bytes_be());
    let (n, e) = (b64(small.n()), b64(small.e()));
    let jwk = json!({"e": e, "kty": "RSA", "n": n}).to_string();
    let small_kid = URL_SAFE_NO_PAD.encode(<sha2::Sha256 as sha2::Digest>::digest(jwk.as_bytes()));
    let der = small.to_pkcs1_der().unwrap();
    let mut header = header_of(&test_key());
    header.kid = Some(small_kid.clone());
    let small_key = jsonwebtoken::EncodingKey::from_rsa_der(der.as_bytes());
    let by_small = jsonwebtoken::encode(&header, &claims, &small_key).unwrap();
    // The other key, under a kid that is not its thumbprint.
    let mislabel = "a-kid-of-our-choosing".to_owned();
    let mut header = header_of(&other_key());
    header.kid = Some(mislabel.clone());
    let by_mislabelled = signed_by(&other_key(), &header, &claims);
    let mut ring = app.state.repos.key_ring.key_ring().await.unwrap().unwrap();
    let entry = |kid: &str, n: &str, e: &str| shared::auth::ring::KeyEntry {
        kid: kid.to_owned(),
        n: n.to_owned(),
        e: e.to_owned(),
        source: "file:/elsewhere".into(),
        sign_from: 0,
        retire_at: None,
    };
    let other = other_key().public().clone();
    ring.keys.insert(0, entry(&small_kid, &n, &e));
    ring.keys.insert(0, entry(&mislabel, &other.n, &other.e));
    assert!(app.state.repos.key_ring.save_key_ring(&ring).await.unwrap());
    app.clock.advance(Duration::minutes(6));
    for (what, token) in [("1024 bits", &by_small), ("mislabelled", &by_mislabelled)] {
        assert_eq!(app.get("/v1/users/me", token).await.status, StatusCode::UNAUTHORIZED, "{what}");
    }
    assert_eq!(
        app.get("/v1/users/me", &user.access).await.status,
        StatusCode::OK,
        "the good key still verifies"
    );
}
