//! Typed configuration read once from the environment at cold start. It fails fast, with a
//! message that says what to set. It holds no secret: the key that signs access tokens is named
//! (`SIGNING_KEY`, a KMS key id or a secret's id), never given.

use std::collections::HashMap;

mod key_source;

pub use key_source::{KeySource, SourceError, is_loopback};

#[derive(Debug, Clone)]
pub struct Config {
    pub table_name: String,
    /// Where `auth` finds the key that signs access tokens (`SIGNING_KEY`); unset in every
    /// other function. See [`KeySource`].
    pub signing_key: Option<KeySource>,
    /// Every access token's `iss`, and the OpenID issuer: the API's public base URL
    /// (`PUBLIC_BASE_URL`, without a trailing `/`). Never taken from a request's `Host`.
    pub jwt_issuer: String,
    /// For a KMS and Secrets Manager stand-in on loopback (`KEYS_ENDPOINT`, loopback only);
    /// unset in AWS.
    pub keys_endpoint: Option<String>,
    /// Under `sam local` (`AWS_SAM_LOCAL=true`, which SAM CLI sets in its containers).
    pub sam_local: bool,
    pub jwt_audience: String,
    pub access_token_ttl_secs: i64,
    pub refresh_token_ttl_secs: i64,
    /// The longest a session (a refresh-token family) lasts from its login, however often it
    /// is rotated.
    pub session_max_age_secs: i64,
    /// Failed password checks for one email from one source address within the window.
    pub login_max_failures: u32,
    pub login_window_secs: i64,
    /// Failed password checks from one source address, whatever the emails (spraying).
    pub login_max_failures_per_address: u32,
    /// Failed password checks for one email from all addresses together (a distributed guess),
    /// which an address the account logged in from recently is exempt from.
    pub login_max_failures_per_email: u32,
    /// The proxies in front of the API whose `X-Forwarded-For` is believed; empty: none.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub open_registration: bool,
    /// For DynamoDB Local; unset in AWS.
    pub dynamodb_endpoint: Option<String>,
    /// Whether a Lambda cold start opens its DynamoDB connection before the first request.
    pub dynamodb_warm_up: bool,
    /// Account mail (API.md, password recovery and verification): see [`MailConfig`].
    pub mail: MailConfig,
    /// Whether a password login needs a verified address.
    pub require_email_verification: bool,
    /// Requests for mail (recovery, a new verification) from one source address in an hour.
    pub mail_max_requests_per_address: u32,
    /// Messages (recovery and verification together) to one address in an hour.
    pub mail_max_per_recipient: u32,
    /// How long an `Idempotency-Key`'s answer is kept.
    pub idempotency_ttl_secs: i64,
}

