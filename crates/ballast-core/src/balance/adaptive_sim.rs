//! A tiny deterministic discrete-event simulation of the heterogeneous benchmark: three
//! backends, one answering every request 20 ms late, 64 closed-loop clients. It measures
//! what share the slow backend gets and the p99 (plain, and as wrk reports it) under
//! adaptive, least-request and peak-EWMA, and how fast adaptive gives a recovered backend
//! its share back.
//!
//! Model: each backend serves up to 4 requests at a time (FIFO queue behind them) in
//! 0.05–0.15 ms; the slow one then holds the answer back `extra` without blocking a worker
//! (a late reply). Every answer also spends 0.6 ms in transit (network and the proxy's
//! upstream handling: in flight for the balancer, but no backend worker busy), and a
//! client sends its next request 0.4 ms after its answer. That is what bounds a real
//! benchmark on one machine: the fast backends are busy but not saturated. The proxy
//! itself stalls now and then ([`proxy_ready`]: a busy event loop, a scheduler hiccup,
//! another process on its core): answers and new requests arriving then wait for the stall's end, so every
//! backend's measured latency spikes at once, as in a real run. Adaptive's probes go
//! through the same queues, scheduled by `probe_due` checked every 10 ms. All randomness
//! is seeded, so every run is identical.

use super::tests::{nth_rand, pool};
use super::*;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

const US: u64 = 1_000;
const MS: u64 = 1_000_000;
const SEC: u64 = 1_000_000_000;
const CLIENTS: usize = 64;
const CLIENT_GAP: u64 = 400 * US;
const TRANSIT: u64 = 600 * US;
const WORKERS: usize = 4;
const PROBE_TICK: u64 = 10 * MS;
const STALL_EVERY: u64 = 40 * MS;
const STALL: u64 = MS;
const LONG_STALL: u64 = 6 * MS;

/// When the proxy can next handle an event due at `t`: `t`, or the end of the stall it
/// falls in. A stall starts 17 ms past every multiple of [`STALL_EVERY`] and lasts
/// [`STALL`], every tenth one [`LONG_STALL`] (3.75% of the time stalled in all).
fn proxy_ready(t: u64) -> u64 {
    let Some(since) = t.checked_sub(17 * MS) else {
        return t;
    };
    let (k, phase) = (since / STALL_EVERY, since % STALL_EVERY);
    let len = if k % 10 == 9 { LONG_STALL } else { STALL };
    if phase < len {
        t - phase + len
    } else {
        t
    }
}

/// Work a backend does: a client's request (sent at `start`) or a probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Job {
    Request { client: usize, start: u64 },
    Probe { start: u64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    ClientReady(usize),
    ServiceDone(usize, Job),
    Reply(usize, Job),
    ProbeTick,
}

#[derive(Debug, Default)]
struct Server {
    busy: usize,
    queue: VecDeque<Job>,
}

/// What one run measured.
#[derive(Debug)]
struct Outcome {
    /// Requests completed per backend, per simulated second.
    per_second: Vec<[u64; 3]>,
    /// Latencies (ns) of requests completed at or after `measure_from`.
    latencies: Vec<u64>,
    /// Probes sent to backend 2.
    probes_to_slow: u64,
}

impl Outcome {
    fn slow_share(&self, from_sec: usize, to_sec: usize) -> f64 {
        let (slow, total) = self.per_second[from_sec..to_sec]
            .iter()
            .fold((0, 0), |(s, t), c| (s + c[2], t + c.iter().sum::<u64>()));
        slow as f64 / total as f64
    }

    fn p99_ms(&mut self) -> f64 {
        self.latencies.sort_unstable();
        let i = (self.latencies.len() * 99).div_ceil(100).saturating_sub(1);
        self.latencies[i] as f64 / MS as f64
    }

    /// The p99 as wrk reports it over `span` ns: corrected for coordinated omission.
    /// wrk takes the mean time between two requests of one connection as the expected
    /// interval `e` and, for every latency `l >= 2e`, adds samples at `l - e`, `l - 2e`,
    /// ... while above `e` (its `stats_correct`): the requests a connection stuck on a
    /// slow answer would have sent. A 20 ms answer at `e` = 1.2 ms so counts as 16
    /// samples, which is why 0.1% of requests to a slow backend already lift the
    /// harness's p99.
    fn wrk_p99_ms(&self, span: u64) -> f64 {
        let e = span / (self.latencies.len() as u64 / CLIENTS as u64).max(1);
        let mut all = self.latencies.clone();
        for &l in &self.latencies {
            if l >= 2 * e {
                all.extend((1..).map(|k| l - k * e).take_while(|&m| m > e));
            }
        }
        all.sort_unstable();
        let i = (all.len() * 99).div_ceil(100).saturating_sub(1);
        all[i] as f64 / MS as f64
    }

