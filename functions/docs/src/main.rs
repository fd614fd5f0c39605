//! The `docs` Lambda: the router of `lib.rs` on lambda_http. The document and Swagger UI read no
//! data and check no token, so it starts without a DynamoDB client.

// One thread: Lambda hands an execution environment one request at a time, so worker threads
// would only add cross-thread wake-ups to every invocation and time to every cold start (argon2
// still runs on tokio's blocking pool). BENCHMARKS.md measures both.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    shared::run_lambda_without_store(docs::router).await
}
