//! Combining votes into one count: safest wins, bounds, scale to zero, manual override,
//! stabilisation, cooldowns, rate limits, final clamp. Each step that changes or holds
//! the count says so in the decision.

use super::config::{PolicyConfig, Resolved, ScalingConfig};
use super::cost::{self, CostConfig};
use super::decision::{Alert, AlertLevel, Decision, Direction, Recommendation};
use super::memory::{before, left, EngineMemory};
use super::metrics::{MetricKind, MetricSource};
use super::schedule::{self, WindowBounds};
use super::{forecast, score, step, target, Ctx, PoolState};
use chrono::{DateTime, Utc};
use std::time::Duration;

/// Votes, the bounds set by open schedule windows, and the reasons of windows that only
/// set bounds (they have no vote to carry their reason).
type Votes = (Vec<Recommendation>, Option<WindowBounds>, Vec<String>);

/// Collects every policy's vote and the bounds set by open schedule windows.
fn collect_votes(config: &ScalingConfig, r: &Resolved, ctx: &Ctx<'_>, memory: &mut EngineMemory) -> Votes {
    let mut recs = Vec::with_capacity(config.policies.len() + 1);
    let mut windows: Option<WindowBounds> = None;
    let mut window_notes = Vec::new();
    let template = r.template.map(|t| &t.policy);
    for (idx, policy) in config.policies.iter().chain(template).enumerate() {
        if !policy.is_active() {
            recs.push(Recommendation::no_data(idx, policy.kind(), "switched off".into()).passive());
            continue;
        }
        let rec = match policy {
            PolicyConfig::Target(p) => target::evaluate(p, idx, ctx),
            PolicyConfig::Step(p) => step::evaluate(p, idx, ctx),
            PolicyConfig::Score(p) => score::evaluate(p, idx, ctx),
            PolicyConfig::Schedule(p) => {
                let (rec, bounds) = schedule::evaluate(p, idx, ctx.state.current, ctx.now, &mut memory.schedules);
                if let Some(b) = bounds {
                    windows.get_or_insert_with(WindowBounds::default).merge(b);
                    if !rec.acting {
                        window_notes.push(rec.reason.clone());
                    }
                }
                rec
            }
            PolicyConfig::Predictive(p) => {
                let f = memory.forecaster(idx, p.interval.0.as_secs().try_into().unwrap_or(i64::MAX));
                forecast::evaluate(p, idx, ctx, config.sync_interval.0, f)
            }
        };
        recs.push(rec);
    }
    // Forget the history of policies that are gone (the template's policy is a score).
    let kind_at = |i: &usize| config.policies.get(*i).map(PolicyConfig::kind);
    memory.forecasters.retain(|i, _| kind_at(i) == Some("predictive"));
    memory.schedules.retain(|i| kind_at(i) == Some("schedule"));
    (recs, windows, window_notes)
}

/// Safest combination: the largest vote if it is a scale-up; a scale-down only when every
/// acting policy has data and wants less. Returns the proposal and a note.
fn combine_votes(current: u32, recs: &[Recommendation]) -> (u32, Option<String>) {
    let acting = || recs.iter().filter(|r| r.acting);
    let top = acting().filter_map(|r| r.desired).max();
    let Some(top) = top else {
        return (current, Some("no policy has a vote".into()));
    };
    if top >= current {
        return (top, None);
    }
    match acting().find(|r| r.desired.is_none()) {
        Some(r) => (current, Some(format!("scale-down blocked: {} policy #{} has no data", r.kind, r.policy))),
        None => (top, None),
    }
}

/// Was there a request, in-flight request or queued item since the last decision?
fn demand_seen(state: &PoolState, metrics: &dyn MetricSource, since: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    state.pending_requests > 0
        || [MetricKind::Rps, MetricKind::Concurrency, MetricKind::QueueDepth]
            .iter()
            .any(|m| metrics.summary(m, since, now).is_some_and(|s| s.max > 0.0))
}

/// What scale to zero does this time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Zero {
    /// Not involved.
    Off,
    /// Idle long enough: go to 0.
    Idle,
    /// At zero with no demand: stay.
    Stay,
    /// At zero with demand: at least 1.
    Wake,
}

