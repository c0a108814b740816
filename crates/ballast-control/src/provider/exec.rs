//! The `exec` provider: the operator's scripts create, destroy and list instances. One
//! contract covers any cloud CLI, a hypervisor or a hardware inventory.
//!
//! # The contract
//! Each script string from `[pool.provider]` is a command line, run as
//! `/bin/sh -c '<script> "$@"'` (so arguments are appended to its end), in
//! its own process group, with stdin closed and these variables set:
//! `BALLAST_POOL` (pool name), `BALLAST_ACTION` (`create`, `destroy` or `list`) and
//! `BALLAST_INSTANCE` (for `create`, a suggested unique id `<pool>-<n>`; for `destroy`,
//! the id to destroy).
//!
//! - **create** (no arguments) starts one instance and prints one JSON object on stdout:
//!   `{"id": "i-0abc", "address": "10.0.0.7:8080"}`. `id` is 1–256 printable characters;
//!   `address` is `host:port` with a port 1–65535. Other fields are ignored. It may
//!   return before the instance serves: health checks decide when it is ready.
//! - **destroy** gets the id as its first argument (`"$1"`) and exits 0 once the
//!   instance is gone or going. Destroying an unknown id should also exit 0.
//! - **list** (optional) prints a JSON array of such objects: every instance that
//!   exists. Without it, ballast lists the instances it created and has not destroyed.
//!
//! Exit status 0 means success; anything else is a failure whose status and the last
//! 2 KiB of stderr are reported (the controller retries with backoff). A script that
//! runs longer than `timeout` (default 5 min) is killed with its whole process group.
//! stdout is read up to 1 MiB; more is a bad-output error.
//!
//! Example scripts for AWS, Azure and Google Cloud instance groups are in
//! `examples/providers/` at the repository root.

use super::{check_instance, BoxFuture, Instance, Provider, ProviderError};
use ballast_core::config::ExecProvider as ExecConfig;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

/// Most stdout read from a script, bytes.
pub const MAX_OUTPUT: usize = 1 << 20;
/// How much of stderr's end is kept for error messages, bytes.
const STDERR_TAIL: usize = 2048;

/// Instances through the operator's scripts. See the module documentation.
#[derive(Debug)]
pub struct ExecProvider {
    pool: String,
    config: ExecConfig,
    next: AtomicU64,
    known: Mutex<Vec<Instance>>,
}

/// Reads all of `r`, keeping the first `cap` bytes (`head`) or the last `cap` (tail);
/// returns the bytes and whether more were dropped.
async fn read_capped(r: Option<impl AsyncRead + Unpin>, cap: usize, head: bool) -> (Vec<u8>, bool) {
    let (mut out, mut over, mut buf) = (Vec::new(), false, vec![0u8; 8192]);
    let Some(mut r) = r else { return (out, over) };
    while let Ok(n) = r.read(&mut buf).await {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
        if out.len() > cap {
            over = true;
            if head {
                out.truncate(cap);
            } else {
                out.drain(..out.len() - cap);
            }
        }
    }
    (out, over)
}

impl ExecProvider {
    /// Scripts of `pool` from `config`.
    pub fn new(pool: &str, config: ExecConfig) -> Self {
        ExecProvider { pool: pool.into(), config, next: AtomicU64::new(0), known: Mutex::new(Vec::new()) }
    }

    /// Runs `script` for `action` with `args` and returns its stdout.
    async fn run(&self, action: &'static str, script: &str, instance: &str, args: &[&str]) -> Result<Vec<u8>, ProviderError> {
        let failed = |reason: String| ProviderError::Failed { action, reason };
        let mut child = Command::new("/bin/sh")
            .arg("-c")
            .arg(format!("{script} \"$@\""))
            .arg("sh")
            .args(args)
            .env("BALLAST_POOL", &self.pool)
            .env("BALLAST_ACTION", action)
            .env("BALLAST_INSTANCE", instance)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| failed(format!("cannot run /bin/sh: {e}")))?;
        let pid = child.id().and_then(|p| i32::try_from(p).ok());
        let (out, err) = (child.stdout.take(), child.stderr.take());
        let work = async {
            let ((out, over), (err, _), status) =
                tokio::join!(read_capped(out, MAX_OUTPUT, true), read_capped(err, STDERR_TAIL, false), child.wait());
            (out, over, err, status)
        };
        let limit: Duration = self.config.timeout.0;
        let Ok((out, over, err, status)) = tokio::time::timeout(limit, work).await else {
            if let Some(pid) = pid {
                let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
            }
            return Err(ProviderError::Timeout { action, after: limit });
        };
        let status = status.map_err(|e| failed(format!("waiting for the script: {e}")))?;
        if !status.success() {
            let tail = String::from_utf8_lossy(&err);
            let tail = tail.trim();
            let sep = if tail.is_empty() { "" } else { ": " };
            return Err(failed(format!("`{script}` {status}{sep}{tail}")));
        }
        if over {
            return Err(ProviderError::BadOutput { action, reason: format!("more than {MAX_OUTPUT} bytes on stdout") });
        }
        Ok(out)
    }

    fn parse<T: serde::de::DeserializeOwned>(action: &'static str, out: &[u8]) -> Result<T, ProviderError> {
        serde_json::from_slice(out).map_err(|e| ProviderError::BadOutput { action, reason: e.to_string() })
    }

    async fn do_create(&self) -> Result<Instance, ProviderError> {
        let n = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let suggested = format!("{}-{n}", self.pool);
        let out = self.run("create", &self.config.create, &suggested, &[]).await?;
        let i: Instance = Self::parse("create", &out)?;
        check_instance("create", &i)?;
        self.known.lock().unwrap_or_else(PoisonError::into_inner).push(i.clone());
        Ok(i)
    }

    async fn do_destroy(&self, id: &str) -> Result<(), ProviderError> {
        self.run("destroy", &self.config.destroy, id, &[id]).await?;
        self.known.lock().unwrap_or_else(PoisonError::into_inner).retain(|i| i.id != id);
        Ok(())
    }

    async fn do_list(&self) -> Result<Vec<Instance>, ProviderError> {
        let Some(list) = &self.config.list else {
            return Ok(self.known.lock().unwrap_or_else(PoisonError::into_inner).clone());
        };
        let out = self.run("list", list, "", &[]).await?;
        let all: Vec<Instance> = Self::parse("list", &out)?;
        for i in &all {
            check_instance("list", i)?;
        }
        Ok(all)
    }
}

impl Provider for ExecProvider {
    fn kind(&self) -> &'static str {
        "exec"
    }
    fn create(&self) -> BoxFuture<'_, Result<Instance, ProviderError>> {
        Box::pin(self.do_create())
    }
    fn destroy<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(self.do_destroy(id))
    }
    fn list(&self) -> BoxFuture<'_, Result<Vec<Instance>, ProviderError>> {
        Box::pin(self.do_list())
    }
}

#[cfg(test)]
#[path = "exec_tests.rs"]
mod tests;
