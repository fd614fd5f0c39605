//! `If-Match` on an item write: parsed, compared, never a 5xx.
#![no_main]

use api_fuzz::{call, fixture, json};
use axum::http::HeaderValue;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = HeaderValue::from_bytes(data) else { return };
    let f = fixture();
    let _ = shared::web::IfMatch::parse(value.to_str().unwrap_or_default());
    let mut request = json("PATCH", &f.item_path, Some(&f.token), "{}");
    request.headers_mut().insert("if-match", value);
    call(request);
});
