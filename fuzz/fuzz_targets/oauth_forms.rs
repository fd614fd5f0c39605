//! The token and revocation endpoints' `application/x-www-form-urlencoded` bodies.
#![no_main]

use api_fuzz::call;
use axum::body::Body;
use axum::http::Request;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else { return };
    let path = if pick % 2 == 0 { "/v1/auth/token" } else { "/v1/auth/revoke" };
    let request = Request::post(path)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(body.to_vec()))
        .expect("request");
    call(request);
});
