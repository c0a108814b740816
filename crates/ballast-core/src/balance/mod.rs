//! Balancing algorithms: choose one backend of a pool for one request.
//!
//! A [`Balancer`] is built once per membership change from the pool's [`Backend`]s and
//! their shared live [`BackendStats`] (atomics that the proxy updates and that survive
//! rebuilds), then `pick` is called on the hot path. `pick` takes no lock and does no I/O:
//! the caller supplies the time and the randomness in a [`PickContext`], which keeps every
//! algorithm a deterministic function that property tests can drive.
//!
//! Every pick, whatever the algorithm:
//! 1. **Sticky**: `ctx.sticky` naming an eligible backend that is not in `ctx.avoid` wins.
//!    Otherwise the algorithm picks (and the proxy rewrites the cookie).
//! 2. **Eligibility**: unhealthy, draining and avoided backends are never picked, except
//!    in **panic mode** (healthy backends are fewer than `panic_threshold` of the
//!    non-draining ones): then unhealthy backends may be picked too, draining ones still
//!    not, and `avoid` is honoured unless it names every non-draining backend.
//! 3. **Slow start** (`slow_start = Some(w)`): a backend ready for less than `w` gets
//!    `max(age / w, 10%)` of its weight. Round-robin, weighted round-robin and random
//!    accept it with that probability when drawn (its share scales accordingly);
//!    least-connections, least-request and peak-EWMA divide its load score by it (a
//!    backend at 10% looks 10x busier). The hashing algorithms ignore it: ramping would
//!    move keys.
//!
//! | algorithm | pick | work per pick |
//! | --- | --- | --- |
//! | round-robin | atomic counter over the pool | O(1) |
//! | weighted-round-robin | counter over a precomputed smooth schedule (`weighted`) | O(1) |
//! | random | random slot of the same schedule: weighted random | O(1) |
//! | least-connections | exact scan for the lowest `(in_flight + 1) / weight` | O(n) |
//! | least-request | power of two choices on `(in_flight + 1) / weight` | O(1) |
//! | peak-ewma | power of two choices on `ewma × (in_flight + 1) / weight` | O(1) |
//! | adaptive | Prequal hot-cold rule: 3 sampled backends, RIF quantile of 8 (`adaptive`) | O(1) |
//! | ip-hash, consistent-hash | ring hash with 160 points per max weight (`hash`) | O(log n) |
//!
//! The O(1) algorithms fall back to an O(n) scan when 16 draws in a row land on backends
//! that may not be picked. When the hash input is missing (no client IP, no hash key) the
//! hashing algorithms pick a random point of the ring: a weighted random pick.
//!
//! **Zone-aware** pools (`BalanceOptions::zone_aware` and a `ctx.client_zone`) restrict
//! every algorithm to the client's zone while that zone has enough eligible backends,
//! and spill over to every zone when it does not (see the `zone` module).

mod adaptive;
mod balancer;
mod estimate;
mod hash;
mod histogram;
mod least;
mod stats;
mod view;
mod weighted;
mod zone;

#[cfg(test)]
mod adaptive_sim;
#[cfg(test)]
mod adaptive_tests;
#[cfg(test)]
mod algorithm_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod zone_tests;

pub use adaptive::{
    ADAPTIVE_CHOICES, HOT_LATENCY_GUARD, HOT_RIF_QUANTILE, LATENCY_MARGIN, LATENCY_SLACK,
};
pub use balancer::Balancer;
pub use estimate::{
    probe_due, rif_level, ProbePolicy, ESTIMATE_MAX_AGE, ESTIMATE_MIN_WEIGHT, ESTIMATE_WINDOW,
    FAILURE_LATENCY_CAP, RIF_LEVELS,
};
pub use hash::VNODES;
pub use histogram::{
    histogram_bucket_bounds, HistogramSnapshot, LatencyHistogram, SparseSnapshot, HISTOGRAM_BUCKETS, HISTOGRAM_RELATIVE_ERROR,
};
pub use stats::{
    BackendStats, MIN_SLOW_START_FACTOR, PEAK_EWMA_DECAY, PEAK_EWMA_DEFAULT_RTT,
    PEAK_EWMA_FAILURE_PENALTY,
};
pub use weighted::MAX_PERIOD;

use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

/// One backend (instance) as the balancer sees it at build time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    /// Stable identity: consistent hashing and sticky cookies key on it.
    pub id: String,
    /// Where to connect, `host:port`.
    pub addr: String,
    /// Relative weight, at least 1. Default 1.
    pub weight: u32,
    /// Zone label, used by zone-aware balancing.
    pub zone: Option<String>,
}

