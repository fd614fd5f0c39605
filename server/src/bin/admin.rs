//! The admin command, against a deployed table or a local one, through the same repositories as
//! the API: `create-superuser` (the counterpart of FastAPI's `initial_data.py`), `migrate` (of
//! Alembic, for data: the table itself lives in `template.yaml`), `purge` (every pending purge
//! of a deleted user, now), `keys` (the key ring of access tokens: list, rotate, withdraw,
//! generate) and `worker` (the stream worker, for `cargo lambda watch` on DynamoDB Local).
//!
//! The table is `TABLE_NAME`; `DYNAMODB_ENDPOINT` points at DynamoDB Local, otherwise the AWS
//! account of the usual credential chain (`AWS_PROFILE`, `AWS_REGION`, ...) is used.

use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use server::stream::{self, Sink};
use shared::admin::{AdminError, IfExists, Outcome, ensure_superuser};
use shared::migrate::{self, Migrator, State};
use shared::repo::Repos;
use shared::repo::dynamo::DynamoStore;
use shared::telemetry::{self, LogFormat};
use shared::{AppState, Config};
use tokio::io::AsyncBufReadExt;

#[derive(Debug, Parser)]
#[command(version, about = "Administer the API's DynamoDB table (TABLE_NAME, DYNAMODB_ENDPOINT).")]
struct Args {
    /// Create the table first, as template.yaml declares it, if it is missing. Only with
    /// DYNAMODB_ENDPOINT: in AWS the table exists through template.yaml alone.
    #[arg(long, global = true)]
    create_table: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a superuser. An account that already holds the email is refused, unless
    /// --promote-existing is given; an account that is already a superuser is left as it is.
    /// The password comes from ADMIN_PASSWORD, or a prompt without echo, or the first line of
    /// standard input; never from the command line (where other users and shell history would
    /// see it).
    CreateSuperuser {
        #[arg(long)]
        email: String,
        /// Promote the account that already holds the email: it gets the new password, and
        /// every one of its sessions ends.
        #[arg(long)]
        promote_existing: bool,
    },
    /// Apply pending data migrations in order, resuming an unfinished one.
    Migrate {
        /// List the migrations and their state instead.
        #[arg(long)]
        status: bool,
    },
    /// Run every pending purge of a deleted user's records to its end, as the worker's sweep
    /// does (and list them first). Safe while the worker runs: purges converge.
    Purge {
        /// Only list the pending purges.
        #[arg(long)]
        status: bool,
    },
    /// Run the worker on DynamoDB Local's stream of the table, and sweep, until stopped: what
    /// the event source mapping and the schedule do in AWS. The worker runs in this process,
    /// or is invoked through the Lambda invoke API at --invoke-url (`cargo lambda watch`'s is
    /// http://127.0.0.1:9000/2015-03-31/functions/worker/invocations).
    Worker {
        #[arg(long)]
        invoke_url: Option<String>,
    },
    /// The keys that sign and verify access tokens: see docs/signing-keys.md.
    Keys {
        #[command(subcommand)]
        command: server::keys_admin::KeysCommand,
    },
    /// Serve a stand-in for Amazon SES v2 that writes each message it is sent (SendEmail, a raw
    /// message) as an .eml file into MAIL_DIR (default: mail/ here): what a worker function
    /// under `sam local` sends to (SES_ENDPOINT), so that no mail leaves the machine. Needs no
    /// table.
    MailSink {
        /// Address to listen on (a container reaches this machine at its Docker bridge's).
        #[arg(long, default_value = "127.0.0.1")]
        host: std::net::IpAddr,
        #[arg(long)]
        port: u16,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    telemetry::init_with(LogFormat::Text);
    server::exit_with(run(args).await)
}

/// The API's state over the table, and the table's store (which also keeps the migrations' ledger).
async fn state(create_table: bool) -> Result<(AppState, Arc<DynamoStore>), String> {
    if std::env::var_os("DYNAMODB_ENDPOINT").is_none() && std::env::var_os("TABLE_NAME").is_none() {
        return Err("set TABLE_NAME to the stack's table (the TableName output of `sam deploy`), \
                    or DYNAMODB_ENDPOINT for DynamoDB Local"
            .into());
    }
    let config = Config::from_env().map_err(|e| e.to_string())?;
    let client = shared::state::dynamodb_client(&config).await;
    if create_table {
        if config.dynamodb_endpoint.is_none() {
            return Err(
                "--create-table needs DYNAMODB_ENDPOINT: in AWS the table comes from template.yaml".into()
            );
        }
        shared::repo::dynamo::table::ensure_table(&client, &config.table_name)
            .await
            .map_err(|e| e.to_string())?;
    }
    let store = Arc::new(DynamoStore::new(client, config.table_name.clone()));
    Ok((AppState::new(config, Repos::from_store(store.clone())), store))
}

/// The new user's password: prompted for without echo on a terminal, else the first line of
/// standard input.
async fn read_password() -> Result<String, String> {
    if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        return tokio::task::spawn_blocking(|| {
            rpassword::prompt_password("Password for the new superuser: ")
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("reading the password: {e}"));
    }
    let mut line = String::new();
    tokio::io::BufReader::new(tokio::io::stdin())
        .read_line(&mut line)
        .await
        .map_err(|e| format!("reading the password from standard input: {e}"))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

#[allow(clippy::print_stdout)]
async fn run(args: Args) -> Result<(), String> {
    if let Command::MailSink { host, port } = args.command {
        let dir = std::env::var("MAIL_DIR").ok().filter(|d| !d.trim().is_empty());
        let dir = dir.unwrap_or_else(server::default_mail_dir);
        let listener = tokio::net::TcpListener::bind((host, port))
            .await
            .map_err(|e| format!("cannot listen on {host}:{port}: {e}"))?;
        let address = listener.local_addr().map_err(|e| e.to_string())?;
        println!("SES stand-in on http://{address}, writing each message into {dir}");
        return axum::serve(listener, server::mail_sink::router(dir.into())).await.map_err(|e| e.to_string());
    }
    if let Command::Keys { command: server::keys_admin::KeysCommand::Generate { out } } = &args.command {
        println!("{}", server::keys_admin::generate(out.as_deref())?.trim_end());
        return Ok(());
    }
    let (state, store) = state(args.create_table).await?;
    match args.command {
        Command::Keys { command } => {
            let sdk = shared::state::sdk_config(&state.config).await;
            let clients = shared::auth::signer::KeyClients::new(&sdk, state.config.keys_endpoint.as_deref());
            println!("{}", server::keys_admin::run(command, &state, &clients).await?);
        }
        Command::CreateSuperuser { email, promote_existing } => {
            let if_exists = if promote_existing { IfExists::PromoteExisting } else { IfExists::Refuse };
            // A password is asked for only when one is going to be set: not for an account
            // that is already a superuser, nor before an existing account is refused.
            let given = std::env::var("ADMIN_PASSWORD").ok();
            let outcome = match ensure_superuser(&state, &email, given.as_deref(), if_exists).await {
                Err(AdminError::PasswordNeeded) => {
                    let password = read_password().await?;
                    ensure_superuser(&state, &email, Some(&password), if_exists).await
                }
                other => other,
            }
            .map_err(|e| format!("{email}: {e}"))?;
            let what = match outcome {
                Outcome::Created => "created",
                Outcome::Promoted => "promoted to superuser, with the new password; its sessions ended",
                Outcome::AlreadySuperuser => "already a superuser (left as it is)",
            };
            println!("{email}: {what}");
        }
        Command::Migrate { status: true } => {
            let migrator = Migrator::new(store, state.clock.clone(), migrate::all());
            for status in migrator.status().await.map_err(|e| e.to_string())? {
                let state = match status.state {
                    State::Pending => "pending".to_owned(),
                    State::Unfinished { checkpoint: None } => "unfinished".to_owned(),
                    State::Unfinished { checkpoint: Some(c) } => format!("unfinished (at {c})"),
                    State::Applied { at } => format!("applied {}", shared::deps::format_timestamp(&at)),
                };
                println!("{:<24} {:<40} {}", status.id, state, status.description);
            }
        }
        Command::Purge { status } => {
            let purges = state.repos.purges.clone();
            let mut after = None;
            loop {
                let page = purges.pending_purges(100, after).await.map_err(|e| e.to_string())?;
                for purge in &page.records {
                    println!(
                        "pending: user {}, deleted {}, {} records gone so far, last progress {}",
                        purge.user_id,
                        shared::deps::format_timestamp(&purge.requested_at),
                        purge.deleted,
                        shared::deps::format_timestamp(&purge.updated_at),
                    );
                }
                if !page.more {
                    break;
                }
                after = page.records.last().map(|p| p.user_id);
            }
            if !status {
                let forever = tokio::time::Instant::now() + std::time::Duration::from_secs(365 * 24 * 3600);
                let swept = shared::purge::sweep(
                    purges.as_ref(),
                    state.clock.as_ref(),
                    std::time::Duration::ZERO,
                    forever,
                )
                .await
                .map_err(|e| e.to_string())?;
                println!(
                    "purged {} of {} pending, {} records deleted",
                    swept.done, swept.stale, swept.deleted
                );
            }
        }
        Command::Worker { invoke_url } => {
            let mut config = Config::from_env().map_err(|e| e.to_string())?;
            let sink = match invoke_url {
                Some(url) => Sink::Invoke(url),
                None => {
                    server::mail_locally(&mut config);
                    Sink::InProcess(Box::new(worker::Worker::new(&state, worker::mailer(&config).await)))
                }
            };
            let streams = aws_sdk_dynamodbstreams::Client::new(&shared::state::sdk_config(&config).await);
            println!("worker on the stream of table {:?}", store.table());
            stream::run_on_stream(store.client().clone(), streams, store.table().to_owned(), sink).await?;
        }
        Command::MailSink { .. } => unreachable!("served above, with no table"),
        Command::Migrate { status: false } => {
            let migrator = Migrator::new(store, state.clock.clone(), migrate::all());
            let applied = migrator.run().await.map_err(|e| e.to_string())?;
            if applied.is_empty() {
                println!("nothing to apply: every migration is applied");
            }
            for id in applied {
                println!("applied {id}");
            }
        }
    }
    Ok(())
}
