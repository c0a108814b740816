//! Several policies side by side with the oracle: the table, the JSON.
//!
//! The JSON shape (fields may be added, never renamed):
//! `{"oracle": {"replica_hours": f, "cost": f, "peak_replicas": n}, "policies": [{"name":
//! s, "replica_hours": f, "cost": f, "slo_violation_minutes": f, "requests_over_slo": f,
//! "requests_unserved": f, "scale_actions": n, "flips": n, "ratio_to_oracle": f,
//! "peak_replicas": n}]}`.

use super::oracle::OracleReport;
use super::run::{PolicyReport, Scenario, SimOptions};
use super::{SimError, SimPolicy};
use serde::Serialize;
use std::fmt::Write as _;

/// The result of `ballast sim`: the oracle and each policy, in the order given.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimReport {
    /// The lower bound.
    pub oracle: OracleReport,
    /// One report per policy.
    pub policies: Vec<PolicyReport>,
}

/// Runs every policy over the scenario with the same options.
pub fn compare(scenario: &Scenario, policies: &mut [Box<dyn SimPolicy>], opts: &SimOptions) -> Result<SimReport, SimError> {
    let policies = policies.iter_mut().map(|p| scenario.simulate(p.as_mut(), opts)).collect::<Result<Vec<_>, _>>()?;
    Ok(SimReport { oracle: scenario.oracle().clone(), policies })
}

impl SimReport {
    /// The `--json` output (pretty-printed, key order as documented).
    pub fn to_json(&self) -> String {
        // Serialising plain structs of finite numbers and strings cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": {:?}}}", e.to_string()))
    }

    /// A text table, one row per policy under the oracle row.
    pub fn to_table(&self) -> String {
        let headers = ["policy", "replica-h", "cost", "SLO min", "req over SLO", "actions", "flips", "x oracle"];
        let o = &self.oracle;
        let mut rows: Vec<[String; 8]> = vec![[
            "oracle".into(),
            format!("{:.2}", o.replica_hours),
            format!("{:.2}", o.cost),
            "0.0".into(),
            "0".into(),
            "-".into(),
            "-".into(),
            "1.00".into(),
        ]];
        for p in &self.policies {
            rows.push([
                p.name.clone(),
                format!("{:.2}", p.replica_hours),
                format!("{:.2}", p.cost),
                format!("{:.1}", p.slo_violation_minutes),
                format!("{:.0}", p.requests_over_slo),
                p.scale_actions.to_string(),
                p.flips.to_string(),
                format!("{:.2}", p.ratio_to_oracle),
            ]);
        }
        let widths: Vec<usize> = (0..headers.len())
            .map(|c| rows.iter().map(|r| r[c].chars().count()).chain([headers[c].len()]).max().unwrap_or(0))
            .collect();
        let mut out = String::new();
        let mut line = |cells: &[String]| {
            for (c, cell) in cells.iter().enumerate() {
                let pad = widths[c] - cell.chars().count();
                if c == 0 {
                    let _ = write!(out, "{cell}{}", " ".repeat(pad));
                } else {
                    let _ = write!(out, "  {}{cell}", " ".repeat(pad));
                }
            }
            out.push('\n');
        };
        line(&headers.map(String::from));
        for row in &rows {
            line(row);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::{parse_trace, FixedPolicy, ReplicaModel};

    fn report() -> SimReport {
        let trace = parse_trace("0,50\n60,200\n120,50\n").unwrap_or_else(|e| panic!("{e}"));
        let model = ReplicaModel { startup_s: 0.0, ..ReplicaModel::default() };
        let scenario = Scenario::new(trace, model).unwrap_or_else(|e| panic!("{e}"));
        let mut policies: Vec<Box<dyn SimPolicy>> = vec![Box::new(FixedPolicy::new(1)), Box::new(FixedPolicy::new(3))];
        compare(&scenario, &mut policies, &SimOptions::default()).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn json_has_the_documented_shape() {
        let json: serde_json::Value = serde_json::from_str(&report().to_json()).unwrap_or_default();
        // needs 1, 3, 1 for 60 s each: 300 replica-seconds.
        assert_eq!(json["oracle"]["replica_hours"], serde_json::json!(300.0 / 3600.0));
        let p = &json["policies"];
        assert_eq!(p.as_array().map(Vec::len), Some(2));
        assert_eq!(p[0]["name"], "fixed-1");
        assert_eq!(p[1]["name"], "fixed-3");
        let keys: Vec<&str> = p[0].as_object().map(|o| o.keys().map(String::as_str).collect()).unwrap_or_default();
        for k in ["name", "replica_hours", "cost", "slo_violation_minutes", "scale_actions", "flips", "ratio_to_oracle", "requests_over_slo"] {
            assert!(keys.contains(&k), "missing {k} in {keys:?}");
        }
        assert!(!keys.contains(&"series"));
        assert_eq!(p[0]["slo_violation_minutes"], serde_json::json!(1.0));
        assert_eq!(p[1]["ratio_to_oracle"], serde_json::json!(540.0 / 300.0));
    }

    #[test]
    fn table_lines_up_the_oracle_and_each_policy() {
        let table = report().to_table();
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 4, "{table}");
        assert!(lines[0].starts_with("policy "));
        assert!(lines[1].starts_with("oracle "));
        assert!(lines[2].starts_with("fixed-1 "));
        assert!(lines[3].starts_with("fixed-3 "));
        assert!(lines.iter().all(|l| l.chars().count() == lines[0].chars().count()), "{table}");
        assert!(lines[3].ends_with("1.80"), "{table}");
        assert!(lines[2].contains(" 1.0 "), "{table}");
    }
}
