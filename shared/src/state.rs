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
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore};

use crate::auth::jwt::Issuing;
use crate::auth::keys::SigningKey;
use crate::auth::signer::{KeyClients, KeySource};
use crate::auth::{Argon2Hasher, JwtKeys, PasswordHasher};
use crate::config::{Config, ConfigError};
use crate::cursor::CursorCodec;
use crate::deps::{Clock, IdGenerator, SystemClock, UuidV7};
use crate::metrics::Metrics;
use crate::repo::dynamo::DynamoStore;
use crate::repo::memory::MemoryStore;
use crate::repo::{HealthRepo, RepoResult, Repos};

#[derive(Debug, Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub repos: Repos,
    pub clock: Arc<dyn Clock>,
    pub ids: Arc<dyn IdGenerator>,
    pub hasher: Arc<dyn PasswordHasher>,
    pub jwt: Arc<JwtKeys>,
    pub cursors: Arc<CursorCodec>,
    /// Where each request's metrics go (EMF on stdout on Lambda; none locally).
    pub metrics: Metrics,
}

impl AppState {
    /// Production dependencies around the given repositories.
    pub fn new(config: Config, repos: Repos) -> Self {
        Self {
            jwt: Arc::new(JwtKeys::new(&config, repos.key_ring.clone())),
            cursors: Arc::new(CursorCodec),
            config: Arc::new(config),
            repos,
            clock: Arc::new(SystemClock),
            ids: Arc::new(UuidV7::default()),
            hasher: Arc::new(Argon2Hasher::owasp()),
            metrics: Metrics::from_env(),
        }
    }

    /// Everything in memory: for in-process tests and the zero-setup local server.
    pub fn in_memory(config: Config) -> Self {
        Self::new(config, Repos::from_store(Arc::new(MemoryStore::new())))
    }

    /// A function that checks no token and reads no record but the health check's (the docs):
    /// its store is made at the first health check, so its cold start builds nothing for
    /// DynamoDB. The rest of the state is in memory, and none of the docs routes reaches it.
    pub fn health_only(config: Config) -> Self {
        let mut state = Self::in_memory(config.clone());
        state.repos.health = Arc::new(OnFirstCheck { config, store: tokio::sync::OnceCell::new() });
        state
    }

    /// The Lambda cold start: configuration from the environment, DynamoDB as the store.
    pub async fn from_env() -> Result<Self, ConfigError> {
        Ok(Self::dynamodb(Config::from_env()?).await)
    }

    /// DynamoDB as the store: the table and (optional) endpoint of `config`. Unless
    /// `config.dynamodb_warm_up` is off (`DYNAMODB_WARM_UP=false`), the connection is opened
    /// here, before the first request.
    pub async fn dynamodb(config: Config) -> Self {
        let sdk = sdk_config(&config).await;
        Self::dynamodb_with(config, &sdk).await
    }

    /// As [`AppState::dynamodb`], with the SDK configuration the process loaded already.
    pub async fn dynamodb_with(config: Config, sdk: &aws_config::SdkConfig) -> Self {
        let client = Client::new(sdk);
        let store = DynamoStore::new(client, config.table_name.clone());
        let ring = if config.dynamodb_warm_up { store.warm_up().await } else { None };
        let state = Self::new(config, Repos::from_store(Arc::new(store)));
        if let Some(ring) = ring
            && let Err(e) = state.jwt.install(ring.unwrap_or_default(), state.clock.now())
        {
            tracing::error!(error = %e, "the key ring read at warm-up is unusable");
        }
        state
    }

    /// The cold start of a function that signs tokens (`auth`): as [`AppState::from_env`], and
    /// the signer of the ring's key made ready (a secret is read now, not in the first login).
    /// See [`issuing`] for what `SIGNING_KEY` may name.
    pub async fn signing_from_env() -> Result<Self, ConfigError> {
        let config = Config::from_env()?;
        let sdk = sdk_config(&config).await;
        let issuing = issuing(&config, Some(&sdk), false).await?;
        Self::dynamodb_with(config, &sdk).await.signing(issuing).await
    }

