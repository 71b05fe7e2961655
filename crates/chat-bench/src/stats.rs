//! Numbers of one measurement step: latency percentiles from an `hdrhistogram`, delivery
//! ratios, the pass rule of a fan-out step, the capacity search over a ladder of offered
//! loads. Pure: no I/O.

use hdrhistogram::Histogram;
use serde::Serialize;

/// Latencies are recorded in microseconds, from 1 µs to 60 s, at two significant digits
/// (1 % resolution keeps a histogram at ~20 KiB, so every connection can own one).
pub const MAX_LATENCY_US: u64 = 60_000_000;

/// A fresh latency histogram.
#[must_use]
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 2).expect("constant bounds that hdrhistogram accepts")
}

/// Percentiles that describe a latency distribution (the SVG charts plot them).
pub const CURVE_QUANTILES: [f64; 9] = [0.0, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 0.9999, 1.0];

/// A latency distribution, in microseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Latency {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50_us: u64,
    /// 90th percentile.
    pub p90_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// Maximum.
    pub max_us: u64,
    /// `(quantile, µs)` at [`CURVE_QUANTILES`].
    pub curve: Vec<(f64, u64)>,
}

impl Latency {
    /// Summarises a histogram (all zeros when it is empty).
    #[must_use]
    pub fn from_histogram(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        Self {
            count: h.len(),
            p50_us: h.value_at_quantile(0.5),
            p90_us: h.value_at_quantile(0.9),
            p99_us: h.value_at_quantile(0.99),
            max_us: h.max(),
            curve: CURVE_QUANTILES.iter().map(|&q| (q, h.value_at_quantile(q))).collect(),
        }
    }
}

/// The capacity rule of issue 5: a step passes with ≥ 99.9 % of the expected deliveries and a
/// p99 ≤ 100 ms.
pub const MIN_DELIVERED: f64 = 0.999;
/// See [`MIN_DELIVERED`].
pub const MAX_P99_US: u64 = 100_000;

/// One offered load held for a while.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    /// Deliveries per second asked of the server (messages/s × recipients).
    pub offered_per_sec: f64,
    /// Messages the senders sent.
    pub sent: u64,
    /// How long the senders sent, seconds.
    pub seconds: f64,
    /// Sending plus waiting for the last deliveries, seconds (CPU shares are over this).
    pub wall_secs: f64,
    /// Deliveries counted by receivers (of this step's messages, within the grace period).
    pub delivered: u64,
    /// `sent × recipients`.
    pub expected: u64,
    /// Acks received by senders.
    pub acked: u64,
    /// Error frames received.
    pub errors: u64,
    /// Connections that closed during the step.
    pub closed: u64,
    /// Send → receive latency.
    pub latency: Latency,
    /// Server CPU seconds spent during the step (all server processes).
    pub server_cpu_secs: f64,
    /// The generator's CPU seconds during the step.
    pub generator_cpu_secs: f64,
    /// Server peak RSS after the step, KiB (largest process).
    pub server_hwm_kib: u64,
    /// Our server's group commit during the step: messages per insert transaction (`None` for
    /// a baseline).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub messages_per_batch: Option<f64>,
}

impl Step {
    /// Deliveries achieved per second of sending.
    #[must_use]
    pub fn delivered_per_sec(&self) -> f64 {
        ratio(self.delivered as f64, self.seconds)
    }

    /// Fraction of the expected deliveries that arrived (1 when nothing was expected).
    #[must_use]
    pub fn delivered_ratio(&self) -> f64 {
        if self.expected == 0 { 1.0 } else { self.delivered as f64 / self.expected as f64 }
    }

    /// The generator's share of its one core during the step.
    #[must_use]
    pub fn generator_utilisation(&self) -> f64 {
        ratio(self.generator_cpu_secs, self.wall_secs)
    }

    /// Server CPU microseconds per delivery.
    #[must_use]
    pub fn server_cpu_us_per_delivery(&self) -> f64 {
        ratio(self.server_cpu_secs * 1e6, self.delivered as f64)
    }

    /// Whether the step meets the capacity rule.
    #[must_use]
    pub fn passes(&self) -> bool {
        self.sent > 0 && self.delivered_ratio() >= MIN_DELIVERED && self.latency.p99_us <= MAX_P99_US
    }
}

/// `a / b`, 0 when `b` is 0.
#[must_use]
pub fn ratio(a: f64, b: f64) -> f64 {
    if b == 0.0 { 0.0 } else { a / b }
}

/// The highest offered load among passing steps.
#[must_use]
pub fn capacity(steps: &[Step]) -> Option<f64> {
    steps.iter().filter(|s| s.passes()).map(|s| s.offered_per_sec).reduce(f64::max)
}

/// The next load to try between the capacity found so far and the failing load just above
/// it: their geometric midpoint, so that each refinement halves the ratio between the two
/// (a doubling ladder gives capacities, and ratios of capacities, only as powers of two).
/// `None` when no step passed, when none failed above the capacity, or when the two are
/// within `min_ratio` of each other.
#[must_use]
pub fn refinement(steps: &[Step], min_ratio: f64) -> Option<f64> {
    let passed = capacity(steps)?;
    let failed = steps
        .iter()
        .filter(|s| !s.passes() && s.offered_per_sec > passed)
        .map(|s| s.offered_per_sec)
        .reduce(f64::min)?;
    (failed / passed > min_ratio).then(|| (passed * failed).sqrt().round())
}

