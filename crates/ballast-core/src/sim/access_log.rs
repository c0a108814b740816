//! Web access logs (Common and Combined Log Format) turned into a per-second trace.
//!
//! A line is `host ident authuser [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.0" 200 2326`,
//! optionally followed by the Combined fields (`"referer" "user-agent"`), which are not
//! read. Every line is checked (three fields before the timestamp, a valid timestamp, a
//! quoted request, a status 100–599 and a byte count or `-`); the first bad line is
//! reported with its number. Lines need not be in time order. Requests are counted per
//! UTC second; seconds between the first and the last with no line count 0 requests, so
//! the trace has one point per second with `t = 0` at the first second.

use super::trace::{content_lines, shown, TraceError, TracePoint, MAX_POINTS};

const TIMESTAMP_FORMAT: &str = "%d/%b/%Y:%H:%M:%S %z";
const SHAPE: &str = "expected host ident user [10/Oct/2000:13:55:36 -0700] \"request\" status bytes";

/// Whether a line looks like an access-log line rather than a CSV row.
pub(crate) fn looks_like_access_log(line: &str) -> bool {
    line.contains('[') && line.contains(']')
}

/// Parses every line; returns the Unix second of `t = 0` and one point per second.
pub(crate) fn parse(text: &str) -> Result<(i64, Vec<TracePoint>), TraceError> {
    let mut seconds = Vec::new();
    for (line, row) in content_lines(text) {
        seconds.push(parse_line(row).map_err(|message| TraceError::line(line, message))?);
    }
    let (Some(&first), Some(&last)) = (seconds.iter().min(), seconds.iter().max()) else {
        return Err(TraceError::Empty);
    };
    let span = usize::try_from(last - first).unwrap_or(usize::MAX).saturating_add(1);
    if span > MAX_POINTS {
        return Err(TraceError::TooManyPoints { max: MAX_POINTS });
    }
    let mut counts = vec![0u64; span];
    for s in seconds {
        // In range by construction: first ≤ s ≤ last.
        if let Some(c) = usize::try_from(s - first).ok().and_then(|i| counts.get_mut(i)) {
            *c += 1;
        }
    }
    let points = counts.iter().enumerate().map(|(i, &c)| TracePoint { t_s: i as f64, rps: c as f64 }).collect();
    Ok((first, points))
}

/// One line → the Unix second of its timestamp, or what is wrong with it.
fn parse_line(row: &str) -> Result<i64, String> {
    let open = row.find('[').ok_or_else(|| format!("no [timestamp]; {SHAPE}"))?;
    let close = row[open..].find(']').map(|i| open + i).ok_or_else(|| format!("timestamp has no closing ]; {SHAPE}"))?;
    let prefix = row[..open].split_whitespace().count();
    if prefix != 3 {
        return Err(format!("found {prefix} fields before the timestamp, expected 3 (host ident user); {SHAPE}"));
    }
    let stamp = &row[open + 1..close];
    let when = chrono::DateTime::parse_from_str(stamp, TIMESTAMP_FORMAT)
        .map_err(|e| format!("timestamp {} is not a date like 10/Oct/2000:13:55:36 -0700 ({e})", shown(stamp)))?;
    let rest = row[close + 1..].trim_start();
    let after_request = skip_quoted(rest).ok_or_else(|| format!("request is not a quoted string; {SHAPE}"))?;
    let mut fields = after_request.split_whitespace();
    let status = fields.next().ok_or_else(|| format!("status is missing; {SHAPE}"))?;
    if !(status.len() == 3 && status.parse::<u16>().is_ok_and(|s| (100..=599).contains(&s))) {
        return Err(format!("status {} is not an HTTP status (100 to 599)", shown(status)));
    }
    let bytes = fields.next().ok_or_else(|| format!("bytes is missing; {SHAPE}"))?;
    if bytes != "-" && bytes.parse::<u64>().is_err() {
        return Err(format!("bytes {} is not a byte count or -", shown(bytes)));
    }
    Ok(when.timestamp())
}

