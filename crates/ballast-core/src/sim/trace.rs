//! Load traces: a request rate over time, read from CSV or from a web access log.
//!
//! A trace is a step function. Each point's rate holds from its time until the next
//! point's time, so a gap between rows *holds the last value*; the last point holds for
//! as long as the gap before it (1 s for a one-point trace). Rows may be any distance
//! apart (per second, per minute, irregular) as long as times strictly increase.
//!
//! Two input formats, told apart by the first line that is not blank or a `#` comment:
//! - **CSV** `t_seconds,requests_per_second`. A first line whose fields are both
//!   non-numeric is a header (`t_seconds,requests_per_second`, `time,rps`, ...).
//!   Blank lines and `#` comments are allowed anywhere; every other line must be a row.
//! - **Access log** in Common or Combined Log Format (the line holds a `[...]`
//!   timestamp such as `[10/Oct/2000:13:55:36 -0700]`): requests are counted per second
//!   of their timestamp; a second with no line in the log is a second with 0 requests.
//!   See [`access_log`].
//!
//! Nothing is skipped silently: the first malformed line is reported with its number and
//! what is wrong. Negative, NaN, infinite and oversized values are refused, as are empty
//! traces, traces that never carry a request, and inputs past the size guards below.

use super::access_log;
use thiserror::Error;

/// Largest accepted trace text, bytes (64 MiB).
pub const MAX_TRACE_BYTES: usize = 64 << 20;
/// Most points a trace may hold (CSV rows, or seconds spanned by an access log).
pub const MAX_POINTS: usize = 2_000_000;
/// Largest accepted `requests_per_second`.
pub const MAX_TRACE_RPS: f64 = 1e9;
/// Largest accepted `t_seconds` (about 3,170 years: room for Unix timestamps).
pub const MAX_T_SECONDS: f64 = 1e11;
/// Longest accepted trace, seconds (400 days).
pub const MAX_DURATION_S: f64 = 400.0 * 86_400.0;

/// Which format a trace was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceFormat {
    /// `t_seconds,requests_per_second` rows.
    Csv,
    /// Common/Combined Log Format lines, counted per second.
    AccessLog,
}

/// One step of a trace: from `t_s` on, `rps` requests per second arrive.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TracePoint {
    /// Start of the step, seconds (CSV: as written; access log: since the first second).
    pub t_s: f64,
    /// Offered load, requests per second, finite and at least 0.
    pub rps: f64,
}

/// A validated trace: at least one point, times strictly increasing, some load.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    format: TraceFormat,
    points: Vec<TracePoint>,
    end_s: f64,
    start_unix_s: Option<i64>,
}

/// Why a trace was refused. Line numbers count from 1, as an editor shows them.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum TraceError {
    /// The input is bigger than [`MAX_TRACE_BYTES`].
    #[error("trace is {bytes} bytes; at most {max} bytes are accepted")]
    TooLarge {
        /// Size of the input.
        bytes: usize,
        /// The limit.
        max: usize,
    },
    /// No data rows at all.
    #[error("trace is empty: no data rows")]
    Empty,
    /// Every rate is 0: there is nothing to scale for.
    #[error("trace carries no requests: every requests_per_second is 0")]
    NoLoad,
    /// More points than [`MAX_POINTS`].
    #[error("trace has more than {max} points")]
    TooManyPoints {
        /// The limit.
        max: usize,
    },
    /// The trace lasts longer than [`MAX_DURATION_S`].
    #[error("trace spans {span_s} s; at most {max_s} s are accepted")]
    TooLong {
        /// How long the trace is, seconds.
        span_s: f64,
        /// The limit.
        max_s: f64,
    },
    /// One line is malformed; `message` names the field and the problem.
    #[error("line {line}: {message}")]
    Line {
        /// 1-based line number.
        line: usize,
        /// What is wrong, e.g. `requests_per_second "abc" is not a number`.
        message: String,
    },
}

impl TraceError {
    pub(crate) fn line(line: usize, message: impl Into<String>) -> Self {
        TraceError::Line { line, message: message.into() }
    }
}

/// Reads a trace from text, detecting CSV or access log. Pure: the caller reads the file.
pub fn parse_trace(text: &str) -> Result<Trace, TraceError> {
    if text.len() > MAX_TRACE_BYTES {
        return Err(TraceError::TooLarge { bytes: text.len(), max: MAX_TRACE_BYTES });
    }
    let first = content_lines(text).next().ok_or(TraceError::Empty)?;
    if access_log::looks_like_access_log(first.1) {
        let (start_unix_s, points) = access_log::parse(text)?;
        let mut trace = Trace::with_format(points, TraceFormat::AccessLog)?;
        trace.start_unix_s = Some(start_unix_s);
        Ok(trace)
    } else {
        Trace::with_format(parse_csv(text)?, TraceFormat::Csv)
    }
}

/// Lines that carry data: `(1-based number, trimmed text)`, without blanks and comments.
pub(crate) fn content_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines().enumerate().map(|(i, l)| (i + 1, l.trim())).filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
}