    /// This state, signing tokens as `issuing` says, made ready as [`JwtKeys::prepare`] says.
    pub async fn signing(self, issuing: Issuing) -> Result<Self, ConfigError> {
        let state = self.with_issuing(issuing);
        if let Err(e) = state.jwt.prepare(state.clock.now()).await {
            // The first login tries again, and answers 503 if it cannot either.
            tracing::warn!(error = %e, "the signing key is not ready yet");
        }
        Ok(state)
    }

    /// This state, signing tokens as `issuing` says (only `auth` and the local server sign);
    /// the key ring it has read is kept.
    pub fn with_issuing(mut self, issuing: Issuing) -> Self {
        self.jwt = Arc::new(self.jwt.with_issuing(issuing));
        self
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

    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }
}

/// How a process signs, from `config.signing_key`:
/// - a KMS key or a secret (deployed `auth`): the keys the ring names, read-only;
/// - a PEM file, a PEM under `sam local`, or unset (a key made now): a key held in-process,
///   which takes the ring over. Only where no deployment reads the table: the memory store
///   (`memory_store`), DynamoDB Local on this machine, or `sam local` given a DynamoDB endpoint.
///
/// Only a key in KMS or Secrets Manager needs the AWS SDK: `sdk` if the process has loaded it,
/// otherwise it is loaded here.
pub async fn issuing(
    config: &Config,
    sdk: Option<&aws_config::SdkConfig>,
    memory_store: bool,
) -> Result<Issuing, ConfigError> {
    let held = |key: Result<SigningKey, crate::auth::keys::KeyError>, source: KeySource| {
        let local_table = memory_store
            || (config.sam_local && config.dynamodb_endpoint.is_some())
            || config.dynamodb_endpoint.as_deref().is_some_and(crate::config::is_loopback);
        let key = key.map_err(|e| ConfigError::Key(e.to_string()))?;
        if !local_table {
            return Err(ConfigError::Key(
                "SIGNING_KEY names a key this process holds, which takes the key ring over: only for a \
                 local table (the memory store, DYNAMODB_ENDPOINT on this machine, sam local). A \
                 deployed function names a KMS key (kms:<ARN>, as template.yaml does) or a secret"
                    .to_owned(),
            ));
        }
        Ok(Issuing::held(Arc::new(key), source))
    };
    match config.signing_key.clone() {
        Some(KeySource::File(path)) => held(crate::auth::signer::read_pem_file(&path), KeySource::File(path)),
        Some(KeySource::Pem(pem)) => held(SigningKey::from_pem(&pem), KeySource::Pem(pem)),
        Some(source) => {
            let clients = match sdk {
                Some(sdk) => KeyClients::new(sdk, config.keys_endpoint.as_deref()),
                None => KeyClients::new(&sdk_config(config).await, config.keys_endpoint.as_deref()),
            };
            Ok(Issuing::remote(source, clients))
        }
        None => {
            let key = SigningKey::generate();
            let issuing = held(key, KeySource::Generated)?;
            tracing::warn!("SIGNING_KEY is not set: a key was made for this process; its tokens end with it");
            Ok(issuing)
        }
    }
}

/// Attempts of one DynamoDB call, the first included.
pub const DYNAMODB_ATTEMPTS: u32 = 3;
pub const DYNAMODB_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);
/// The most one DynamoDB call may take, retries included. `template.yaml`'s function timeout
/// must leave room above it (tests/tests/api/template.rs checks), so that a stuck DynamoDB is a 503
/// and not a Lambda timeout.
pub const DYNAMODB_OPERATION_TIMEOUT: Duration = Duration::from_secs(5);

/// Bounded retries and timeouts that fit inside the function's timeout: three attempts of at
/// most 2 s each, 5 s in all, so a stuck DynamoDB becomes a 503 well before Lambda kills us.
pub async fn dynamodb_client(config: &Config) -> Client {
    Client::new(&sdk_config(config).await)
}

