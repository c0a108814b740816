//! The command-line surface itself: every subcommand is listed and bad usage exits 2.
//!
//! (Having an integration test here also makes `cargo test --workspace` build the
//! `ballast` executable that the end-to-end crate in `tests/` runs.)

use std::process::Command;

fn ballast(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ballast")).args(args).output().expect("run ballast")
}

#[test]
fn help_lists_every_subcommand() {
    let out = ballast(&["--help"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for cmd in ["serve", "proxy", "demo", "check", "sim", "demo-backend"] {
        assert!(text.contains(cmd), "--help lacks {cmd}: {text}");
    }
}

#[test]
fn unknown_subcommands_and_flags_exit_2_naming_them() {
    let out = ballast(&["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("frobnicate"));
    let out = ballast(&["proxy", "--to", "127.0.0.1:1", "--threads", "many"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--threads"));
}

#[test]
fn proxy_refuses_zero_threads_and_bad_algorithms() {
    let out = ballast(&["proxy", "--listen", "127.0.0.1:0", "--to", "127.0.0.1:1", "--threads", "0"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("threads"), "{}", String::from_utf8_lossy(&out.stderr));
    let out = ballast(&["proxy", "--to", "127.0.0.1:1", "--balance", "fastest"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("fastest"));
}

#[test]
fn proxy_refuses_unknown_access_log_and_trace_context_words() {
    for (flag, value, allowed) in
        [("--access-log", "xml", "`off`, `combined`, `json`"), ("--trace-context", "sometimes", "`generate`, `propagate`, `off`")]
    {
        let out = ballast(&["proxy", "--to", "127.0.0.1:1", flag, value]);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(flag) && err.contains(value) && err.contains(allowed), "{err}");
    }
    let out = ballast(&["proxy", "--to", "127.0.0.1:1", "--no-request-id=yes"]);
    assert_eq!(out.status.code(), Some(2), "a switch takes no value");
}

#[test]
fn proxy_validates_backend_addresses_naming_the_field() {
    let out = ballast(&["proxy", "--listen", "127.0.0.1:0", "--to", "not-an-address"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not-an-address") && err.contains("address"), "{err}");
}
