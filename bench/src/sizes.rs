//! `bench sizes`: each function's warm latency at the memory sizes Lambda could give it, with
//! Lambda's CPU share at each size (1769 MB is one vCPU) reproduced by running the function in a
//! Docker container limited to `--cpus=<MB/1769>` and `--memory=<MB>m`. What runs in the
//! container is this binary's `serve-function` (the in-memory rows of `bench run`), on Lambda
//! through a Runtime API served here, reached over the host's loopback (`--network host`). The
//! image holds nothing but the libraries this binary links (no registry is needed); the binary
//! and the tests' signing key are mounted into it. The results, with the GB-s and dollars they
//! bill (`cost.rs`), go between the sizes markers of `BENCHMARKS.md`.
//!
//! A Docker engine must answer; when none does and this runs as root with `dockerd` installed,
//! it starts one for the run and stops it after.

use std::os::unix::fs::MetadataExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use shared::AppState;

use crate::cost::{self, Header, Row};
use crate::lambda::{Function, Launch, event};

/// The memory sizes of a full run, MB.
const SIZES: [u32; 5] = [128, 256, 512, 1024, cost::ONE_VCPU_MB];
const IMAGE: &str = "bench-sizes:local";

#[derive(Debug, Clone, clap::Args)]
pub struct SizesArgs {
    /// One size (512 MB), one warm-up and two requests per row: the check that it works.
    #[arg(long)]
    quick: bool,
    /// The markdown file whose sizes section is replaced with the results.
    #[arg(long, default_value = "BENCHMARKS.md")]
    out: PathBuf,
    /// Requests per row for the requests that hash a password (default 50); the others take
    /// ten times as many.
    #[arg(long)]
    requests: Option<usize>,
    /// The memory sizes, MB, comma-separated (default 128,256,512,1024,1769).
    #[arg(long, value_delimiter = ',')]
    sizes: Option<Vec<u32>>,
    /// The command line to record in the report.
    #[arg(long, default_value = "scripts/bench")]
    command: String,
}

/// One request a function is measured on.
struct Probe {
    function: &'static str,
    request: &'static str,
    /// It hashes a password: fewer of them.
    hashes: bool,
    expect: u16,
}

const PROBES: [Probe; 6] = [
    Probe { function: "auth", request: "POST /v1/auth/token", hashes: true, expect: 200 },
    Probe { function: "users", request: "POST /v1/users/signup", hashes: true, expect: 201 },
    Probe { function: "users", request: "GET /v1/users/me", hashes: false, expect: 200 },
    Probe { function: "items", request: "GET /v1/items", hashes: false, expect: 200 },
    Probe { function: "docs", request: "GET /v1/health", hashes: false, expect: 200 },
    Probe { function: "docs", request: "GET /openapi.json", hashes: false, expect: 200 },
];

/// What the function in a container was set up with (its `--fixtures`).
struct Fixtures {
    email: String,
    password: String,
    token: String,
}

pub async fn run(args: SizesArgs) -> Result<(), String> {
    let workspace = api_tests::process::workspace();
    let (warm_up, requests) = if args.quick {
        ((1, 1), (2, 2))
    } else {
        let hashing = args.requests.unwrap_or(50);
        ((5, 20), (hashing, hashing * 10))
    };
    let sizes = match (&args.sizes, args.quick) {
        (Some(sizes), _) => sizes.clone(),
        (None, true) => vec![512],
        (None, false) => SIZES.to_vec(),
    };
    let docker =
        program("docker").ok_or("no `docker` command: install Docker (Debian: apt-get install docker.io)")?;
    let logs = workspace.join("target/bench-logs/sizes");
    std::fs::create_dir_all(&logs).map_err(|e| e.to_string())?;
    let _engine = Engine::ensure(&docker, &logs)?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    println!("==> image {IMAGE} (the libraries {} links)", exe.display());
    build_image(&docker, &exe, &logs.join("image"))?;
    let key =
        std::fs::canonicalize(api_tests::keys::TEST_KEY_FILE).map_err(|e| format!("the test key: {e}"))?;
    let context = Context { docker, exe, key, logs };
    // Tokens for the fixture users, signed here with the key the containers verify with.
    let signer = AppState::in_memory(api_tests::config()).with_issuing(api_tests::keys::test_issuing());

    let started = Instant::now();
    let mut rows = Vec::new();
    let functions: Vec<&str> = PROBES.iter().map(|p| p.function).fold(Vec::new(), |mut all, f| {
        if !all.contains(&f) {
            all.push(f);
        }
        all
    });
    for function in functions {
        for &mb in &sizes {
            let (running, fixtures) = context.start(function, mb, &signer).await?;
            for probe in PROBES.iter().filter(|p| p.function == function) {
                let (warm, n) = if probe.hashes { (warm_up.0, requests.0) } else { (warm_up.1, requests.1) };
                let mut samples = Vec::with_capacity(n);
                for i in 0..warm + n {
                    let outcome =
                        running.function.invoke(&probe_event(probe, &fixtures, mb, i), probe.expect).await;
                    let outcome =
                        outcome.map_err(|e| format!("{function} at {mb} MB, {}: {e}", probe.request))?;
                    if i >= warm {
                        samples.push(outcome.latency);
                    }
                }
                let row = Row { function: function.into(), request: probe.request.into(), mb, samples };
                println!(
                    "{function:>5} {mb:>4} MB  {:<22} median {:>9.2} ms  p99 {:>9.2} ms  ${:.2}/M",
                    probe.request,
                    row.median().as_secs_f64() * 1e3,
                    row.p99().as_secs_f64() * 1e3,
                    row.dollars_per_million()
                );
                rows.push(row);
            }
        }
    }
    println!("==> measured in {:.0} s", started.elapsed().as_secs_f64());
    // The table by request, then size.
    rows.sort_by_key(|r| {
        (PROBES.iter().position(|p| p.function == r.function && p.request == r.request), r.mb)
    });

    let header = Header {
        quick: args.quick,
        date: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
        commit: crate::report::commit(&workspace),
        command: args.command.clone(),
        machine: crate::report::machine(),
        requests,
        warm_up,
    };
    let section = cost::markdown(&header, &rows);
    let existing = std::fs::read_to_string(&args.out).unwrap_or_default();
    std::fs::write(&args.out, cost::replaced(&existing, &section))
        .map_err(|e| format!("{}: {e}", args.out.display()))?;
    println!("{section}\n==> wrote {}", args.out.display());
    Ok(())
}

