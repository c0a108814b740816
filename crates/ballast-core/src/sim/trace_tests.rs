//! CSV trace parsing: good inputs, and every refusal with its line number.

use super::*;

fn parsed(text: &str) -> Trace {
    parse_trace(text).unwrap_or_else(|e| panic!("{text:?}: {e}"))
}

fn err(text: &str) -> String {
    match parse_trace(text) {
        Err(e) => e.to_string(),
        Ok(t) => panic!("accepted {text:?} as {t:?}"),
    }
}

fn rates(t: &Trace) -> Vec<(f64, f64)> {
    t.points().iter().map(|p| (p.t_s, p.rps)).collect()
}

#[test]
fn csv_with_and_without_header() {
    let a = parsed("t_seconds,requests_per_second\n0,10\n60,20.5\n120,0\n");
    let b = parsed("0,10\n60,20.5\n120,0");
    assert_eq!(rates(&a), vec![(0.0, 10.0), (60.0, 20.5), (120.0, 0.0)]);
    assert_eq!(a.points(), b.points());
    assert_eq!(a.format(), TraceFormat::Csv);
    assert_eq!(a.start_s(), 0.0);
    // The last row lasts as long as the gap before it.
    assert_eq!(a.end_s(), 180.0);
    assert_eq!(a.duration_s(), 180.0);
    assert_eq!(a.start_unix_s(), None);
    assert_eq!(a.total_requests(), 10.0 * 60.0 + 20.5 * 60.0);
}

#[test]
fn csv_tolerates_blank_lines_comments_spaces_crlf_and_irregular_steps() {
    let t = parsed("# exported from grafana\r\ntime , rps\r\n\r\n 100 , 1 \r\n# gap\r\n101.5,2e1\r\n200,3\r\n");
    assert_eq!(rates(&t), vec![(100.0, 1.0), (101.5, 20.0), (200.0, 3.0)]);
    assert_eq!(t.step_end_s(0), 101.5);
    assert_eq!(t.end_s(), 298.5);
    assert_eq!(t.duration_s(), 198.5);
}

#[test]
fn a_single_row_lasts_one_second() {
    let t = parsed("5,7\n");
    assert_eq!(t.end_s(), 6.0);
    assert_eq!(t.total_requests(), 7.0);
}

#[test]
fn bad_csv_is_refused_with_line_and_field() {
    let cases = [
        ("", "trace is empty: no data rows"),
        ("\n# only a comment\n\n", "trace is empty: no data rows"),
        ("t_seconds,requests_per_second\n", "trace is empty: no data rows"),
        ("0,0\n60,0\n", "trace carries no requests: every requests_per_second is 0"),
        ("t,rps\n0,1\n60,abc\n", "line 3: requests_per_second \"abc\" is not a number"),
        ("abc,5\n", "line 1: t_seconds \"abc\" is not a number"),
        ("0,1\n\n10,\n", "line 3: requests_per_second is empty"),
        ("0,1\n10,-3\n", "line 2: requests_per_second \"-3\" is negative; it must be at least 0"),
        ("0,1\n10,NaN\n", "line 2: requests_per_second \"NaN\" is not a finite number"),
        ("0,1\n10,inf\n", "line 2: requests_per_second \"inf\" is not a finite number"),
        ("0,1\n10,1e400\n", "line 2: requests_per_second \"1e400\" is not a finite number"),
        ("0,1\n10,2e9\n", "line 2: requests_per_second \"2e9\" is above the maximum 1000000000"),
        ("-5,1\n", "line 1: t_seconds \"-5\" is negative; it must be at least 0"),
        ("1e12,1\n", "line 1: t_seconds \"1e12\" is above the maximum 100000000000"),
        ("0,1\n10,1\n10,2\n", "line 3: t_seconds \"10\" is not after the previous row's 10; times must strictly increase"),
        ("0,1\n10,1\n5,2\n", "line 3: t_seconds \"5\" is not after the previous row's 10; times must strictly increase"),
        ("0,1,2\n", "line 1: row has 3 fields; expected 2: t_seconds,requests_per_second"),
        ("0,1\n7\n", "line 2: row has 1 fields; expected 2: t_seconds,requests_per_second"),
        ("0;1\n", "line 1: row has 1 fields; expected 2: t_seconds,requests_per_second"),
        ("nan,inf\n", "line 1: t_seconds \"nan\" is not a finite number"),
        ("t,rps,x\n0,1\n", "line 1: header has 3 fields; expected 2: t_seconds,requests_per_second"),
        ("0,1\nt,rps\n", "line 2: t_seconds \"t\" is not a number"),
        ("0,1\n40000000,1\n", "trace spans 80000000 s; at most 34560000 s are accepted"),
    ];
    for (text, want) in cases {
        assert_eq!(err(text), want, "input {text:?}");
    }
}

#[test]
fn a_huge_field_is_cut_short_in_the_message() {
    let text = format!("0,1\n1,{}\n", "9".repeat(300));
    let msg = err(&text);
    assert_eq!(msg, format!("line 2: requests_per_second \"{}…\" is above the maximum 1000000000", "9".repeat(40)));
    let text = format!("0,x{}\n", "é".repeat(100_000));
    assert_eq!(err(&text), format!("line 1: requests_per_second \"x{}…\" is not a number", "é".repeat(39)));
}

#[test]
fn oversized_input_is_refused_before_parsing() {
    let big = "0,1\n".repeat(MAX_TRACE_BYTES / 4 + 1);
    assert_eq!(err(&big), format!("trace is {} bytes; at most {MAX_TRACE_BYTES} bytes are accepted", big.len()));
}

#[test]
fn too_many_rows_are_refused() {
    let mut text = String::new();
    for i in 0..=MAX_POINTS {
        text.push_str(&format!("{i},1\n"));
    }
    assert!(text.len() <= MAX_TRACE_BYTES);
    assert_eq!(err(&text), format!("trace has more than {MAX_POINTS} points"));
}

#[test]
fn points_built_in_code_are_checked_like_parsed_ones() {
    let p = |t_s, rps| TracePoint { t_s, rps };
    assert!(Trace::new(vec![p(0.0, 1.0), p(1.0, 2.0)]).is_ok());
    let cases = [
        (vec![], "trace is empty: no data rows"),
        (vec![p(0.0, 0.0)], "trace carries no requests: every requests_per_second is 0"),
        (vec![p(f64::NAN, 1.0)], "line 1: t_seconds NaN is out of range 0 to 100000000000"),
        (vec![p(0.0, 1.0), p(1.0, -1.0)], "line 2: requests_per_second -1 is out of range 0 to 1000000000"),
        (vec![p(0.0, 1.0), p(0.0, 1.0)], "line 2: t_seconds 0 is not after the previous point's 0"),
    ];
    for (points, want) in cases {
        assert_eq!(Trace::new(points.clone()).map_err(|e| e.to_string()), Err(want.to_string()), "{points:?}");
    }
}
