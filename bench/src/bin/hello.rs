//! The bench's yardstick: a hello-world `lambda_runtime` function (the shape of the runtime's
//! own `basic-lambda` example), built with the same profile and started the same way as the
//! project's functions, so their init times can be compared with the least a Rust function does.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(|_event: LambdaEvent<Value>| async {
        Ok::<_, Error>(json!({"statusCode": 200, "body": "Hello, world!"}))
    }))
    .await
}
