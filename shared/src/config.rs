//! Typed configuration read once from the environment at cold start. It fails fast, with a
//! message that says what to set, and wraps the JWT secret so it cannot reach a log line.

use std::collections::HashMap;

use secrecy::{ExposeSecret, SecretString};

/// The smallest JWT secret we accept: HS256 wants a key of at least its 256-bit output.
pub const MIN_JWT_SECRET_BYTES: usize = 32;

#[derive(Debug, Clone)]
pub struct Config {
    pub table_name: String,
    pub jwt_secret: SecretString,
    pub jwt_issuer: String,
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
    #[error(
        "JWT_SECRET is not set: set it to a random secret of at least {MIN_JWT_SECRET_BYTES} bytes, e.g. `export JWT_SECRET=$(openssl rand -base64 48)`"
    )]
    MissingSecret,
    #[error(
        "JWT_SECRET is {0} bytes long: it must be at least {MIN_JWT_SECRET_BYTES} bytes, e.g. `export JWT_SECRET=$(openssl rand -base64 48)`"
    )]
    ShortSecret(usize),
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
        let secret = get("JWT_SECRET").ok_or(ConfigError::MissingSecret)?;
        if secret.len() < MIN_JWT_SECRET_BYTES {
            return Err(ConfigError::ShortSecret(secret.len()));
        }
        let config = Self {
            table_name: get("TABLE_NAME").unwrap_or("api").to_owned(),
            jwt_secret: SecretString::from(secret.to_owned()),
            jwt_issuer: get("JWT_ISSUER").unwrap_or("lambda-api").to_owned(),
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
                app_url: app_url(get("APP_URL").unwrap_or("http://localhost:5173"))?,
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

    /// For local runs: the environment as [`Config::from_env`] reads it, but when `JWT_SECRET` is
    /// unset, a random one for this process (tokens then die with it). Returns whether it made one.
    pub fn from_env_or_random_secret() -> Result<(Self, bool), ConfigError> {
        let mut vars: HashMap<String, String> = std::env::vars().collect();
        let generate = vars.get("JWT_SECRET").is_none_or(|v| v.trim().is_empty());
        if generate {
            vars.insert("JWT_SECRET".to_owned(), random_secret());
        }
        Ok((Self::from_vars(&vars)?, generate))
    }

    /// A configuration for tests and tools: everything default, the given secret.
    pub fn for_tests(secret: &str) -> Self {
        let vars = HashMap::from([("JWT_SECRET".to_owned(), secret.to_owned())]);
        Self::from_vars(&vars).unwrap_or_else(|e| panic!("test configuration: {e}"))
    }

    pub fn jwt_secret_bytes(&self) -> &[u8] {
        self.jwt_secret.expose_secret().as_bytes()
    }
}

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

/// 384 random bits, base64url: as `openssl rand -base64 48` would make.
fn random_secret() -> String {
    use argon2::password_hash::rand_core::{OsRng, RngCore};
    use base64::Engine;
    let mut bytes = [0u8; 48];
    OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The front end's base URL: http(s), no query or fragment, kept without its trailing `/`.
fn app_url(v: &str) -> Result<String, ConfigError> {
    let rest = v.strip_prefix("https://").or_else(|| v.strip_prefix("http://"));
    let host = rest.map(|r| r.split('/').next().unwrap_or_default()).unwrap_or_default();
    if host.is_empty() || v.chars().any(|c| c.is_whitespace() || matches!(c, '?' | '#' | '"' | '<' | '>')) {
        return Err(ConfigError::Invalid {
            name: "APP_URL",
            value: v.to_owned(),
            expected: "expected the front end's base URL, such as https://app.example.com",
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
    fn a_missing_secret_says_what_to_set() {
        let err = Config::from_vars(&vars(&[])).unwrap_err();
        assert_eq!(err, ConfigError::MissingSecret);
        assert!(err.to_string().contains("JWT_SECRET"));
    }

    #[test]
    fn a_short_secret_is_refused() {
        let err = Config::from_vars(&vars(&[("JWT_SECRET", "too-short")])).unwrap_err();
        assert_eq!(err, ConfigError::ShortSecret(9));
        assert!(err.to_string().contains("at least 32 bytes"));
    }

    #[test]
    fn defaults_follow_the_contract() {
        let c = Config::from_vars(&vars(&[("JWT_SECRET", &"s".repeat(32))])).expect("valid");
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
        let s = "s".repeat(32);
        let c = Config::from_vars(&vars(&[("JWT_SECRET", &s), ("APP_URL", "https://app.example.com/")]));
        assert_eq!(c.expect("valid").mail.app_url, "https://app.example.com");
        for bad in ["app.example.com", "https://", "https://x.io/?a=1", "https://x.io/#f", "ftp://x.io"] {
            let c = Config::from_vars(&vars(&[("JWT_SECRET", &s), ("APP_URL", bad)]));
            assert!(c.is_err_and(|e| e.to_string().contains("APP_URL")), "{bad}");
        }
    }

    #[test]
    fn trusted_proxies_are_cidrs_or_addresses() {
        let s = "s".repeat(32);
        let c = Config::from_vars(&vars(&[
            ("JWT_SECRET", &s),
            ("TRUSTED_PROXY_CIDRS", " 10.0.0.0/8, 192.0.2.7 ,2001:db8::/32,"),
        ]))
        .expect("valid");
        let nets: Vec<String> = c.trusted_proxies.iter().map(ToString::to_string).collect();
        assert_eq!(nets, ["10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32"]);
        let bad = Config::from_vars(&vars(&[("JWT_SECRET", &s), ("TRUSTED_PROXY_CIDRS", "10.0.0.0/33")]));
        assert!(bad.is_err_and(|e| e.to_string().contains("TRUSTED_PROXY_CIDRS")));
    }

    #[test]
    fn the_secret_never_shows_in_debug_output() {
        let secret = "a-very-secret-value-that-is-long-enough";
        let c = Config::from_vars(&vars(&[("JWT_SECRET", secret)])).expect("valid");
        assert!(!format!("{c:?}").contains(secret));
    }

    #[test]
    fn bad_numbers_and_flags_are_refused() {
        let s = "s".repeat(32);
        assert!(Config::from_vars(&vars(&[("JWT_SECRET", &s), ("LOGIN_MAX_FAILURES", "0")])).is_err());
        let huge = i64::MAX.to_string();
        assert!(
            Config::from_vars(&vars(&[("JWT_SECRET", &s), ("REFRESH_TOKEN_TTL_SECONDS", &huge)])).is_err()
        );
        assert!(
            Config::from_vars(&vars(&[("JWT_SECRET", &s), ("ACCESS_TOKEN_TTL_SECONDS", "86401")])).is_err()
        );
        assert!(Config::from_vars(&vars(&[("JWT_SECRET", &s), ("OPEN_REGISTRATION", "maybe")])).is_err());
        let c = Config::from_vars(&vars(&[("JWT_SECRET", &s), ("OPEN_REGISTRATION", "false")])).expect("ok");
        assert!(!c.open_registration);
        let err = Config::from_vars(&vars(&[("JWT_SECRET", &s), ("DYNAMODB_WARM_UP", "sometimes")]))
            .expect_err("not a flag");
        assert!(err.to_string().contains("DYNAMODB_WARM_UP"), "{err}");
        let c = Config::from_vars(&vars(&[("JWT_SECRET", &s), ("DYNAMODB_WARM_UP", "off")])).expect("ok");
        assert!(!c.dynamodb_warm_up);
    }
}
