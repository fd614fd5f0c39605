//! The fingerprint of a keyed request's payload: the SHA-256 of its JSON with every object's keys
//! in order (key order and whitespace do not matter), secret fields taken out.

use serde_json::Value;

/// The fingerprint of a body: the SHA-256 of its JSON with object keys in order, secret fields
/// (at the top level) taken out; and the secret field's value, if there was one. A body that is
/// not JSON is fingerprinted as it is (the handler answers it 422, and that is kept).
pub(super) fn fingerprint(body: &[u8], secrets: &[&str]) -> (String, Option<String>) {
    use sha2::{Digest, Sha256};
    let (canonical, secret) = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(mut object)) => {
            let mut secret = None;
            for name in secrets {
                if let Some(value) = object.remove(*name) {
                    secret = Some(value.as_str().map_or_else(|| value.to_string(), str::to_owned));
                }
            }
            let mut text = String::from("json:");
            write_canonical(&Value::Object(object), &mut text);
            (text.into_bytes(), secret)
        }
        Ok(value) => {
            let mut text = String::from("json:");
            write_canonical(&value, &mut text);
            (text.into_bytes(), None)
        }
        Err(_) => ([b"raw:".as_slice(), body].concat(), None),
    };
    let digest = Sha256::digest(&canonical);
    (digest.iter().map(|b| format!("{b:02x}")).collect(), secret)
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
