//! Running wrk and reading its report: requests per second, requests completed, and the
//! latency percentiles of `--latency`.

use std::process::Command;

use anyhow::Context as _;

/// One wrk run as the benches read it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct WrkRun {
    pub rps: f64,
    pub requests: u64,
    /// Latency percentiles in µs (only with `--latency`).
    pub p50_us: Option<f64>,
    pub p99_us: Option<f64>,
}

/// Reads wrk's report (stdout); stderr is shown when it has no numbers.
pub fn wrk_report(stdout: &[u8], stderr: &[u8]) -> anyhow::Result<(f64, u64)> {
    let run = parse(stdout, stderr)?;
    Ok((run.rps, run.requests))
}

pub fn parse(stdout: &[u8], stderr: &[u8]) -> anyhow::Result<WrkRun> {
    let text = String::from_utf8_lossy(stdout);
    let rps = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| {
            format!(
                "no Requests/sec in wrk output: {text}{}",
                String::from_utf8_lossy(stderr)
            )
        })?;
    let requests = text
        .lines()
        .find_map(|l| l.trim().split_once(" requests in "))
        .and_then(|(n, _)| n.trim().parse().ok())
        .with_context(|| format!("no request count in wrk output: {text}"))?;
    let percentile = |label: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(label))
            .and_then(|v| duration_us(v.trim()))
    };
    Ok(WrkRun {
        rps,
        requests,
        p50_us: percentile("50%"),
        p99_us: percentile("99%"),
    })
}

/// wrk's durations: `512.00us`, `2.10ms`, `1.02s`, `3.00m`.
fn duration_us(v: &str) -> Option<f64> {
    let split = v.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = v.split_at(split);
    let n: f64 = number.parse().ok()?;
    let scale = match unit {
        "us" => 1.0,
        "ms" => 1e3,
        "s" => 1e6,
        "m" => 60e6,
        "h" => 3600e6,
        _ => return None,
    };
    Some(n * scale)
}

/// `wrk -t1 -cN -dSs --latency [extra] url`.
pub fn run(url: &str, seconds: u64, connections: u32, extra: &[&str]) -> anyhow::Result<WrkRun> {
    let out = Command::new("wrk")
        .args(["-t1", &format!("-c{connections}"), &format!("-d{seconds}s")])
        .arg("--latency")
        .args(extra)
        .arg(url)
        .output()
        .context("running wrk")?;
    parse(&out.stdout, &out.stderr)
}

/// Requests per second of [`run`].
pub fn wrk_with(url: &str, seconds: u64, connections: u32, extra: &[&str]) -> anyhow::Result<f64> {
    Ok(run(url, seconds, connections, extra)?.rps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rate_count_and_percentiles() {
        let out = b"Running 5s test @ https://127.0.0.1:1/100B
  1 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   513.59us  542.51us  12.62ms   92.46%
    Req/Sec    18.63k     2.07k   22.15k    73.33%
  Latency Distribution
     50%  340.00us
     75%  501.00us
     90%    1.10ms
     99%    2.75ms
  111241 requests in 6.00s, 35.86MB read
Requests/sec:  18528.52
Transfer/sec:      5.97MB
";
        let run = parse(out, b"").expect("parsed");
        assert_eq!(run.requests, 111_241);
        assert!((run.rps - 18_528.52).abs() < 1e-6);
        assert_eq!(run.p50_us, Some(340.0));
        assert_eq!(run.p99_us, Some(2750.0));
        assert!(parse(b"nothing", b"boom").is_err());
        assert_eq!(duration_us("1.5s"), Some(1.5e6));
        assert_eq!(duration_us("12parsecs"), None);
    }
}
