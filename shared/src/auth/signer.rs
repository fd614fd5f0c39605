//! Where the private key of access tokens lives, and signing with it. Only `auth` (and the
//! admin command, for public keys) builds these; no other function has the permission to.
//!
//! - `kms:<key id or ARN>`: a KMS asymmetric key (RSA_2048, SIGN_VERIFY). The key never leaves
//!   KMS; each token is one `kms:Sign` call (docs/signing-keys.md has the measurements).
//! - `secretsmanager:<secret id>`: PEM in Secrets Manager, read once per cold start.
//! - `file:<path>`: a PEM file (local runs).
//! - `pem:<PEM>`: the key itself, accepted only under `sam local` (whose functions can be given
//!   nothing but variables, by the env-vars file `scripts/sam-local` writes); refused anywhere
//!   else, so a deployed function can never be configured with a key in its environment.
//! - unset: locally, a key made at start (`generated`).

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{MessageType, SigningAlgorithmSpec};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rsa::pkcs8::DecodePublicKey;
use tokio::sync::Semaphore;

use super::keys::{KeyError, PublicKey, SigningKey};
use super::password::hashing_slots;
pub use crate::config::{KeySource, SourceError};

/// Signs the JWS signing input of a token with one key, RS256.
#[async_trait]
pub trait TokenSigner: Send + Sync + std::fmt::Debug {
    /// The base64url signature of `input`.
    async fn sign(&self, input: &[u8]) -> Result<String, KeyError>;
}

/// A key held in this process (a file, a secret, a PEM, or one made at start). It signs on
/// tokio's blocking pool, as argon2 hashes, and as many at once as argon2 may
/// ([`hashing_slots`]: a core is left to the async executor). An RSA-2048 signature is some
/// 2 ms of CPU; on the async workers it held up every request behind a login (the local server
/// runs one worker).
#[derive(Debug, Clone)]
pub struct HeldSigner(pub Arc<SigningKey>);

/// The signatures a process makes at once, with held keys.
fn signing_slots() -> &'static Semaphore {
    static SLOTS: OnceLock<Semaphore> = OnceLock::new();
    SLOTS.get_or_init(|| Semaphore::new(hashing_slots()))
}

#[async_trait]
impl TokenSigner for HeldSigner {
    async fn sign(&self, input: &[u8]) -> Result<String, KeyError> {
        let _slot = signing_slots()
            .acquire()
            .await
            .map_err(|e| KeyError::Unavailable(format!("signing slots: {e}")))?;
        let (key, input) = (self.0.clone(), input.to_vec());
        match tokio::task::spawn_blocking(move || key.sign_input(&input)).await {
            Ok(signed) => signed,
            // A panic stays a panic (the router's catch-panic layer answers 500, without its
            // message); only a task the runtime cancelled (it is shutting down) is a 503.
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => Err(KeyError::Unavailable(format!("signing task: {e}"))),
        }
    }
}

/// A KMS key: `kms:Sign`, RSASSA-PKCS1-v1_5 with SHA-256 (RS256).
#[derive(Debug)]
pub struct KmsSigner {
    client: aws_sdk_kms::Client,
    key_id: String,
}

impl KmsSigner {
    pub fn new(client: aws_sdk_kms::Client, key_id: &str) -> Self {
        Self { client, key_id: key_id.to_owned() }
    }
}

#[async_trait]
impl TokenSigner for KmsSigner {
    async fn sign(&self, input: &[u8]) -> Result<String, KeyError> {
        let signed = self
            .client
            .sign()
            .key_id(&self.key_id)
            .message(Blob::new(input))
            .message_type(MessageType::Raw)
            .signing_algorithm(SigningAlgorithmSpec::RsassaPkcs1V15Sha256)
            .send()
            .await
            .map_err(|e| {
                KeyError::Unavailable(format!("kms:Sign: {}", aws_sdk_kms::error::DisplayErrorContext(e)))
            })?;
        let signature =
            signed.signature.ok_or_else(|| KeyError::Unavailable("kms:Sign: no signature".into()))?;
        Ok(URL_SAFE_NO_PAD.encode(signature.as_ref()))
    }
}

/// The public half of a KMS key (`kms:GetPublicKey`, DER SubjectPublicKeyInfo), and the key's
/// ARN (what an alias pointed at: the ring records the key, not a name that can be re-pointed).
/// Only an RSA key for signing that signs RSASSA-PKCS1-v1_5 SHA-256 is taken.
pub async fn kms_public_key(
    client: &aws_sdk_kms::Client,
    key_id: &str,
) -> Result<(PublicKey, String), KeyError> {
    use aws_sdk_kms::types::KeyUsageType;
    let got = client.get_public_key().key_id(key_id).send().await.map_err(|e| {
        KeyError::Unavailable(format!("kms:GetPublicKey: {}", aws_sdk_kms::error::DisplayErrorContext(e)))
    })?;
    let signs_rs256 = got.signing_algorithms().contains(&SigningAlgorithmSpec::RsassaPkcs1V15Sha256);
    if got.key_usage() != Some(&KeyUsageType::SignVerify) || !signs_rs256 {
        return Err(KeyError::NotAnRs256Key);
    }
    let der = got.public_key.ok_or(KeyError::NotAnRs256Key)?;
    let key = rsa::RsaPublicKey::from_public_key_der(der.as_ref()).map_err(|_| KeyError::NotAnRs256Key)?;
    let arn = got.key_id.ok_or_else(|| KeyError::Unavailable("kms:GetPublicKey named no key".into()))?;
    Ok((PublicKey::of(&key)?, arn))
}

