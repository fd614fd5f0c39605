//! The results as markdown: the targets first (each measured value against its target), then
//! every measurement, written between the bench markers of `BENCHMARKS.md` so that the notes
//! around them stay.

use std::fmt::Write as _;
use std::io::{Cursor, Write as _};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::load::WrkResult;
use crate::{Counts, percentile};

pub const BEGIN: &str = "<!-- bench:begin (written by scripts/bench; edits inside are overwritten) -->";
pub const END: &str = "<!-- bench:end -->";

/// Samples of one function's cold starts.
#[derive(Debug, Default)]
pub struct Cold {
    pub name: String,
    /// The request it answers first, for the report.
    pub request: String,
    pub init: Vec<Duration>,
    pub first: Vec<Duration>,
    pub rss: Vec<u64>,
}

impl Cold {
    pub fn new(name: &str, request: &str) -> Self {
        Self { name: name.to_owned(), request: request.to_owned(), ..Self::default() }
    }
}

#[derive(Debug)]
pub struct Warm {
    pub route: &'static str,
    pub store: &'static str,
    pub samples: Vec<Duration>,
}

impl Warm {
    pub fn new(route: &'static str, store: &'static str, mut samples: Vec<Duration>) -> Self {
        samples.sort();
        Self { route, store, samples }
    }
}

/// A server's name, its GET probe alone, the probe during logins, and the logins.
pub type UnderLogins = (&'static str, WrkResult, WrkResult, WrkResult);

#[derive(Debug, Default)]
pub struct Throughput {
    pub get: Vec<(&'static str, WrkResult)>,
    pub login: Vec<(&'static str, WrkResult)>,
    /// Per server: the GET probe alone, the probe during logins, and the logins.
    pub under_logins: Vec<UnderLogins>,
}

#[derive(Debug)]
pub struct Report {
    machine: String,
    date: String,
    commit: String,
    command: String,
    quick: bool,
    counts: Counts,
    pub cold: Vec<Cold>,
    pub warm: Vec<Warm>,
    /// Per binary: zipped bytes for x86_64 and (when built) arm64.
    pub sizes: Vec<(String, u64, Option<u64>)>,
    pub argon2: Option<(Vec<Duration>, Vec<Duration>)>,
    /// The user and item reads of a GET, one after the other and at once.
    pub reads: Option<(Vec<Duration>, Vec<Duration>)>,
    pub throughput: Throughput,
}

const OURS: &str = "Rust local server";
const PEER: &str = "FastAPI peer";

fn ms(d: Duration) -> String {
    let micros = d.as_secs_f64() * 1e6;
    if micros < 1000.0 { format!("{micros:.0} µs") } else { format!("{:.2} ms", micros / 1000.0) }
}

fn us(micros: f64) -> String {
    ms(Duration::from_secs_f64(micros / 1e6))
}

fn mb(bytes: u64) -> String {
    format!("{:.2} MB", bytes as f64 / 1e6)
}

fn sorted(samples: &[Duration]) -> Vec<Duration> {
    let mut s = samples.to_vec();
    s.sort();
    s
}

fn median(samples: &[Duration]) -> Duration {
    percentile(&sorted(samples), 50.0)
}

fn median_u64(values: &[u64]) -> u64 {
    let mut v = values.to_vec();
    v.sort_unstable();
    v.get(v.len().saturating_sub(1) / 2).copied().unwrap_or(0)
}

fn median_f64(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len().saturating_sub(1) / 2).copied().unwrap_or(0.0)
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "**missed**" }
}

/// The size of `path` in a zip archive as Lambda receives it: one entry, deflated.
pub fn zipped(path: &Path) -> Result<u64, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut archive = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .unix_permissions(0o755);
    archive.start_file("bootstrap", options).map_err(|e| e.to_string())?;
    archive.write_all(&bytes).map_err(|e| e.to_string())?;
    let cursor = archive.finish().map_err(|e| e.to_string())?;
    Ok(cursor.into_inner().len() as u64)
}

