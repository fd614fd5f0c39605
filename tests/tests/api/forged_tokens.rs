//! The forged-token corpus (RFC 8725, OWASP ASVS 5.0 §9): more than sixty tokens that are not a
//! valid access token of an active user — wrong algorithms and `alg: none`, HMAC tokens keyed
//! with our public key (key confusion), a key we do not hold (naming itself, or naming ours), no
//! `kid`, headers that point elsewhere for a key (`jku`, `x5u`, `jwk` with the attacker's RSA key
//! or an `oct` key, `x5c`), stripped, altered or foreign signatures, edited and missing claims
//! (signed with our own key, so only the claim is wrong), expiry by one second, `nbf` in the
//! future, wrong issuer, audience and type, a refresh token, the token of a deleted user,
//! oversized and non-base64 strings — each sent to every kind of protected route. Every one is a 401 with an
//! RFC 6750 `WWW-Authenticate` challenge, and nothing it asked for happens; the valid token of a
//! deactivated user is a 403.

// Test helpers as well as #[test]s: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use api_tests::TestApp;
use api_tests::keys::{header_of, other_key, signed_by, test_key};
use axum::http::{Method, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use shared::deps::Clock;
use uuid::Uuid;

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn segments(token: &str) -> (String, String, String) {
    let mut parts = token.split('.').map(str::to_owned);
    (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap())
}

/// A token with this header and these claims, HMAC-signed with `secret` whatever `alg` says.
fn raw_signed(header: &Value, claims: &Value, secret: &[u8]) -> String {
    use hmac::Mac;
    let input = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
    mac.update(input.as_bytes());
    format!("{input}.{}", b64(mac.finalize().into_bytes()))
}

/// An HMAC token naming our key, keyed with `secret`.
fn signed(alg: Algorithm, typ: Option<&str>, claims: &Value, secret: &[u8]) -> String {
    let mut header = Header::new(alg);
    header.typ = typ.map(str::to_owned);
    header.kid = Some(test_key().kid().to_owned());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(secret)).unwrap()
}

