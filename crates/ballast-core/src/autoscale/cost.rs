//! Cost awareness: price per instance-hour, a budget per period, alerts, and the cap the
//! remaining budget puts on the pool's size.
//!
//! ```toml
//! [pool.cost]
//! price_per_instance_hour = 0.096     # or vcpus_per_instance × price_per_vcpu_hour + ...
//! budget = 500.0                      # per period, in `currency`
//! period = "monthly"                  # daily | weekly | monthly (calendar, UTC)
//! warning_at = 0.75
//! critical_at = 0.9
//! allow_slo_override = false
//! ```
//! The spend so far in the current period comes in through
//! [`PoolState::spend_this_period`](super::PoolState). The cap is the number of instances
//! the remaining budget pays for until the period ends:
//! `floor((budget − spent) / (price × hours left))`. The pool's `min` always holds (an
//! alert says when the budget cannot pay for it); with `allow_slo_override` a load-driven
//! scale-up may pass the cap, and a critical alert says so.

use super::decision::{Alert, AlertLevel};
use super::metrics::Num;
use chrono::{DateTime, Datelike, Duration as TimeDelta, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// Price and budget of one pool (`[pool.cost]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CostConfig {
    /// Currency label for messages; default `USD`.
    #[serde(default = "default_currency")]
    pub currency: String,
    /// Price of one instance for one hour.
    #[serde(default)]
    pub price_per_instance_hour: Option<f64>,
    /// vCPUs per instance, priced at `price_per_vcpu_hour`.
    #[serde(default)]
    pub vcpus_per_instance: Option<f64>,
    /// Price of one vCPU for one hour.
    #[serde(default)]
    pub price_per_vcpu_hour: Option<f64>,
    /// Memory per instance in GB, priced at `price_per_gb_hour`.
    #[serde(default)]
    pub memory_gb_per_instance: Option<f64>,
    /// Price of one GB of memory for one hour.
    #[serde(default)]
    pub price_per_gb_hour: Option<f64>,
    /// Spend allowed per period; None: no budget (cost is only reported).
    #[serde(default)]
    pub budget: Option<f64>,
    /// Budget period; default monthly.
    #[serde(default)]
    pub period: BudgetPeriod,
    /// Share of the budget (0–1) that raises a warning; default 0.75.
    #[serde(default = "default_warning")]
    pub warning_at: f64,
    /// Share of the budget (0–1) that raises a critical alert; default 0.9.
    #[serde(default = "default_critical")]
    pub critical_at: f64,
    /// Let load-driven scale-ups pass the budget cap (with a critical alert).
    #[serde(default)]
    pub allow_slo_override: bool,
}

fn default_currency() -> String {
    "USD".to_string()
}
fn default_warning() -> f64 {
    0.75
}
fn default_critical() -> f64 {
    0.9
}

impl CostConfig {
    /// A price per instance-hour with an optional budget and the default alert levels.
    pub fn per_instance_hour(price: f64, budget: Option<f64>) -> Self {
        CostConfig {
            currency: default_currency(),
            price_per_instance_hour: Some(price),
            vcpus_per_instance: None,
            price_per_vcpu_hour: None,
            memory_gb_per_instance: None,
            price_per_gb_hour: None,
            budget,
            period: BudgetPeriod::default(),
            warning_at: default_warning(),
            critical_at: default_critical(),
            allow_slo_override: false,
        }
    }

    /// Price of one instance for one hour: the instance price plus vCPU and memory prices.
    pub fn instance_hour_price(&self) -> f64 {
        let part = |a: Option<f64>, b: Option<f64>| a.zip(b).map_or(0.0, |(a, b)| a * b);
        self.price_per_instance_hour.unwrap_or(0.0)
            + part(self.vcpus_per_instance, self.price_per_vcpu_hour)
            + part(self.memory_gb_per_instance, self.price_per_gb_hour)
    }
}

/// Budget period, calendar-aligned in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BudgetPeriod {
    /// Midnight to midnight.
    Daily,
    /// Monday 00:00 to Monday 00:00.
    Weekly,
    /// First of the month to first of the next.
    #[default]
    Monthly,
}

impl BudgetPeriod {
    /// When the period containing `now` ends.
    pub fn end_after(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        let day = now.date_naive();
        let next = match self {
            BudgetPeriod::Daily => day.succ_opt(),
            BudgetPeriod::Weekly => {
                day.checked_add_days(chrono::Days::new(7 - u64::from(day.weekday().num_days_from_monday())))
            }
            BudgetPeriod::Monthly => {
                let (y, m) = if day.month() == 12 { (day.year() + 1, 1) } else { (day.year(), day.month() + 1) };
                NaiveDate::from_ymd_opt(y, m, 1)
            }
        };
        next.and_then(|d| d.and_hms_opt(0, 0, 0)).map_or(DateTime::<Utc>::MAX_UTC, |t| t.and_utc())
    }

    fn name(&self) -> &'static str {
        match self {
            BudgetPeriod::Daily => "today",
            BudgetPeriod::Weekly => "this week",
            BudgetPeriod::Monthly => "this month",
        }
    }
}

/// What the budget says for one decision.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct CostOutcome {
    /// Most instances the remaining budget pays for until the period ends.
    pub cap: Option<u32>,
    /// Budget alerts.
    pub alerts: Vec<Alert>,
    /// Price of one instance-hour.
    pub price: f64,
}

/// Evaluates the budget given the spend so far and the current count.
pub(crate) fn evaluate(c: &CostConfig, spent: f64, current: u32, now: DateTime<Utc>) -> CostOutcome {
    let price = c.instance_hour_price();
    let mut out = CostOutcome { price, ..CostOutcome::default() };
    let Some(budget) = c.budget.filter(|b| *b > 0.0) else {
        return out;
    };
    let money = |v: f64| format!("{} {}", Num(v), c.currency);
    let used = spent / budget;
    let period = c.period.name();
    let level = if used >= c.critical_at {
        Some(AlertLevel::Critical)
    } else if used >= c.warning_at {
        Some(AlertLevel::Warning)
    } else {
        None
    };
    if let Some(level) = level {
        let message = format!("budget: spent {} of {} {period} ({}%)", money(spent), money(budget), Num(used * 100.0));
        out.alerts.push(Alert { level, message });
    }
    let secs_left = (c.period.end_after(now) - now).max(TimeDelta::seconds(1)).num_seconds();
    let hours_left = secs_left as f64 / 3600.0;
    if price > 0.0 {
        let remaining = (budget - spent).max(0.0);
        let cap = (remaining / (price * hours_left)).floor();
        out.cap = Some(if cap >= f64::from(u32::MAX) { u32::MAX } else { cap as u32 });
        let projected = spent + price * f64::from(current) * hours_left;
        if projected > budget && used < 1.0 {
            let message = format!(
                "budget: at {current} instances the period ends at {} (budget {})",
                money(projected),
                money(budget)
            );
            out.alerts.push(Alert { level: AlertLevel::Warning, message });
        }
    }
    out
}
