//! Background latency probes for the `adaptive` balancing algorithm.
//!
//! A backend that gets no traffic (it is slow and the balancer avoids it, or it is new)
//! would keep a stale latency estimate forever. The [`Prober`] sends such backends a
//! lightweight `GET` to a configurable path, off the request path, and records the
//! answer with [`BackendStats::on_probe_result`]. *When* to probe is decided by the pure
//! [`probe_due`] of `ballast-core` (at most one probe per backend per
//! `policy.interval`, and only to backends without a real response for `policy.idle`);
//! this module only runs the schedule and does the I/O. At most one probe per backend is
//! in flight at a time, each bounded by a timeout; connections are kept alive and reused,
//! so a probe costs one small request on an open connection.
//!
//! Results: any answer below 500 is a success, its latency measured to the response
//! head; a 5xx, a connection error or a timeout is a failure, recorded with the time it
//! took (the timeout, for a timeout), which the estimate penalises.

use crate::body::RequestBody;
use crate::upstream::codec::{self, RequestFraming};
use crate::upstream::{self, ConnPool, Outgoing, SendError, UpstreamBody};
use ballast_core::balance::{probe_due, BackendStats, ProbePolicy};
use bytes::Bytes;
use http::uri::{Authority, PathAndQuery};
use http::{header, HeaderMap, HeaderValue, Method};
use std::collections::HashSet;
use std::future::poll_fn;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

/// Every this many ticks, each target's RIF and latency estimate are traced.
const ESTIMATE_TRACE_EVERY: u32 = 10;

/// Longest probe answer body read (the rest is dropped with the connection): 64 KiB.
pub const MAX_PROBE_BODY: usize = 64 * 1024;

/// How the prober probes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeSettings {
    /// Path (and optional query) of the probe request. Default `/`, which the demo
    /// backend and nginx answer.
    pub path: String,
    /// A probe without a response head after this long is a failure. Default 1 s.
    pub timeout: Duration,
    /// When a backend may be probed (rate limit and idle time). Default
    /// [`ProbePolicy::default`]: at most one probe per 100 ms per backend, only after
    /// 250 ms without a real response.
    pub policy: ProbePolicy,
    /// How often the schedule is checked. Default 10 ms.
    pub tick: Duration,
}

impl Default for ProbeSettings {
    fn default() -> Self {
        ProbeSettings {
            path: "/".to_string(),
            timeout: Duration::from_secs(1),
            policy: ProbePolicy::default(),
            tick: Duration::from_millis(10),
        }
    }
}

/// A setting or target the prober cannot use; `field` names it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct ProbeError {
    /// The offending field, e.g. `probe.path` or `targets[2]`.
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> ProbeError {
    ProbeError {
        field: field.into(),
        reason: reason.into(),
    }
}

impl ProbeSettings {
    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), ProbeError> {
        if !self.path.starts_with('/') {
            return Err(invalid(
                "probe.path",
                format!("{:?} must start with '/'", self.path),
            ));
        }
        PathAndQuery::try_from(self.path.as_str()).map_err(|e| {
            invalid(
                "probe.path",
                format!("{:?} is not a valid path ({e})", self.path),
            )
        })?;
        for (field, value) in [
            ("probe.timeout", self.timeout),
            ("probe.interval", self.policy.interval),
            ("probe.tick", self.tick),
        ] {
            if value.is_zero() {
                return Err(invalid(field, "must be greater than zero"));
            }
        }
        Ok(())
    }
}

/// One backend to keep measured: where it listens, its live stats and the probes' own
/// keep-alive connection.
#[derive(Debug, Clone)]
struct Target {
    authority: Authority,
    stats: Arc<BackendStats>,
    conns: Arc<ConnPool>,
}

/// Longest target address accepted: a 253-byte DNS name, `:` and a 5-digit port.
pub const MAX_ADDR_LEN: usize = 259;

