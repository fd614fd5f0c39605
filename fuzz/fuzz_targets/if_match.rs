//! `If-Match` on an item write (an empty update, which changes nothing): 200 when it matches the
//! item's `"1"` or is `*`, 412 for anything else, malformed values included.
#![no_main]

use api_fuzz::{call, fixture, json};
use axum::http::{HeaderValue, StatusCode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = HeaderValue::from_bytes(data) else { return };
    let f = fixture();
    let parsed = value.to_str().ok().and_then(shared::web::IfMatch::parse);
    let expected = match parsed {
        Some(tags) if tags.matches("\"1\"") => StatusCode::OK,
        _ => StatusCode::PRECONDITION_FAILED,
    };
    let mut request = json("PATCH", &f.item_path, Some(&f.token), "{}");
    request.headers_mut().insert("if-match", value.clone());
    assert_eq!(call(request), expected, "{value:?}");
});