    fn throughput(&self) -> f64 {
        self.latencies.len() as f64
    }
}

/// The event queue and the backends' queues.
#[derive(Debug, Default)]
struct Sim {
    servers: [Server; 3],
    events: BinaryHeap<Reverse<(u64, u64, Event)>>,
    seq: u64,
    draws: u64,
}

impl Sim {
    fn push(&mut self, at: u64, e: Event) {
        self.seq += 1;
        self.events.push(Reverse((at, self.seq, e)));
    }

    /// The next seeded random value.
    fn rand(&mut self) -> u64 {
        self.draws += 1;
        nth_rand(99, self.draws)
    }

    /// `job` reaches backend `s` at `t`: served at once when it is idle, else queued.
    fn arrive(&mut self, t: u64, s: usize, job: Job) {
        if self.servers[s].busy == WORKERS {
            self.servers[s].queue.push_back(job);
        } else {
            self.servers[s].busy += 1;
            let service = 50 * US + self.rand() % (100 * US);
            self.push(t + service, Event::ServiceDone(s, job));
        }
    }
}

/// Runs `secs` simulated seconds; backend 2 answers `extra` late until `recover_at` (ns),
/// and from then on backends 0 and 1 answer `others_after` late (a recovered backend that
/// is now the fastest). Latencies are kept from `measure_from` (ns) on.
fn simulate(
    algorithm: Algorithm,
    (extra, recover_at, others_after): (u64, u64, u64),
    secs: u64,
    measure_from: u64,
) -> Outcome {
    let (backends, stats) = pool(&[1, 1, 1]);
    let b = Balancer::new(algorithm, backends, stats, BalanceOptions::default());
    let policy = ProbePolicy::default();
    let mut sim = Sim::default();
    for c in 0..CLIENTS {
        sim.push(c as u64 * US, Event::ClientReady(c));
    }
    if algorithm == Algorithm::Adaptive {
        sim.push(0, Event::ProbeTick);
    }
    let mut out = Outcome {
        per_second: vec![[0; 3]; secs as usize],
        latencies: Vec::new(),
        probes_to_slow: 0,
    };
    while let Some(Reverse((t, _, event))) = sim.events.pop() {
        if t >= secs * SEC {
            break;
        }
        let handled_by_proxy = !matches!(event, Event::ServiceDone(..) | Event::ProbeTick);
        if handled_by_proxy && proxy_ready(t) != t {
            sim.push(proxy_ready(t), event);
            continue;
        }
        let now = Duration::from_nanos(t);
        match event {
            Event::ClientReady(client) => {
                let ctx = PickContext {
                    now,
                    rand: sim.rand(),
                    ..PickContext::default()
                };
                let s = b.pick(&ctx).expect("three healthy backends");
                b.stats(s).on_request_start();
                sim.arrive(t, s, Job::Request { client, start: t });
            }
            Event::ServiceDone(s, job) => {
                sim.servers[s].busy -= 1;
                if let Some(next) = sim.servers[s].queue.pop_front() {
                    sim.arrive(t, s, next);
                }
                let late = match (s, t < recover_at) {
                    (2, true) => extra,
                    (0 | 1, false) => others_after,
                    _ => 0,
                };
                sim.push(t + TRANSIT + late, Event::Reply(s, job));
            }
            Event::Reply(s, Job::Request { client, start }) => {
                b.stats(s)
                    .on_request_end(now, Duration::from_nanos(t - start), true);
                out.per_second[(t / SEC) as usize][s] += 1;
                if t >= measure_from {
                    out.latencies.push(t - start);
                }
                sim.push(t + CLIENT_GAP, Event::ClientReady(client));
            }
            Event::Reply(s, Job::Probe { start }) => {
                b.stats(s)
                    .on_probe_result(now, Duration::from_nanos(t - start), true);
            }
            Event::ProbeTick => {
                for s in 0..3 {
                    if probe_due(b.stats(s), now, &policy) {
                        b.stats(s).on_probe_sent(now);
                        sim.arrive(t, s, Job::Probe { start: t });
                    }
                }
                sim.push(t + PROBE_TICK, Event::ProbeTick);
            }
        }
    }
    out.probes_to_slow = b.stats(2).probes_sent();
    out
}