/// What account mail needs: where its links point, what it is signed as, how long its tokens
/// live, and where it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailConfig {
    /// The front end's base URL, without a trailing `/`: links are `<app_url>/reset-password?token=`.
    pub app_url: String,
    /// The product's name, in every message.
    pub product_name: String,
    /// The sender: SES's verified identity in AWS (`MAIL_FROM`). Unset: locally messages are
    /// from `no-reply@localhost`; the worker in AWS sends nothing (every message is refused).
    pub from: Option<String>,
    /// SES's configuration set, if any.
    pub configuration_set: Option<String>,
    /// Locally: messages are written as `.eml` files here instead of being sent.
    pub mail_dir: Option<String>,
    /// For an SES stand-in on loopback; unset in AWS.
    pub ses_endpoint: Option<String>,
    pub reset_token_ttl_secs: i64,
    pub verify_token_ttl_secs: i64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// The value is not repeated: it might be a key.
    #[error("{0}")]
    SigningKey(#[from] SourceError),
    /// The key `SIGNING_KEY` names cannot be used (the reason, never the key).
    #[error("SIGNING_KEY: {0}")]
    Key(String),
    #[error("{name} is {value:?}: {expected}")]
    Invalid { name: &'static str, value: String, expected: &'static str },
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(&std::env::vars().collect())
    }

    /// Reads the configuration from a map of variables (the environment, or a test's own).
    pub fn from_vars(vars: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let get = |name: &str| vars.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
        let sam_local = get("AWS_SAM_LOCAL").is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let config = Self {
            table_name: get("TABLE_NAME").unwrap_or("api").to_owned(),
            signing_key: get("SIGNING_KEY").map(|v| KeySource::parse(v, sam_local)).transpose()?,
            jwt_issuer: base_url(
                "PUBLIC_BASE_URL",
                get("PUBLIC_BASE_URL").unwrap_or(DEFAULT_PUBLIC_BASE_URL),
            )?,
            keys_endpoint: get("KEYS_ENDPOINT").map(loopback_endpoint).transpose()?,
            sam_local,
            jwt_audience: get("JWT_AUDIENCE").unwrap_or("lambda-api").to_owned(),
            access_token_ttl_secs: number(get, "ACCESS_TOKEN_TTL_SECONDS", 15 * 60, DAY)?,
            refresh_token_ttl_secs: number(get, "REFRESH_TOKEN_TTL_SECONDS", 7 * DAY, 365 * DAY)?,
            session_max_age_secs: number(get, "SESSION_MAX_AGE_SECONDS", 30 * DAY, 365 * DAY)?,
            login_max_failures: number(get, "LOGIN_MAX_FAILURES", 5, 1_000)?,
            login_window_secs: number(get, "LOGIN_WINDOW_SECONDS", 15 * 60, DAY)?,
            login_max_failures_per_address: number(get, "LOGIN_MAX_FAILURES_PER_ADDRESS", 100, 1_000_000)?,
            login_max_failures_per_email: number(get, "LOGIN_MAX_FAILURES_PER_EMAIL", 50, 1_000_000)?,
            trusted_proxies: cidrs(get, "TRUSTED_PROXY_CIDRS")?,
            open_registration: flag(get, "OPEN_REGISTRATION", true)?,
            dynamodb_endpoint: get("DYNAMODB_ENDPOINT").map(str::to_owned),
            dynamodb_warm_up: flag(get, "DYNAMODB_WARM_UP", true)?,
            mail: MailConfig {
                app_url: base_url("APP_URL", get("APP_URL").unwrap_or("http://localhost:5173"))?,
                product_name: get("PRODUCT_NAME").unwrap_or("Lambda API").to_owned(),
                from: get("MAIL_FROM").map(str::to_owned),
                configuration_set: get("MAIL_CONFIGURATION_SET").map(str::to_owned),
                mail_dir: get("MAIL_DIR").map(str::to_owned),
                ses_endpoint: get("SES_ENDPOINT").map(str::to_owned),
                reset_token_ttl_secs: number(get, "RESET_TOKEN_TTL_SECONDS", 30 * 60, DAY)?,
                verify_token_ttl_secs: number(get, "VERIFY_TOKEN_TTL_SECONDS", DAY, 30 * DAY)?,
            },
            require_email_verification: flag(get, "REQUIRE_EMAIL_VERIFICATION", false)?,
            mail_max_requests_per_address: number(get, "MAIL_MAX_REQUESTS_PER_ADDRESS", 20, 1_000_000)?,
            mail_max_per_recipient: number(get, "MAIL_MAX_PER_RECIPIENT", 3, 1_000)?,
            idempotency_ttl_secs: number(get, "IDEMPOTENCY_TTL_SECONDS", DAY, 30 * DAY)?,
        };
        Ok(config)
    }

    /// A configuration for tests and tools: everything default.
    pub fn for_tests() -> Self {
        Self::from_vars(&HashMap::new()).unwrap_or_else(|e| panic!("test configuration: {e}"))
    }
}

/// `KEYS_ENDPOINT`: a stand-in on this machine, never a service elsewhere (it would answer the
/// public key of whatever key it likes).
fn loopback_endpoint(v: &str) -> Result<String, ConfigError> {
    if is_loopback(v) {
        Ok(v.to_owned())
    } else {
        Err(ConfigError::Invalid {
            name: "KEYS_ENDPOINT",
            value: v.to_owned(),
            expected: "expected a stand-in on this machine, such as http://127.0.0.1:4566",
        })
    }
}

/// The issuer when `PUBLIC_BASE_URL` is unset: the local server's default address.
pub const DEFAULT_PUBLIC_BASE_URL: &str = "http://localhost:8000";

const DAY: i64 = 24 * 3600;

