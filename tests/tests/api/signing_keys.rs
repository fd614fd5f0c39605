//! The keys of access tokens through the API: what `/.well-known/*` publishes (and that an
//! outside verifier checks our tokens with it), a rotation moved through with the test clock
//! (nobody logged out; the old key withdrawn after the last token it signed), KMS and Secrets
//! Manager through the SDK (a deployed auth never writes the ring), and keyless cursors.
//! (The ring as verifiers read it: `key_ring.rs`.)

// Test helpers as well as #[test]s: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use api_tests::keys::{
    OTHER_KEY_FILE, claims_of, deployed_issuing, header_of, kid_of, offline_clients, other_key,
    put_first_key, signed_by, test_key,
};
use api_tests::{Backend, TestApp, fast_hasher};
use axum::http::{Method, StatusCode};
use chrono::{DateTime, Duration};
use serde_json::{Value, json};
use shared::AppState;
use shared::auth::ring::{JWKS_MAX_AGE_SECS, PROPAGATION, Schedule};
use shared::auth::rotation;
use shared::auth::signer::KeySource;
use shared::deps::Clock;

async fn published_kids(app: &TestApp) -> Vec<String> {
    let jwks = app.call(Method::GET, "/.well-known/jwks.json", None).await;
    assert_eq!(jwks.status, StatusCode::OK);
    jwks.json()["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn the_discovery_document_names_the_configured_issuer_whatever_the_host() {
    let mut config = api_tests::config();
    config.jwt_issuer = "https://api.example.com".into();
    let app = Backend::Memory.app(config).await;
    let request = axum::http::Request::get("/.well-known/openid-configuration")
        .header("host", "attacker.example")
        .header("x-forwarded-host", "attacker.example")
        .body(axum::body::Body::empty())
        .unwrap();
    let response = app.send(request).await;
    assert_eq!(response.status, StatusCode::OK);
    let cache = format!("public, max-age={JWKS_MAX_AGE_SECS}");
    assert_eq!(response.header("cache-control"), Some(cache.as_str()));
    assert!(JWKS_MAX_AGE_SECS < PROPAGATION.num_seconds(), "a cache has the next key before it signs");
    let body = response.json();
    assert_eq!(body["issuer"], "https://api.example.com");
    assert_eq!(body["jwks_uri"], "https://api.example.com/.well-known/jwks.json");
    assert_eq!(body["token_endpoint"], "https://api.example.com/v1/auth/token");
    assert_eq!(body["id_token_signing_alg_values_supported"], json!(["RS256"]));
    let user = app.user().await;
    assert_eq!(claims_of(&user.access)["iss"], "https://api.example.com", "exactly every token's iss");
}

#[tokio::test]
async fn an_outside_verifier_checks_our_tokens_with_the_published_keys_alone() {
    let app = TestApp::memory();
    let user = app.user().await;
    let jwks = app.call(Method::GET, "/.well-known/jwks.json", None).await;
    assert_eq!(jwks.header("cache-control"), Some(format!("public, max-age={JWKS_MAX_AGE_SECS}").as_str()));
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_slice(&jwks.body).unwrap();
    assert_eq!(set.keys.len(), 1);
    let jwk = set.find(&kid_of(&user.access)).expect("the token's key is published");
    assert_eq!(jwks.json()["keys"][0]["kty"], "RSA");
    assert_eq!(jwks.json()["keys"][0]["use"], "sig");
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_issuer(&[app.state.jwt.issuer()]);
    validation.set_audience(&[app.state.jwt.audience()]);
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap();
    let data = jsonwebtoken::decode::<Value>(&user.access, &key, &validation).expect("verifies");
    assert_eq!(data.claims["sub"], user.id.to_string());
}

on_both_stores!(
    a_rotation_logs_nobody_out_and_withdraws_the_old_key_after_the_last_token_it_signed,
    a_cursor_made_up_for_ones_own_listing_moves_only_within_it,
);

async fn a_rotation_logs_nobody_out_and_withdraws_the_old_key_after_the_last_token_it_signed(
    backend: Backend,
) {
    let state = AppState::new(api_tests::config(), backend.repos().await).with_hasher(fast_hasher());
    let app = TestApp::signing(state, deployed_issuing());
    put_first_key(&app.state.repos, app.clock.now()).await;
    let first = app.user().await;
    let (old, new) = (test_key().kid().to_owned(), other_key().kid().to_owned());
    assert_eq!(kid_of(&first.access), old, "the first key of an empty ring is SIGNING_KEY's");
    // Whole seconds: the ring's schedule is in seconds.
    let t0 = DateTime::from_timestamp(app.clock.now().timestamp(), 0).unwrap();
    let to = KeySource::File(OTHER_KEY_FILE.to_owned());
    let ttl = app.state.config.access_token_ttl_secs;
    let repo = app.state.repos.key_ring.as_ref();
    let schedule = Schedule::overlapping(PROPAGATION, Duration::seconds(ttl));
    let rotated = rotation::rotate(repo, &offline_clients(), &to, t0, schedule).await.unwrap();
    assert_eq!((rotated.kid.as_str(), rotated.sign_from), (new.as_str(), t0 + PROPAGATION));
    let withdrawn_at = t0 + PROPAGATION + Duration::seconds(ttl) + Duration::minutes(1);
    assert_eq!(rotated.retiring, vec![(old.clone(), withdrawn_at)]);

    // Within 5 minutes every process has read the ring again: both keys are published.
    app.clock.advance(Duration::minutes(5));
    assert_eq!(published_kids(&app).await, [old.clone(), new.clone()]);
    // The old key signs until the switch; the last token it signs outlives the switch.
    app.clock.advance(PROPAGATION - Duration::minutes(5) - Duration::seconds(1));
    let last_old = app.login(&first.email, api_tests::PASSWORD).await.json()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(kid_of(&last_old), old);
    app.clock.advance(Duration::seconds(1));
    let first_new = app.login(&first.email, api_tests::PASSWORD).await.json()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(kid_of(&first_new), new, "the new key signs from the switch");
    for token in [&first_new, &last_old] {
        assert_eq!(app.get("/v1/users/me", token).await.status, StatusCode::OK);
    }
    // A session from before the rotation refreshes into the new key.
    let refreshed = app.refresh(&first.refresh).await;
    assert_eq!(kid_of(refreshed.json()["access_token"].as_str().unwrap()), new);

    // The old key's last token lives its whole life.
    app.clock.advance(Duration::seconds(ttl) - Duration::seconds(2));
    assert_eq!(app.get("/v1/users/me", &last_old).await.status, StatusCode::OK);
    // Once withdrawn, the old key verifies nothing, even a token it signed that claims to live on.
    app.clock.advance(withdrawn_at - app.clock.now());
    assert_eq!(published_kids(&app).await, [new]);
    let mut claims = claims_of(&first_new);
    claims["iat"] = json!(app.clock.now().timestamp());
    claims["exp"] = json!((app.clock.now() + Duration::minutes(10)).timestamp());
    let by_old = signed_by(&test_key(), &header_of(&test_key()), &claims);
    assert_eq!(app.get("/v1/users/me", &by_old).await.status, StatusCode::UNAUTHORIZED);
    let by_new = signed_by(&other_key(), &header_of(&other_key()), &claims);
    assert_eq!(app.get("/v1/users/me", &by_new).await.status, StatusCode::OK, "the same claims, the new key");
}

#[tokio::test]
async fn a_kms_key_or_a_secret_signs_through_the_sdk_and_a_deployed_auth_never_writes_the_ring() {
    use api_tests::key_service::{KEY_ID, KeyService, SECRET_ID};
    use shared::auth::jwt::Issuing;
    let service = KeyService::start(api_tests::keys::OTHER_KEY_PEM).await;
    let config = api_tests::config();
    let sdk = shared::state::sdk_config(&config).await;
    let clients = shared::auth::signer::KeyClients::new(&sdk, Some(&service.endpoint()));
    let fresh =
        || async { AppState::new(config.clone(), Backend::Memory.repos().await).with_hasher(fast_hasher()) };
    for source in [KeySource::Kms(KEY_ID.into()), KeySource::SecretsManager(SECRET_ID.into())] {
        let app = TestApp::signing(fresh().await, Issuing::remote(source.clone(), clients.clone()));
        let signup = app.signup("kms@example.com", api_tests::PASSWORD).await;
        assert_eq!(signup.status, StatusCode::CREATED);
        // Before an operator puts a key in, a deployed auth signs nothing and writes nothing.
        let refused = app.login("kms@example.com", api_tests::PASSWORD).await;
        assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE, "{source:?}: {}", refused.text());
        assert_eq!(app.state.repos.key_ring.key_ring().await.unwrap(), None, "{source:?}");
        let before = service.calls();
        let repo = app.state.repos.key_ring.as_ref();
        rotation::rotate(repo, &clients, &source, app.clock.now(), Schedule::at_once()).await.unwrap();
        // The refused login read the ring a moment ago; a ring with no key to sign is read again.
        let login = app.login("kms@example.com", api_tests::PASSWORD).await;
        assert_eq!(login.status, StatusCode::OK, "{source:?}: {}", login.text());
        let access = login.json()["access_token"].as_str().unwrap().to_owned();
        assert_eq!(kid_of(&access), other_key().kid(), "{source:?}: the service's key signs");
        assert_eq!(app.get("/v1/users/me", &access).await.status, StatusCode::OK, "{source:?}");
        assert_eq!(published_kids(&app).await, [other_key().kid().to_owned()], "{source:?}");
        let ring = app.state.repos.key_ring.key_ring().await.unwrap().unwrap();
        assert_eq!(ring.keys[0].source, source.ring_source(), "the ring names it, never holds it");
        assert_eq!(app.login("kms@example.com", api_tests::PASSWORD).await.status, StatusCode::OK);
        let calls = service.calls() - before;
        match source {
            // GetPublicKey for the operator's rotation, then one Sign per token.
            KeySource::Kms(_) => assert_eq!(calls, 1 + 2, "{source:?}"),
            // The PEM for the rotation, and once for the signer; then nothing per token.
            _ => assert_eq!(calls, 2, "{source:?}"),
        }
    }
    // A KMS key the service does not have is not put in the ring.
    let app =
        TestApp::signing(fresh().await, Issuing::remote(KeySource::Kms(KEY_ID.into()), clients.clone()));
    let missing = KeySource::Kms("arn:aws:kms:us-east-1:111122223333:key/not-there".into());
    let repo = app.state.repos.key_ring.as_ref();
    assert!(rotation::rotate(repo, &clients, &missing, app.clock.now(), Schedule::at_once()).await.is_err());
    assert_eq!(app.state.repos.key_ring.key_ring().await.unwrap(), None);
    // A ring that names the test key where KMS holds another: what KMS signs is not handed out.
    put_first_key(&app.state.repos, app.clock.now()).await;
    let mut ring = app.state.repos.key_ring.key_ring().await.unwrap().unwrap();
    ring.keys[0].source = format!("kms:{KEY_ID}");
    assert!(app.state.repos.key_ring.save_key_ring(&ring).await.unwrap());
    app.signup("mislabelled@example.com", api_tests::PASSWORD).await;
    let login = app.login("mislabelled@example.com", api_tests::PASSWORD).await;
    assert_eq!(login.status, StatusCode::SERVICE_UNAVAILABLE, "{}", login.text());
}

