//! Listing cursors: decoded directly, and sent to both listings as a query parameter.
#![no_main]

use api_fuzz::{call, fixture};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    if let Ok(text) = std::str::from_utf8(data) {
        // The listings' own names (see the items and users functions).
        for listing in [format!("items:{}", f.user_id), "users".to_owned()] {
            assert!(f.state.cursors.decode(&listing, text).is_err(), "a forged cursor decoded: {text:?}");
        }
    }
    let query: String = data.iter().map(|b| format!("%{b:02X}")).collect();
    for path in ["/v1/items", "/v1/users"] {
        let request = Request::get(format!("{path}?cursor={query}"))
            .header("authorization", format!("Bearer {}", f.token))
            .body(Body::empty())
            .expect("request");
        let status = call(request);
        assert!(status.is_client_error() || status == StatusCode::OK, "{path}: {status}");
    }
});