fn flag<'a>(
    get: impl Fn(&str) -> Option<&'a str>,
    name: &'static str,
    default: bool,
) -> Result<bool, ConfigError> {
    match get(name) {
        None => Ok(default),
        Some(v) => match v.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(true),
            "0" | "false" | "no" | "off" => Ok(false),
            _ => Err(ConfigError::Invalid { name, value: v.to_owned(), expected: "expected true or false" }),
        },
    }
}

/// A base URL (the front end's, the API's): http(s), no query or fragment, kept without its
/// trailing `/`.
pub fn base_url(name: &'static str, v: &str) -> Result<String, ConfigError> {
    let rest = v.strip_prefix("https://").or_else(|| v.strip_prefix("http://"));
    let host = rest.map(|r| r.split('/').next().unwrap_or_default()).unwrap_or_default();
    if host.is_empty() || v.chars().any(|c| c.is_whitespace() || matches!(c, '?' | '#' | '"' | '<' | '>')) {
        return Err(ConfigError::Invalid {
            name,
            value: v.to_owned(),
            expected: "expected a base URL, such as https://api.example.com",
        });
    }
    Ok(v.trim_end_matches('/').to_owned())
}

/// A comma-separated list of CIDRs (`10.0.0.0/8, 2001:db8::/32`); a bare address is its own /32
/// or /128.
fn cidrs<'a>(
    get: impl Fn(&str) -> Option<&'a str>,
    name: &'static str,
) -> Result<Vec<ipnet::IpNet>, ConfigError> {
    let Some(v) = get(name) else {
        return Ok(Vec::new());
    };
    v.split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(|c| {
            c.parse::<ipnet::IpNet>()
                .or_else(|_| c.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map(|net| net.trunc())
                .map_err(|_| ConfigError::Invalid {
                    name,
                    value: v.to_owned(),
                    expected: "expected comma-separated CIDRs, such as 10.0.0.0/8,2001:db8::/32",
                })
        })
        .collect()
}

/// A positive integer no larger than `max`: lifetimes beyond it are a mistake, and would overflow
/// date arithmetic long before they made sense.
fn number<'a, T>(
    get: impl Fn(&str) -> Option<&'a str>,
    name: &'static str,
    default: T,
    max: i64,
) -> Result<T, ConfigError>
where
    T: std::str::FromStr + Into<i64> + Copy,
{
    let Some(v) = get(name) else {
        return Ok(default);
    };
    match v.parse::<T>() {
        Ok(n) if n.into() > 0 && n.into() <= max => Ok(n),
        _ => Err(ConfigError::Invalid {
            name,
            value: v.to_owned(),
            expected: "expected a positive integer within bounds",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn the_signing_key_is_named_never_given_outside_sam_local() {
        let c = Config::from_vars(&vars(&[("SIGNING_KEY", "kms:alias/api-signing")])).expect("valid");
        assert_eq!(c.signing_key, Some(KeySource::Kms("alias/api-signing".into())));
        assert_eq!(Config::from_vars(&vars(&[])).expect("valid").signing_key, None);
        let pem = "pem:-----BEGIN PRIVATE KEY-----\\nMIIEv...";
        let err = Config::from_vars(&vars(&[("SIGNING_KEY", pem)])).unwrap_err();
        assert_eq!(err, ConfigError::SigningKey(SourceError::PemOutsideSamLocal));
        assert!(!err.to_string().contains("MIIE"), "the value is never repeated");
        let local = Config::from_vars(&vars(&[("SIGNING_KEY", pem), ("AWS_SAM_LOCAL", "true")]));
        assert!(matches!(local.expect("sam local").signing_key, Some(KeySource::Pem(_))));
        let pasted = "file:-----BEGIN PRIVATE KEY-----\nMIIEv";
        for bad in ["hs256:secret", "kms:", "just-a-secret-value", pasted] {
            let err = Config::from_vars(&vars(&[("SIGNING_KEY", bad)])).unwrap_err();
            assert!(err.to_string().contains("SIGNING_KEY"), "{bad}");
            assert!(bad == "kms:" || !err.to_string().contains(bad), "the value is not repeated: {bad}");
            assert!(!err.to_string().contains("MIIE"), "{err}");
        }
    }

    #[test]
    fn the_issuer_is_the_public_base_url() {
        assert_eq!(Config::for_tests().jwt_issuer, DEFAULT_PUBLIC_BASE_URL);
        let c = Config::from_vars(&vars(&[("PUBLIC_BASE_URL", "https://api.example.com/")]));
        assert_eq!(c.expect("valid").jwt_issuer, "https://api.example.com");
        let bad = Config::from_vars(&vars(&[("PUBLIC_BASE_URL", "api.example.com")]));
        assert!(bad.is_err_and(|e| e.to_string().contains("PUBLIC_BASE_URL")));
    }

    #[test]
    fn defaults_follow_the_contract() {
        let c = Config::from_vars(&vars(&[])).expect("valid");
        assert_eq!(c.access_token_ttl_secs, 900);
        assert_eq!(c.refresh_token_ttl_secs, 604_800);
        assert_eq!((c.login_max_failures, c.login_window_secs), (5, 900));
        assert_eq!((c.login_max_failures_per_address, c.login_max_failures_per_email), (100, 50));
        assert_eq!(c.trusted_proxies, vec![]);
        assert_eq!(c.session_max_age_secs, 30 * 24 * 3600);
        assert!(c.open_registration);
        assert_eq!(c.dynamodb_endpoint, None);
        assert!(c.dynamodb_warm_up);
        assert_eq!(c.mail.app_url, "http://localhost:5173");
        assert_eq!((c.mail.reset_token_ttl_secs, c.mail.verify_token_ttl_secs), (1800, 86_400));
        assert_eq!((c.mail_max_requests_per_address, c.mail_max_per_recipient), (20, 3));
        assert!(!c.require_email_verification);
    }

    #[test]
    fn the_app_url_is_a_base_url() {
        let c = Config::from_vars(&vars(&[("APP_URL", "https://app.example.com/")]));
        assert_eq!(c.expect("valid").mail.app_url, "https://app.example.com");
        for bad in ["app.example.com", "https://", "https://x.io/?a=1", "https://x.io/#f", "ftp://x.io"] {
            let c = Config::from_vars(&vars(&[("APP_URL", bad)]));
            assert!(c.is_err_and(|e| e.to_string().contains("APP_URL")), "{bad}");
        }
    }

    #[test]
    fn trusted_proxies_are_cidrs_or_addresses() {
        let c =
            Config::from_vars(&vars(&[("TRUSTED_PROXY_CIDRS", " 10.0.0.0/8, 192.0.2.7 ,2001:db8::/32,")]))
                .expect("valid");
        let nets: Vec<String> = c.trusted_proxies.iter().map(ToString::to_string).collect();
        assert_eq!(nets, ["10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32"]);
        let bad = Config::from_vars(&vars(&[("TRUSTED_PROXY_CIDRS", "10.0.0.0/33")]));
        assert!(bad.is_err_and(|e| e.to_string().contains("TRUSTED_PROXY_CIDRS")));
    }

    #[test]
    fn a_sam_local_key_never_shows_in_debug_output() {
        let pem = "pem:a-key-that-must-not-be-logged";
        let c = Config::from_vars(&vars(&[("SIGNING_KEY", pem), ("AWS_SAM_LOCAL", "true")])).expect("valid");
        assert!(!format!("{c:?}").contains("a-key-that"));
    }

    #[test]
    fn bad_numbers_and_flags_are_refused() {
        assert!(Config::from_vars(&vars(&[("LOGIN_MAX_FAILURES", "0")])).is_err());
        let huge = i64::MAX.to_string();
        assert!(Config::from_vars(&vars(&[("REFRESH_TOKEN_TTL_SECONDS", &huge)])).is_err());
        assert!(Config::from_vars(&vars(&[("ACCESS_TOKEN_TTL_SECONDS", "86401")])).is_err());
        assert!(Config::from_vars(&vars(&[("OPEN_REGISTRATION", "maybe")])).is_err());
        let c = Config::from_vars(&vars(&[("OPEN_REGISTRATION", "false")])).expect("ok");
        assert!(!c.open_registration);
        let err = Config::from_vars(&vars(&[("DYNAMODB_WARM_UP", "sometimes")])).expect_err("not a flag");
        assert!(err.to_string().contains("DYNAMODB_WARM_UP"), "{err}");
        let c = Config::from_vars(&vars(&[("DYNAMODB_WARM_UP", "off")])).expect("ok");
        assert!(!c.dynamodb_warm_up);
    }
}