fn scale_to_zero(
    config: &ScalingConfig,
    state: &PoolState,
    metrics: &dyn MetricSource,
    memory: &mut EngineMemory,
    now: DateTime<Utc>,
) -> (Zero, Option<String>) {
    let Some(stz) = &config.scale_to_zero else {
        return (Zero::Off, None);
    };
    let since = memory.last_decide.filter(|t| *t < now).unwrap_or_else(|| before(now, config.sync_interval.0));
    let demand = demand_seen(state, metrics, since, now);
    if demand {
        memory.last_demand = Some(now);
    }
    if state.current == 0 {
        return if demand {
            (Zero::Wake, Some("demand at zero instances: waking".into()))
        } else {
            (Zero::Stay, Some("at zero, no demand".into()))
        };
    }
    let quiet_since = memory.last_demand.or(memory.first_seen).unwrap_or(now);
    let idle = before(now, stz.idle_after.0) >= quiet_since;
    let reporting = metrics.summary(&MetricKind::Rps, before(now, stz.idle_after.0), now).is_some();
    if !demand && idle && reporting {
        let note = format!("no requests for {}: scaling to zero", stz.idle_after);
        return (Zero::Idle, Some(note));
    }
    (Zero::Off, None)
}

/// Stabilisation (the HPA's): a scale-up goes only to the lowest recommendation in the
/// up window, a scale-down only to the highest in the down window.
fn stabilise(r: &Resolved, memory: &EngineMemory, current: u32, now: DateTime<Utc>) -> u32 {
    let within = |w: Duration| {
        let cutoff = before(now, w);
        memory.recommendations.iter().filter(move |(t, _)| *t > cutoff || *t == now).map(|(_, v)| *v)
    };
    let up_floor = within(r.up_window).min().unwrap_or(current);
    let down_ceiling = within(r.down_window).max().unwrap_or(current);
    let mut out = current;
    if out < up_floor {
        out = up_floor;
    }
    if out > down_ceiling {
        out = down_ceiling;
    }
    out
}

/// Applies the rate limits of `config` given the scaling events in memory.
fn rate_limit(
    config: &ScalingConfig,
    memory: &EngineMemory,
    current: u32,
    want: u32,
    now: DateTime<Utc>,
) -> (u32, Option<String>) {
    let moved = |period: Duration, up: bool| -> u32 {
        let cutoff = before(now, period);
        memory
            .scale_events
            .iter()
            .filter(|e| e.at > cutoff && (e.to > e.from) == up)
            .map(|e| e.to.abs_diff(e.from))
            .fold(0u32, u32::saturating_add)
    };
    if want > current {
        if let Some(l) = &config.max_scale_up {
            let base = current.saturating_sub(moved(l.period.0, true));
            let limit = base.saturating_add(l.allowance(base)).max(current);
            if want > limit {
                return (
                    limit,
                    Some(format!("scale-up limited to {limit} (at most {} per {})", l.allowance(base), l.period)),
                );
            }
        }
    } else if want < current {
        if let Some(l) = &config.max_scale_down {
            let base = current.saturating_add(moved(l.period.0, false));
            let limit = base.saturating_sub(l.allowance(base)).min(current);
            if want < limit {
                return (
                    limit,
                    Some(format!("scale-down limited to {limit} (at most {} per {})", l.allowance(base), l.period)),
                );
            }
        }
    }
    (want, None)
}