/// The balancing algorithm of a pool. Names are the ones written in the config file and
/// on the command line (`round-robin`, `least-request`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Algorithm {
    /// Each backend in turn; weights ignored.
    RoundRobin,
    /// Smooth weighted round-robin (nginx): weights honoured, picks interleaved.
    WeightedRoundRobin,
    /// Fewest in-flight requests relative to weight.
    LeastConnections,
    /// Random, in proportion to weight.
    Random,
    /// Power of two choices on in-flight requests relative to weight.
    LeastRequest,
    /// Lowest peak-EWMA latency times (in-flight + 1).
    PeakEwma,
    /// Prequal-style: among sampled backends, skip those with many requests in flight
    /// ("hot"), then the lowest estimated latency at their load (see `adaptive`).
    Adaptive,
    /// Consistent hash (ring) of the client IP; random when the IP is unknown.
    IpHash,
    /// Consistent hash (ring) of a header, cookie or the path, see [`HashOn`]; random
    /// when the request has no such value.
    ConsistentHash,
}

impl Algorithm {
    /// Every algorithm, in documentation order.
    pub const ALL: [Algorithm; 9] = [
        Algorithm::RoundRobin,
        Algorithm::WeightedRoundRobin,
        Algorithm::LeastConnections,
        Algorithm::Random,
        Algorithm::LeastRequest,
        Algorithm::PeakEwma,
        Algorithm::Adaptive,
        Algorithm::IpHash,
        Algorithm::ConsistentHash,
    ];

    /// The config-file name of the algorithm.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::RoundRobin => "round-robin",
            Algorithm::WeightedRoundRobin => "weighted-round-robin",
            Algorithm::LeastConnections => "least-connections",
            Algorithm::Random => "random",
            Algorithm::LeastRequest => "least-request",
            Algorithm::PeakEwma => "peak-ewma",
            Algorithm::Adaptive => "adaptive",
            Algorithm::IpHash => "ip-hash",
            Algorithm::ConsistentHash => "consistent-hash",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An algorithm name that is not one of [`Algorithm::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown balance algorithm {given:?}; expected one of: {}", Algorithm::ALL.map(Algorithm::name).join(", "))]
pub struct UnknownAlgorithm {
    /// The name that was given.
    pub given: String,
}

impl FromStr for Algorithm {
    type Err = UnknownAlgorithm;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Algorithm::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| UnknownAlgorithm { given: s.to_string() })
    }
}

/// What a consistent-hash pool hashes: the proxy extracts it and passes it as
/// [`PickContext::hash_key`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HashOn {
    /// The value of this request header.
    Header(String),
    /// The value of this cookie.
    Cookie(String),
    /// The request path (without the query).
    Path,
}

/// Pool-level options that shape every pick, whatever the algorithm.
#[derive(Debug, Clone, PartialEq)]
pub struct BalanceOptions {
    /// New backends ramp their weight up linearly over this window (None: no ramp).
    pub slow_start: Option<Duration>,
    /// When the fraction of healthy backends among the non-draining ones falls below this
    /// (0.0–1.0), unhealthy backends may be picked too ("panic mode": better a maybe-sick
    /// backend than overloading the few healthy ones). Default 0.5; 0.0 disables it.
    pub panic_threshold: f64,
    /// Prefer backends in the client's zone ([`PickContext::client_zone`] against
    /// [`Backend::zone`]). Default false.
    pub zone_aware: bool,
    /// Zone-aware only: when at least this fraction (0.0–1.0) of the local zone's
    /// non-draining backends may take the request, every pick stays local; below it a pick
    /// stays local with probability `fraction / zone_local_threshold` and otherwise goes
    /// to any zone; with no eligible local backend every pick spills over. Default
    /// [`ZONE_LOCAL_THRESHOLD`] (Envoy's overprovisioning factor 1.4: a zone keeps all its
    /// traffic while `1.4 × healthy fraction ≥ 1`). 0.0 keeps picks local whenever one
    /// local backend is eligible.
    pub zone_local_threshold: f64,
}

/// Default [`BalanceOptions::zone_local_threshold`]: `1 / 1.4`, Envoy's overprovisioning.
pub const ZONE_LOCAL_THRESHOLD: f64 = 1.0 / 1.4;

impl Default for BalanceOptions {
    fn default() -> Self {
        BalanceOptions {
            slow_start: None,
            panic_threshold: 0.5,
            zone_aware: false,
            zone_local_threshold: ZONE_LOCAL_THRESHOLD,
        }
    }
}

/// Per-request inputs to a pick. The caller supplies time and entropy so picks are pure.
#[derive(Debug, Clone, Copy, Default)]
pub struct PickContext<'a> {
    /// Monotonic time since the caller's origin (the same origin as the stats' timestamps).
    pub now: Duration,
    /// Fresh random bits for this pick (e.g. `fastrand::u64(..)`).
    pub rand: u64,
    /// The client's address, for ip-hash.
    pub client_ip: Option<IpAddr>,
    /// The extracted hash key, for consistent-hash (see [`HashOn`]).
    pub hash_key: Option<&'a [u8]>,
    /// Backend id from the affinity cookie, when the pool is sticky.
    pub sticky: Option<&'a str>,
    /// Backend indexes to avoid (already tried by this request's earlier attempts).
    pub avoid: &'a [usize],
    /// The client's zone (from a CIDR map or a header), for zone-aware pools.
    pub client_zone: Option<&'a str>,
}
