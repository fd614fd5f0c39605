//! The `auth` function in-process: the OAuth2 password and refresh grants, rotation and reuse,
//! revocation, throttling, and the bearer-token checks every protected route relies on. Time
//! moves by the test clock, never by sleeping.

// Test helpers as well as #[test]s: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use api_tests::keys::{header_of, other_key, parts_of, signed_by, test_key};
use api_tests::{PASSWORD, TestApp};
use axum::http::{Method, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Duration;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

fn oauth_error(response: &api_tests::TestResponse) -> String {
    assert_eq!(response.status, StatusCode::BAD_REQUEST, "{}", response.text());
    assert_eq!(response.header("cache-control"), Some("no-store"));
    let body = response.json();
    assert!(body["error_description"].is_string(), "{body}");
    body["error"].as_str().expect("error").to_owned()
}

#[tokio::test]
async fn password_login_returns_an_uncacheable_bearer_token_pair() {
    let app = TestApp::memory();
    let user = app.user().await;
    let response = app.login(&user.email, PASSWORD).await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.header("cache-control"), Some("no-store"));
    assert!(response.header("x-request-id").is_some());
    let body = response.json();
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 900);
    assert!(body["refresh_token"].as_str().is_some_and(|t| t.len() >= 43));
    let access = body["access_token"].as_str().expect("access token");
    let (header, claims) = parts_of(access);
    assert_eq!((header["alg"].as_str(), header["typ"].as_str()), (Some("RS256"), Some("at+jwt")));
    assert_eq!(header["kid"].as_str(), Some(test_key().kid()), "named by its key's thumbprint");
    assert_eq!(claims["sub"], user.id.to_string());
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 900);
    assert_eq!(claims["iss"], app.state.jwt.issuer(), "the issuer is PUBLIC_BASE_URL");
    assert!(claims["aud"].is_string() && claims["jti"].is_string());
    let me = app.get("/v1/users/me", access).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.json()["email"], user.email);
}

#[tokio::test]
async fn grant_type_may_be_omitted_for_the_password_grant() {
    let app = TestApp::memory();
    let user = app.user().await;
    let response = app.form("/v1/auth/token", &[("username", &user.email), ("password", PASSWORD)]).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
}

