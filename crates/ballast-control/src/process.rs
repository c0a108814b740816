//! Supervised child processes: spawn in their own process group, stop with
//! SIGTERM → grace → SIGKILL, and kill on drop so no replica outlives its owner.

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStderr, ChildStdout, Command};

/// What to run.
#[derive(Debug, Clone, Default)]
pub struct ProcessSpec {
    /// The program to execute.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<OsString>,
    /// Extra environment variables.
    pub env: Vec<(OsString, OsString)>,
    /// Working directory (None: inherit).
    pub working_dir: Option<PathBuf>,
}

/// Errors of process supervision.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The program could not be started.
    #[error("cannot start {program}: {source}")]
    Spawn {
        /// The program that failed.
        program: String,
        /// Why.
        source: std::io::Error,
    },
    /// The child exited or closed stdout before announcing its address.
    #[error("{program} exited before announcing its address (status: {status})")]
    NoAnnouncement {
        /// The program.
        program: String,
        /// Its exit status, or "still running".
        status: String,
    },
    /// Waiting for the child failed.
    #[error("waiting for process {pid}: {source}")]
    Wait {
        /// The child's pid.
        pid: u32,
        /// Why.
        source: std::io::Error,
    },
}

/// A running child in its own process group. Dropping it kills the whole group.
#[derive(Debug)]
pub struct ManagedProcess {
    child: Child,
    pid: u32,
    program: String,
}

impl ManagedProcess {
    /// Starts `spec` in a new process group with stdin closed and stdout piped
    /// (stderr is inherited so its logs reach the operator).
    pub fn spawn(spec: &ProcessSpec) -> Result<Self, ProcessError> {
        Self::spawn_with(spec, Stdio::inherit())
    }

    /// Like [`spawn`](Self::spawn) but with stderr piped too, for callers that capture
    /// both streams (see [`take_output`](Self::take_output)).
    pub fn spawn_captured(spec: &ProcessSpec) -> Result<Self, ProcessError> {
        Self::spawn_with(spec, Stdio::piped())
    }

    fn spawn_with(spec: &ProcessSpec, stderr: Stdio) -> Result<Self, ProcessError> {
        let program = spec.program.display().to_string();
        let mut cmd = Command::new(&spec.program);
        cmd.args(&spec.args)
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .process_group(0)
            .kill_on_drop(true);
        if let Some(dir) = &spec.working_dir {
            cmd.current_dir(dir);
        }
        let child = cmd.spawn().map_err(|source| ProcessError::Spawn { program: program.clone(), source })?;
        let pid = child.id().unwrap_or_default();
        Ok(ManagedProcess { child, pid, program })
    }

    /// The child's process id (also its process group id).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Reads the child's stdout until a line starting with `prefix` and returns the rest
    /// of that line (e.g. the address after `"listening on "`). Later stdout is discarded
    /// in the background so the child never blocks on a full pipe.
    pub async fn read_announcement(&mut self, prefix: &str) -> Result<String, ProcessError> {
        let lines = self.read_lines_until(prefix).await?;
        let last = lines.last().map(String::as_str).unwrap_or_default();
        Ok(last.strip_prefix(prefix).unwrap_or(last).trim().to_string())
    }

    /// Reads the child's stdout up to and including the first line that starts with
    /// `prefix`, returning every line read. Later stdout is drained in the background.
    pub async fn read_lines_until(&mut self, prefix: &str) -> Result<Vec<String>, ProcessError> {
        let stdout: Option<ChildStdout> = self.child.stdout.take();
        let mut seen = Vec::new();
        if let Some(stdout) = stdout {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let done = line.starts_with(prefix);
                seen.push(line);
                if done {
                    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
                    return Ok(seen);
                }
            }
        }
        let status = match self.child.try_wait() {
            Ok(Some(s)) => s.to_string(),
            _ => "still running".to_string(),
        };
        Err(ProcessError::NoAnnouncement { program: self.program.clone(), status })
    }

    /// Takes the child's piped stdout and stderr (each None when not piped or already
    /// taken). The caller must keep reading them, or the child blocks on a full pipe.
    pub fn take_output(&mut self) -> (Option<ChildStdout>, Option<ChildStderr>) {
        (self.child.stdout.take(), self.child.stderr.take())
    }

    /// Waits until the child exits on its own (cancel-safe: drop the future to stop
    /// waiting).
    pub async fn wait(&mut self) -> Result<ExitStatus, ProcessError> {
        self.child.wait().await.map_err(|source| ProcessError::Wait { pid: self.pid, source })
    }

    /// Whether the child has exited, without waiting.
    pub fn try_exit_status(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Stops the child: SIGTERM to its group, then SIGKILL after `grace`. Returns how it
    /// exited.
    pub async fn stop(mut self, grace: Duration) -> Result<ExitStatus, ProcessError> {
        let group = Pid::from_raw(i32::try_from(self.pid).unwrap_or(i32::MAX));
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = killpg(group, Signal::SIGTERM);
        }
        match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(res) => res.map_err(|source| ProcessError::Wait { pid: self.pid, source }),
            Err(_) => {
                let _ = killpg(group, Signal::SIGKILL);
                self.child.wait().await.map_err(|source| ProcessError::Wait { pid: self.pid, source })
            }
        }
    }
}

impl Drop for ManagedProcess {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let group = Pid::from_raw(i32::try_from(self.pid).unwrap_or(i32::MAX));
            let _ = killpg(group, Signal::SIGKILL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> ProcessSpec {
        ProcessSpec { program: "/bin/sh".into(), args: vec!["-c".into(), script.into()], ..Default::default() }
    }

    #[tokio::test]
    async fn reads_the_announced_address() {
        let mut p = ManagedProcess::spawn(&sh("echo noise; echo 'listening on 127.0.0.1:1234'; sleep 30"))
            .expect("spawn");
        assert_eq!(p.read_announcement("listening on ").await.expect("announce"), "127.0.0.1:1234");
        let status = p.stop(Duration::from_secs(5)).await.expect("stop");
        assert!(!status.success(), "killed by SIGTERM, not a clean exit: {status}");
    }

    #[tokio::test]
    async fn a_child_that_exits_silently_is_an_error() {
        let mut p = ManagedProcess::spawn(&sh("exit 3")).expect("spawn");
        let err = p.read_announcement("listening on ").await.expect_err("no announcement");
        assert!(err.to_string().contains("exited before announcing"), "{err}");
    }

    #[tokio::test]
    async fn sigkill_after_grace_when_sigterm_is_ignored() {
        let mut p = ManagedProcess::spawn(&sh("trap '' TERM; echo 'listening on x'; while true; do sleep 0.05; done"))
            .expect("spawn");
        p.read_announcement("listening on ").await.expect("announce");
        let status = p.stop(Duration::from_millis(300)).await.expect("stop");
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(9), "{status}");
    }

    #[test]
    fn a_missing_program_names_itself() {
        let err = ManagedProcess::spawn(&ProcessSpec { program: "/nonexistent/prog".into(), ..Default::default() })
            .expect_err("missing");
        assert!(err.to_string().contains("/nonexistent/prog"), "{err}");
    }
}