/// The heterogeneous case, 20 ms and 5 ms late, with the proxy's hiccups: adaptive sends
/// under 0.1% to the slow backend and cuts the p99 far below least-request's, with at least its throughput.
#[test]
fn adaptive_avoids_a_slow_backend_where_least_request_does_not() {
    for extra in [20 * MS, 5 * MS] {
        let run = |a| simulate(a, (extra, u64::MAX, 0), 3, SEC);
        let (mut adaptive, mut least, mut peak) = (
            run(Algorithm::Adaptive),
            run(Algorithm::LeastRequest),
            run(Algorithm::PeakEwma),
        );
        let report = |name: &str, o: &mut Outcome| {
            format!(
                "{name}: slow share {:.3}%, p99 {:.2} ms (as wrk reports it: {:.2} ms), {} req/s",
                100.0 * o.slow_share(1, 3),
                o.p99_ms(),
                o.wrk_p99_ms(2 * SEC),
                o.throughput() / 2.0
            )
        };
        let lines = [
            report("adaptive", &mut adaptive),
            report("least-request", &mut least),
            report("peak-ewma", &mut peak),
        ];
        println!("{} ms late:\n  {}", extra / MS, lines.join("\n  "));
        assert!(adaptive.slow_share(1, 3) < 0.001, "{lines:?}");
        assert!(
            least.slow_share(1, 3) > 0.01,
            "the baseline really is hurt: {lines:?}"
        );
        assert!(adaptive.p99_ms() <= 0.3 * least.p99_ms(), "{lines:?}");
        assert!(adaptive.p99_ms() <= peak.p99_ms(), "{lines:?}");
        assert!(adaptive.throughput() >= least.throughput(), "{lines:?}");
        if extra == 20 * MS {
            // Peak-EWMA's short window (PEAK_EWMA_WINDOW) keeps a hiccup from making the
            // fast backends look dearer than the slow one for long: 0.14% of the requests
            // go there, not 0.47%, and the p99 as wrk reports it is 0.60× least-request's,
            // not 0.88×.
            let span = 2 * SEC;
            assert!(peak.slow_share(1, 3) < 0.002, "{lines:?}");
            assert!(peak.wrk_p99_ms(span) <= 0.7 * least.wrk_p99_ms(span), "{lines:?}");
        }
        assert!(
            adaptive.probes_to_slow > 0,
            "the slow backend is kept measured"
        );
    }
}

/// After the slow backend turns fast, adaptive gives it its share back within 10 s and
/// keeps it; when it comes back *faster* than the others it gets more, but the hot rule
/// stops it from taking everything (herding, then flip-flopping).
#[test]
fn adaptive_gives_a_recovered_backend_its_share_back_within_ten_seconds() {
    let recover = 3;
    for others_after in [0, 500 * US] {
        let o = simulate(
            Algorithm::Adaptive,
            (20 * MS, recover * SEC, others_after),
            recover + 10,
            SEC,
        );
        let shares: Vec<String> = (0..o.per_second.len())
            .map(|s| format!("{:.1}%", 100.0 * o.slow_share(s, s + 1)))
            .collect();
        println!("others +{others_after} ns after: slow backend's share per second (recovers at {recover} s): {shares:?}");
        assert!(o.slow_share(1, recover as usize) < 0.01, "{shares:?}");
        let fair = 1.0 / 3.0;
        let back = (recover as usize..o.per_second.len())
            .find(|&s| o.slow_share(s, s + 1) >= 0.8 * fair);
        assert!(back.is_some(), "never got 80% of its share back: {shares:?}");
        let last = o.per_second.len() - 1;
        let kept = o.slow_share(last - 2, last + 1);
        assert!(kept >= 0.8 * fair, "keeps it: {shares:?}");
        assert!(kept <= 0.6, "shares, does not take all: {shares:?}");
    }
}

/// Equal backends: adaptive keeps round-robin's throughput (within 5%) and spreads the
/// load evenly.
#[test]
fn with_equal_backends_adaptive_matches_round_robin() {
    let mut adaptive = simulate(Algorithm::Adaptive, (0, 0, 0), 3, SEC);
    let mut rr = simulate(Algorithm::RoundRobin, (0, 0, 0), 3, SEC);
    let line = |o: &mut Outcome| format!("p99 {:.2} ms, {} req/s", o.p99_ms(), o.throughput() / 2.0);
    let (a, r) = (line(&mut adaptive), line(&mut rr));
    println!("equal backends: adaptive {a}; round-robin {r}");
    assert!(adaptive.throughput() >= 0.95 * rr.throughput(), "adaptive {a}, round-robin {r}");
    let share = adaptive.slow_share(1, 3);
    assert!((0.28..0.38).contains(&share), "backend 2 gets {share} of the requests");
}