#[tokio::test]
async fn emails_log_in_case_insensitively_and_trimmed() {
    let app = TestApp::memory();
    let user = app.user().await;
    let typed = format!("  {}  ", user.email.to_uppercase());
    assert_eq!(app.login(&typed, PASSWORD).await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_email_get_identical_answers() {
    let app = TestApp::memory();
    let user = app.user().await;
    let wrong_password = app.login(&user.email, "not the password").await;
    let unknown_email = app.login("nobody@example.com", "not the password").await;
    assert_eq!(oauth_error(&wrong_password), "invalid_grant");
    assert_eq!(wrong_password.status, unknown_email.status);
    assert_eq!(wrong_password.body, unknown_email.body);
    let names = |r: &api_tests::TestResponse| {
        let mut h: Vec<_> = r
            .headers
            .iter()
            .filter(|(k, _)| k.as_str() != "x-request-id")
            .map(|(k, v)| format!("{k}: {v:?}"))
            .collect();
        h.sort();
        h
    };
    assert_eq!(names(&wrong_password), names(&unknown_email));
}

#[tokio::test]
async fn an_inactive_user_cannot_log_in() {
    let app = TestApp::memory();
    let (user, admin) = (app.user().await, app.superuser().await);
    let path = format!("/v1/users/{}", user.id);
    let off = app.json(Method::PATCH, &path, Some(&admin.access), json!({"is_active": false})).await;
    assert_eq!(off.status, StatusCode::OK);
    assert_eq!(oauth_error(&app.login(&user.email, PASSWORD).await), "invalid_grant");
    assert_eq!(oauth_error(&app.refresh(&user.refresh).await), "invalid_grant");
}

#[tokio::test]
async fn malformed_token_requests_are_rfc_6749_errors() {
    let app = TestApp::memory();
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (vec![("grant_type", "password"), ("password", "x")], "invalid_request"),
        (vec![("grant_type", "password"), ("username", "a@b.io")], "invalid_request"),
        (vec![("username", "a@b.io"), ("username", "c@d.io"), ("password", "x")], "invalid_request"),
        (vec![("grant_type", "refresh_token")], "invalid_request"),
        (vec![("grant_type", "client_credentials")], "unsupported_grant_type"),
        (vec![("grant_type", "refresh_token"), ("refresh_token", "not-a-token")], "invalid_grant"),
        (vec![], "invalid_request"),
    ];
    for (pairs, expected) in cases {
        let response = app.form("/v1/auth/token", &pairs).await;
        assert_eq!(oauth_error(&response), expected, "{pairs:?}");
    }
    let json = app.json(Method::POST, "/v1/auth/token", None, json!({"username": "a@b.io"})).await;
    assert_eq!(oauth_error(&json), "invalid_request");
}

#[tokio::test]
async fn a_form_over_64_kib_is_refused_before_parsing() {
    let app = TestApp::memory();
    let body = format!("username=a%40b.io&password={}", "x".repeat(70 * 1024));
    let response =
        app.raw(Method::POST, "/v1/auth/token", None, "application/x-www-form-urlencoded", body).await;
    assert_eq!(response.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(response.detail().is_string());
}

#[tokio::test]
async fn five_failures_throttle_an_email_until_the_window_passes() {
    let app = TestApp::memory();
    let (user, bystander) = (app.user().await, app.user().await);
    for _ in 0..5 {
        assert_eq!(oauth_error(&app.login(&user.email, "wrong password").await), "invalid_grant");
    }
    let throttled = app.login(&user.email, PASSWORD).await;
    assert_eq!(throttled.status, StatusCode::TOO_MANY_REQUESTS, "even the right password waits");
    assert!(throttled.detail().is_string());
    assert_eq!(throttled.header("retry-after"), Some("900"));
    assert_eq!(app.login(&bystander.email, PASSWORD).await.status, StatusCode::OK, "per email");
    app.clock.advance(Duration::minutes(10));
    assert_eq!(app.login(&user.email, PASSWORD).await.header("retry-after"), Some("300"));
    app.clock.advance(Duration::minutes(5));
    assert_eq!(app.login(&user.email, PASSWORD).await.status, StatusCode::OK, "the window passed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_guesses_cannot_exceed_the_limit() {
    let app = TestApp::memory();
    let user = app.user().await;
    let mut set = tokio::task::JoinSet::new();
    for n in 0..20 {
        let (app, email) = (app.clone(), user.email.clone());
        set.spawn(async move { app.login(&email, &format!("guess number {n}")).await.status });
    }
    let mut statuses = Vec::new();
    while let Some(status) = set.join_next().await {
        statuses.push(status.unwrap());
    }
    let checked = statuses.iter().filter(|s| **s == StatusCode::BAD_REQUEST).count();
    let throttled = statuses.iter().filter(|s| **s == StatusCode::TOO_MANY_REQUESTS).count();
    assert_eq!((checked, throttled), (5, 15), "{statuses:?}");
}

#[tokio::test]
async fn unknown_emails_are_throttled_the_same_way() {
    let app = TestApp::memory();
    for _ in 0..5 {
        assert_eq!(oauth_error(&app.login("ghost@example.com", "guess").await), "invalid_grant");
    }
    assert_eq!(app.login("GHOST@example.com", "guess").await.status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn the_throttle_numbers_are_configurable() {
    let mut config = api_tests::config();
    config.login_max_failures = 2;
    config.login_window_secs = 60;
    let app = TestApp::with_config(config);
    let user = app.user().await;
    for _ in 0..2 {
        app.login(&user.email, "wrong password").await;
    }
    let throttled = app.login(&user.email, PASSWORD).await;
    assert_eq!(throttled.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(throttled.header("retry-after"), Some("60"));
    app.clock.advance(Duration::seconds(60));
    assert_eq!(app.login(&user.email, PASSWORD).await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_successful_login_resets_the_failure_count() {
    let app = TestApp::memory();
    let user = app.user().await;
    for _ in 0..4 {
        app.login(&user.email, "wrong password").await;
    }
    assert_eq!(app.login(&user.email, PASSWORD).await.status, StatusCode::OK);
    for _ in 0..4 {
        assert_eq!(oauth_error(&app.login(&user.email, "wrong password").await), "invalid_grant");
    }
}

#[tokio::test]
async fn a_refresh_rotates_the_token_and_the_old_one_stops_working() {
    let app = TestApp::memory();
    let user = app.user().await;
    let rotated = app.refresh(&user.refresh).await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.text());
    assert_eq!(rotated.header("cache-control"), Some("no-store"));
    let body = rotated.json();
    let new_refresh = body["refresh_token"].as_str().expect("refresh").to_owned();
    assert_ne!(new_refresh, user.refresh);
    let access = body["access_token"].as_str().expect("access");
    assert_eq!(app.get("/v1/users/me", access).await.status, StatusCode::OK);
    assert_eq!(app.refresh(&new_refresh).await.status, StatusCode::OK, "the new one works once");
}

#[tokio::test]
async fn reusing_a_rotated_refresh_token_revokes_its_whole_family() {
    let app = TestApp::memory();
    let user = app.user().await;
    let other_login = app.login(&user.email, PASSWORD).await.json();
    let second = app.refresh(&user.refresh).await.json()["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(oauth_error(&app.refresh(&user.refresh).await), "invalid_grant", "reuse is refused");
    assert_eq!(oauth_error(&app.refresh(&second).await), "invalid_grant", "and the family is revoked");
    let unrelated = other_login["refresh_token"].as_str().unwrap();
    assert_eq!(app.refresh(unrelated).await.status, StatusCode::OK, "other logins are untouched");
}

#[tokio::test]
async fn access_tokens_expire_after_15_minutes() {
    let app = TestApp::memory();
    let user = app.user().await;
    app.clock.advance(Duration::seconds(899));
    assert_eq!(app.get("/v1/users/me", &user.access).await.status, StatusCode::OK);
    app.clock.advance(Duration::seconds(1));
    let expired = app.get("/v1/users/me", &user.access).await;
    assert_eq!(expired.status, StatusCode::UNAUTHORIZED);
    assert_eq!(expired.detail(), "Could not validate credentials");
    assert_eq!(expired.header("www-authenticate"), Some(r#"Bearer error="invalid_token""#));
}

#[tokio::test]
async fn refresh_tokens_expire_after_7_days() {
    let app = TestApp::memory();
    let user = app.user().await;
    let kept = app.login(&user.email, PASSWORD).await.json()["refresh_token"].as_str().unwrap().to_owned();
    app.clock.advance(Duration::days(7) - Duration::seconds(1));
    assert_eq!(app.refresh(&kept).await.status, StatusCode::OK);
    app.clock.advance(Duration::seconds(1));
    assert_eq!(oauth_error(&app.refresh(&user.refresh).await), "invalid_grant");
}

#[tokio::test]
async fn an_access_token_is_never_a_refresh_token_nor_the_reverse() {
    let app = TestApp::memory();
    let user = app.user().await;
    assert_eq!(oauth_error(&app.refresh(&user.access).await), "invalid_grant");
    let as_bearer = app.get("/v1/users/me", &user.refresh).await;
    assert_eq!(as_bearer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.refresh(&user.refresh).await.status, StatusCode::OK, "the refresh token was not spent");
}

#[tokio::test]
async fn revocation_ends_the_family_and_always_answers_200() {
    let app = TestApp::memory();
    let user = app.user().await;
    let revoked = app.form("/v1/auth/revoke", &[("token", &user.refresh)]).await;
    assert_eq!(revoked.status, StatusCode::OK);
    assert_eq!(oauth_error(&app.refresh(&user.refresh).await), "invalid_grant");
    for token in ["unknown-token", user.access.as_str(), &"x".repeat(2000)] {
        assert_eq!(app.form("/v1/auth/revoke", &[("token", token)]).await.status, StatusCode::OK);
    }
    let again = app.form("/v1/auth/revoke", &[("token", &user.refresh)]).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(oauth_error(&app.form("/v1/auth/revoke", &[]).await), "invalid_request");
    // A rotated descendant is revoked with its family.
    let login = app.login(&user.email, PASSWORD).await.json();
    let first = login["refresh_token"].as_str().unwrap();
    let second = app.refresh(first).await.json()["refresh_token"].as_str().unwrap().to_owned();
    app.form("/v1/auth/revoke", &[("token", first)]).await;
    assert_eq!(oauth_error(&app.refresh(&second).await), "invalid_grant");
}

#[tokio::test]
async fn requests_without_credentials_are_401_with_a_bearer_challenge() {
    let app = TestApp::memory();
    let none = app.call(Method::GET, "/v1/users/me", None).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    assert_eq!(none.detail(), "Not authenticated");
    assert_eq!(none.header("www-authenticate"), Some("Bearer"));
    let basic = app
        .send(
            axum::http::Request::get("/v1/items")
                .header("authorization", "Basic dXNlcjpwYXNz")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!((basic.status, basic.header("www-authenticate")), (StatusCode::UNAUTHORIZED, Some("Bearer")));
}

fn sign(header: Header, claims: &Value, secret: &[u8]) -> String {
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(secret)).expect("encode")
}

#[tokio::test]
async fn forged_and_foreign_tokens_are_401() {
    let app = TestApp::memory();
    let user = app.user().await;
    let (_, claims) = parts_of(&user.access);
    let key = test_key();
    let rs = |c: &Value| signed_by(&key, &header_of(&key), c);
    let hs = |alg, secret: &[u8]| {
        let mut h = header_of(&key);
        h.alg = alg;
        sign(h, &claims, secret)
    };
    let public_pem = key.public().to_pem().unwrap();
    let with = |key: &str, value: Value| {
        let mut c = claims.clone();
        c[key] = value;
        c
    };
    let now = claims["iat"].as_i64().unwrap();
    let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"at+jwt"}"#);
    let body = URL_SAFE_NO_PAD.encode(claims.to_string());
    let mut tampered = user.access.clone();
    tampered.pop();
    tampered.push(if user.access.ends_with('A') { 'B' } else { 'A' });
    let forged = [
        ("alg none", format!("{none_header}.{body}.")),
        ("HS256 keyed with the public key's PEM", hs(Algorithm::HS256, public_pem.as_bytes())),
        ("HS512 keyed with the public key's PEM", hs(Algorithm::HS512, public_pem.as_bytes())),
        ("another key, naming itself", signed_by(&other_key(), &header_of(&other_key()), &claims)),
        ("another key, naming ours", signed_by(&other_key(), &header_of(&key), &claims)),
        ("no typ", {
            let mut h = header_of(&key);
            h.typ = None;
            signed_by(&key, &h, &claims)
        }),
        ("wrong iss", rs(&with("iss", json!("someone-else")))),
        ("wrong aud", rs(&with("aud", json!("another-api")))),
        ("expired", rs(&with("exp", json!(now - 1)))),
        ("not yet valid", rs(&with("nbf", json!(now + 60)))),
        ("sub not a uuid", rs(&with("sub", json!("admin")))),
        ("unknown user", rs(&with("sub", json!(uuid::Uuid::now_v7())))),
        ("tampered signature", tampered),
        ("garbage", "not.a.jwt".into()),
        ("oversized", "a".repeat(10_000)),
    ];
    for (what, token) in forged {
        let response = app.get("/v1/users/me", &token).await;
        assert_eq!(response.status, StatusCode::UNAUTHORIZED, "{what}");
        assert_eq!(response.header("www-authenticate"), Some(r#"Bearer error="invalid_token""#), "{what}");
    }
    // The same claims, correctly signed, pass: the corpus fails for the reason it names.
    assert_eq!(app.get("/v1/users/me", &rs(&claims)).await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_deleted_users_token_is_refused() {
    let app = TestApp::memory();
    let user = app.user().await;
    assert_eq!(app.delete("/v1/users/me", &user.access).await.status, StatusCode::NO_CONTENT);
    let response = app.get("/v1/users/me", &user.access).await;
    assert_eq!(response.status, StatusCode::UNAUTHORIZED);
    assert_eq!(oauth_error(&app.refresh(&user.refresh).await), "invalid_grant");
}

#[tokio::test]
async fn the_oauth_endpoints_only_accept_post() {
    let app = TestApp::memory();
    let response = app.call(Method::GET, "/v1/auth/token", None).await;
    assert_eq!(response.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.detail(), "Method Not Allowed");
    assert_eq!(response.header("allow"), Some("POST"));
}

/// A hasher that counts its verifications, wrapped around the real one: a dependency override.
#[derive(Debug)]
struct CountingHasher {
    inner: shared::auth::Argon2Hasher,
    against_dummy: std::sync::atomic::AtomicUsize,
    against_user: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl shared::auth::PasswordHasher for CountingHasher {
    async fn hash(&self, password: secrecy::SecretString) -> Result<String, shared::ApiError> {
        self.inner.hash(password).await
    }

    async fn verify(
        &self,
        password: secrecy::SecretString,
        hash: Option<String>,
    ) -> Result<bool, shared::ApiError> {
        let counter = if hash.is_some() { &self.against_user } else { &self.against_dummy };
        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.verify(password, hash).await
    }
}

#[tokio::test]
async fn every_login_costs_exactly_one_verification_even_for_unknown_or_malformed_emails() {
    use std::sync::atomic::Ordering::SeqCst;
    let hasher = std::sync::Arc::new(CountingHasher {
        inner: shared::auth::Argon2Hasher::with_params(256, 1, 1),
        against_dummy: 0.into(),
        against_user: 0.into(),
    });
    let state = shared::AppState::in_memory(api_tests::config()).with_hasher(hasher.clone());
    let app = TestApp::from_state(state);
    let user = app.user().await;
    let counts = || (hasher.against_user.load(SeqCst), hasher.against_dummy.load(SeqCst));
    let before = counts();
    app.login(&user.email, "wrong password").await;
    assert_eq!(counts(), (before.0 + 1, before.1), "a known email: its own hash");
    for unknown in ["nobody@example.com", "not an email at all", "a@b"] {
        let at = counts();
        let response = app.login(unknown, "wrong password").await;
        assert_eq!(oauth_error(&response), "invalid_grant");
        assert_eq!(counts(), (at.0, at.1 + 1), "{unknown:?}: one verification, against the dummy hash");
    }
}

#[tokio::test]
async fn a_parameter_the_grant_uses_may_be_sent_once_and_others_are_ignored() {
    let app = TestApp::memory();
    let user = app.user().await;
    // RFC 6749 §3.2: a parameter of the request sent twice is an invalid_request...
    let twice = app
        .form(
            "/v1/auth/token",
            &[("username", user.email.as_str()), ("username", user.email.as_str()), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(oauth_error(&twice), "invalid_request");
    assert_eq!(twice.json()["error_description"], "A parameter was sent more than once");
    // ...and so is a grant type sent twice, even the same one.
    let grant = app
        .form(
            "/v1/auth/token",
            &[
                ("grant_type", "password"),
                ("grant_type", "password"),
                ("username", &user.email),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(oauth_error(&grant), "invalid_request");
    // A parameter the grant does not read is ignored, however often it comes.
    let ignored = app
        .form(
            "/v1/auth/token",
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", user.refresh.as_str()),
                ("scope", "a"),
                ("scope", "b"),
                ("password", "x"),
                ("password", "y"),
            ],
        )
        .await;
    assert_eq!(ignored.status, StatusCode::OK, "{}", ignored.text());
    // An empty value still counts as one sent: with another, the parameter was repeated.
    for name in ["username", "grant_type"] {
        let pairs = [(name, ""), (name, "password"), ("username", "x@example.com"), ("password", PASSWORD)];
        let repeated = app.form("/v1/auth/token", &pairs).await;
        assert_eq!(repeated.json()["error_description"], "A parameter was sent more than once", "{name}");
    }
    // An empty parameter is an absent one (RFC 6749 §3.1), checked before another one's repeats.
    let empty = app.form("/v1/auth/token", &[("username", ""), ("password", "a"), ("password", "b")]).await;
    assert_eq!(oauth_error(&empty), "invalid_request");
    assert_eq!(empty.json()["error_description"], "username is required");
    // Revocation: a repeated hint is ignored (RFC 7009: 200); a repeated token is not.
    let second = app.login(&user.email, PASSWORD).await.json();
    let token = second["refresh_token"].as_str().unwrap();
    let hinted = app
        .form(
            "/v1/auth/revoke",
            &[("token", token), ("token_type_hint", "refresh_token"), ("token_type_hint", "access_token")],
        )
        .await;
    assert_eq!(hinted.status, StatusCode::OK);
    assert_eq!(app.refresh(token).await.status, StatusCode::BAD_REQUEST, "revoked");
    let repeated = app.form("/v1/auth/revoke", &[("token", token), ("token", token)]).await;
    assert_eq!(oauth_error(&repeated), "invalid_request");
}
