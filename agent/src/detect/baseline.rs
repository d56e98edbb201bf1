//! What is normal for an endpoint, learned from its traffic with bounded memory: response sizes
//! and latencies as half-octave histograms (quantiles within a factor √2). After
//! `anomaly_min_samples` exchanges, an exchange far outside them is a finding that says which
//! baseline it broke and by how much: ANOM-1 a response far larger than the endpoint's normal
//! (mass data exposure, exfiltration), ANOM-2 a response far slower (an expensive query,
//! resource exhaustion). Judged before the exchange joins the baseline, so an outlier never
//! raises the bar it is measured against.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Half-octave buckets: `(bucket, count)`, sorted; at most 129 buckets over all of u64.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LogHistogram {
    pub count: u64,
    buckets: Vec<(u8, u64)>,
}

fn bucket(v: u64) -> u8 {
    if v == 0 {
        return 0;
    }
    let k = v.ilog2();
    let upper_half = (v as f64) >= 2f64.powi(k as i32) * std::f64::consts::SQRT_2;
    (1 + 2 * k + u32::from(upper_half)).min(255) as u8
}

/// The largest value bucket `b` holds.
fn upper(b: u8) -> u64 {
    if b == 0 {
        return 0;
    }
    let k = u32::from(b - 1) / 2;
    let base = 2f64.powi(k as i32);
    let top = if (b - 1) % 2 == 1 {
        base * 2.0
    } else {
        base * std::f64::consts::SQRT_2
    };
    top.min(u64::MAX as f64) as u64
}

impl LogHistogram {
    pub fn add(&mut self, v: u64) {
        let b = bucket(v);
        match self.buckets.binary_search_by_key(&b, |(k, _)| *k) {
            Ok(i) => {
                if let Some((_, n)) = self.buckets.get_mut(i) {
                    *n += 1;
                }
            }
            Err(i) => self.buckets.insert(i, (b, 1)),
        }
        self.count += 1;
    }

    /// An upper bound of the `q` quantile (0 < q ≤ 1), within a factor √2.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        let rank = ((self.count as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (b, n) in &self.buckets {
            seen += n;
            if seen >= rank {
                return Some(upper(*b));
            }
        }
        self.buckets.last().map(|(b, _)| upper(*b))
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    pub response_bytes: LogHistogram,
    pub latency_us: LogHistogram,
}

/// How far outside the baseline an exchange must be.
#[derive(Debug, Clone, Copy)]
pub struct Thresholds {
    pub min_samples: u64,
    /// ANOM-1: response bytes above this many times the endpoint's p99 (and at least 4 KiB).
    pub size_factor: f64,
    /// ANOM-2: latency above this many times the endpoint's p99 (and at least 100 ms).
    pub latency_factor: f64,
}

const ANOM1_MIN_BYTES: u64 = 4096;
const ANOM2_MIN_US: u64 = 100_000;

fn outlier(
    histogram: &LogHistogram,
    observed: u64,
    factor: f64,
    floor: u64,
    min_samples: u64,
    what: &str,
) -> Option<Value> {
    if histogram.count < min_samples || observed < floor {
        return None;
    }
    let p99 = histogram.quantile(0.99)?.max(1);
    let ratio = observed as f64 / p99 as f64;
    (ratio > factor).then(|| {
        json!({
            "baseline": what,
            "samples": histogram.count,
            "p50": histogram.quantile(0.5),
            "p99": p99,
            "observed": observed,
            "times_p99": (ratio * 10.0).round() / 10.0,
        })
    })
}

impl Baseline {
    /// (ANOM-1 evidence, ANOM-2 evidence) for an exchange with this response size and latency.
    pub fn judge(
        &self,
        response_bytes: Option<u64>,
        latency_us: Option<u64>,
        t: Thresholds,
    ) -> (Option<Value>, Option<Value>) {
        (
            response_bytes.and_then(|b| {
                outlier(
                    &self.response_bytes,
                    b,
                    t.size_factor,
                    ANOM1_MIN_BYTES,
                    t.min_samples,
                    "response_bytes",
                )
            }),
            latency_us.and_then(|l| {
                outlier(
                    &self.latency_us,
                    l,
                    t.latency_factor,
                    ANOM2_MIN_US,
                    t.min_samples,
                    "latency_us",
                )
            }),
        )
    }

    pub fn record(&mut self, response_bytes: Option<u64>, latency_us: Option<u64>) {
        if let Some(b) = response_bytes {
            self.response_bytes.add(b);
        }
        if let Some(l) = latency_us {
            self.latency_us.add(l);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_bound_values_within_root_two() {
        for v in [1u64, 2, 3, 5, 100, 1000, 4096, 1 << 40, u64::MAX / 3] {
            let up = upper(bucket(v));
            assert!(up as f64 >= v as f64 * 0.999, "{v} → {up}");
            assert!(
                (up as f64) <= v as f64 * std::f64::consts::SQRT_2 * 1.001 + 1.0,
                "{v} → {up}"
            );
        }
        assert_eq!(bucket(0), 0);
        assert!(bucket(u64::MAX) > bucket(u64::MAX / 2));
    }

    #[test]
    fn forty_times_the_normal_response_is_anom1_not_before_min_samples() {
        let t = Thresholds {
            min_samples: 50,
            size_factor: 10.0,
            latency_factor: 20.0,
        };
        let mut b = Baseline::default();
        for i in 0..49 {
            b.record(Some(900 + i * 5), Some(2_000));
        }
        assert_eq!(b.judge(Some(40_000), None, t), (None, None));
        b.record(Some(1_000), Some(2_000));
        let (anom1, anom2) = b.judge(Some(40_000), Some(2_500), t);
        let e = anom1.expect("ANOM-1");
        assert_eq!(e["baseline"], "response_bytes");
        assert_eq!(e["observed"], 40_000);
        assert!(e["times_p99"].as_f64().is_some_and(|r| r > 10.0), "{e}");
        assert!(anom2.is_none());
        // A small response, however much larger than a tiny normal, is not exfiltration.
        let mut tiny = Baseline::default();
        for _ in 0..50 {
            tiny.record(Some(10), Some(100));
        }
        assert_eq!(tiny.judge(Some(2_000), Some(150_000), t).0, None);
        assert!(tiny.judge(Some(2_000), Some(150_000), t).1.is_some());
    }
}
