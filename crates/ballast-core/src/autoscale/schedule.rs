//! Schedule windows: a cron start plus a duration, in a time zone.
//!
//! A window opens at each time its `start` cron expression matches (5 or 6 fields,
//! parsed by croner, evaluated in `timezone`, an IANA name such as `Europe/Berlin`,
//! daylight saving included) and stays open for `duration`. We chose start + duration over
//! a pair of start/end crons because it cannot describe an inverted or never-closing
//! window, and a night window across midnight is just `start = "0 22 * * *"`,
//! `duration = "8h"`.
//!
//! While open, the window sets the pool's bounds (`min`, `max`, each optional) and may
//! vote for a `desired` count. With several open windows the bounds are the largest `min`
//! and the largest `max` among them (a `max` below the `min` is raised to it).

use super::config::yes;
use super::decision::Recommendation;
use crate::config::ConfigDuration;
use chrono::{DateTime, Datelike, TimeDelta, Utc};
use chrono_tz::Tz;
use croner::Cron;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::str::FromStr;

/// `kind = "schedule"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchedulePolicy {
    /// Cron expression of the window's start, e.g. `0 9 * * 1-5` (09:00 on weekdays).
    pub start: String,
    /// How long the window stays open after each start, e.g. `9h`.
    pub duration: ConfigDuration,
    /// IANA time zone of `start`; default `UTC`.
    #[serde(default = "default_tz")]
    pub timezone: String,
    /// Lower bound while open.
    #[serde(default)]
    pub min: Option<u32>,
    /// Upper bound while open.
    #[serde(default)]
    pub max: Option<u32>,
    /// Count to vote for while open.
    #[serde(default)]
    pub desired: Option<u32>,
    /// Default true.
    #[serde(default = "yes")]
    pub active: bool,
}

fn default_tz() -> String {
    "UTC".to_string()
}

/// Bounds set by open windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct WindowBounds {
    pub min: Option<u32>,
    pub max: Option<u32>,
}

impl WindowBounds {
    /// Merges another open window: the largest min and the largest max.
    pub fn merge(&mut self, other: WindowBounds) {
        self.min = self.min.max(other.min);
        self.max = self.max.max(other.max);
    }
}

/// The parsed time parts of a schedule policy, or what is wrong with them.
pub(crate) fn parse(p: &SchedulePolicy) -> Result<(Cron, Tz), String> {
    let cron = Cron::from_str(&p.start).map_err(|e| {
        format!("invalid cron expression {:?} ({e}); write 5 or 6 fields, e.g. \"0 9 * * 1-5\"", p.start)
    })?;
    let tz = Tz::from_str(&p.timezone).map_err(|_| {
        format!("unknown time zone {:?}; use an IANA name such as \"UTC\" or \"Europe/Berlin\"", p.timezone)
    })?;
    Ok((cron, tz))
}

/// When the window that covers `now` started and ends, if one does.
pub(crate) fn open_window(
    cron: &Cron,
    tz: Tz,
    duration: std::time::Duration,
    now: DateTime<Utc>,
) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let local = now.with_timezone(&tz);
    let start = cron.find_previous_occurrence(&local, true).ok()?.with_timezone(&Utc);
    let end = start.checked_add_signed(TimeDelta::from_std(duration).ok()?)?;
    (now < end).then_some((start, end))
}

/// Parsed schedules and what is known about their windows, per policy index, so a
/// decision parses nothing and searches the calendar only when a window opens or closes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScheduleCache(BTreeMap<usize, Entry>);

impl ScheduleCache {
    /// Keeps only the entries of policy indices for which `keep` is true.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&usize) -> bool) {
        self.0.retain(|i, _| keep(i));
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Entry {
    start: String,
    timezone: String,
    duration: std::time::Duration,
    parsed: Result<(Cron, Tz), String>,
    known: Option<Known>,
}

/// A span of time over which the window's state cannot change.
#[derive(Debug, Clone, PartialEq)]
enum Known {
    /// Open from `start`; the same window (and reason) until `until`: its end, or the
    /// next start if windows overlap.
    Open {
        start: DateTime<Utc>,
        until: DateTime<Utc>,
        reason: String,
    },
    Closed {
        since: DateTime<Utc>,
        until: Option<DateTime<Utc>>,
    },
}

impl Known {
    fn covers(&self, now: DateTime<Utc>) -> bool {
        match self {
            Known::Open { start, until, .. } => *start <= now && now < *until,
            Known::Closed { since, until } => *since <= now && until.is_none_or(|u| now < u),
        }
    }
}

fn find(p: &SchedulePolicy, cron: &Cron, tz: Tz, now: DateTime<Utc>) -> Known {
    match open_window(cron, tz, p.duration.0, now) {
        Some((start, end)) => {
            let fmt = |t: DateTime<Utc>| t.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z").to_string();
            let mut reason = format!("window {:?} open {} – {}", p.start, fmt(start), fmt(end));
            for (name, v) in [("min", p.min), ("max", p.max)] {
                if let Some(v) = v {
                    reason.push_str(&format!(", {name} {v}"));
                }
            }
            let next = cron.find_next_occurrence(&start.with_timezone(&tz), false).ok().map(|t| t.with_timezone(&Utc));
            Known::Open { start, until: next.map_or(end, |n| n.min(end)), reason }
        }
        None => {
            let until = cron.find_next_occurrence(&now.with_timezone(&tz), false).ok().map(|t| t.with_timezone(&Utc));
            Known::Closed { since: now, until }
        }
    }
}

/// The vote of a schedule policy and the bounds it sets while open.
pub(crate) fn evaluate(
    p: &SchedulePolicy,
    idx: usize,
    current: u32,
    now: DateTime<Utc>,
    cache: &mut ScheduleCache,
) -> (Recommendation, Option<WindowBounds>) {
    const KIND: &str = "schedule";
    let fresh = |p: &SchedulePolicy| Entry {
        start: p.start.clone(),
        timezone: p.timezone.clone(),
        duration: p.duration.0,
        parsed: parse(p),
        known: None,
    };
    let e = cache.0.entry(idx).or_insert_with(|| fresh(p));
    if e.start != p.start || e.timezone != p.timezone || e.duration != p.duration.0 {
        *e = fresh(p);
    }
    let (cron, tz) = match &e.parsed {
        Ok(v) => v,
        Err(err) => return (Recommendation::no_data(idx, KIND, err.clone()).passive(), None),
    };
    if !(1..=9999).contains(&now.year()) {
        // Calendar searches near chrono's limits overflow local time; no real clock is there.
        let reason = format!("window {:?} not evaluated: {now} is outside years 1–9999", p.start);
        return (Recommendation::no_data(idx, KIND, reason).passive(), None);
    }
    if !e.known.as_ref().is_some_and(|k| k.covers(now)) {
        e.known = Some(find(p, cron, *tz, now));
    }
    let Some(Known::Open { reason, .. }) = &e.known else {
        let reason = format!("window {:?} ({}) closed", p.start, p.timezone);
        return (Recommendation::no_data(idx, KIND, reason).passive(), None);
    };
    let bounds = WindowBounds { min: p.min, max: p.max };
    let rec = match p.desired {
        Some(d) => Recommendation::wants(idx, KIND, d, format!("{reason}, desired {d} → {current} → {d}")),
        None => Recommendation::no_data(idx, KIND, reason.clone()).passive(),
    };
    (rec, Some(bounds))
}
