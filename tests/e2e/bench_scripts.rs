//! The benchmark scripts refuse bad knobs and arguments with a message naming them, before
//! they build or start anything.

use std::process::{Command, Output};

fn script(name: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let path = format!("{}/../bench/{name}", env!("CARGO_MANIFEST_DIR"));
    Command::new("bash").arg(path).args(args).envs(env.iter().copied()).output().expect("run bash")
}

fn refused(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(2), "exit status; stdout: {}", String::from_utf8_lossy(&out.stdout));
    assert!(out.stdout.is_empty(), "nothing measured: {}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stderr).trim_end().to_string()
}

#[test]
fn h2_server_cost_refuses_arguments_and_bad_knobs() {
    let out = script("h2-server-cost.sh", &["extra"], &[]);
    assert!(refused(&out).starts_with("usage: "), "{}", refused(&out));
    for (knob, value, says) in [
        ("ROUNDS", "0", "ROUNDS must be a whole number of rounds, at least 1; got '0'"),
        ("ROUNDS", "3x", "ROUNDS must be a whole number of rounds, at least 1; got '3x'"),
        ("D", "-5", "D must be whole seconds, at least 1; got '-5'"),
        ("D", "", "D must be whole seconds, at least 1; got ''"),
    ] {
        let out = script("h2-server-cost.sh", &[], &[(knob, value)]);
        assert_eq!(refused(&out), says, "{knob}={value:?}");
    }
}
