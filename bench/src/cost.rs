//! The arithmetic and the table of `bench sizes` (`sizes.rs`): Lambda's CPU share at a memory
//! size, the duration Lambda bills, GB-seconds and dollars per million requests, and the
//! markdown written between the sizes markers of `BENCHMARKS.md`. Nothing here runs anything:
//! `bench/tests/sizes.rs` includes this file to test it.

use std::fmt::Write as _;
use std::time::Duration;

pub const BEGIN: &str = "<!-- sizes:begin (written by `bench sizes`; edits inside are overwritten) -->";
pub const END: &str = "<!-- sizes:end -->";

/// The memory size at which a function has one full vCPU; below it, its share is proportional
/// (<https://docs.aws.amazon.com/lambda/latest/dg/configuration-memory.html>).
pub const ONE_VCPU_MB: u32 = 1769;
/// Lambda arm64 (what template.yaml deploys), us-east-1, the first 7.5 billion GB-s a month.
pub const ARM64_PER_GB_SECOND: f64 = 0.000_013_333_4;
/// Lambda's charge per million requests, either architecture.
pub const PER_MILLION_REQUESTS: f64 = 0.20;

/// The `--cpus` of a container with the CPU share of a function of `mb` megabytes: `mb / 1769`
/// to three decimals (at least 0.01, the least Docker takes), capped at the one vCPU of 1769 MB.
pub fn cpus(mb: u32) -> String {
    let share = (f64::from(mb) / f64::from(ONE_VCPU_MB)).clamp(0.01, 1.0);
    format!("{share:.3}")
}

/// The duration Lambda bills for an invocation: rounded up to the millisecond, at least 1 ms.
pub fn billed_ms(latency: Duration) -> u64 {
    let micros = latency.as_micros();
    let ms = micros.div_ceil(1000).max(1);
    u64::try_from(ms).unwrap_or(u64::MAX)
}

/// GB-seconds of `billed_ms` milliseconds at `mb` megabytes (Lambda's GB is 1024 MB).
pub fn gb_seconds(billed_ms: f64, mb: u32) -> f64 {
    billed_ms / 1000.0 * f64::from(mb) / 1024.0
}

/// Dollars per million requests that each take `gb_seconds`, at arm64 prices.
pub fn dollars_per_million(gb_seconds: f64) -> f64 {
    gb_seconds * 1e6 * ARM64_PER_GB_SECOND + PER_MILLION_REQUESTS
}

/// Percentile by nearest rank over sorted samples.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// One request of one function at one memory size.
#[derive(Debug, Clone)]
pub struct Row {
    pub function: String,
    /// The request, as the table shows it (`POST /v1/auth/token`).
    pub request: String,
    pub mb: u32,
    /// Each invocation's duration as the Runtime API saw it (event handed out to answer).
    pub samples: Vec<Duration>,
}

impl Row {
    fn sorted(&self) -> Vec<Duration> {
        let mut sorted = self.samples.clone();
        sorted.sort();
        sorted
    }

    pub fn median(&self) -> Duration {
        percentile(&self.sorted(), 50.0)
    }

    pub fn p99(&self) -> Duration {
        percentile(&self.sorted(), 99.0)
    }

    /// The mean billed duration: what a million such requests cost is a million times it.
    pub fn mean_billed_ms(&self) -> f64 {
        if self.samples.is_empty() {
            return 0.0;
        }
        let total: u64 = self.samples.iter().map(|d| billed_ms(*d)).sum();
        total as f64 / self.samples.len() as f64
    }

    pub fn gb_seconds(&self) -> f64 {
        gb_seconds(self.mean_billed_ms(), self.mb)
    }

    pub fn dollars_per_million(&self) -> f64 {
        dollars_per_million(self.gb_seconds())
    }
}

/// What the table says about its run.
#[derive(Debug, Clone)]
pub struct Header {
    pub quick: bool,
    pub date: String,
    pub commit: String,
    pub command: String,
    pub machine: String,
    /// Requests measured per row, after the warm-up: (hashing requests, the others).
    pub requests: (usize, usize),
    pub warm_up: (usize, usize),
}

