//! Every JSON request schema, through its endpoint (every operation of the document with a JSON
//! body): the first byte picks the endpoint, the rest is the body. Each must answer a 2xx or a
//! 4xx.
#![no_main]

use api_fuzz::{call, fixture, json};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else { return };
    let f = fixture();
    let (method, path) = &f.json_endpoints[usize::from(pick) % f.json_endpoints.len()];
    call(json(method, path, Some(&f.token), body.to_vec()));
});