/// The health check's DynamoDB store, made at the first check ([`AppState::health_only`]).
#[derive(Debug)]
struct OnFirstCheck {
    config: Config,
    store: tokio::sync::OnceCell<DynamoStore>,
}

#[async_trait::async_trait]
impl HealthRepo for OnFirstCheck {
    async fn reachable(&self) -> RepoResult<()> {
        let made = self.store.get_or_init(|| async {
            DynamoStore::new(dynamodb_client(&self.config).await, self.config.table_name.clone())
        });
        made.await.reachable().await
    }
}

/// The AWS SDK configuration [`dynamodb_client`] is built from: bounded retries and timeouts,
/// AWS's roots, and DynamoDB Local's endpoint (with stand-in credentials) when one is set. The
/// local stream poller builds its DynamoDB Streams client from it too.
pub async fn sdk_config(config: &Config) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .retry_config(RetryConfig::standard().with_max_attempts(DYNAMODB_ATTEMPTS))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(1))
                .operation_attempt_timeout(DYNAMODB_ATTEMPT_TIMEOUT)
                .operation_timeout(DYNAMODB_OPERATION_TIMEOUT)
                .build(),
        );
    loader = loader.http_client(https_client(config.dynamodb_endpoint.as_deref()));
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
    loader.load().await
}

/// The root certificates of AWS service endpoints (shared/certs/README.md).
pub const AWS_ROOT_CERTIFICATES: [&str; 5] = [
    include_str!("../certs/Amazon_Root_CA_1.pem"),
    include_str!("../certs/Amazon_Root_CA_2.pem"),
    include_str!("../certs/Amazon_Root_CA_3.pem"),
    include_str!("../certs/Amazon_Root_CA_4.pem"),
    include_str!("../certs/Starfield_Services_Root_Certificate_Authority_-_G2.pem"),
];

/// The SDK's HTTPS client (rustls, on ring) trusting AWS's roots only, rather than loading the
/// machine's whole store at every cold start; an `https://` endpoint of one's own adds the
/// machine's roots.
pub fn https_client(endpoint: Option<&str>) -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    let mut trust = TrustStore::empty();
    for pem in AWS_ROOT_CERTIFICATES {
        trust.add_pem_certificate(pem.as_bytes());
    }
    if endpoint.is_some_and(|e| e.trim_start().to_ascii_lowercase().starts_with("https://")) {
        trust = trust.with_native_roots(true);
    }
    let context = TlsContext::builder().with_trust_store(trust).build().unwrap_or_else(|e| {
        tracing::warn!(error = %e, "AWS root certificates unusable; trusting the machine's store");
        TlsContext::default()
    });
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::Ring))
        .tls_context(context)
        .build_https()
}

#[cfg(test)]
mod tests {
    use base64::Engine;

    use super::*;

    #[test]
    fn the_aws_root_certificates_are_whole_pem_certificates() {
        for pem in AWS_ROOT_CERTIFICATES {
            let body = pem
                .trim()
                .strip_prefix("-----BEGIN CERTIFICATE-----")
                .and_then(|rest| rest.strip_suffix("-----END CERTIFICATE-----"))
                .expect("one PEM certificate");
            let der = base64::engine::general_purpose::STANDARD
                .decode(body.split_whitespace().collect::<String>())
                .expect("base64");
            // A DER SEQUENCE with a two-byte length: the whole certificate.
            assert_eq!(der[0], 0x30, "not DER");
            assert_eq!(usize::from(der[2]) << 8 | usize::from(der[3]), der.len() - 4);
        }
    }

    #[test]
    fn an_https_client_is_built_for_aws_and_for_an_endpoint_of_ones_own() {
        let _ = https_client(None);
        let _ = https_client(Some("https://localhost:4566"));
        let _ = https_client(Some("http://127.0.0.1:8000"));
    }
}
