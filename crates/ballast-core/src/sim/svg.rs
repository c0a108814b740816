//! The chart: offered load (grey area, right axis) and billed replicas per policy and for
//! the oracle (lines, left axis) over time, as one self-contained SVG string.
//!
//! The two axes share one scale: a load of `k × capacity × max_utilisation` req/s is
//! drawn at the height of `k` replicas, so where a policy's line dips into the grey area
//! its pool is short of the utilisation ceiling (ready replicas may lag the billed line
//! while they start).
//!
//! Long traces are drawn at most [`COLUMNS`] columns wide: each column shows the
//! *maximum* of a series inside it, so short spikes and short scale-ups stay visible.

use super::report::SimReport;
use super::run::{Scenario, SeriesPoint};
use std::fmt::Write as _;

/// Columns a series is reduced to at most.
pub const COLUMNS: usize = 800;
const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 440.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 72.0;
const TOP: f64 = 48.0;
const BOTTOM: f64 = 48.0;
const PALETTE: [&str; 8] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2"];

/// Renders the scenario's load and every run of `report` (plus the oracle) as SVG.
pub fn render_svg(scenario: &Scenario, report: &SimReport) -> String {
    let trace = scenario.trace();
    let (start, end) = (trace.start_s(), trace.end_s());
    let load: Vec<(f64, f64)> = trace.points().iter().map(|p| (p.t_s, p.rps)).collect();
    let billed = |s: &[SeriesPoint]| s.iter().map(|p| (p.t_s, f64::from(p.billed))).collect::<Vec<_>>();
    let model = scenario.model();
    let per_replica = model.capacity_rps * model.slo.max_utilisation;
    let max_load = load.iter().map(|p| p.1).fold(0.0, f64::max);
    let max_replicas = report.policies.iter().map(|p| p.peak_replicas).chain([report.oracle.peak_replicas]).max().unwrap_or(0);
    let y_left = nice_ceiling(f64::from(max_replicas).max(max_load / per_replica).max(1.0));
    let plot = Plot { start, end, y_left, y_right: y_left * per_replica };

    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    svg.push_str(r#"<rect width="100%" height="100%" fill="white"/>"#);
    plot.axes(&mut svg);
    let area = plot.columns(&load, end, |v| plot.y(v, plot.y_right));
    let (x0, x1, base) = (plot.x(start), plot.x(end), plot.y(0.0, 1.0));
    let _ = write!(svg, r##"<polygon fill="#d9d9d9" stroke="none" points="{x0:.1},{base:.1} {area} {x1:.1},{base:.1}"/>"##);
    let mut legend = vec![("#d9d9d9", "load (req/s)".to_string()), ("#000", "oracle".to_string())];
    for (i, p) in report.policies.iter().enumerate() {
        let colour = PALETTE[i % PALETTE.len()];
        let line = plot.columns(&billed(&p.series), end, |v| plot.y(v, plot.y_left));
        let _ = write!(svg, r#"<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{line}"><title>{}</title></polyline>"#, escape(&p.name));
        legend.push((colour, p.name.clone()));
    }
    // The oracle last, dashed, so it stays visible where a policy matches it.
    let oracle = plot.columns(&billed(&report.oracle.series), end, |v| plot.y(v, plot.y_left));
    let _ = write!(svg, r##"<polyline fill="none" stroke="#000" stroke-width="1.5" stroke-dasharray="6 3" points="{oracle}"><title>oracle</title></polyline>"##);
    let mut x = LEFT;
    for (colour, label) in legend {
        let _ = write!(svg, r#"<rect x="{x:.1}" y="14" width="14" height="10" fill="{colour}"/><text x="{:.1}" y="23">{}</text>"#, x + 18.0, escape(&label));
        x += 30.0 + 7.0 * label.chars().count() as f64;
    }
    svg.push_str("</svg>\n");
    svg
}

struct Plot {
    start: f64,
    end: f64,
    y_left: f64,
    y_right: f64,
}

impl Plot {
    fn x(&self, t: f64) -> f64 {
        LEFT + (t - self.start) / (self.end - self.start) * (WIDTH - LEFT - RIGHT)
    }

    fn y(&self, v: f64, top: f64) -> f64 {
        HEIGHT - BOTTOM - v / top * (HEIGHT - TOP - BOTTOM)
    }

    fn axes(&self, svg: &mut String) {
        let (x0, x1, y0, y1) = (LEFT, WIDTH - RIGHT, HEIGHT - BOTTOM, TOP);
        let _ = write!(svg, r##"<path d="M{x0},{y1} V{y0} H{x1} V{y1}" fill="none" stroke="#444"/>"##);
        let hours = (self.end - self.start) / 3600.0;
        let step = nice_step(hours);
        let mut h = 0.0;
        while h <= hours + 1e-9 {
            let x = self.x(self.start + h * 3600.0);
            let _ = write!(svg, r##"<line x1="{x:.1}" y1="{y0}" x2="{x:.1}" y2="{:.1}" stroke="#444"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"##, y0 + 5.0, y0 + 18.0, trim(h));
            h += step;
        }
        let _ = write!(svg, r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">hours since start</text>"#, (x0 + x1) / 2.0, HEIGHT - 8.0);
        for (top, x, anchor, dx) in [(self.y_left, x0, "end", -6.0), (self.y_right, x1, "start", 6.0)] {
            let step = nice_step(top);
            let mut v = 0.0;
            while v <= top + 1e-9 {
                let y = self.y(v, top);
                let _ = write!(svg, r##"<text x="{:.1}" y="{:.1}" text-anchor="{anchor}">{}</text>"##, x + dx, y + 4.0, trim(v));
                v += step;
            }
        }
        let _ = write!(svg, r#"<text x="{x0}" y="{:.1}" text-anchor="middle">replicas</text>"#, y1 - 8.0);
        let _ = write!(svg, r#"<text x="{x1}" y="{:.1}" text-anchor="middle">req/s</text>"#, y1 - 8.0);
    }

    /// A step series as polyline points, reduced to per-column maxima.
    fn columns(&self, series: &[(f64, f64)], end: f64, y: impl Fn(f64) -> f64) -> String {
        let span = self.end - self.start;
        let width = span / COLUMNS as f64;
        let mut max: Vec<Option<f64>> = vec![None; COLUMNS];
        for (i, &(t, v)) in series.iter().enumerate() {
            let until = series.get(i + 1).map_or(end, |p| p.0);
            if until <= t {
                continue;
            }
            let first = (((t - self.start) / width).floor().max(0.0) as usize).min(COLUMNS - 1);
            let last = ((((until - self.start) / width).ceil() as usize).max(first + 1)).min(COLUMNS);
            for m in &mut max[first..last] {
                *m = Some(m.map_or(v, |m: f64| m.max(v)));
            }
        }
        let mut out = String::new();
        let mut previous: Option<f64> = None;
        for (c, m) in max.iter().enumerate() {
            let Some(v) = *m else { continue };
            let x = self.x(self.start + c as f64 * width);
            if previous != Some(v) {
                if let Some(p) = previous {
                    let _ = write!(out, "{x:.1},{:.1} ", y(p));
                }
                let _ = write!(out, "{x:.1},{:.1} ", y(v));
                previous = Some(v);
            }
        }
        if let Some(p) = previous {
            let _ = write!(out, "{:.1},{:.1}", self.x(self.end), y(p));
        }
        out
    }
}

/// 1, 2 or 5 × 10^k, giving about five ticks over `range`.
fn nice_step(range: f64) -> f64 {
    let raw = (range / 5.0).max(1e-9);
    let magnitude = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * magnitude).find(|s| *s >= raw).unwrap_or(10.0 * magnitude)
}

/// The smallest multiple of a nice step at or above `v` (1 for 0).
fn nice_ceiling(v: f64) -> f64 {
    if v <= 0.0 {
        return 1.0;
    }
    let step = nice_step(v);
    (v / step).ceil() * step
}

fn trim(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::{compare, parse_trace, FixedPolicy, ReplicaModel, SimOptions, SimPolicy};

    struct Named(&'static str);
    impl SimPolicy for Named {
        fn name(&self) -> &str {
            self.0
        }
        fn desired(&mut self, _obs: &crate::sim::Observation) -> u32 {
            2
        }
    }

    #[test]
    fn chart_has_load_oracle_and_one_line_per_policy_with_escaped_names() {
        let trace = parse_trace("0,50\n600,400\n1200,50\n3600,10\n").unwrap_or_else(|e| panic!("{e}"));
        let scenario = Scenario::new(trace, ReplicaModel::default()).unwrap_or_else(|e| panic!("{e}"));
        let mut policies: Vec<Box<dyn SimPolicy>> = vec![Box::new(FixedPolicy::new(3)), Box::new(Named("a<b & \"c\""))];
        let report = compare(&scenario, &mut policies, &SimOptions::default()).unwrap_or_else(|e| panic!("{e}"));
        let svg = render_svg(&scenario, &report);
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 3);
        assert_eq!(svg.matches("<polygon").count(), 1);
        assert!(svg.contains("a&lt;b &amp; &quot;c&quot;"));
        assert!(!svg.contains("a<b"));
        assert!(svg.contains(">fixed-3<"));
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
        assert_eq!(svg, render_svg(&scenario, &report), "rendering is deterministic");
    }

    #[test]
    fn columns_keep_the_maximum_of_a_short_spike() {
        let plot = Plot { start: 0.0, end: 1e6, y_left: 10.0, y_right: 10.0 };
        // A 1 s spike to 9 inside a million seconds of 1: one column, narrower than the spike's column.
        let line = plot.columns(&[(0.0, 1.0), (500_000.0, 9.0), (500_001.0, 1.0)], 1e6, |v| v);
        assert!(line.contains(",9.0"), "{line}");
        let ys: Vec<&str> = line.split_whitespace().map(|p| p.split(',').nth(1).unwrap_or("")).collect();
        assert_eq!(ys, vec!["1.0", "1.0", "9.0", "9.0", "1.0", "1.0"]);
    }

    #[test]
    fn nice_numbers() {
        assert_eq!(nice_step(10.0), 2.0);
        assert_eq!(nice_step(336.0), 100.0);
        assert_eq!(nice_step(1.0), 0.2);
        assert_eq!(nice_ceiling(23.0), 25.0);
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(trim(1.50), "1.5");
        assert_eq!(trim(2.0), "2");
    }
}