fn parse_csv(text: &str) -> Result<Vec<TracePoint>, TraceError> {
    let mut points: Vec<TracePoint> = Vec::new();
    for (index, (line, row)) in content_lines(text).enumerate() {
        let fields: Vec<&str> = row.split(',').map(str::trim).collect();
        if index == 0 && fields.iter().all(|f| is_header_field(f)) {
            if fields.len() != 2 {
                return Err(TraceError::line(line, format!("header has {} fields; expected 2: t_seconds,requests_per_second", fields.len())));
            }
            continue;
        }
        if fields.len() != 2 {
            return Err(TraceError::line(
                line,
                format!("row has {} fields; expected 2: t_seconds,requests_per_second", fields.len()),
            ));
        }
        let t_s = number(line, "t_seconds", fields[0], MAX_T_SECONDS)?;
        let rps = number(line, "requests_per_second", fields[1], MAX_TRACE_RPS)?;
        if let Some(prev) = points.last() {
            if t_s <= prev.t_s {
                return Err(TraceError::line(
                    line,
                    format!("t_seconds {} is not after the previous row's {}; times must strictly increase", shown(fields[0]), prev.t_s),
                ));
            }
        }
        if points.len() == MAX_POINTS {
            return Err(TraceError::TooManyPoints { max: MAX_POINTS });
        }
        points.push(TracePoint { t_s, rps });
    }
    Ok(points)
}

/// `text` for an error message: quoted, and cut to 40 characters so that a hostile
/// megabyte-long field cannot become a megabyte-long message.
pub(crate) fn shown(text: &str) -> String {
    const MAX: usize = 40;
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{:?}", format!("{}…", &text[..cut])),
        None => format!("{text:?}"),
    }
}

/// A header field is a name: it starts with a letter and is not a number (`nan`, `inf`).
fn is_header_field(field: &str) -> bool {
    field.starts_with(|c: char| c.is_ascii_alphabetic()) && field.parse::<f64>().is_err()
}

/// A finite number in `0..=max`, or an error naming `field` and the text as written.
fn number(line: usize, field: &str, text: &str, max: f64) -> Result<f64, TraceError> {
    if text.is_empty() {
        return Err(TraceError::line(line, format!("{field} is empty")));
    }
    let value: f64 = text.parse().map_err(|_| TraceError::line(line, format!("{field} {} is not a number", shown(text))))?;
    if !value.is_finite() {
        return Err(TraceError::line(line, format!("{field} {} is not a finite number", shown(text))));
    }
    if value < 0.0 {
        return Err(TraceError::line(line, format!("{field} {} is negative; it must be at least 0", shown(text))));
    }
    if value > max {
        return Err(TraceError::line(line, format!("{field} {} is above the maximum {max}", shown(text))));
    }
    Ok(value)
}

impl Trace {
    /// A trace from points built in code, checked like parsed input (format `Csv`).
    pub fn new(points: Vec<TracePoint>) -> Result<Trace, TraceError> {
        for (i, p) in points.iter().enumerate() {
            let at = |message: String| TraceError::line(i + 1, message);
            if !p.t_s.is_finite() || !(0.0..=MAX_T_SECONDS).contains(&p.t_s) {
                return Err(at(format!("t_seconds {} is out of range 0 to {MAX_T_SECONDS}", p.t_s)));
            }
            if !p.rps.is_finite() || !(0.0..=MAX_TRACE_RPS).contains(&p.rps) {
                return Err(at(format!("requests_per_second {} is out of range 0 to {MAX_TRACE_RPS}", p.rps)));
            }
            if i > 0 && p.t_s <= points[i - 1].t_s {
                return Err(at(format!("t_seconds {} is not after the previous point's {}", p.t_s, points[i - 1].t_s)));
            }
        }
        if points.len() > MAX_POINTS {
            return Err(TraceError::TooManyPoints { max: MAX_POINTS });
        }
        Trace::with_format(points, TraceFormat::Csv)
    }

    fn with_format(points: Vec<TracePoint>, format: TraceFormat) -> Result<Trace, TraceError> {
        let (first, last) = match (points.first(), points.last()) {
            (Some(f), Some(l)) => (*f, *l),
            _ => return Err(TraceError::Empty),
        };
        if points.iter().all(|p| p.rps == 0.0) {
            return Err(TraceError::NoLoad);
        }
        let last_step = match points.len() {
            1 => 1.0,
            n => last.t_s - points[n - 2].t_s,
        };
        let end_s = last.t_s + last_step;
        let span_s = end_s - first.t_s;
        if span_s > MAX_DURATION_S {
            return Err(TraceError::TooLong { span_s, max_s: MAX_DURATION_S });
        }
        Ok(Trace { format, points, end_s, start_unix_s: None })
    }

    /// The points, times strictly increasing.
    pub fn points(&self) -> &[TracePoint] {
        &self.points
    }

    /// Which format the trace was read from.
    pub fn format(&self) -> TraceFormat {
        self.format
    }

    /// Time of the first point, seconds.
    pub fn start_s(&self) -> f64 {
        self.points.first().map_or(0.0, |p| p.t_s)
    }

    /// Where the last step ends, seconds (last time + the gap before it).
    pub fn end_s(&self) -> f64 {
        self.end_s
    }

    /// `end_s − start_s`, seconds.
    pub fn duration_s(&self) -> f64 {
        self.end_s - self.start_s()
    }

    /// For access logs: Unix time of the first second (t = 0). `None` for CSV.
    pub fn start_unix_s(&self) -> Option<i64> {
        self.start_unix_s
    }

    /// Where step `i` ends: the next point's time, or [`end_s`](Self::end_s).
    pub fn step_end_s(&self, i: usize) -> f64 {
        self.points.get(i + 1).map_or(self.end_s, |p| p.t_s)
    }

    /// Total requests offered over the trace (∑ rps × step length).
    pub fn total_requests(&self) -> f64 {
        self.points.iter().enumerate().map(|(i, p)| p.rps * (self.step_end_s(i) - p.t_s)).sum()
    }
}

#[cfg(test)]
#[path = "trace_tests.rs"]
mod tests;
