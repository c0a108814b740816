//! Tests of the exec provider with the test suite's own scripts (`tests/scripts/`), which
//! start real python3 http.server replicas, and with hostile inline scripts.

use super::*;
use ballast_core::config::ConfigDuration;
use std::path::PathBuf;
use tokio::time::Instant;

fn scripts() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/scripts")
}

fn inline(create: &str, destroy: &str, list: Option<&str>, timeout: Duration) -> ExecConfig {
    ExecConfig {
        create: create.into(),
        destroy: destroy.into(),
        list: list.map(Into::into),
        timeout: ConfigDuration(timeout),
    }
}

fn answers(address: &str) -> bool {
    use std::io::{Read, Write};
    let Ok(mut c) = std::net::TcpStream::connect(address) else { return false };
    let mut s = String::new();
    c.write_all(b"GET / HTTP/1.0\r\n\r\n").is_ok() && c.read_to_string(&mut s).is_ok() && s.starts_with("HTTP/1.0 200")
}

async fn until(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_test_scripts_create_list_and_destroy_real_replicas() {
    let state = std::env::temp_dir().join(format!("ballast-exec-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state);
    std::fs::create_dir_all(&state).expect("state dir");
    let s = scripts();
    let env = format!("STATE={}", state.display());
    let cfg = inline(
        &format!("{env} {}", s.join("exec-create.sh").display()),
        &format!("{env} {}", s.join("exec-destroy.sh").display()),
        Some(&format!("{env} {}", s.join("exec-list.sh").display())),
        Duration::from_secs(30),
    );
    let p = ExecProvider::new("cloud", cfg);
    let i = p.create().await.expect("create");
    assert_eq!(i.id, "cloud-1", "the suggested id is used by this script");
    until(20, "the replica to answer", || answers(&i.address)).await;
    assert_eq!(p.list().await.expect("list"), vec![i.clone()]);

    std::fs::write(state.join("broken"), "").expect("break");
    let err = p.create().await.expect_err("broken");
    assert!(err.to_string().contains("exit status: 1: quota exceeded"), "{err}");
    std::fs::remove_file(state.join("broken")).expect("fix");

    p.destroy(&i.id).await.expect("destroy");
    until(20, "the replica to stop", || !answers(&i.address)).await;
    assert!(p.list().await.expect("list").is_empty());
    p.destroy("never-existed").await.expect("unknown ids succeed");
    let _ = std::fs::remove_dir_all(&state);
}

#[tokio::test]
async fn destroy_gets_the_id_as_argument_and_env() {
    let cfg = inline(
        "echo '{\"id\": \"x-1\", \"address\": \"127.0.0.1:9\"}'",
        "f() { test \"$1\" = x-1 && test \"$BALLAST_INSTANCE\" = x-1 && test \"$BALLAST_POOL\" = w && test \"$BALLAST_ACTION\" = destroy; }; f",
        None,
        Duration::from_secs(10),
    );
    let p = ExecProvider::new("w", cfg);
    let i = p.create().await.expect("create");
    assert_eq!(p.list().await.expect("remembered without a list script"), vec![i.clone()]);
    p.destroy("x-1").await.expect("argument and env as documented");
    assert!(p.list().await.expect("list").is_empty());
    assert!(p.destroy("other").await.is_err(), "the script checks its argument");
}

#[tokio::test]
async fn hostile_output_is_a_precise_error() {
    for (create, want) in [
        ("echo not json", "create printed bad output: expected ident"),
        ("echo '{\"id\": \"x\"}'", "missing field `address`"),
        ("echo '{\"id\": \"\", \"address\": \"h:1\"}'", "`id` \"\""),
        ("echo '{\"id\": \"x\", \"address\": \"h:99999\"}'", "`address` \"h:99999\""),
        ("echo '[1, 2]'", "create printed bad output"),
        ("head -c 2000000 /dev/zero | tr '\\0' a", "more than 1048576 bytes"),
        ("echo oops >&2; exit 7", "exit status: 7: oops"),
    ] {
        let p = ExecProvider::new("w", inline(create, "true", None, Duration::from_secs(10)));
        let err = p.create().await.expect_err(create);
        assert!(err.to_string().contains(want), "{create}: {err}");
    }
    let p = ExecProvider::new("w", inline("true", "true", Some("echo '[{\"id\": \"a\", \"address\": \"nope\"}]'"), Duration::from_secs(10)));
    let err = p.list().await.expect_err("bad list");
    assert!(err.to_string().starts_with("list printed bad output: `address`"), "{err}");
}

#[tokio::test]
async fn a_slow_script_is_killed_with_its_group() {
    let dir = std::env::temp_dir().join(format!("ballast-exec-slow-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let script = format!("sleep 30 & echo $! > {}/child.pid; wait", dir.display());
    let p = ExecProvider::new("w", inline(&script, "true", None, Duration::from_millis(500)));
    let err = p.create().await.expect_err("slow");
    assert_eq!(err, ProviderError::Timeout { action: "create", after: Duration::from_millis(500) });
    let pid: i32 = std::fs::read_to_string(dir.join("child.pid")).expect("pid").trim().parse().expect("number");
    // the grandchild was in the script's group: killed too (it may linger as a zombie
    // of the reaped shell only briefly)
    until(10, "the grandchild to die", || {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_err()
            || std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z "))
    })
    .await;
    let _ = std::fs::remove_dir_all(&dir);
}
