//! The pool task during a rolling update: switch the provider's template, follow the
//! [`rollout`](crate::rollout) planner, and roll back when an instance of the new
//! version fails.

use super::pool::{PoolTask, Rolling};
use super::EventKind;
use crate::rollout::{plan, Member as PlanMember, Plan, RolloutLimits};
use std::time::Duration;

impl PoolTask {
    /// Starts rolling every instance to template `to`.
    pub(super) fn start_rollout(&mut self, now: Duration, to: u64, limits: RolloutLimits) {
        if let Err(e) = limits.validate() {
            self.event(now, EventKind::Rollout, e.to_string(), "refused".into());
            return;
        }
        match self.spec.provider.use_template(to) {
            Ok(()) => {
                let from = self.version;
                self.rolling = Some(Rolling { from, to, limits, rolled_back: false });
                self.version = to;
                self.event(now, EventKind::Rollout, format!("template {from} → {to}"), format!("{limits:?}"));
            }
            Err(e) => self.event(now, EventKind::Rollout, format!("template {to}: {e}"), "refused".into()),
        }
    }

    /// Called by healing for each replaced instance: a failure of the new version
    /// aborts the rollout and switches back to the old template.
    pub(super) fn check_rollout_failure(&mut self, now: Duration, version: u64, id: &str, reason: &str) {
        let Some(r) = self.rolling.as_mut() else { return };
        if r.rolled_back || version != r.to {
            return;
        }
        let (from, to) = (r.from, r.to);
        match self.spec.provider.use_template(from) {
            Ok(()) => {
                r.rolled_back = true;
                r.to = from;
                self.version = from;
                self.event(now, EventKind::RolledBack, format!("template {to}: {id} {reason}"), format!("rolling back to template {from}"));
            }
            Err(e) => self.event(now, EventKind::RolledBack, format!("template {to}: {id} {reason}"), format!("cannot switch back: {e}")),
        }
    }

    /// One planner step: create and drain as it says; finish when it is done.
    pub(super) async fn roll(&mut self, now: Duration) {
        let Some(r) = self.rolling.clone() else { return };
        let members: Vec<PlanMember> = self
            .members
            .iter()
            .map(|m| PlanMember { id: m.life.id.clone(), version: m.version, phase: m.life.phase })
            .collect();
        match plan(&members, self.target, r.to, r.limits) {
            Plan::Done => {
                self.rolling = None;
                let what = if r.rolled_back { "rolled back to" } else { "every instance runs" };
                self.event(now, EventKind::Rollout, format!("template {}", r.to), format!("done: {what} template {}", r.to));
            }
            Plan::Abort { reason } => self.event(now, EventKind::RolledBack, reason, "waiting for healing".into()),
            Plan::Step { create, drain } => {
                for id in drain {
                    if let Some(i) = self.members.iter().position(|m| m.life.id == id) {
                        self.drain(i, now, &format!("replaced by template {}", r.to));
                    }
                }
                for _ in 0..create {
                    if now < self.retry_at || !self.create_one(now, format!("rollout to template {}", r.to)).await {
                        break;
                    }
                }
            }
        }
    }
}

/// What a rollout request carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RolloutRequest {
    /// The template version to roll to (registered with the provider).
    pub to: u64,
    /// Surge and unavailability limits.
    pub limits: RolloutLimits,
}