fn command_output(program: &str, args: &[&str], dir: &Path) -> Option<String> {
    let output = Command::new(program).args(args).current_dir(dir).output().ok()?;
    output.status.success().then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// The commit measured, and whether the work tree differed from it.
pub fn commit(workspace: &Path) -> String {
    let commit = command_output("git", &["rev-parse", "--short=12", "HEAD"], workspace)
        .unwrap_or_else(|| "unknown".into());
    let dirty = command_output("git", &["status", "--porcelain", "--untracked-files=no"], workspace)
        .is_some_and(|s| !s.is_empty());
    if dirty { format!("{commit} (with uncommitted changes)") } else { commit }
}

pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(str::trim)
        .unwrap_or("unknown CPU")
        .to_owned();
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kib: u64 = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{model}, {cores} cores available, {:.0} GiB, Linux {} ({})",
        mem_kib as f64 / 1024.0 / 1024.0,
        kernel.trim(),
        std::env::consts::ARCH
    )
}

impl Report {
    pub fn new(workspace: &Path, command: &str, quick: bool, counts: Counts) -> Self {
        Self {
            machine: machine(),
            date: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
            commit: commit(workspace),
            command: command.to_owned(),
            quick,
            counts,
            cold: Vec::new(),
            warm: Vec::new(),
            sizes: Vec::new(),
            argon2: None,
            reads: None,
            throughput: Throughput::default(),
        }
    }

    fn cold(&self, name: &str) -> Option<&Cold> {
        self.cold.iter().find(|c| c.name == name)
    }