fn ms(d: Duration) -> String {
    let micros = d.as_secs_f64() * 1e6;
    if micros < 1000.0 { format!("{micros:.0} µs") } else { format!("{:.2} ms", micros / 1000.0) }
}

/// The section between the sizes markers: how it was measured, then one line per request and
/// memory size, grouped by request as `rows` come.
pub fn markdown(header: &Header, rows: &[Row]) -> String {
    let mut out = format!("{BEGIN}\n\n");
    let kind =
        if header.quick { "quick run (one size, two requests; not a measurement)" } else { "full run" };
    let _ = writeln!(
        out,
        "**{kind}** · {} · commit `{}` · `{}`\n\nMachine: {}\n",
        header.date, header.commit, header.command, header.machine
    );
    let _ = writeln!(
        out,
        "Each function's router (`bench serve-function`, in-memory store, the tests' signing key) \
         on Lambda through the bench's Runtime API, in a container limited to `--cpus=<MB/{ONE_VCPU_MB}>` \
         and `--memory=<MB>m`: Lambda's CPU share at that memory size. Warm invocations one at a \
         time, {} after {} of warm-up for the requests that hash a password, {} after {} for the \
         others; the duration is from handing out the event to receiving the answer, what Lambda \
         bills. Billed: each invocation rounded up to 1 ms, the mean. Prices: arm64, \
         ${ARM64_PER_GB_SECOND} per GB-s and ${PER_MILLION_REQUESTS:.2} per million requests. \
         The binaries measured are this machine's x86_64 release build; template.yaml deploys \
         arm64 (Graviton), whose speed per vCPU differs: the ratios between sizes carry over \
         better than the absolute figures.\n",
        header.requests.0, header.warm_up.0, header.requests.1, header.warm_up.1
    );
    out.push_str(
        "| function | request | memory | `--cpus` | median | p99 | billed, mean | GB-s per request | \
         $ per million (arm64) | median ÷ at 1769 MB |\n\
         | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for row in rows {
        let full = rows
            .iter()
            .find(|r| r.function == row.function && r.request == row.request && r.mb == ONE_VCPU_MB);
        let ratio = match full {
            Some(full) if !full.median().is_zero() => {
                format!("{:.2}×", row.median().as_secs_f64() / full.median().as_secs_f64())
            }
            _ => "–".to_owned(),
        };
        let _ = writeln!(
            out,
            "| `{}` | `{}` | {} MB | {} | {} | {} | {:.1} ms | {:.6} | ${:.2} | {ratio} |",
            row.function,
            row.request,
            row.mb,
            cpus(row.mb),
            ms(row.median()),
            ms(row.p99()),
            row.mean_billed_ms(),
            row.gb_seconds(),
            row.dollars_per_million(),
        );
    }
    out.push('\n');
    out.push_str(END);
    out
}

