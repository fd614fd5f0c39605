//! The `docs` Lambda: the router of `lib.rs` on lambda_http. It checks no token and reads one
//! fixed record at most (`GET /v1/health`), so its cold start builds no DynamoDB client and
//! reads nothing; the first health check makes the client.

// One thread, as every function: see `shared::run_lambda`.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    shared::run_health_only_lambda(docs::router).await
}