/// Parses `(addr, stats)` pairs; an address must be `host:port`.
fn parse_targets(targets: Vec<(String, Arc<BackendStats>)>) -> Result<Vec<Target>, ProbeError> {
    targets
        .into_iter()
        .enumerate()
        .map(|(i, (addr, stats))| {
            if addr.len() > MAX_ADDR_LEN {
                let reason = format!("{} bytes, longer than {MAX_ADDR_LEN}", addr.len());
                return Err(invalid(format!("targets[{i}]"), reason));
            }
            let authority = Authority::try_from(addr.as_str()).map_err(|e| {
                invalid(
                    format!("targets[{i}]"),
                    format!("{addr:?} is not host:port ({e})"),
                )
            })?;
            let digits = addr
                .rsplit_once(':')
                .map(|(_, p)| p)
                .filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
            let reason = match (authority.port_u16(), digits) {
                (Some(0), _) | (None, Some(_)) => format!("{addr:?}: port must be 1-65535"),
                (None, None) => format!("{addr:?} has no port"),
                (Some(_), _) => return Ok(Target { authority, stats, conns: Arc::new(ConnPool::new(1)) }),
            };
            Err(invalid(format!("targets[{i}]"), reason))
        })
        .collect()
}

/// Starts probers.
#[derive(Debug)]
pub struct Prober;

impl Prober {
    /// Starts probing `targets` (`host:port` and its stats) in a background task on the
    /// current tokio runtime. `clock_origin` is the origin of the stats' timestamps (the
    /// proxy's clock): a result at time `t` is recorded at `t - clock_origin`.
    ///
    /// Errors when a setting or a target address is invalid (nothing is started).
    pub fn spawn(
        targets: Vec<(String, Arc<BackendStats>)>,
        settings: ProbeSettings,
        clock_origin: Instant,
    ) -> Result<ProberHandle, ProbeError> {
        settings.validate()?;
        let (tx, rx) = watch::channel(parse_targets(targets)?);
        let task = tokio::spawn(run(rx, settings, clock_origin));
        Ok(ProberHandle { targets: tx, task })
    }
}

/// A running prober; dropping it stops it (probes in flight are abandoned).
#[derive(Debug)]
pub struct ProberHandle {
    targets: watch::Sender<Vec<Target>>,
    task: JoinHandle<()>,
}

impl ProberHandle {
    /// Replaces the probed set (after a membership change). Errors, changing nothing,
    /// when an address is not `host:port`.
    pub fn update(&self, targets: Vec<(String, Arc<BackendStats>)>) -> Result<(), ProbeError> {
        let targets = parse_targets(targets)?;
        self.targets.send_replace(targets);
        Ok(())
    }
}

impl Drop for ProberHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The schedule loop: every tick, sends a probe to each target that is due and has none
/// in flight.
async fn run(mut targets: watch::Receiver<Vec<Target>>, settings: ProbeSettings, origin: Instant) {
    let mut in_flight: HashSet<Authority> = HashSet::new();
    let mut probes: JoinSet<Authority> = JoinSet::new();
    let mut tick = tokio::time::interval(settings.tick);
    let mut ticks: u32 = 0;
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let now = origin.elapsed();
                let current = targets.borrow_and_update().clone();
                // What the balancer sees of each backend, for an operator with
                // RUST_LOG=ballast_proxy::probe=trace: about ten lines a second per backend.
                ticks = ticks.wrapping_add(1);
                if ticks % ESTIMATE_TRACE_EVERY == 0 && tracing::enabled!(tracing::Level::TRACE) {
                    for target in &current {
                        tracing::trace!(
                            backend = %target.authority,
                            in_flight = target.stats.in_flight.load(Ordering::Relaxed),
                            estimate = ?target.stats.latency_estimate(now),
                            "adaptive estimate"
                        );
                    }
                }
                for target in current {
                    if in_flight.contains(&target.authority)
                        || !probe_due(&target.stats, now, &settings.policy)
                    {
                        continue;
                    }
                    target.stats.on_probe_sent(now);
                    in_flight.insert(target.authority.clone());
                    probes.spawn(probe(target, settings.clone(), origin));
                }
            }
            Some(done) = probes.join_next() => {
                if let Ok(authority) = done {
                    in_flight.remove(&authority);
                }
            }
            changed = targets.changed() => {
                if changed.is_err() {
                    return; // the handle is gone
                }
            }
        }
    }
}