/// Offered loads from `start` up to `end` (inclusive when reached), each `factor` × the one before.
#[must_use]
pub fn ladder(start: f64, end: f64, factor: f64) -> Vec<f64> {
    let mut steps = Vec::new();
    let mut load = start;
    while load <= end * 1.000_001 && factor > 1.0 && start > 0.0 {
        steps.push(load.round());
        load *= factor;
    }
    steps
}

/// The step whose offered load is closest to `load` (for "at equal offered load" figures).
#[must_use]
pub fn nearest(steps: &[Step], load: f64) -> Option<&Step> {
    steps.iter().min_by(|a, b| (a.offered_per_sec - load).abs().total_cmp(&(b.offered_per_sec - load).abs()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(offered: f64, delivered: u64, expected: u64, p99_us: u64) -> Step {
        Step {
            offered_per_sec: offered,
            sent: expected / 10,
            seconds: 2.0,
            delivered,
            expected,
            latency: Latency { p99_us, ..Latency::default() },
            ..Step::default()
        }
    }

    #[test]
    fn percentiles_come_from_the_recorded_values() {
        let mut h = histogram();
        for us in 1..=1000 {
            h.record(us).expect("in range");
        }
        let l = Latency::from_histogram(&h);
        assert_eq!(l.count, 1000);
        // Two significant digits: within 1 %.
        assert!((495..=505).contains(&l.p50_us), "{l:?}");
        assert!((891..=909).contains(&l.p90_us), "{l:?}");
        assert!((980..=1000).contains(&l.p99_us), "{l:?}");
        assert!((990..=1010).contains(&l.max_us), "{l:?}");
        assert_eq!(l.curve.len(), CURVE_QUANTILES.len());
        assert!(l.curve.windows(2).all(|w| w[0].1 <= w[1].1));
        assert_eq!(Latency::from_histogram(&histogram()), Latency::default());
    }

    #[test]
    fn a_step_passes_only_with_enough_deliveries_and_a_low_p99() {
        assert!(step(1000.0, 9990, 10_000, 100_000).passes());
        assert!(!step(1000.0, 9989, 10_000, 5_000).passes(), "99.89 % delivered");
        assert!(!step(1000.0, 10_000, 10_000, 100_001).passes(), "p99 over 100 ms");
        assert!(!step(1000.0, 0, 0, 0).passes(), "nothing sent");
    }

    #[test]
    fn capacity_is_the_highest_passing_offered_load() {
        let steps = [
            step(1000.0, 100, 100, 10),
            step(2000.0, 100, 100, 10),
            step(4000.0, 50, 100, 10),
            step(8000.0, 100, 100, 10),
        ];
        // A later pass after a failure still counts: the rule is about loads, not order.
        assert_eq!(capacity(&steps), Some(8000.0));
        assert_eq!(capacity(&steps[2..3]), None);
        assert_eq!(capacity(&[]), None);
    }

    #[test]
    fn rates_and_ratios_of_a_step() {
        let mut s = step(1000.0, 4000, 5000, 10);
        s.server_cpu_secs = 0.2;
        s.generator_cpu_secs = 1.0;
        s.wall_secs = 2.0;
        assert!((s.delivered_per_sec() - 2000.0).abs() < 1e-9);
        assert!((s.delivered_ratio() - 0.8).abs() < 1e-9);
        assert!((s.server_cpu_us_per_delivery() - 50.0).abs() < 1e-9);
        assert!((s.generator_utilisation() - 0.5).abs() < 1e-9);
        assert!((ratio(1.0, 0.0)).abs() < f64::EPSILON);
    }

    #[test]
    fn refinement_bisects_between_the_capacity_and_the_failure_above_it() {
        let pass = |load| step(load, 100, 100, 10);
        let fail = |load| step(load, 50, 100, 10);
        let mut steps = vec![pass(100_000.0), pass(200_000.0), fail(400_000.0)];
        assert_eq!(refinement(&steps, 1.1), Some(282_843.0));
        steps.push(fail(282_843.0));
        assert_eq!(refinement(&steps, 1.1), Some(237_842.0), "below the new failure");
        steps.push(pass(237_842.0));
        assert_eq!(refinement(&steps, 1.1), Some(259_368.0), "above the new capacity");
        assert_eq!(refinement(&steps, 1.1), refinement(&steps, 1.09));
        assert_eq!(refinement(&steps, 1.2), None, "close enough already");
        // A failure below the capacity (a noisy step) does not bound it.
        assert_eq!(refinement(&[fail(50_000.0), pass(100_000.0), fail(200_000.0)], 1.1), Some(141_421.0));
        assert_eq!(refinement(&[pass(100_000.0), pass(200_000.0)], 1.1), None, "nothing failed");
        assert_eq!(refinement(&[fail(100_000.0)], 1.1), None, "nothing passed");
    }

    #[test]
    fn ladders_grow_geometrically_and_stop_at_the_end() {
        assert_eq!(ladder(10_000.0, 80_000.0, 2.0), vec![10_000.0, 20_000.0, 40_000.0, 80_000.0]);
        assert_eq!(ladder(10_000.0, 70_000.0, 2.0), vec![10_000.0, 20_000.0, 40_000.0]);
        assert!(ladder(10.0, 100.0, 1.0).is_empty());
        let steps = [step(1000.0, 1, 1, 1), step(4000.0, 1, 1, 1)];
        assert!((nearest(&steps, 3000.0).map(|s| s.offered_per_sec).unwrap_or_default() - 4000.0).abs() < 1e-9);
    }
}
