//! Rolling updates as a pure planner: given a pool's instances (each with the template
//! version it runs) and the new version, what to create and what to drain next, within
//! `max_surge` and `max_unavailable`, the way a Kubernetes Deployment rolls.
//!
//! The controller calls [`plan`] every tick while a rollout is on and applies the
//! result (`controller::PoolHandle::roll_out`); an instance of the new version that
//! fails (exits, or never becomes ready) aborts the rollout ([`Plan::Abort`]) and the
//! caller rolls back by switching the provider to the old template and planning again
//! with the old version as the target.

use crate::lifecycle::Phase;

/// Limits of a rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RolloutLimits {
    /// Instances allowed above the desired count during the rollout.
    pub max_surge: u32,
    /// Instances allowed below the desired count being ready during the rollout.
    pub max_unavailable: u32,
}

/// Limits that allow no progress.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rollout: max_surge and max_unavailable are both 0; set max_surge = 1 (or max_unavailable = 1) so a rollout can progress")]
pub struct NoProgress;

impl RolloutLimits {
    /// Checks that a rollout can make progress.
    pub fn validate(&self) -> Result<(), NoProgress> {
        if self.max_surge == 0 && self.max_unavailable == 0 {
            return Err(NoProgress);
        }
        Ok(())
    }
}

/// One instance as the planner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Provider id.
    pub id: String,
    /// Template version it runs.
    pub version: u64,
    /// Its phase.
    pub phase: Phase,
}

/// What to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Create `create` instances of the new version and drain `drain` (either may be
    /// empty: then wait for instances to become ready or finish draining).
    Step {
        /// New-version instances to create.
        create: u32,
        /// Old-version instances to drain, by id.
        drain: Vec<String>,
    },
    /// Every live instance runs the new version and `desired` are ready.
    Done,
    /// A new-version instance failed: roll back.
    Abort {
        /// Which and why.
        reason: String,
    },
}

/// The next step of rolling the pool to `version` with `desired` instances.
pub fn plan(members: &[Member], desired: u32, version: u64, limits: RolloutLimits) -> Plan {
    if let Some(bad) = members.iter().find(|m| m.version == version && m.phase == Phase::Failed) {
        return Plan::Abort { reason: format!("new version {version}: instance {} failed", bad.id) };
    }
    let live = |m: &&Member| matches!(m.phase, Phase::Pending | Phase::Starting | Phase::Ready);
    let count = |f: &dyn Fn(&Member) -> bool| members.iter().filter(live).filter(|m| f(m)).count() as u32;
    let new_live = count(&|m| m.version == version);
    let new_ready = count(&|m| m.version == version && m.phase == Phase::Ready);
    let old_live = count(&|m| m.version != version);
    let old_ready = count(&|m| m.version != version && m.phase == Phase::Ready);
    let draining = members.iter().filter(|m| m.phase == Phase::Draining).count() as u32;
    if old_live == 0 && new_ready >= desired && draining == 0 {
        return Plan::Done;
    }
    // draining instances still hold resources: they count against the surge
    let total = new_live + old_live + draining;
    let create = (desired + limits.max_surge).saturating_sub(total).min(desired.saturating_sub(new_live));
    let min_ready = desired.saturating_sub(limits.max_unavailable);
    let can_drain = (old_ready + new_ready).saturating_sub(min_ready);
    // not-ready old instances serve nobody: they go first and for free
    let mut drain: Vec<String> = members
        .iter()
        .filter(|m| m.version != version && matches!(m.phase, Phase::Pending | Phase::Starting))
        .map(|m| m.id.clone())
        .collect();
    drain.extend(
        members
            .iter()
            .filter(|m| m.version != version && m.phase == Phase::Ready)
            .take(can_drain as usize)
            .map(|m| m.id.clone()),
    );
    Plan::Step { create, drain }
}

#[cfg(test)]
#[path = "rollout_tests.rs"]
mod tests;