/// The whole decision; see [`decide`](super::decide).
pub(crate) fn run(
    state: &PoolState,
    config: &ScalingConfig,
    cost: Option<&CostConfig>,
    metrics: &dyn MetricSource,
    memory: &mut EngineMemory,
    now: DateTime<Utc>,
) -> Decision {
    let current = state.current;
    let r = config.resolve();
    memory.first_seen.get_or_insert(now);
    memory.observe_ready(state.ready, now);
    let ctx = Ctx { state, metrics, now, ready_since: memory.ready_changed_at };
    let (recs, windows, mut notes) = collect_votes(config, &r, &ctx, memory);
    let (mut blocked, mut alerts) = (Vec::new(), Vec::new());

    // Bounds: pool, then open schedule windows, then the budget.
    let mut max = config.max;
    let mut min = config.min.min(max);
    if let Some(w) = windows {
        min = w.min.unwrap_or(min);
        max = w.max.unwrap_or(max).max(min);
    }
    let (proposal, vote_note) = combine_votes(current, &recs);
    blocked.extend(vote_note);
    let outcome = cost.map(|c| cost::evaluate(c, state.spend_this_period, current, now));
    if let (Some(c), Some(o)) = (cost, &outcome) {
        alerts.extend(o.alerts.iter().cloned());
        if let Some(cap) = o.cap.filter(|cap| *cap < max) {
            if c.allow_slo_override {
                if proposal > cap {
                    let message = format!("budget pays for {cap} instances; SLO override allows {proposal}");
                    alerts.push(Alert { level: AlertLevel::Critical, message });
                }
            } else {
                if cap < min {
                    let message = format!("budget pays for {cap} instances, below min {min}; min holds");
                    alerts.push(Alert { level: AlertLevel::Critical, message });
                }
                max = cap.max(min);
                notes.push(format!("budget caps max at {max}"));
            }
        }
    }

    let (zero, zero_note) = scale_to_zero(config, state, metrics, memory, now);
    notes.extend(zero_note);
    let manual = state.manual.as_ref().filter(|m| m.expires_at.is_none_or(|e| e > now));
    if state.manual.is_some() && manual.is_none() {
        notes.push("manual override expired".into());
    }

    let clamp = |v: u32| v.clamp(min, max);
    let mut desired = match zero {
        Zero::Idle | Zero::Stay => 0,
        Zero::Wake => clamp(proposal.max(1)),
        Zero::Off => clamp(proposal),
    };
    if desired != proposal && zero == Zero::Off {
        notes.push(format!("{proposal} clamped to [{min}, {max}]"));
    }
    memory.recommendations.push_back((now, desired));

    if let Some(m) = manual {
        desired = if m.replicas == 0 && config.scale_to_zero.is_some() { 0 } else { clamp(m.replicas) };
        let until = m.expires_at.map_or(String::new(), |e| format!(" until {}", e.format("%Y-%m-%d %H:%M UTC")));
        notes.push(format!("manual override {} ({}){until}", m.replicas, m.reason));
    } else if zero == Zero::Off {
        let stable = stabilise(&r, memory, current, now);
        if stable != desired {
            let which = if desired < current { "highest" } else { "lowest" };
            blocked.push(format!("stabilisation: {which} recommendation in window is {stable}"));
            desired = stable;
        }
        if desired > current {
            if let Some(l) = left(memory.last_scale_up, r.up_cooldown, now) {
                blocked.push(format!("scale-up blocked: cooldown {}s left", l.as_secs_f64().ceil()));
                desired = current;
            }
        } else if desired < current {
            if let Some(l) = left(memory.last_scale(), r.down_cooldown, now) {
                blocked.push(format!("scale-down blocked: cooldown {}s left", l.as_secs_f64().ceil()));
                desired = current;
            }
        }
        let (limited, note) = rate_limit(config, memory, current, desired, now);
        desired = limited;
        blocked.extend(note);
        desired = clamp(desired);
    }

    let periods = [&config.max_scale_up, &config.max_scale_down].into_iter().flatten().map(|l| l.period.0);
    let keep = periods.fold(r.down_window.max(r.up_window).max(Duration::from_secs(3600)), Duration::max);
    memory.prune(now, keep);
    memory.last_decide = Some(now);
    if desired != current && !config.dry_run {
        memory.record_scale(now, current, desired);
    }
    let reason = explain(config.dry_run, current, desired, &recs, &blocked, &notes);
    Decision {
        at: now,
        current,
        desired,
        direction: Direction::between(current, desired),
        recommendations: recs,
        min,
        max,
        blocked,
        alerts,
        hourly_cost: outcome.map(|o| o.price * f64::from(desired)),
        dry_run: config.dry_run,
        reason,
    }
}

/// One line: the deciding votes, then what held or bent the count, then the result.
fn explain(
    dry_run: bool,
    current: u32,
    desired: u32,
    recs: &[Recommendation],
    blocked: &[String],
    notes: &[String],
) -> String {
    let acting: Vec<&Recommendation> = recs.iter().filter(|r| r.acting).collect();
    let top = acting.iter().filter_map(|r| r.desired).max();
    let mut parts: Vec<String> = if top.is_some_and(|t| t > current) {
        acting.iter().filter(|r| r.desired == top).map(|r| r.reason.clone()).collect()
    } else {
        acting.iter().map(|r| r.reason.clone()).collect()
    };
    parts.extend(notes.iter().cloned());
    parts.extend(blocked.iter().cloned());
    let verdict = match desired.cmp(&current) {
        std::cmp::Ordering::Equal => format!("hold at {current}"),
        _ => format!("scale {current} → {desired}"),
    };
    parts.push(verdict);
    let line = parts.join("; ");
    if dry_run {
        format!("[dry-run] {line}")
    } else {
        line
    }
}