/// Cursors have no key (no function that reads listings holds a secret): anyone can make one
/// for their own listing. It moves them within it and nowhere else: another user's item as the
/// position, or a position nobody has, still lists only their own records, never a 500.
async fn a_cursor_made_up_for_ones_own_listing_moves_only_within_it(backend: Backend) {
    let app = backend.app(api_tests::config()).await;
    let (user, other, admin) = (app.user().await, app.user().await, app.superuser().await);
    let mine: Vec<String> = {
        let mut ids = Vec::new();
        for n in 0..3 {
            ids.push(app.item(&user.access, &format!("mine {n}")).await["id"].as_str().unwrap().to_owned());
        }
        ids
    };
    let theirs =
        app.item(&other.access, "theirs").await["id"].as_str().unwrap().parse::<uuid::Uuid>().unwrap();
    let codec = shared::cursor::CursorCodec;
    for position in [theirs, uuid::Uuid::now_v7(), uuid::Uuid::nil(), uuid::Uuid::max()] {
        let made_up = codec.encode(&format!("items:{}", user.id), position);
        let page = app.get(&format!("/v1/items?cursor={made_up}"), &user.access).await;
        assert_eq!(page.status, StatusCode::OK, "{position}: {}", page.text());
        for item in page.json()["data"].as_array().unwrap() {
            assert!(mine.contains(&item["id"].as_str().unwrap().to_owned()), "{position}: {item}");
        }
        // The same made-up cursor in another user's hands is another listing's: 422.
        let foreign = app.get(&format!("/v1/items?cursor={made_up}"), &other.access).await;
        assert_eq!(foreign.status, StatusCode::UNPROCESSABLE_ENTITY, "{position}");
        let users =
            app.get(&format!("/v1/users?cursor={}", codec.encode("users", position)), &admin.access).await;
        assert_eq!(users.status, StatusCode::OK, "{position}: {}", users.text());
    }
}