/// `existing` with its sizes section replaced by `section`, or with `section` appended under a
/// heading of its own when it has none.
pub fn replaced(existing: &str, section: &str) -> String {
    match (existing.find(BEGIN), existing.find(END)) {
        (Some(begin), Some(end)) if end > begin => {
            format!("{}{}{}", &existing[..begin], section, &existing[end + END.len()..])
        }
        _ if existing.trim().is_empty() => {
            format!("# Benchmarks\n\n## Memory size per function\n\n{section}\n")
        }
        _ => format!("{}\n\n## Memory size per function\n\n{section}\n", existing.trim_end()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(mb: u32, millis: &[u64]) -> Row {
        Row {
            function: "auth".into(),
            request: "POST /v1/auth/token".into(),
            mb,
            samples: millis.iter().map(|m| Duration::from_millis(*m)).collect(),
        }
    }

    #[test]
    fn the_cpu_share_is_the_memory_over_1769_mb_to_three_decimals() {
        assert_eq!(cpus(1769), "1.000");
        assert_eq!(cpus(128), "0.072");
        assert_eq!(cpus(256), "0.145");
        assert_eq!(cpus(512), "0.289");
        assert_eq!(cpus(1024), "0.579");
        assert_eq!(cpus(3538), "1.000");
        assert_eq!(cpus(1), "0.010");
    }

    #[test]
    fn lambda_bills_each_invocation_rounded_up_to_the_millisecond() {
        assert_eq!(billed_ms(Duration::from_micros(1)), 1);
        assert_eq!(billed_ms(Duration::ZERO), 1);
        assert_eq!(billed_ms(Duration::from_micros(1000)), 1);
        assert_eq!(billed_ms(Duration::from_micros(1001)), 2);
        assert_eq!(billed_ms(Duration::from_micros(44_090)), 45);
    }

    #[test]
    fn gb_seconds_and_dollars_follow_the_memory_and_the_billed_time() {
        // 100 ms at 1024 MB is 0.1 GB-s; at 512 MB, half.
        assert!((gb_seconds(100.0, 1024) - 0.1).abs() < 1e-12);
        assert!((gb_seconds(100.0, 512) - 0.05).abs() < 1e-12);
        // A million of them: 100,000 GB-s at $0.0000133334, and the requests' $0.20.
        assert!((dollars_per_million(0.1) - (1.33334 + 0.20)).abs() < 1e-9);
        let r = row(256, &[300, 301, 299]);
        // 300.2 ms... billed 300, 301, 299: mean 300 ms at 0.25 GB.
        assert!((r.mean_billed_ms() - 300.0).abs() < 1e-9);
        assert!((r.gb_seconds() - 0.075).abs() < 1e-12);
        assert!((r.dollars_per_million() - (0.075 * 13.3334 + 0.20)).abs() < 1e-9);
        assert_eq!(r.median(), Duration::from_millis(300));
        assert_eq!(r.p99(), Duration::from_millis(301));
    }

    #[test]
    fn the_table_has_a_line_per_size_with_its_ratio_to_one_vcpu() {
        let header = Header {
            quick: false,
            date: "2026-12-02 10:00 UTC".into(),
            commit: "abc".into(),
            command: "scripts/bench".into(),
            machine: "a machine".into(),
            requests: (50, 500),
            warm_up: (5, 20),
        };
        let text = markdown(&header, &[row(256, &[300]), row(1769, &[50])]);
        assert!(text.starts_with(BEGIN) && text.ends_with(END), "{text}");
        assert!(
            text.contains("**full run** · 2026-12-02 10:00 UTC · commit `abc` · `scripts/bench`"),
            "{text}"
        );
        assert!(text.contains("Machine: a machine"), "{text}");
        assert!(
            text.contains("| `auth` | `POST /v1/auth/token` | 256 MB | 0.145 | 300.00 ms | 300.00 ms | 300.0 ms | 0.075000 | $1.20 | 6.00× |"),
            "{text}"
        );
        assert!(text.contains("| 1769 MB | 1.000 | 50.00 ms |"), "{text}");
        assert!(text.contains("x86_64") && text.contains("arm64"), "{text}");
        let only = markdown(&Header { quick: true, ..header }, &[row(512, &[1])]);
        assert!(only.contains("quick run") && only.contains("| 1.00 ms |"), "{only}");
        assert!(only.contains("| – |"), "{only}");
    }

    #[test]
    fn the_section_replaces_the_one_between_the_markers_or_is_appended() {
        let old = format!("# Benchmarks\n\nbefore\n\n{BEGIN}\nold\n{END}\n\nafter\n");
        let new = replaced(&old, &format!("{BEGIN}\nnew\n{END}"));
        assert_eq!(new, format!("# Benchmarks\n\nbefore\n\n{BEGIN}\nnew\n{END}\n\nafter\n"));
        let appended = replaced("# Benchmarks\n\ntext\n", &format!("{BEGIN}\nnew\n{END}"));
        assert_eq!(
            appended,
            format!("# Benchmarks\n\ntext\n\n## Memory size per function\n\n{BEGIN}\nnew\n{END}\n")
        );
        assert!(replaced("", "s").starts_with("# Benchmarks\n"));
    }
}