    fn wrk_median(runs: &[(&'static str, WrkResult)], who: &str) -> (f64, f64) {
        let mine: Vec<&WrkResult> = runs.iter().filter(|(n, _)| *n == who).map(|(_, r)| r).collect();
        (
            median_f64(mine.iter().map(|r| r.rps()).collect()),
            median_f64(mine.iter().map(|r| r.p99_us as f64).collect()),
        )
    }

    fn targets(&self, out: &mut String) {
        let _ = writeln!(out, "### Targets\n");
        let _ = writeln!(out, "| Target | Goal | Measured | |\n|---|---|---|---|");
        let hello = self.cold("hello").map(|c| median(&c.init));
        for name in catalog::FUNCTIONS.iter().map(|f| f.name) {
            let Some(c) = self.cold(name) else { continue };
            let m = median(&c.init);
            let _ = writeln!(
                out,
                "| init, `{name}`, median | ≤ 10 ms | {} | {} |",
                ms(m),
                verdict(m <= Duration::from_millis(10))
            );
            if let Some(h) = hello {
                let ratio = m.as_secs_f64() / h.as_secs_f64().max(1e-9);
                let _ = writeln!(
                    out,
                    "| init, `{name}` ÷ hello-world | ≤ 1.5× | {ratio:.2}× ({} ÷ {}) | {} |",
                    ms(m),
                    ms(h),
                    verdict(ratio <= 1.5)
                );
            }
        }
        if let Some(w) = self.warm.iter().find(|w| w.route.starts_with("GET") && w.store == "in-memory") {
            let m = percentile(&w.samples, 50.0);
            let _ = writeln!(
                out,
                "| warm `GET /v1/items/{{item_id}}`, in-memory, median | ≤ 100 µs | {} | {} |",
                ms(m),
                verdict(m <= Duration::from_micros(100))
            );
        }
        let t = &self.throughput;
        if !t.get.is_empty() {
            let (our_rps, our_p99) = Self::wrk_median(&t.get, OURS);
            let (peer_rps, peer_p99) = Self::wrk_median(&t.get, PEER);
            let ratio = our_rps / peer_rps.max(1e-9);
            let _ = writeln!(
                out,
                "| authenticated GET requests/s, local server ÷ FastAPI | ≥ 20× | {ratio:.1}× ({our_rps:.0} ÷ {peer_rps:.0}) | {} |",
                verdict(ratio >= 20.0)
            );
            let share = our_p99 / peer_p99.max(1e-9);
            let _ = writeln!(
                out,
                "| authenticated GET p99, local server ÷ FastAPI | ≤ 0.20 | {share:.3} ({} ÷ {}) | {} |",
                us(our_p99),
                us(peer_p99),
                verdict(share <= 0.2)
            );
        }
        for name in catalog::FUNCTIONS.iter().map(|f| f.name) {
            let Some(c) = self.cold(name) else { continue };
            let rss = median_u64(&c.rss);
            let _ = writeln!(
                out,
                "| peak RSS after one request, `{name}` | ≤ 20 MB | {} | {} |",
                mb(rss),
                verdict(rss <= 20_000_000)
            );
        }
        for (name, _, arm) in self.sizes.iter().filter(|(n, _, _)| n != "hello") {
            match arm {
                Some(arm) => {
                    let _ = writeln!(
                        out,
                        "| zipped arm64 `bootstrap`, `{name}` | ≤ 4 MB | {} | {} |",
                        mb(*arm),
                        verdict(*arm <= 4_000_000)
                    );
                }
                None => {
                    let _ = writeln!(
                        out,
                        "| zipped arm64 `bootstrap`, `{name}` | ≤ 4 MB | not built (quick run) | |"
                    );
                }
            }
        }
        let ours: Vec<_> = t.under_logins.iter().filter(|u| u.0 == OURS).collect();
        if !ours.is_empty() {
            let alone = median_f64(ours.iter().map(|u| u.1.p99_us as f64).collect());
            let during = median_f64(ours.iter().map(|u| u.2.p99_us as f64).collect());
            let ratio = during / alone.max(1e-9);
            let _ = writeln!(
                out,
                "| GET p99 while logins hash ÷ alone (local server) | ≤ 2× | {ratio:.2}× ({} ÷ {}) | {} |",
                us(during),
                us(alone),
                verdict(ratio <= 2.0)
            );
        }
    }

    fn details(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "\n### Cold start\n\nFrom exec to the first `GET /2018-06-01/runtime/invocation/next` on the bench's Runtime \
API, {} starts per function, interleaved; then one invocation (the first, which opens the function's \
connections) and the peak RSS (`VmHWM`) after it. Functions with a store use DynamoDB Local on loopback.\n",
            self.counts.starts
        );
        let _ = writeln!(
            out,
            "| Function | first request | init median | init p95 | first invocation median | first invocation p95 | peak RSS (median) |\n|---|---|---|---|---|---|---|"
        );
        for c in &self.cold {
            let request = &c.request;
            let (init, first) = (sorted(&c.init), sorted(&c.first));
            let _ = writeln!(
                out,
                "| `{}` | {request} | {} | {} | {} | {} | {} |",
                c.name,
                ms(percentile(&init, 50.0)),
                ms(percentile(&init, 95.0)),
                ms(percentile(&first, 50.0)),
                ms(percentile(&first, 95.0)),
                mb(median_u64(&c.rss)),
            );
        }
        let _ = writeln!(
            out,
            "\n### Warm invocations\n\nThrough `lambda_http` and the bench's Runtime API: from handing out the event to \
receiving the answer. In-memory: the function's router served on Lambda by `bench serve-function`; \
DynamoDB Local: the function's own binary.\n"
        );
        let _ = writeln!(out, "| Route | Store | invocations | median | p99 |\n|---|---|---|---|---|");
        for w in &self.warm {
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} | {} |",
                w.route,
                w.store,
                w.samples.len(),
                ms(percentile(&w.samples, 50.0)),
                ms(percentile(&w.samples, 99.0))
            );
        }
        if let Some((sequential, concurrent)) = &self.reads {
            let (sequential, concurrent) = (sorted(sequential), sorted(concurrent));
            let _ = writeln!(
                out,
                "\n### The reads of an authenticated GET\n\n`GET /v1/items/{{item_id}}` reads the caller (is it still \
active?) and the item. Against DynamoDB Local, {} of each, interleaved:\n\n\
| Reads | median | p99 |\n|---|---|---|\n| user, then item | {} | {} |\n| user and item at once | {} | {} |",
                sequential.len(),
                ms(percentile(&sequential, 50.0)),
                ms(percentile(&sequential, 99.0)),
                ms(percentile(&concurrent, 50.0)),
                ms(percentile(&concurrent, 99.0)),
            );
        }
        let _ = writeln!(
            out,
            "\n### Package size\n\nEach `bootstrap` in a zip archive, deflated, as Lambda receives it; x86_64 \
as built here, arm64 as `cargo lambda build --arm64` builds it for `template.yaml`.\n"
        );
        let _ = writeln!(out, "| Binary | x86_64 zipped | arm64 zipped |\n|---|---|---|");
        for (name, x86, arm) in &self.sizes {
            let arm = arm.map(mb).unwrap_or_else(|| "not built (quick run)".into());
            let _ = writeln!(out, "| `{name}` | {} | {arm} |", mb(*x86));
        }
        if let Some((hash, verify)) = &self.argon2 {
            let (hash, verify) = (sorted(hash), sorted(verify));
            let _ = writeln!(
                out,
                "\n### argon2id\n\nm=19456 KiB, t=2, p=1 (OWASP), {} of each on tokio's blocking pool.\n\n\
| Operation | median | p95 |\n|---|---|---|\n| hash | {} | {} |\n| verify | {} | {} |",
                hash.len(),
                ms(percentile(&hash, 50.0)),
                ms(percentile(&hash, 95.0)),
                ms(percentile(&verify, 50.0)),
                ms(percentile(&verify, 95.0)),
            );
        }
        let t = &self.throughput;
        if !t.get.is_empty() {
            let _ = writeln!(
                out,
                "\n### Local server against the FastAPI peer\n\nwrk, one thread, {} s per run, {} rounds with the \
order alternating; the median of the rounds. Each server is one process (uvicorn: one worker, uvloop, \
httptools, orjson), in-memory store, access log off.\n",
                self.counts.wrk_seconds, self.counts.rounds
            );
            let _ = writeln!(out, "| Load | Rust local server | FastAPI peer | ratio |\n|---|---|---|---|");
            for (what, runs) in [
                ("authenticated `GET /v1/items/{item_id}`, 16 connections", &t.get),
                ("`POST /v1/auth/token`, 4 connections", &t.login),
            ] {
                let (o_rps, o_p99) = Self::wrk_median(runs, OURS);
                let (p_rps, p_p99) = Self::wrk_median(runs, PEER);
                let _ = writeln!(
                    out,
                    "| {what}: requests/s | {o_rps:.0} | {p_rps:.0} | {:.1}× |\n| {what}: p99 | {} | {} | {:.3} |",
                    o_rps / p_rps.max(1e-9),
                    us(o_p99),
                    us(p_p99),
                    o_p99 / p_p99.max(1e-9)
                );
            }
            let _ = writeln!(
                out,
                "\n### An authenticated GET while logins hash\n\nOne connection reading `GET /v1/items/{{item_id}}`, \
alone and while four more connections log in without pause (each login one argon2id verification).\n"
            );
            let _ = writeln!(
                out,
                "| Server | GET p99 alone | GET p99 during logins | ratio | GET p50 alone | GET p50 during logins | logins/s meanwhile |\n|---|---|---|---|---|---|---|"
            );
            for who in [OURS, PEER] {
                let mine: Vec<_> = t.under_logins.iter().filter(|u| u.0 == who).collect();
                if mine.is_empty() {
                    continue;
                }
                let pick = |f: &dyn Fn(&UnderLogins) -> f64| median_f64(mine.iter().map(|u| f(u)).collect());
                let (alone, during) = (pick(&|u| u.1.p99_us as f64), pick(&|u| u.2.p99_us as f64));
                let _ = writeln!(
                    out,
                    "| {who} | {} | {} | {:.2}× | {} | {} | {:.1} |",
                    us(alone),
                    us(during),
                    during / alone.max(1e-9),
                    us(pick(&|u| u.1.p50_us as f64)),
                    us(pick(&|u| u.2.p50_us as f64)),
                    pick(&|u| u.3.rps()),
                );
            }
        }
    }

    /// The markdown of this run.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "{BEGIN}\n");
        let kind = if self.quick { "quick run (one short iteration; not a measurement)" } else { "full run" };
        let _ = writeln!(
            out,
            "**{kind}** · {} · commit `{}` · `{}`\n\nMachine: {}\n",
            self.date, self.commit, self.command, self.machine
        );
        self.targets(&mut out);
        self.details(&mut out);
        let _ = writeln!(out, "\n{END}");
        out
    }

    /// Replaces the bench section of `path` (or writes a new file) and returns the section.
    pub fn write(&self, path: &Path) -> Result<String, String> {
        let section = self.markdown();
        let existing = std::fs::read_to_string(path).unwrap_or_default();
        let text = match (existing.find(BEGIN), existing.find(END)) {
            (Some(begin), Some(end)) if end > begin => {
                format!("{}{}{}", &existing[..begin], section.trim_end(), &existing[end + END.len()..])
            }
            _ => format!("# Benchmarks\n\n{section}"),
        };
        std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(section)
    }
}
