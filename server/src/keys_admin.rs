//! `admin keys`: the key ring of access tokens (docs/signing-keys.md has the runbook). `list`
//! shows it, `rotate` schedules the next key, `withdraw` ends a key at once, `generate` writes a
//! new PEM for a `file:` key (local runs, `sam local`).

use clap::Subcommand;
use shared::AppState;
use shared::auth::ring::{KeyRing, PROPAGATION};
use shared::auth::rotation;
use shared::auth::signer::{KeyClients, KeySource};

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// The keys of the ring: each key's kid, where it is, from when it signs and when it is
    /// withdrawn.
    List,
    /// Publish a new key now; it signs from 10 minutes later, and the key it replaces verifies
    /// until the last token it signed has expired. Nobody is logged out.
    Rotate {
        /// The new key: kms:<key id or ARN> or secretsmanager:<secret id> (file:<path> locally).
        #[arg(long)]
        to: String,
        /// For a key that leaked: the new key signs now and every other is withdrawn now, which
        /// ends every token they signed.
        #[arg(long)]
        at_once: bool,
    },
    /// Withdraw one key now: every token it signed ends. Never the only key that signs.
    Withdraw { kid: String },
    /// Print a new RSA key (2048 bits, PKCS#8 PEM) for a file: key. Needs no table.
    Generate,
}

/// `admin keys generate`: needs no table.
pub fn generate() -> Result<String, String> {
    shared::auth::keys::generate_pem().map_err(|e| e.to_string())
}

fn when(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0).map(|t| t.to_rfc3339()).unwrap_or_else(|| secs.to_string())
}

/// The ring as `admin keys list` prints it, at `now`.
pub fn describe(ring: &KeyRing, now: i64) -> String {
    if ring.keys.is_empty() {
        return "no keys yet: auth puts its SIGNING_KEY in at its first start".to_owned();
    }
    let signing = ring.signing(now).map(|k| k.kid.clone());
    let mut lines = Vec::new();
    for key in &ring.keys {
        let state = match (&signing, key.verifies_at(now)) {
            (_, false) => "withdrawn",
            (Some(kid), true) if *kid == key.kid => "signing",
            _ if key.sign_from > now => "next",
            _ => "retiring",
        };
        let until = key.retire_at.map(|at| format!(", withdrawn at {}", when(at))).unwrap_or_default();
        lines.push(format!(
            "{state:<9} {} {} (signs from {}{until})",
            key.kid,
            key.source,
            when(key.sign_from)
        ));
    }
    lines.join("\n")
}

/// Runs one `admin keys` command against the state's table.
pub async fn run(command: KeysCommand, state: &AppState, clients: &KeyClients) -> Result<String, String> {
    let now = state.clock.now();
    let repo = state.repos.key_ring.as_ref();
    match command {
        KeysCommand::Generate => generate(),
        KeysCommand::List => {
            let ring = repo.key_ring().await.map_err(|e| e.to_string())?.unwrap_or_default();
            Ok(describe(&ring, now.timestamp()))
        }
        KeysCommand::Rotate { to, at_once } => {
            let source =
                KeySource::parse(&to, false).map_err(|e| e.to_string().replace("SIGNING_KEY", "--to"))?;
            let ttl = state.config.access_token_ttl_secs;
            let rotated = rotation::rotate(repo, clients, &source, now, ttl, at_once)
                .await
                .map_err(|e| e.to_string())?;
            let mut out =
                format!("{} is published and signs from {}", rotated.kid, rotated.sign_from.to_rfc3339());
            for (kid, at) in rotated.retiring {
                out.push_str(&format!("\n{kid} verifies until {}", at.to_rfc3339()));
            }
            if !at_once {
                out.push_str(&format!(
                    "\nEvery function reads the ring again within {} minutes; withdraw nothing before the times above.",
                    PROPAGATION.num_minutes() / 2
                ));
            }
            Ok(out)
        }
        KeysCommand::Withdraw { kid } => {
            let ring = rotation::withdraw(repo, &kid, now).await.map_err(|e| e.to_string())?;
            Ok(format!("{kid} is withdrawn\n{}", describe(&ring, now.timestamp())))
        }
    }
}
