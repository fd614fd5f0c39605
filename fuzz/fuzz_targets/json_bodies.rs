//! Every JSON request schema, through its endpoint: the first byte picks the endpoint, the rest
//! is the body. Each must answer a 2xx or a 4xx.
#![no_main]

use api_fuzz::{call, fixture, json};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else { return };
    let f = fixture();
    let (method, path, token) = match pick % 7 {
        0 => ("POST", "/v1/users/signup".to_owned(), None),
        1 => ("PATCH", "/v1/users/me".to_owned(), Some(&f.token)),
        2 => ("PATCH", "/v1/users/me/password".to_owned(), Some(&f.token)),
        3 => ("POST", "/v1/users".to_owned(), Some(&f.token)),
        4 => ("PATCH", f.user_path.clone(), Some(&f.token)),
        5 => ("POST", "/v1/items".to_owned(), Some(&f.token)),
        _ => ("PATCH", f.item_path.clone(), Some(&f.token)),
    };
    call(json(method, &path, token.map(String::as_str), body.to_vec()));
});
