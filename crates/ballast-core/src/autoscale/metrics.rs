//! Metric names and the windows of samples the engine reads.
//!
//! Every metric is a series of `(time, value)` samples for the whole pool. What a value
//! means depends on the metric (see [`MetricKind`]): utilisation-style metrics (cpu,
//! memory, latency, error rate, Prometheus and custom values) are already an average or a
//! pool-wide figure, while *total* metrics (rps, concurrency, queue depth) are the sum over
//! the pool, and the engine divides them by the ready instances when it needs a
//! per-instance value. The engine only ever asks for a [`Summary`] of a time range through
//! the [`MetricSource`] trait, so the live controller can use [`MetricWindows`] and the
//! simulator can answer straight from a trace.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::str::FromStr;

/// A metric a policy may scale on. Written in config as `cpu`, `memory`, `rps`,
/// `concurrency`, `latency-p50`, `latency-p95`, `latency-p99`, `error-rate`,
/// `queue-depth`, `prometheus:<query name>` or `custom:<pushed metric name>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MetricKind {
    /// Mean CPU use of the ready instances, percent of their allocation (0–100).
    Cpu,
    /// Mean memory use of the ready instances, percent of their limit (0–100).
    Memory,
    /// Requests per second, total over the pool.
    Rps,
    /// In-flight requests, total over the pool.
    Concurrency,
    /// Median response time, milliseconds.
    LatencyP50,
    /// 95th percentile response time, milliseconds.
    LatencyP95,
    /// 99th percentile response time, milliseconds.
    LatencyP99,
    /// Share of responses that failed, percent (0–100).
    ErrorRate,
    /// Work waiting in a queue in front of the pool, total items.
    QueueDepth,
    /// The result of a named Prometheus query, compared with its target as is.
    Prometheus(String),
    /// A metric pushed through the admin API, by name, compared with its target as is.
    Custom(String),
}

/// The fixed metric names, for messages that list what is allowed.
pub const METRIC_NAMES: &str = "cpu, memory, rps, concurrency, latency-p50, latency-p95, \
     latency-p99, error-rate, queue-depth, prometheus:<query>, custom:<name>";

impl MetricKind {
    /// True for metrics summed over the pool (rps, concurrency, queue depth): the engine
    /// divides them by the ready instances to get a per-instance value.
    pub fn is_total(&self) -> bool {
        matches!(self, MetricKind::Rps | MetricKind::Concurrency | MetricKind::QueueDepth)
    }

    /// A value with its unit, for reasons: `83%`, `412 rps`, `230ms`.
    pub fn format_value(&self, v: f64) -> String {
        self.show(v).to_string()
    }

    /// [`format_value`](Self::format_value) without allocating, for use inside `format!`.
    pub(crate) fn show(&self, v: f64) -> Shown<'_> {
        Shown(self, v)
    }
}

/// A metric value with its unit; see [`MetricKind::format_value`].
pub(crate) struct Shown<'a>(&'a MetricKind, f64);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match self.0 {
            MetricKind::Cpu | MetricKind::Memory | MetricKind::ErrorRate => "%",
            MetricKind::Rps => " rps",
            MetricKind::LatencyP50 | MetricKind::LatencyP95 | MetricKind::LatencyP99 => "ms",
            _ => "",
        };
        write!(f, "{}{unit}", Num(self.1))
    }
}

/// `over 1 sample` / `over 3 samples`, for reasons.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Over(pub usize);

impl fmt::Display for Over {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = if self.0 == 1 { "" } else { "s" };
        write!(f, "over {} sample{s}", self.0)
    }
}

/// A number shown with at most two decimals (`83.3333` → `83.33`, `5.0` → `5`). Written
/// with integer formatting: float formatting was the largest cost of a decision.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Num(pub f64);

impl fmt::Display for Num {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cents = (self.0 * 100.0).round();
        if !cents.is_finite() || cents.abs() >= 9e15 {
            return write!(f, "{}", self.0);
        }
        let cents = cents as i64;
        let (sign, abs) = (if cents < 0 { "-" } else { "" }, cents.unsigned_abs());
        let (whole, frac) = (abs / 100, abs % 100);
        match frac {
            0 => write!(f, "{sign}{whole}"),
            _ if frac % 10 == 0 => write!(f, "{sign}{whole}.{}", frac / 10),
            _ => write!(f, "{sign}{whole}.{frac:02}"),
        }
    }
}

/// A metric name that is not one of [`METRIC_NAMES`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown metric {0:?}; use one of {METRIC_NAMES}")]
pub struct UnknownMetric(pub String);

