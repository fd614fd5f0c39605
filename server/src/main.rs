//! The local API server: the whole API on `http://127.0.0.1:3000`, with no Docker, Java or AWS
//! account. An in-memory store by default; DynamoDB (e.g. DynamoDB Local) when
//! `DYNAMODB_ENDPOINT` is set. The stream worker runs in the same process (`server::stream`).

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use catalog::{Cors, Route};
use clap::Parser;
use server::stream::{self, Sink};
use shared::admin::{IfExists, Outcome, ensure_superuser};
use shared::repo::Repos;
use shared::repo::dynamo::DynamoStore;
use shared::repo::memory::MemoryStore;
use worker::Worker;

/// The local worker's task: the stream poller or the memory store's.
type LocalWorker = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send>>;
use shared::telemetry::{self, LogFormat};
use shared::{AppState, Config};

/// Runs every function of the API in one process, on the paths of template.yaml.
///
/// Configuration comes from the same environment variables as the Lambda functions (see the
/// README); SIGNING_KEY is optional here.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Port to listen on.
    #[arg(long, env = "PORT", default_value_t = 3000)]
    port: u16,
    /// Address to listen on (only a flag: shells set HOST to the machine's name).
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// With DYNAMODB_ENDPOINT: create the table, as template.yaml declares it, if it is missing.
    #[arg(long)]
    create_table: bool,
    /// Threads serving requests. One, like uvicorn's default of one worker, serves a developer
    /// best: no cross-thread hand-offs per request (BENCHMARKS.md). argon2 runs beside them, on
    /// tokio's blocking pool, either way.
    #[arg(long, env = "WORKERS", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    workers: u16,
}

fn main() -> ExitCode {
    let args = Args::parse();
    telemetry::init_with(LogFormat::Text);
    let runtime = match args.workers {
        1 => tokio::runtime::Builder::new_current_thread().enable_all().build(),
        n => tokio::runtime::Builder::new_multi_thread().worker_threads(usize::from(n)).enable_all().build(),
    };
    match runtime {
        Ok(runtime) => server::exit_with(runtime.block_on(run(args))),
        Err(e) => server::exit_with(Err(format!("cannot start the async runtime: {e}"))),
    }
}

async fn run(args: Args) -> Result<(), String> {
    let mut config = Config::from_env().map_err(|e| e.to_string())?;
    // Bound first: the issuer of the tokens is the server's own URL, unless PUBLIC_BASE_URL
    // names another (a proxy in front).
    let listener = tokio::net::TcpListener::bind(SocketAddr::new(args.host, args.port))
        .await
        .map_err(|e| format!("cannot listen on {}:{}: {e}", args.host, args.port))?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    if std::env::var("PUBLIC_BASE_URL").is_ok_and(|v| !v.trim().is_empty()) {
        tracing::info!(issuer = %config.jwt_issuer, "tokens are issued as PUBLIC_BASE_URL says");
    } else {
        config.jwt_issuer = server::own_url(address);
    }
    let key = match &config.signing_key {
        None => "not set, so one was made for this run (tokens end when it stops)".to_owned(),
        Some(source) => format!("{source:?}"),
    };
    let memory_store = config.dynamodb_endpoint.is_none();
    let issuing = shared::state::issuing(&config, None, memory_store).await.map_err(|e| e.to_string())?;
    // Mail is written into a folder unless an SES stand-in is named: nothing leaves the machine.
    server::mail_locally(&mut config);
    let mail = match (&config.mail.mail_dir, &config.mail.ses_endpoint) {
        (Some(dir), _) => format!("each message written as an .eml file into {dir}"),
        (None, Some(endpoint)) => format!("sent through SES at {endpoint}"),
        (None, None) => "sent through SES".to_owned(),
    };
    let mailer = worker::mailer(&config).await;
    let (state, store, worker) = match config.dynamodb_endpoint.clone() {
        Some(endpoint) => {
            let client = shared::state::dynamodb_client(&config).await;
            let table = config.table_name.clone();
            if args.create_table {
                if shared::repo::dynamo::table::ensure_table(&client, &table)
                    .await
                    .map_err(|e| e.to_string())?
                {
                    tracing::info!(table, "created the table");
                }
            } else if !shared::repo::dynamo::table::table_exists(&client, &table)
                .await
                .map_err(|e| e.to_string())?
            {
                return Err(format!(
                    "table {table:?} does not exist at {endpoint}: add --create-table to create it"
                ));
            }
            let streams = aws_sdk_dynamodbstreams::Client::new(&shared::state::sdk_config(&config).await);
            let store = Arc::new(DynamoStore::new(client.clone(), table.clone()));
            let state = AppState::new(config, Repos::from_store(store))
                .signing(issuing)
                .await
                .map_err(|e| e.to_string())?;
            let sink = Sink::InProcess(Box::new(Worker::new(&state, mailer.clone())));
            let worker: LocalWorker = Box::pin(stream::run_on_stream(client, streams, table.clone(), sink));
            (state, format!("DynamoDB table {table:?} at {endpoint}"), worker)
        }
        None if args.create_table => {
            return Err("--create-table needs DYNAMODB_ENDPOINT (the in-memory store needs no table)".into());
        }
        None => {
            let store = Arc::new(MemoryStore::new());
            let state = AppState::new(config, Repos::from_store(store.clone()))
                .signing(issuing)
                .await
                .map_err(|e| e.to_string())?;
            let sink = Sink::InProcess(Box::new(Worker::new(&state, mailer.clone())));
            let worker: LocalWorker = Box::pin(async move {
                stream::run_on_memory(store, sink).await;
                Ok(())
            });
            (state, "in memory (gone when the server stops)".to_owned(), worker)
        }
    };
    // The worker, as the table's stream and the schedule run it in AWS: deleted users' records
    // are purged in the background here too.
    tokio::spawn(async move {
        if let Err(e) = worker.await {
            tracing::error!(error = e, "the local worker stopped: deleted users' records are not purged");
        }
    });
    let superuser = first_superuser(&state).await?;
    let cors = Cors::from_env();
    let issuer = state.jwt.issuer().to_owned();
    let app = catalog::app(state, &cors).map_err(|e| e.to_string())?.layer(middleware::from_fn(peer_context));
    let routes = catalog::routes().map_err(|e| e.to_string())?;
    banner(address, &store, &mail, &routes, (&key, &issuer), superuser.as_deref(), &cors);
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown())
        .await
        .map_err(|e| e.to_string())
}

