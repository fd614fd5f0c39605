//! JWT segments straight into verification (header, claims and signature decoding).
#![no_main]

use api_fuzz::fixture;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else { return };
    let f = fixture();
    let now = shared::deps::Clock::now(f.state.clock.as_ref());
    let verified = f.runtime.block_on(f.state.jwt.verify(token, now));
    assert!(verified.is_err(), "a forged token verified: {token:?}");
});
