//! The application state every handler receives: configuration and each outside dependency as a
//! replaceable trait object. Production builds it once per cold start ([`AppState::from_env`]);
//! tests swap any part (`with_clock`, `with_hasher`, `with_ids`, or their own `Repos`), which is
//! this project's answer to FastAPI's `dependency_overrides`.

use std::sync::Arc;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::Client;

use crate::auth::{Argon2Hasher, JwtKeys, PasswordHasher};
use crate::config::{Config, ConfigError};
use crate::deps::{Clock, IdGenerator, SystemClock, UuidV7};
use crate::repo::Repos;
use crate::repo::dynamo::DynamoStore;
use crate::repo::memory::MemoryStore;
use crate::web::CursorCodec;

#[derive(Debug, Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub repos: Repos,
    pub clock: Arc<dyn Clock>,
    pub ids: Arc<dyn IdGenerator>,
    pub hasher: Arc<dyn PasswordHasher>,
    pub jwt: Arc<JwtKeys>,
    pub cursors: Arc<CursorCodec>,
}

impl AppState {
    /// Production dependencies around the given repositories.
    pub fn new(config: Config, repos: Repos) -> Self {
        Self {
            jwt: Arc::new(JwtKeys::new(&config)),
            cursors: Arc::new(CursorCodec::new(config.jwt_secret_bytes())),
            config: Arc::new(config),
            repos,
            clock: Arc::new(SystemClock),
            ids: Arc::new(UuidV7::default()),
            hasher: Arc::new(Argon2Hasher::owasp()),
        }
    }

    /// Everything in memory: for in-process tests and the zero-setup local server.
    pub fn in_memory(config: Config) -> Self {
        Self::new(config, Repos::from_store(Arc::new(MemoryStore::new())))
    }

    /// The Lambda cold start: configuration from the environment, DynamoDB as the store.
    /// Unless `DYNAMODB_WARM_UP=false`, the DynamoDB connection is opened here, during init.
    pub async fn from_env() -> Result<Self, ConfigError> {
        let config = Config::from_env()?;
        let client = dynamodb_client(&config).await;
        let store = DynamoStore::new(client, config.table_name.clone());
        if config.dynamodb_warm_up {
            store.warm_up().await;
        }
        Ok(Self::new(config, Repos::from_store(Arc::new(store))))
    }

    /// DynamoDB as the store: the table and (optional) endpoint of `config`.
    pub async fn dynamodb(config: Config) -> Self {
        let client = dynamodb_client(&config).await;
        let store = DynamoStore::new(client, config.table_name.clone());
        Self::new(config, Repos::from_store(Arc::new(store)))
    }

    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    pub fn with_hasher(mut self, hasher: Arc<dyn PasswordHasher>) -> Self {
        self.hasher = hasher;
        self
    }

    pub fn with_ids(mut self, ids: Arc<dyn IdGenerator>) -> Self {
        self.ids = ids;
        self
    }
}

/// Attempts of one DynamoDB call, the first included.
pub const DYNAMODB_ATTEMPTS: u32 = 3;
pub const DYNAMODB_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);
/// The most one DynamoDB call may take, retries included. `template.yaml`'s function timeout
/// must leave room above it (tests/tests/template.rs checks), so that a stuck DynamoDB is a 503
/// and not a Lambda timeout.
pub const DYNAMODB_OPERATION_TIMEOUT: Duration = Duration::from_secs(5);

/// Bounded retries and timeouts that fit inside the function's timeout: three attempts of at
/// most 2 s each, 5 s in all, so a stuck DynamoDB becomes a 503 well before Lambda kills us.
pub async fn dynamodb_client(config: &Config) -> Client {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .retry_config(RetryConfig::standard().with_max_attempts(DYNAMODB_ATTEMPTS))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(1))
                .operation_attempt_timeout(DYNAMODB_ATTEMPT_TIMEOUT)
                .operation_timeout(DYNAMODB_OPERATION_TIMEOUT)
                .build(),
        );
    if let Some(endpoint) = &config.dynamodb_endpoint {
        // DynamoDB Local accepts any credentials and region; supply them when none are set so
        // that local runs need no AWS account.
        loader = loader.endpoint_url(endpoint);
        if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
            loader = loader.credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "local",
                "local",
                None,
                None,
                "dynamodb-local",
            ));
        }
        if std::env::var_os("AWS_REGION").is_none() && std::env::var_os("AWS_DEFAULT_REGION").is_none() {
            loader = loader.region(aws_config::Region::new("us-east-1"));
        }
    }
    Client::new(&loader.load().await)
}
