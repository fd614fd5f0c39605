//! Prints the OpenAPI document: `cargo run -p docs --bin openapi > openapi.json` regenerates
//! the checked-in copy (a test fails while it is stale).

#[allow(clippy::print_stdout)]
fn main() {
    print!("{}", docs::openapi_json());
}
