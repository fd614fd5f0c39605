//! The `docs` Lambda: the router of `lib.rs` on lambda_http.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::run_lambda(docs::router).await
}