/// Sends one probe to `target` and records its result; returns the target's authority.
///
/// It goes out through the same HTTP/1.1 client as the requests its result is compared
/// with ([`crate::upstream`]): this task writes the request and reads the answer itself,
/// so the latency is measured the way a real request's is, with no hand-off to a
/// connection task and back (two more turns of a busy event loop).
async fn probe(target: Target, settings: ProbeSettings, origin: Instant) -> Authority {
    let started = Instant::now();
    let answer = tokio::time::timeout(settings.timeout, exchange(&target, &settings)).await;
    let (latency, success, body) = match answer {
        Ok(Some((status_ok, body))) => (started.elapsed(), status_ok, Some(body)),
        Ok(None) => (started.elapsed(), false, None),
        Err(_) => (settings.timeout, false, None),
    };
    target.stats.on_probe_result(origin.elapsed(), latency, success);
    tracing::trace!(backend = %target.authority, ?latency, success, "probe answered");
    if let Some(body) = body {
        // Bounded too: a trickling body must not keep this target's probe slot forever.
        let _ = tokio::time::timeout(settings.timeout, drain(body)).await;
    }
    target.authority
}

/// Sends the probe request on a kept-alive connection (a new one when none is idle, or
/// when the idle one turns out closed) and waits for the response head: whether its
/// status is below 500, and the body to read. None: no answer.
async fn exchange(target: &Target, settings: &ProbeSettings) -> Option<(bool, UpstreamBody)> {
    let pq = PathAndQuery::try_from(settings.path.as_str()).ok()?;
    let mut headers = HeaderMap::with_capacity(2);
    headers.insert(header::HOST, HeaderValue::from_str(target.authority.as_str()).ok()?);
    headers.insert(header::USER_AGENT, HeaderValue::from_static("ballast-probe"));
    let head = codec::encode_request_head(&Method::GET, &pq, &headers, RequestFraming::Empty);
    let outgoing = || Outgoing {
        head: head.clone(),
        body: RequestBody::empty(),
        framing: RequestFraming::Empty,
        head_request: false,
        idempotent: true,
    };
    let (mut conn, reused) = match target.conns.checkout() {
        Some(conn) => (conn, true),
        None => (upstream::connect(&target.authority, settings.timeout).await.ok()?, false),
    };
    let answer = match upstream::send(&mut conn, outgoing(), &target.authority, settings.timeout).await {
        Err(SendError::NotSent(..)) if reused => {
            // The kept-alive connection had closed: once more on a new one.
            conn = upstream::connect(&target.authority, settings.timeout).await.ok()?;
            upstream::send(&mut conn, outgoing(), &target.authority, settings.timeout).await
        }
        other => other,
    };
    let head = answer.ok()?;
    let status_ok = head.status().as_u16() < 500;
    Some((status_ok, UpstreamBody::new(conn, target.conns.clone(), head.body, head.reusable)))
}

/// Reads up to [`MAX_PROBE_BODY`] bytes of a probe answer; read to its end, the
/// connection goes back to the target's pool for the next probe. A longer or broken
/// body is dropped, and its connection with it.
async fn drain(mut body: UpstreamBody) {
    let mut read = 0usize;
    while let Some(Ok(frame)) = poll_fn(|cx| body.poll_frame(cx)).await {
        read += frame.data_ref().map_or(0, Bytes::len);
        if read > MAX_PROBE_BODY {
            return;
        }
    }
}

#[cfg(test)]
#[path = "probe_tests.rs"]
mod tests;
