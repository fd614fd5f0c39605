//! The `Authorization` header, whole: scheme, spacing, and the token, on a protected route.
#![no_main]

use api_fuzz::call;
use axum::body::Body;
use axum::http::{HeaderValue, Request, StatusCode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = HeaderValue::from_bytes(data) else { return };
    let request =
        Request::get("/v1/users/me").header("authorization", value).body(Body::empty()).expect("request");
    let status = call(request);
    // Only the fixture's own token could pass, and the fuzzer does not have it.
    assert_eq!(status, StatusCode::UNAUTHORIZED);
});
