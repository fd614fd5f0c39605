//! The `docs` Lambda: the router of `lib.rs` on lambda_http. The document and Swagger UI read no
//! data and check no token, so it starts without a DynamoDB client.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::run_lambda_without_store(docs::router).await
}
