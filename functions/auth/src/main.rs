//! The `auth` Lambda: the router of `lib.rs` on lambda_http.

// One thread, as every function: see `shared::run_lambda`.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    shared::run_signing_lambda(auth::router).await
}
