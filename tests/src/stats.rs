//! The few statistics the benchmarks print.

use std::time::Duration;

pub fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

pub fn percentile(mut samples: Vec<Duration>, p: f64) -> Duration {
    samples.sort();
    samples[((samples.len() as f64 - 1.0) * p).round() as usize]
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The value after `name` on a benchmark's command line (`--rounds 400`).
pub fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

/// The application a benchmark measures, with `config`, on the store `--store` names: `memory`
/// (the default) or `dynamodb` (DynamoDB Local as the tests start it, or `DYNAMODB_ENDPOINT`; a
/// fresh table).
pub async fn bench_state(args: &[String], config: shared::Config) -> (String, shared::AppState) {
    let store = arg(args, "--store").unwrap_or_else(|| "memory".to_owned());
    let state = match store.as_str() {
        "memory" => shared::AppState::in_memory(config),
        "dynamodb" => {
            let mut config = config;
            config.table_name = crate::dynamo::config().table_name;
            config.dynamodb_endpoint = Some(crate::dynamo::endpoint());
            let store = crate::dynamo::store_with(&config).await;
            shared::AppState::new(config, shared::repo::Repos::from_store(store))
        }
        other => panic!("--store memory|dynamodb, not {other}"),
    };
    (store, state)
}