/// If `s` starts with a `"…"` string (backslash escapes allowed), the text after it.
fn skip_quoted(s: &str) -> Option<&str> {
    let body = s.strip_prefix('"')?;
    let mut escaped = false;
    for (i, ch) in body.char_indices() {
        match ch {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => return Some(&body[i + 1..]),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::trace::{parse_trace, TraceFormat};

    const GOOD: &str = r#"127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326
10.0.0.2 - - [10/Oct/2000:13:55:36 -0700] "GET /a?q=\"x\" HTTP/1.1" 304 - "http://ref/" "Mozilla/5.0 (X11)"
10.0.0.3 - - [10/Oct/2000:22:55:38 +0200] "POST /b HTTP/1.1" 500 17
10.0.0.3 - - [10/Oct/2000:13:55:35 -0700] "GET / HTTP/1.1" 200 1
"#;

    #[test]
    fn counts_per_second_fills_gaps_with_zero_and_accepts_disorder() {
        let trace = parse_trace(GOOD).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(trace.format(), TraceFormat::AccessLog);
        // 13:55:35 -0700 = 20:55:35 UTC = 971211335.
        assert_eq!(trace.start_unix_s(), Some(971_211_335));
        let rps: Vec<f64> = trace.points().iter().map(|p| p.rps).collect();
        // 35 → 1, 36 → 2, 37 → 0, 38 (22:55:38 +0200 = 20:55:38 UTC) → 1.
        assert_eq!(rps, vec![1.0, 2.0, 0.0, 1.0]);
        assert_eq!(trace.points()[3].t_s, 3.0);
        assert_eq!(trace.end_s(), 4.0);
    }

    fn err(text: &str) -> String {
        match parse_trace(text) {
            Err(e) => e.to_string(),
            Ok(t) => panic!("accepted {text:?} as {t:?}"),
        }
    }

    #[test]
    fn every_malformed_line_is_reported_with_its_number() {
        let ok = "1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] \"GET / HTTP/1.1\" 200 5\n";
        let cases = [
            ("1.2.3.4 - - [10/Oct/2000:13:55:36 -0700 \"GET / HTTP/1.1\" 200 5", "line 2: timestamp has no closing ]"),
            ("1.2.3.4 - - 10/Oct/2000:13:55:36 -0700] \"GET / HTTP/1.1\" 200 5", "line 2: no [timestamp]"),
            ("1.2.3.4 - [10/Oct/2000:13:55:36 -0700] \"GET / HTTP/1.1\" 200 5", "line 2: found 2 fields before the timestamp, expected 3"),
            ("1.2.3.4 - - [10/Foo/2000:13:55:36 -0700] \"GET / HTTP/1.1\" 200 5", "line 2: timestamp \"10/Foo/2000:13:55:36 -0700\" is not a date"),
            ("1.2.3.4 - - [31/Feb/2000:13:55:36 -0700] \"GET / HTTP/1.1\" 200 5", "line 2: timestamp \"31/Feb/2000:13:55:36 -0700\" is not a date"),
            ("1.2.3.4 - - [10/Oct/2000:25:55:36 -0700] \"GET / HTTP/1.1\" 200 5", "line 2: timestamp"),
            ("1.2.3.4 - - [10/Oct/2000:13:55:36] \"GET / HTTP/1.1\" 200 5", "line 2: timestamp \"10/Oct/2000:13:55:36\" is not a date"),
            ("1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] GET / HTTP/1.1 200 5", "line 2: request is not a quoted string"),
            ("1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] \"GET / HTTP/1.1 200 5", "line 2: request is not a quoted string"),
            ("1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] \"GET / HTTP/1.1\"", "line 2: status is missing"),
            ("1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] \"GET / HTTP/1.1\" 999 5", "line 2: status \"999\" is not an HTTP status (100 to 599)"),
            ("1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] \"GET / HTTP/1.1\" OK 5", "line 2: status \"OK\" is not an HTTP status"),
            ("1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] \"GET / HTTP/1.1\" 200", "line 2: bytes is missing"),
            ("1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] \"GET / HTTP/1.1\" 200 -5", "line 2: bytes \"-5\" is not a byte count or -"),
            ("0,5", "line 2: no [timestamp]"),
        ];
        for (bad, want) in cases {
            let got = err(&format!("{ok}{bad}\n{ok}"));
            assert!(got.starts_with(want), "{bad:?}: got {got:?}, want {want:?}");
        }
    }

    #[test]
    fn a_log_spanning_too_long_is_refused() {
        let text = "a - - [01/Jan/2000:00:00:00 +0000] \"GET /\" 200 1\na - - [01/Jan/2020:00:00:00 +0000] \"GET /\" 200 1\n";
        assert_eq!(err(text), format!("trace has more than {MAX_POINTS} points"));
    }
}