fn probe_event(probe: &Probe, fixtures: &Fixtures, mb: u32, i: usize) -> Bytes {
    let bearer = crate::bearer(&fixtures.token);
    let get = |path: &str| event("GET", path, &[("authorization", &bearer)], None);
    match probe.request {
        "POST /v1/auth/token" => crate::token_event(&fixtures.email, &fixtures.password),
        "POST /v1/users/signup" => {
            let body = serde_json::json!({
                "email": format!("sizes-{mb}-{i}@example.com"),
                "password": fixtures.password,
            });
            event(
                "POST",
                "/v1/users/signup",
                &[("content-type", "application/json")],
                Some(&body.to_string()),
            )
        }
        "GET /v1/users/me" => get("/v1/users/me"),
        "GET /v1/items" => get("/v1/items"),
        "GET /openapi.json" => event("GET", "/openapi.json", &[], None),
        _ => event("GET", "/v1/health", &[], None),
    }
}

struct Context {
    docker: PathBuf,
    exe: PathBuf,
    key: PathBuf,
    logs: PathBuf,
}

/// A function in its container; dropping it stops the `docker run` and removes the container.
struct Running {
    function: Function,
    _container: Container,
}

struct Container {
    docker: PathBuf,
    name: String,
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new(&self.docker)
            .args(["rm", "-f", &self.name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

impl Context {
    /// `serve-function <function>` in a container of `mb` MB and its CPU share, started and
    /// waiting for its first event; with the user and item it made, and a token for the user.
    async fn start(&self, function: &str, mb: u32, signer: &AppState) -> Result<(Running, Fixtures), String> {
        let name = format!("bench-sizes-{}-{function}-{mb}", std::process::id());
        let fixtures = self.logs.join(format!("{function}-{mb}.json"));
        let _ = std::fs::remove_file(&fixtures);
        let key = format!("file:{}", self.key.display());
        let memory = mb.to_string();
        let log = self.logs.join(format!("{function}-{mb}.log"));
        let lambda = Launch::new(
            &self.docker,
            function,
            &[("SIGNING_KEY", key.as_str()), ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", memory.as_str())],
            &log,
        );
        // The function's environment reaches the container through the docker client's: `-e NAME`
        // passes the client's value on, AWS_LAMBDA_RUNTIME_API's included (set when it starts).
        let forwarded: Vec<String> = lambda.env.iter().map(|(k, _)| k.clone()).collect();
        let mut launch = lambda
            .arg("run")
            .arg("--rm")
            .arg(format!("--name={name}"))
            .arg("--network=host")
            .arg(format!("--cpus={}", cost::cpus(mb)))
            .arg(format!("--memory={mb}m"))
            .arg(format!("--memory-swap={mb}m"))
            .arg(format!("--volume={}:/opt/bench/bench:ro", self.exe.display()))
            .arg(format!("--volume={0}:{0}:ro", self.key.display()))
            .arg(format!("--volume={}:/out", self.logs.display()));
        for variable in forwarded.iter().map(String::as_str).chain(["AWS_LAMBDA_RUNTIME_API"]) {
            launch = launch.arg("--env").arg(variable);
        }
        let fixtures_inside = format!("/out/{function}-{mb}.json");
        for arg in [IMAGE, "/opt/bench/bench", "serve-function", function, "--fixtures", &fixtures_inside] {
            launch = launch.arg(arg);
        }
        // The docker client's own environment.
        for variable in [
            "HOME",
            "DOCKER_HOST",
            "DOCKER_CONFIG",
            "DOCKER_CONTEXT",
            "DOCKER_CERT_PATH",
            "DOCKER_TLS_VERIFY",
        ] {
            if let Ok(value) = std::env::var(variable) {
                launch = launch.with_env(variable, &value);
            }
        }
        let container = Container { docker: self.docker.clone(), name };
        let function_process = launch.start().await?;
        let running = Running { function: function_process, _container: container };
        let text = std::fs::read_to_string(&fixtures).map_err(|e| format!("{}: {e}", fixtures.display()))?;
        let f: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        let user: uuid::Uuid =
            f["user_id"].as_str().and_then(|s| s.parse().ok()).ok_or("the fixture user")?;
        let fixtures = Fixtures {
            email: f["email"].as_str().unwrap_or_default().to_owned(),
            password: f["password"].as_str().unwrap_or_default().to_owned(),
            token: crate::token_for(signer, user).await?,
        };
        Ok((running, fixtures))
    }
}

/// An image of nothing but `exe`'s dynamic loader and libraries (from this machine, found with
/// ldd, as scripts/sam-local's stand-in image has them), built from scratch.
fn build_image(docker: &Path, exe: &Path, dir: &Path) -> Result<(), String> {
    let rootfs = dir.join("rootfs");
    let _ = std::fs::remove_dir_all(dir);
    for sub in ["lib64", "tmp", "opt/bench", "out"] {
        std::fs::create_dir_all(rootfs.join(sub)).map_err(|e| e.to_string())?;
    }
    let ldd = Command::new("ldd").arg(exe).output().map_err(|e| format!("ldd: {e}"))?;
    let listed = String::from_utf8_lossy(&ldd.stdout);
    if !ldd.status.success() || listed.contains("not found") {
        return Err(format!("ldd {}: {listed}{}", exe.display(), String::from_utf8_lossy(&ldd.stderr)));
    }
    for library in listed.split_whitespace().filter(|w| w.starts_with('/')) {
        let library = Path::new(library);
        let Some(file_name) = library.file_name() else { continue };
        let at = rootfs.join(library.strip_prefix("/").map_err(|e| e.to_string())?);
        if let Some(parent) = at.parent() {
            std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
        }
        // `copy` follows links: the files themselves.
        std::fs::copy(library, &at).map_err(|e| format!("{}: {e}", library.display()))?;
        std::fs::copy(library, rootfs.join("lib64").join(file_name)).map_err(|e| e.to_string())?;
    }
    std::fs::write(dir.join("Dockerfile"), "FROM scratch\nCOPY rootfs/ /\nENV LD_LIBRARY_PATH=/lib64\n")
        .map_err(|e| e.to_string())?;
    let built = Command::new(docker)
        .args(["build", "-q", "-t", IMAGE])
        .arg(dir)
        .output()
        .map_err(|e| e.to_string())?;
    if !built.status.success() {
        return Err(format!("docker build: {}", String::from_utf8_lossy(&built.stderr)));
    }
    Ok(())
}

/// A program on PATH (and the sbin directories, where root's `dockerd` is).
fn program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// The Docker engine of the run: one that answered, or one started for it (stopped on drop).
struct Engine {
    started: Option<Child>,
}

fn answers(docker: &Path) -> bool {
    Command::new(docker)
        .arg("info")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl Engine {
    fn ensure(docker: &Path, logs: &Path) -> Result<Self, String> {
        if answers(docker) {
            return Ok(Self { started: None });
        }
        let root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
        let dockerd = program("dockerd");
        let (true, Some(dockerd)) = (root, dockerd) else {
            return Err("no Docker engine answers (`docker info` fails): start Docker, or run this as root \
                        where dockerd is installed (Debian: apt-get install docker.io)"
                .into());
        };
        let log_path = logs.join("dockerd.log");
        let log = std::fs::File::create(&log_path).map_err(|e| e.to_string())?;
        let err_log = log.try_clone().map_err(|e| e.to_string())?;
        let mut child = Command::new(dockerd)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err_log)
            .process_group(0)
            .spawn()
            .map_err(|e| format!("start dockerd: {e}"))?;
        println!("==> started dockerd (pid {}) for this run", child.id());
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if answers(docker) {
                return Ok(Self { started: Some(child) });
            }
            if let Ok(Some(status)) = child.try_wait() {
                let tail = std::fs::read_to_string(&log_path).unwrap_or_default();
                return Err(format!("dockerd exited ({status}):\n{tail}"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        let _ = child.wait();
        Err(format!("dockerd did not answer within 30 s (its log: {})", log_path.display()))
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if let Some(child) = &mut self.started {
            // SIGTERM: it stops its containers and cleans up.
            let _ = Command::new("kill").arg(child.id().to_string()).status();
            let _ = child.wait();
        }
    }
}