impl FromStr for MetricKind {
    type Err = UnknownMetric;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let named =
            |prefix: &str| s.strip_prefix(prefix).filter(|n| !n.trim().is_empty()).map(|n| n.trim().to_string());
        Ok(match s {
            "cpu" => MetricKind::Cpu,
            "memory" => MetricKind::Memory,
            "rps" => MetricKind::Rps,
            "concurrency" => MetricKind::Concurrency,
            "latency-p50" => MetricKind::LatencyP50,
            "latency-p95" => MetricKind::LatencyP95,
            "latency-p99" => MetricKind::LatencyP99,
            "error-rate" => MetricKind::ErrorRate,
            "queue-depth" => MetricKind::QueueDepth,
            _ => {
                if let Some(n) = named("prometheus:") {
                    MetricKind::Prometheus(n)
                } else if let Some(n) = named("custom:") {
                    MetricKind::Custom(n)
                } else {
                    return Err(UnknownMetric(s.to_string()));
                }
            }
        })
    }
}

impl fmt::Display for MetricKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            MetricKind::Cpu => "cpu",
            MetricKind::Memory => "memory",
            MetricKind::Rps => "rps",
            MetricKind::Concurrency => "concurrency",
            MetricKind::LatencyP50 => "latency-p50",
            MetricKind::LatencyP95 => "latency-p95",
            MetricKind::LatencyP99 => "latency-p99",
            MetricKind::ErrorRate => "error-rate",
            MetricKind::QueueDepth => "queue-depth",
            MetricKind::Prometheus(n) => return write!(f, "prometheus:{n}"),
            MetricKind::Custom(n) => return write!(f, "custom:{n}"),
        };
        f.write_str(s)
    }
}

impl Serialize for MetricKind {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MetricKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// What a range of samples looks like.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// Mean of the values.
    pub mean: f64,
    /// Largest value.
    pub max: f64,
    /// The newest value.
    pub latest: f64,
    /// How many samples (at least 1).
    pub count: usize,
}

/// Anything that can summarise a metric over a time range: the engine's only view of
/// metrics. Implement it over a trace to drive the engine without copying samples.
pub trait MetricSource {
    /// Summary of the samples of `metric` taken in `(from, to]`; `None` when there are none.
    fn summary(&self, metric: &MetricKind, from: DateTime<Utc>, to: DateTime<Utc>) -> Option<Summary>;
}

/// Recent samples per metric, oldest first. The caller pushes samples as they arrive and
/// trims old ones; the engine reads summaries.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricWindows {
    series: BTreeMap<MetricKind, VecDeque<(DateTime<Utc>, f64)>>,
}

impl MetricWindows {
    /// No samples.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a sample. Samples older than the newest one of the same metric are inserted
    /// in order; non-finite values are dropped (a broken exporter must not scale a pool).
    pub fn push(&mut self, metric: MetricKind, at: DateTime<Utc>, value: f64) {
        if !value.is_finite() {
            return;
        }
        let series = self.series.entry(metric).or_default();
        match series.back() {
            Some((last, _)) if *last > at => {
                let i = series.partition_point(|(t, _)| *t <= at);
                series.insert(i, (at, value));
            }
            _ => series.push_back((at, value)),
        }
    }

    /// Drops every sample taken before `cutoff`.
    pub fn trim_before(&mut self, cutoff: DateTime<Utc>) {
        for series in self.series.values_mut() {
            let n = series.partition_point(|(t, _)| *t < cutoff);
            series.drain(..n);
        }
        self.series.retain(|_, s| !s.is_empty());
    }

    /// Number of samples held for `metric`.
    pub fn len(&self, metric: &MetricKind) -> usize {
        self.series.get(metric).map_or(0, VecDeque::len)
    }

    /// True when no metric has any sample.
    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }
}

impl MetricSource for MetricWindows {
    fn summary(&self, metric: &MetricKind, from: DateTime<Utc>, to: DateTime<Utc>) -> Option<Summary> {
        let series = self.series.get(metric)?;
        let start = series.partition_point(|(t, _)| *t <= from);
        let end = series.partition_point(|(t, _)| *t <= to);
        summarise(series.range(start..end).map(|(_, v)| *v))
    }
}

/// Summary of a sequence of values, oldest first; `None` when empty.
pub fn summarise(values: impl Iterator<Item = f64>) -> Option<Summary> {
    let (mut sum, mut max, mut latest, mut count) = (0.0, f64::MIN, 0.0, 0usize);
    for v in values {
        sum += v;
        max = max.max(v);
        latest = v;
        count += 1;
    }
    (count > 0).then(|| Summary { mean: sum / count as f64, max, latest, count })
}