/// API Gateway's request context with the TCP peer as `sourceIp`: the routers read a request's
/// source address from it here as they do on Lambda (API.md, "Conventions").
async fn peer_context(
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut request: Request,
    next: Next,
) -> Response {
    request.extensions_mut().insert(shared::web::address::context_with_source_ip(&peer.ip().to_string()));
    next.run(request).await
}

/// `FIRST_SUPERUSER_EMAIL` / `FIRST_SUPERUSER_PASSWORD`: created if missing, left as it is if
/// already a superuser; an ordinary account holding the address stops the start (the admin
/// command's `--promote-existing` is the deliberate way to promote it).
async fn first_superuser(state: &AppState) -> Result<Option<String>, String> {
    let var = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
    match (var("FIRST_SUPERUSER_EMAIL"), var("FIRST_SUPERUSER_PASSWORD")) {
        (None, None) => Ok(None),
        (Some(email), Some(password)) => {
            let outcome = ensure_superuser(state, &email, Some(&password), IfExists::Refuse)
                .await
                .map_err(|e| format!("FIRST_SUPERUSER_EMAIL {email}: {e}"))?;
            let what = match outcome {
                Outcome::Created => "created",
                Outcome::Promoted | Outcome::AlreadySuperuser => "already there",
            };
            Ok(Some(format!("{email} ({what})")))
        }
        _ => Err("set both FIRST_SUPERUSER_EMAIL and FIRST_SUPERUSER_PASSWORD, or neither".into()),
    }
}

#[allow(clippy::print_stdout)]
fn banner(
    address: SocketAddr,
    store: &str,
    mail: &str,
    routes: &[Route],
    (key, issuer): (&str, &str),
    superuser: Option<&str>,
    cors: &Cors,
) {
    let url = format!("http://{address}");
    println!("  store:      {store}");
    println!(
        "  worker:     in this process: purges deleted users' records and sends account mail (as the stream's worker in AWS)"
    );
    println!("  mail:       {mail}");
    if routes.iter().any(|r| r.path == "/docs") {
        println!("  docs:       {url}/docs");
    } else {
        println!("  docs:       none yet (no /docs route in template.yaml)");
    }
    for route in routes {
        println!("  route:      {:<24} -> {}", route.path, route.binary);
    }
    println!("  signing key: SIGNING_KEY {key}");
    println!("  issuer:     {issuer} (keys at {issuer}/.well-known/jwks.json)");
    if let Some(superuser) = superuser {
        println!("  superuser:  {superuser}");
    }
    if !cors.origins.is_empty() {
        println!("  CORS:       {}", cors.origins.join(", "));
    }
    // Last: whoever waits for this line has read the whole banner.
    println!("API listening on {url}");
}

async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        if let Ok(mut signal) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            signal.recv().await;
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
