//! The fingerprint of a keyed request's payload: the SHA-256 of its JSON with every object's keys
//! in order (key order and whitespace do not matter), secret fields taken out.

use serde_json::Value;

/// The fingerprint of a body: the SHA-256 of its JSON with object keys in order, the route's
/// secret fields (at the top level) taken out; and the secret's value, for a retry's check
/// against the account's own hash (never stored). On a route with a secret, only a JSON object
/// that holds it as a string is keyed (`None` otherwise: the route answers the body 422 without a
/// key, so no other shape of a password, and no retry without one, is ever fingerprinted). On
/// any other route, a body that is not JSON is fingerprinted as it is.
pub(super) fn fingerprint(body: &[u8], secrets: &[&str]) -> Option<(String, Option<String>)> {
    use sha2::{Digest, Sha256};
    let (canonical, secret) = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(mut object)) => {
            let mut secret = None;
            for name in secrets {
                match object.remove(*name) {
                    Some(Value::String(value)) => secret = Some(value),
                    _ => return None,
                }
            }
            let mut text = String::from("json:");
            write_canonical(&Value::Object(object), &mut text);
            (text.into_bytes(), secret)
        }
        _ if !secrets.is_empty() => return None,
        Ok(value) => {
            let mut text = String::from("json:");
            write_canonical(&value, &mut text);
            (text.into_bytes(), None)
        }
        Err(_) => ([b"raw:".as_slice(), body].concat(), None),
    };
    let digest = Sha256::digest(&canonical);
    Some((digest.iter().map(|b| format!("{b:02x}")).collect(), secret))
}

/// JSON with every object's keys in order, whatever order the map keeps them in.
fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(object) => {
            let mut keys: Vec<&String> = object.keys().collect();
            keys.sort();
            out.push('{');
            for (n, key) in keys.into_iter().enumerate() {
                if n > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                if let Some(value) = object.get(key) {
                    write_canonical(value, out);
                }
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (n, item) in items.iter().enumerate() {
                if n > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::fingerprint;

    #[test]
    fn key_order_and_whitespace_do_not_matter() {
        let a = fingerprint(br#"{"b": [1, {"y": 2, "x": 1}], "a": "t"}"#, &[]).unwrap();
        let b = fingerprint(br#"{"a":"t","b":[1,{"x":1,"y":2}]}"#, &[]).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, fingerprint(br#"{"a":"t","b":[{"x":1,"y":2},1]}"#, &[]).unwrap(), "arrays keep order");
        // Not JSON: as it is.
        assert!(fingerprint(b"not json", &[]).is_some());
    }

    #[test]
    fn a_password_is_taken_out_and_only_a_string_password_is_keyed() {
        let (one, secret) =
            fingerprint(br#"{"email": "a@example.com", "password": "one"}"#, &["password"]).unwrap();
        let (two, _) =
            fingerprint(br#"{"password": "two", "email": "a@example.com"}"#, &["password"]).unwrap();
        assert_eq!(one, two, "the password is not in the fingerprint");
        assert_eq!(secret.as_deref(), Some("one"));
        for unkeyed in [
            &br#"{"email": "a@example.com"}"#[..],
            br#"{"email": "a@example.com", "password": 12345678}"#,
            br#"{"email": "a@example.com", "password": null}"#,
            br#"["password", "one"]"#,
            br#""password""#,
            b"email=a&password=one",
        ] {
            assert_eq!(fingerprint(unkeyed, &["password"]), None, "{}", String::from_utf8_lossy(unkeyed));
        }
    }
}
