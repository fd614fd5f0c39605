//! The `docs` Lambda: the router of `lib.rs` on lambda_http. The document and Swagger UI read no
//! data and check no token, so it starts without a DynamoDB client.

// One thread, as every function: see `shared::run_lambda`.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    shared::run_lambda_without_store(docs::router).await
}
