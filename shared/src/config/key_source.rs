//! Where the key that signs access tokens is: what `SIGNING_KEY` and the key ring's `source`
//! name (an identifier, never key material, but under `sam local`). The configuration reads
//! it; `auth::signer` reaches the key it names.

/// Where a key is, as `SIGNING_KEY` and the key ring's `source` name it.
#[derive(Clone, PartialEq, Eq)]
pub enum KeySource {
    Kms(String),
    SecretsManager(String),
    File(String),
    /// The PEM itself (`sam local` only); its ring source is `local`.
    Pem(String),
    /// Made by this process at start; its ring source is `generated`.
    Generated,
}

impl std::fmt::Debug for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.ring_source())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SourceError {
    #[error(
        "SIGNING_KEY must be kms:<key id or ARN>, secretsmanager:<secret id> or file:<PEM file> \
         (or unset locally, for a key made at start)"
    )]
    Unknown,
    #[error("SIGNING_KEY=pem:... is for `sam local` only: a deployed function takes a key id, never a key")]
    PemOutsideSamLocal,
}

impl KeySource {
    /// `SIGNING_KEY` as given; `sam_local` says whether the process runs under `sam local`.
    pub fn parse(value: &str, sam_local: bool) -> Result<Self, SourceError> {
        let (scheme, rest) = value.split_once(':').ok_or(SourceError::Unknown)?;
        let rest = rest.trim();
        if rest.is_empty() {
            return Err(SourceError::Unknown);
        }
        match scheme {
            "kms" => Ok(Self::Kms(rest.to_owned())),
            "secretsmanager" => Ok(Self::SecretsManager(rest.to_owned())),
            // A path, not a key pasted in its place (which an error would then repeat).
            "file" if rest.len() > 512 || rest.contains(char::is_whitespace) || rest.contains("-----") => {
                Err(SourceError::Unknown)
            }
            "file" => Ok(Self::File(rest.to_owned())),
            "pem" if sam_local => Ok(Self::Pem(rest.replace("\\n", "\n"))),
            "pem" => Err(SourceError::PemOutsideSamLocal),
            _ => Err(SourceError::Unknown),
        }
    }

    /// How the key ring names it: never the key.
    pub fn ring_source(&self) -> String {
        match self {
            Self::Kms(id) => format!("kms:{id}"),
            Self::SecretsManager(id) => format!("secretsmanager:{id}"),
            Self::File(path) => format!("file:{path}"),
            Self::Pem(_) => "local".to_owned(),
            Self::Generated => "generated".to_owned(),
        }
    }

    /// A ring source back; `local` and `generated` name keys only the process that made the
    /// ring entry holds, so they are `None` here.
    pub fn from_ring(source: &str) -> Option<Self> {
        Self::parse(source, false).ok()
    }
}

/// Whether an endpoint (DynamoDB's, `KEYS_ENDPOINT`) is this machine's (DynamoDB Local): a table no deployment reads,
/// which a local process's key may take over, and a `file:` key may sign for.
pub fn is_loopback(endpoint: &str) -> bool {
    let rest = endpoint.strip_prefix("http://").or_else(|| endpoint.strip_prefix("https://")).unwrap_or("");
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        // `http://localhost:x@elsewhere`: the host is what follows the `@`.
        return false;
    }
    let rest = authority;
    let host = if let Some(bracketed) = rest.strip_prefix('[') {
        bracketed.split(']').next().unwrap_or("")
    } else {
        rest.split([':', '/']).next().unwrap_or("")
    };
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_this_machine_is_loopback() {
        for local in
            ["http://127.0.0.1:8000", "http://localhost:9000/x", "http://[::1]:1", "https://127.0.0.2"]
        {
            assert!(is_loopback(local), "{local}");
        }
        for remote in [
            "http://localhost.attacker.example",
            "http://127.0.0.1.nip.io",
            "http://localhost:x@dynamodb.us-east-1.amazonaws.com",
            "https://[::1]@evil.example",
            "http://user@127.0.0.1",
            "https://dynamodb.us-east-1.amazonaws.com",
            "host.docker.internal:8000",
            "",
        ] {
            assert!(!is_loopback(remote), "{remote}");
        }
    }

    #[test]
    fn a_file_source_is_a_path_never_a_pasted_key() {
        assert_eq!(
            KeySource::parse("file:/keys/signing.pem", false),
            Ok(KeySource::File("/keys/signing.pem".into()))
        );
        let body = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQDPDQObEFD9SYyH".repeat(20);
        for pasted in [format!("file:{body}"), "file:-----BEGIN PRIVATE KEY-----".into(), "file:a b".into()] {
            assert_eq!(KeySource::parse(&pasted, false), Err(SourceError::Unknown), "{pasted}");
        }
    }
}
