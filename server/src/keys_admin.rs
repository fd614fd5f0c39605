//! `admin keys`: the key ring of access tokens (docs/signing-keys.md has the runbook). `list`
//! shows it, `rotate` schedules the next key (or puts in the first), `withdraw` ends a key at
//! once, `generate` writes a new PEM for a `file:` key (local runs, `sam local`).

use clap::Subcommand;
use shared::AppState;
use shared::auth::ring::{KeyRing, LONGEST_ACCESS_TOKEN, REFRESH, Schedule};
use shared::auth::rotation;
use shared::auth::signer::{KeyClients, KeySource};
use shared::config::is_loopback;

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// The keys of the ring: each key's kid, where it is, from when it signs and when it is
    /// withdrawn.
    List,
    /// Publish a new key now; it signs from 15 minutes later (or --signs-after), and the key it
    /// replaces verifies until the last token it signed has expired. Nobody is logged out.
    /// The first key of an empty ring (after the first deploy) signs at once.
    Rotate {
        /// The new key: kms:<key id, alias or ARN> (recorded by its ARN) or
        /// secretsmanager:<secret id>; file:<path> only on DynamoDB Local.
        #[arg(long)]
        to: String,
        /// Minutes from now until the new key signs (at least 15): longer when something caches
        /// the JWKS longer than 5 minutes (API Gateway's JWT authorizer: 120).
        #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(i64).range(15..=10_080))]
        signs_after: i64,
        /// The deployment's ACCESS_TOKEN_TTL_SECONDS: the old key verifies this long after the
        /// switch. By default the longest allowed (a day), since this machine cannot know it.
        #[arg(long, value_parser = clap::value_parser!(i64).range(60..=86_400))]
        access_token_ttl: Option<i64>,
        /// For a key that leaked: the new key signs now and every other is withdrawn now, which
        /// ends every token they signed.
        #[arg(long, conflicts_with_all = ["access_token_ttl", "signs_after"])]
        at_once: bool,
    },
    /// Withdraw one key now: every token it signed ends. Never the only key that signs.
    Withdraw { kid: String },
    /// Write a new RSA key (2048 bits, PKCS#8 PEM) for a file: key, readable by you alone, into
    /// --out (or print it). Needs no table.
    Generate {
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
}

/// `admin keys generate`: needs no table. Written to `out` with mode 0600 (created new: an
/// existing file is never overwritten), or returned to print.
pub fn generate(out: Option<&std::path::Path>) -> Result<String, String> {
    let pem = shared::auth::keys::generate_pem().map_err(|e| e.to_string())?;
    let Some(out) = out else { return Ok(pem) };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(out).map_err(|e| format!("{}: {e}", out.display()))?;
    std::io::Write::write_all(&mut file, pem.as_bytes()).map_err(|e| format!("{}: {e}", out.display()))?;
    Ok(format!("wrote a new signing key to {}", out.display()))
}

fn when(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0).map(|t| t.to_rfc3339()).unwrap_or_else(|| secs.to_string())
}

/// The ring as `admin keys list` prints it, at `now`.
pub fn describe(ring: &KeyRing, now: i64) -> String {
    if ring.keys.is_empty() {
        return "no keys yet: put the first in with `admin keys rotate --to kms:<SigningKeyArn>`".to_owned();
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
        KeysCommand::Generate { out } => generate(out.as_deref()),
        KeysCommand::List => {
            let ring = repo.key_ring().await.map_err(|e| e.to_string())?.unwrap_or_default();
            Ok(describe(&ring, now.timestamp()))
        }
        KeysCommand::Rotate { to, signs_after, access_token_ttl, at_once } => {
            let source =
                KeySource::parse(&to, false).map_err(|e| e.to_string().replace("SIGNING_KEY", "--to"))?;
            let local_table = state.config.dynamodb_endpoint.as_deref().is_some_and(is_loopback);
            if matches!(source, KeySource::File(_)) && !local_table {
                return Err("--to file:... only on DynamoDB Local: a key in a file is a key anyone who \
                            reads the file holds; a deployment names kms:<ARN>"
                    .into());
            }
            let schedule = if at_once {
                Schedule::at_once()
            } else {
                let longest = access_token_ttl.map_or(LONGEST_ACCESS_TOKEN, chrono::Duration::seconds);
                Schedule::overlapping(chrono::Duration::minutes(signs_after), longest)
            };
            let rotated =
                rotation::rotate(repo, clients, &source, now, schedule).await.map_err(|e| e.to_string())?;
            let mut out =
                format!("{} is published and signs from {}", rotated.kid, rotated.sign_from.to_rfc3339());
            for (kid, at) in rotated.retiring {
                out.push_str(&format!("\n{kid} verifies until {}", at.to_rfc3339()));
            }
            if !at_once {
                out.push_str(&format!(
                    "\nEvery function reads the ring again within {} minutes; withdraw nothing before the times above.",
                    REFRESH.num_minutes()
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