/// The PEM of a Secrets Manager secret (its `SecretString`).
pub async fn secret_pem(
    client: &aws_sdk_secretsmanager::Client,
    secret_id: &str,
) -> Result<SigningKey, KeyError> {
    let got = client.get_secret_value().secret_id(secret_id).send().await.map_err(|e| {
        KeyError::Unavailable(format!(
            "secretsmanager:GetSecretValue: {}",
            aws_sdk_secretsmanager::error::DisplayErrorContext(e)
        ))
    })?;
    SigningKey::from_pem(got.secret_string().ok_or(KeyError::NotAPrivateKey)?)
}

/// The clients a key source may need, built from the process's SDK configuration.
#[derive(Debug, Clone)]
pub struct KeyClients {
    pub kms: aws_sdk_kms::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
}

impl KeyClients {
    /// The clients, from the process's SDK configuration (its HTTPS client, retries and
    /// timeouts), at `endpoint` if one is given (`KEYS_ENDPOINT`: a stand-in on loopback) and
    /// otherwise at AWS's own, whatever endpoint DynamoDB has.
    pub fn new(sdk: &aws_config::SdkConfig, endpoint: Option<&str>) -> Self {
        let has_region = sdk.region().is_some();
        let mut sdk = sdk.clone().into_builder();
        if endpoint.is_some() {
            let local = aws_sdk_kms::config::Credentials::new("local", "local", None, None, "keys-stand-in");
            sdk.set_credentials_provider(Some(aws_sdk_kms::config::SharedCredentialsProvider::new(local)));
            if !has_region {
                sdk.set_region(Some(aws_config::Region::new("us-east-1")));
            }
        }
        let sdk = sdk.build();
        let mut kms = aws_sdk_kms::config::Builder::from(&sdk);
        kms.set_endpoint_url(endpoint.map(str::to_owned));
        let mut secrets = aws_sdk_secretsmanager::config::Builder::from(&sdk);
        secrets.set_endpoint_url(endpoint.map(str::to_owned));
        Self {
            kms: aws_sdk_kms::Client::from_conf(kms.build()),
            secrets: aws_sdk_secretsmanager::Client::from_conf(secrets.build()),
        }
    }

    /// A signer for `source`, expected to be the key `kid`: a PEM that is another key is
    /// refused here; a KMS key that is another, by `JwtKeys::issue`, which checks every token
    /// before handing it out. KMS costs nothing here; a secret is read now.
    pub async fn signer(&self, source: &KeySource, kid: &str) -> Result<Arc<dyn TokenSigner>, KeyError> {
        let key = match source {
            KeySource::Kms(id) => return Ok(Arc::new(KmsSigner::new(self.kms.clone(), id))),
            KeySource::SecretsManager(id) => secret_pem(&self.secrets, id).await?,
            KeySource::File(path) => read_pem_file(path)?,
            KeySource::Pem(_) | KeySource::Generated => {
                return Err(KeyError::Unavailable(format!(
                    "{source:?} keys are held by the process that made them"
                )));
            }
        };
        if key.kid() != kid {
            return Err(KeyError::KidMismatch);
        }
        Ok(Arc::new(HeldSigner(Arc::new(key))))
    }

    /// The public key of `source`, and the source as the ring records it (a KMS key by its ARN).
    pub async fn public_key(&self, source: &KeySource) -> Result<(PublicKey, KeySource), KeyError> {
        let public = match source {
            KeySource::Kms(id) => {
                let (public, arn) = kms_public_key(&self.kms, id).await?;
                return Ok((public, KeySource::Kms(arn)));
            }
            KeySource::SecretsManager(id) => secret_pem(&self.secrets, id).await?.public().clone(),
            KeySource::File(path) => read_pem_file(path)?.public().clone(),
            KeySource::Pem(pem) => SigningKey::from_pem(pem)?.public().clone(),
            KeySource::Generated => {
                return Err(KeyError::Unavailable("a generated key has no source to read".into()));
            }
        };
        Ok((public, source.clone()))
    }
}

/// A PEM file's key.
pub fn read_pem_file(path: &str) -> Result<SigningKey, KeyError> {
    // The path is named (`KeySource::parse` takes no key pasted in its place).
    let pem = std::fs::read_to_string(path).map_err(|e| KeyError::Unavailable(format!("{path}: {e}")))?;
    SigningKey::from_pem(&pem)
}
