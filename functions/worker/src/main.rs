//! The `worker` Lambda: the handler of `lib.rs` on lambda_runtime, for the table's stream and
//! the scheduled sweep.

use lambda_runtime::{LambdaEvent, service_fn};

// One thread, as every function: see `shared::run_lambda`.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::telemetry::init();
    // The worker checks and issues no token: it holds no key and is given none.
    let config = match shared::Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            tracing::error!("configuration error: {e}");
            std::process::exit(1);
        }
    };
    // One SDK configuration (credentials, region, the HTTPS client) for DynamoDB and SES.
    let sdk = shared::state::sdk_config(&config).await;
    let mailer = worker::mailer_with(&config, &sdk);
    let state = shared::AppState::dynamodb_with(config, &sdk).await;
    let worker = worker::Worker::new(&state, mailer);
    lambda_runtime::run(service_fn(|event: LambdaEvent<worker::Event>| {
        let worker = worker.clone();
        async move {
            let deadline = worker::deadline_of(event.context.deadline);
            worker.handle(event.payload, deadline).await.map_err(lambda_runtime::Error::from)
        }
    }))
    .await
}