/// Every forged token, named, built around a genuine token's claims.
fn corpus(genuine: &str, claims: &Value, now: i64, refresh: &str, deleted: &str) -> Vec<(String, String)> {
    // HMAC forgeries are keyed with our public key, which anyone can fetch: key confusion.
    let key = test_key();
    let public_pem = key.public().to_pem().unwrap();
    let secret = public_pem.as_bytes();
    let at = Some("at+jwt");
    // Claims edited and signed with our own key: only the claim is wrong.
    let rs = |c: &Value| signed_by(&key, &header_of(&key), c);
    let typed = |typ: Option<&str>| {
        let mut h = header_of(&key);
        h.typ = typ.map(str::to_owned);
        signed_by(&key, &h, claims)
    };
    // Our own key's genuine signature under a header that also says this.
    let also = |field: &str, value: Value| {
        let mut h = serde_json::to_value(header_of(&key)).unwrap();
        h[field] = value;
        let input = format!("{}.{}", b64(h.to_string()), b64(claims.to_string()));
        format!("{input}.{}", key.sign_input(input.as_bytes()).unwrap())
    };
    let other = other_key();
    let other_jwk = serde_json::to_value(other.public().jwk()).unwrap();
    let with = |key: &str, value: Value| {
        let mut c = claims.clone();
        c[key] = value;
        c
    };
    let without = |key: &str| {
        let mut c = claims.clone();
        c.as_object_mut().unwrap().remove(key);
        c
    };
    let kid = key.kid().to_owned();
    let header = |mut value: Value| {
        if let Some(fields) = value.as_object_mut() {
            fields.entry("kid").or_insert(json!(kid));
        }
        raw_signed(&value, claims, secret)
    };
    let (h, p, s) = segments(genuine);
    let mut flipped = s.clone().into_bytes();
    flipped[0] = if flipped[0] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();
    let other_claims = b64(with("sub", json!(Uuid::now_v7().to_string())).to_string());
    let longer_life = b64(with("exp", json!(now + 86_400)).to_string());
    let mut tokens: Vec<(&str, String)> = vec![
        // The algorithm.
        ("alg none", format!("{}.{p}.", b64(r#"{"alg":"none","typ":"at+jwt"}"#))),
        ("alg None", format!("{}.{p}.", b64(r#"{"alg":"None","typ":"at+jwt"}"#))),
        (
            "alg NONE with the genuine signature",
            format!("{}.{p}.{s}", b64(r#"{"alg":"NONE","typ":"at+jwt"}"#)),
        ),
        ("HS384", signed(Algorithm::HS384, at, claims, secret)),
        ("HS512", signed(Algorithm::HS512, at, claims, secret)),
        ("RS256 header, HMAC signature (key confusion)", header(json!({"alg": "RS256", "typ": "at+jwt"}))),
        ("RS256 header, genuine signature", format!("{}.{p}.{s}", b64(r#"{"alg":"RS256","typ":"at+jwt"}"#))),
        ("ES256 header", header(json!({"alg": "ES256", "typ": "at+jwt"}))),
        ("PS256 header", header(json!({"alg": "PS256", "typ": "at+jwt"}))),
        ("EdDSA header", header(json!({"alg": "EdDSA", "typ": "at+jwt"}))),
        ("no alg", header(json!({"typ": "at+jwt"}))),
        ("alg a number", header(json!({"alg": 256, "typ": "at+jwt"}))),
        (
            "unknown crit extension",
            header(json!({"alg": "HS256", "typ": "at+jwt", "crit": ["exp-v2"], "exp-v2": 1})),
        ),
        ("header not JSON", format!("{}.{p}.{s}", b64("{alg: HS256"))),
        ("header a JSON array", format!("{}.{p}.{s}", b64(r#"["HS256"]"#))),
        // The type.
        ("no typ", typed(None)),
        ("typ JWT", typed(Some("JWT"))),
        ("typ of a refresh token", typed(Some("rt+jwt"))),
        ("typ of an ID token", typed(Some("id+jwt"))),
        // The key: ours only, named, and nowhere else.
        ("HS256 keyed with our public key's PEM", signed(Algorithm::HS256, at, claims, secret)),
        (
            "HS256 keyed with our public key's modulus",
            signed(Algorithm::HS256, at, claims, &URL_SAFE_NO_PAD.decode(&key.public().n).unwrap()),
        ),
        ("a key we do not hold, naming itself", signed_by(&other, &header_of(&other), claims)),
        ("a key we do not hold, naming ours", signed_by(&other, &header_of(&key), claims)),
        ("an unknown kid", header(json!({"alg": "RS256", "typ": "at+jwt", "kid": "not-a-key-of-ours"}))),
        ("no kid", {
            let mut h = header_of(&key);
            h.kid = None;
            signed_by(&key, &h, claims)
        }),
        ("jku: keys at the attacker's URL", also("jku", json!("https://attacker.example/jwks.json"))),
        ("x5u: a certificate at the attacker's URL", also("x5u", json!("https://attacker.example/cert.pem"))),
        (
            "x5c: a certificate chain inline",
            also("x5c", json!(["MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"])),
        ),
        ("jwk: the attacker's RSA key inline", {
            let mut h = header_of(&other);
            h.kid = Some(key.kid().to_owned());
            h.jwk = Some(serde_json::from_value(other_jwk.clone()).unwrap());
            signed_by(&other, &h, claims)
        }),
        (
            "jwk: an oct key inline (a JWKS key of the wrong type), our signature",
            also("jwk", json!({"kty": "oct", "kid": kid, "k": b64("attacker-secret")})),
        ),
        ("crit: an extension we do not do, our signature", also("crit", json!(["exp"]))),
        ("x5t: a certificate's thumbprint, our signature", also("x5t", json!(b64("not our certificate")))),
        ("x5t#S256, our signature", also("x5t#S256", json!(b64("not our certificate either")))),
        // The signature.
        ("another secret", signed(Algorithm::HS256, at, claims, b"another-secret-another-secret-32")),
        ("an empty secret", signed(Algorithm::HS256, at, claims, b"")),
        (
            "the secret with a byte more",
            signed(Algorithm::HS256, at, claims, format!("{public_pem}x").as_bytes()),
        ),
        ("the secret's prefix", signed(Algorithm::HS256, at, claims, &secret[..secret.len() - 1])),
        ("signature stripped", format!("{h}.{p}.")),
        ("signature segment missing", format!("{h}.{p}")),
        ("signature altered", format!("{h}.{p}.{flipped}")),
        ("signature truncated", format!("{h}.{p}.{}", &s[..s.len() - 2])),
        ("signature of other claims", format!("{h}.{other_claims}.{s}")),
        ("lifetime extended under the genuine signature", format!("{h}.{longer_life}.{s}")),
        (
            "signature in standard base64",
            format!("{h}.{p}.{}", STANDARD.encode(URL_SAFE_NO_PAD.decode(&s).unwrap())),
        ),
        // Time.
        ("expired by one second", rs(&with("exp", json!(now - 1)))),
        ("expiring now", rs(&with("exp", json!(now)))),
        ("nbf in the future", rs(&with("nbf", json!(now + 1)))),
        ("exp a string", rs(&with("exp", json!((now + 600).to_string())))),
        ("exp null", rs(&with("exp", Value::Null))),
        ("exp beyond i64", rs(&with("exp", json!(u64::MAX)))),
        ("exp negative", rs(&with("exp", json!(-1)))),
        // Missing claims.
        ("missing exp", rs(&without("exp"))),
        ("missing sub", rs(&without("sub"))),
        ("missing iat", rs(&without("iat"))),
        ("missing iss", rs(&without("iss"))),
        ("missing aud", rs(&without("aud"))),
        ("missing jti", rs(&without("jti"))),
        ("empty jti", rs(&with("jti", json!("")))),
        // Whom it is for, and about whom.
        ("wrong iss", rs(&with("iss", json!("https://attacker.example")))),
        ("wrong aud", rs(&with("aud", json!("another-api")))),
        ("aud a list without ours", rs(&with("aud", json!(["another-api", "a-third"])))),
        (
            "iss with a trailing space",
            rs(&with("iss", json!(format!("{} ", claims["iss"].as_str().unwrap())))),
        ),
        ("sub not a uuid", rs(&with("sub", json!("admin")))),
        ("sub a number", rs(&with("sub", json!(1)))),
        ("sub of nobody", rs(&with("sub", json!(Uuid::now_v7().to_string())))),
        ("sub the nil uuid", rs(&with("sub", json!(Uuid::nil().to_string())))),
        ("a deleted user's genuine token", deleted.to_owned()),
        // Not an access token at all.
        ("a refresh token", refresh.to_owned()),
        ("claims not JSON", format!("{h}.{}.{s}", b64("not json"))),
        ("claims a JSON array", signed_by(&key, &header_of(&key), &json!([claims]))),
        ("five segments, as a JWE", format!("{h}.{p}.{s}.{s}.{s}")),
        ("four segments", format!("{genuine}.{s}")),
        ("not base64", "!!!.@@@.###".to_owned()),
        ("base64 with padding", format!("{h}=.{p}.{s}")),
        ("whitespace inside", format!("{h}. {p}.{s}")),
        ("non-ASCII", format!("{h}.{p}.{s}é")),
        ("oversized", format!("{h}.{}.{s}", "A".repeat(8_192))),
        ("the genuine token twice", format!("{genuine}{genuine}")),
        ("a single dot", ".".to_owned()),
    ];
    tokens.sort_by(|a, b| a.0.cmp(b.0));
    tokens.into_iter().map(|(name, token)| (name.to_owned(), token)).collect()
}

#[tokio::test]
async fn every_forged_token_is_refused_on_every_kind_of_protected_route() {
    let app = TestApp::memory();
    let admin = app.superuser().await;
    let user = app.user().await;
    let item = app.item(&user.access, "kept").await;
    let item_path = format!("/v1/items/{}", item["id"].as_str().unwrap());
    let gone = app.user().await;
    assert_eq!(app.delete("/v1/users/me", &gone.access).await.status, StatusCode::NO_CONTENT);
    // The forgeries are built on the superuser's genuine token: each would be a superuser's.
    let (_, payload, _) = segments(&admin.access);
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    let now = app.clock.now().timestamp();
    let corpus = corpus(&admin.access, &claims, now, &admin.refresh, &gone.access);
    assert!(corpus.len() >= 60, "{} tokens", corpus.len());

    let routes = [
        (Method::GET, "/v1/users/me".to_owned(), None),
        (Method::GET, "/v1/users".to_owned(), None),
        (Method::POST, "/v1/items".to_owned(), Some(json!({"title": "forged"}))),
        (Method::PATCH, item_path.clone(), Some(json!({"title": "forged"}))),
        (Method::DELETE, format!("/v1/users/{}", user.id), None),
    ];
    let mut tried = 0;
    for (name, token) in &corpus {
        for (method, path, body) in &routes {
            let response = match body {
                Some(body) => app.json(method.clone(), path, Some(token), body.clone()).await,
                None => app.call(method.clone(), path, Some(token)).await,
            };
            assert_eq!(
                response.status,
                StatusCode::UNAUTHORIZED,
                "{name}: {method} {path}: {}",
                response.text()
            );
            let challenge = response.header("www-authenticate").unwrap_or_default();
            assert_eq!(challenge, r#"Bearer error="invalid_token""#, "{name}: {method} {path}");
            tried += 1;
        }
    }
    println!("forged tokens: {} tokens x {} routes = {tried} requests, all 401", corpus.len(), routes.len());
    // Nothing they asked for happened.
    assert_eq!(app.get(&item_path, &user.access).await.json()["title"], "kept");
    assert_eq!(app.get("/v1/items", &user.access).await.json()["data"].as_array().unwrap().len(), 1);
    assert_eq!(app.get("/v1/users/me", &user.access).await.status, StatusCode::OK);
    // And the genuine token, through the same code, passes: each forgery fails for its own reason.
    assert_eq!(app.get("/v1/users", &admin.access).await.status, StatusCode::OK);
    let key = test_key();
    assert_eq!(
        app.get("/v1/users", &signed_by(&key, &header_of(&key), &claims)).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_deactivated_users_genuine_token_is_forbidden() {
    let app = TestApp::memory();
    let admin = app.superuser().await;
    let user = app.user().await;
    let path = format!("/v1/users/{}", user.id);
    let off = app.json(Method::PATCH, &path, Some(&admin.access), json!({"is_active": false})).await;
    assert_eq!(off.status, StatusCode::OK);
    for (method, path) in
        [(Method::GET, "/v1/users/me"), (Method::GET, "/v1/items"), (Method::DELETE, "/v1/users/me")]
    {
        let response = app.call(method.clone(), path, Some(&user.access)).await;
        assert_eq!(response.status, StatusCode::FORBIDDEN, "{method} {path}");
    }
    assert!(app.state.repos.users.get_user(user.id).await.unwrap().is_some(), "not deleted");
}
