//! The keys' checks: a round trip, and the forged tokens a key ring must refuse.

use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, EllipticCurveKeyParameters, EllipticCurveKeyType, Jwk, JwkSet,
    OctetKeyParameters, OctetKeyType,
};
use jsonwebtoken::{Algorithm, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::*;

const TEST_KEY: &str = include_str!("../testdata/test_signing_key.pem");
const OTHER_KEY: &str = include_str!("../testdata/other_signing_key.pem");

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
struct Claims {
    sub: String,
    exp: i64,
}

fn claims() -> Claims {
    Claims { sub: "someone".into(), exp: 4_102_444_800 }
}

fn validation() -> Validation {
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_required_spec_claims(&["exp", "sub"]);
    validation
}

fn verifier_of(keys: &[&SigningKey]) -> Verifier {
    let public: Vec<PublicKey> = keys.iter().map(|k| k.public().clone()).collect();
    Verifier::new(&public, validation()).unwrap()
}

#[test]
fn a_token_verifies_under_its_own_key_and_names_it() {
    let key = SigningKey::from_pem(TEST_KEY).unwrap();
    let token = key.sign(&claims(), "at+jwt").unwrap();
    let data = verifier_of(&[&key]).decode::<Claims>(&token, 0).unwrap();
    assert_eq!(data.claims, claims());
    assert_eq!(data.header.kid.as_deref(), Some(key.kid()));
    assert_eq!(data.header.typ.as_deref(), Some("at+jwt"));
    // The kid is the RFC 7638 thumbprint: 43 base64url characters of SHA-256.
    assert_eq!(key.kid().len(), 43);
    // During a rotation's overlap, a verifier of both keys takes tokens of either.
    let other = SigningKey::from_pem(OTHER_KEY).unwrap();
    let both = verifier_of(&[&key, &other]);
    assert!(both.decode::<Claims>(&token, 0).is_some());
    assert!(both.decode::<Claims>(&other.sign(&claims(), "at+jwt").unwrap(), 0).is_some());
    // The debug form never shows the key.
    assert!(!format!("{key:?}").contains("PRIVATE"));
}

#[test]
fn a_token_of_an_unknown_or_missing_kid_is_refused() {
    let (key, other) = (SigningKey::from_pem(TEST_KEY).unwrap(), SigningKey::from_pem(OTHER_KEY).unwrap());
    let verifier = verifier_of(&[&key]);
    assert!(verifier.decode::<Claims>(&other.sign(&claims(), "at+jwt").unwrap(), 0).is_none(), "unknown kid");
    // A token signed by the key, its kid taken out.
    let mut header = Header::new(Algorithm::RS256);
    header.typ = Some("at+jwt".into());
    let der = {
        use rsa::pkcs1::EncodeRsaPrivateKey;
        use rsa::pkcs8::DecodePrivateKey;
        rsa::RsaPrivateKey::from_pkcs8_pem(TEST_KEY).unwrap().to_pkcs1_der().unwrap()
    };
    let without_kid =
        jsonwebtoken::encode(&header, &claims(), &EncodingKey::from_rsa_der(der.as_bytes())).unwrap();
    assert!(verifier.decode::<Claims>(&without_kid, 0).is_none(), "no kid");
    // Another key's token relabelled with this key's kid fails its signature.
    header.kid = Some(key.kid().to_owned());
    let other_der = {
        use rsa::pkcs1::EncodeRsaPrivateKey;
        use rsa::pkcs8::DecodePrivateKey;
        rsa::RsaPrivateKey::from_pkcs8_pem(OTHER_KEY).unwrap().to_pkcs1_der().unwrap()
    };
    let relabelled =
        jsonwebtoken::encode(&header, &claims(), &EncodingKey::from_rsa_der(other_der.as_bytes())).unwrap();
    assert!(verifier.decode::<Claims>(&relabelled, 0).is_none(), "relabelled");
}

#[test]
fn an_hs256_token_keyed_with_the_public_key_is_refused() {
    let key = SigningKey::from_pem(TEST_KEY).unwrap();
    let verifier = verifier_of(&[&key]);
    let public = rsa::RsaPrivateKey::from_pkcs8_pem(TEST_KEY).unwrap().to_public_key();
    let pem = {
        use rsa::pkcs8::EncodePublicKey;
        public.to_public_key_pem(rsa::pkcs8::LineEnding::LF).unwrap()
    };
    let der = {
        use rsa::pkcs1::EncodeRsaPublicKey;
        public.to_pkcs1_der().unwrap()
    };
    let jwk_json = serde_json::to_vec(&key.public().jwk()).unwrap();
    for secret in [pem.as_bytes(), der.as_bytes(), &jwk_json, key.public().n.as_bytes()] {
        let mut header = Header::new(Algorithm::HS256);
        header.typ = Some("at+jwt".into());
        header.kid = Some(key.kid().to_owned());
        let forged = jsonwebtoken::encode(&header, &claims(), &EncodingKey::from_secret(secret)).unwrap();
        assert!(verifier.decode::<Claims>(&forged, 0).is_none());
    }
}

#[test]
fn a_header_that_points_elsewhere_for_a_key_is_refused_even_with_a_good_signature() {
    let key = SigningKey::from_pem(TEST_KEY).unwrap();
    let verifier = verifier_of(&[&key]);
    let der = {
        use rsa::pkcs1::EncodeRsaPrivateKey;
        rsa::RsaPrivateKey::from_pkcs8_pem(TEST_KEY).unwrap().to_pkcs1_der().unwrap()
    };
    let encoding = EncodingKey::from_rsa_der(der.as_bytes());
    let base = || {
        let mut header = Header::new(Algorithm::RS256);
        header.typ = Some("at+jwt".into());
        header.kid = Some(key.kid().to_owned());
        header
    };
    let mut cases: Vec<(&str, Header)> = Vec::new();
    let mut h = base();
    h.jku = Some("https://evil.example/jwks.json".into());
    cases.push(("jku", h));
    let mut h = base();
    h.x5u = Some("https://evil.example/cert.pem".into());
    cases.push(("x5u", h));
    let mut h = base();
    h.jwk = Some(key.public().jwk());
    cases.push(("jwk", h));
    let mut h = base();
    h.x5c = Some(vec!["MIIB".into()]);
    cases.push(("x5c", h));
    let mut h = base();
    h.crit = Some(vec!["exp".into()]);
    cases.push(("crit", h));
    for (what, header) in cases {
        let token = jsonwebtoken::encode(&header, &claims(), &encoding).unwrap();
        assert!(verifier.decode::<Claims>(&token, 0).is_none(), "{what}");
    }
    // The same token without them verifies: the refusal is the header's.
    assert!(
        verifier.decode::<Claims>(&jsonwebtoken::encode(&base(), &claims(), &encoding).unwrap(), 0).is_some()
    );
}

#[test]
fn a_published_key_of_the_wrong_type_is_not_trusted() {
    let key = SigningKey::from_pem(TEST_KEY).unwrap();
    let published = JwkSet { keys: vec![key.public().jwk()] };
    assert_eq!(PublicKey::from_jwk(&published.keys[0]), Ok(key.public().clone()));
    let mut octet = published.keys[0].clone();
    octet.algorithm = AlgorithmParameters::OctetKey(OctetKeyParameters {
        key_type: OctetKeyType::Octet,
        value: "c2VjcmV0".into(),
    });
    assert_eq!(PublicKey::from_jwk(&octet), Err(KeyError::NotAnRs256Key));
    let mut ec: Jwk = published.keys[0].clone();
    ec.algorithm = AlgorithmParameters::EllipticCurve(EllipticCurveKeyParameters {
        key_type: EllipticCurveKeyType::EC,
        curve: EllipticCurve::P256,
        x: "x".into(),
        y: "y".into(),
    });
    assert_eq!(PublicKey::from_jwk(&ec), Err(KeyError::NotAnRs256Key));
    let mut for_encryption = published.keys[0].clone();
    for_encryption.common.public_key_use = Some(jsonwebtoken::jwk::PublicKeyUse::Encryption);
    assert_eq!(PublicKey::from_jwk(&for_encryption), Err(KeyError::NotAnRs256Key));
    let mut mislabelled = published.keys[0].clone();
    mislabelled.common.key_id = Some("another".into());
    assert_eq!(PublicKey::from_jwk(&mislabelled), Err(KeyError::KidMismatch));
    // A 1024-bit key is too small.
    let small = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 1024).unwrap();
    let pem = {
        use rsa::pkcs8::EncodePrivateKey;
        small.to_pkcs8_pem(rsa::pkcs8::LineEnding::LF).unwrap()
    };
    assert_eq!(SigningKey::from_pem(&pem).err(), Some(KeyError::TooSmall(1024)));
}
