//! The `process` provider: each instance is a local child process started from the
//! pool's command template, in its own process group.
//!
//! - `{port}` and `{instance}` in the command, arguments and env values become a free
//!   port from the pool's `port_range` (checked by binding it) and the instance id
//!   (`<pool>-<n>`); the instance's address is `<host>:<port>`.
//! - stdout and stderr go to `<log dir>/<id>.out.log` / `.err.log`, size-rotated.
//! - A watcher task owns each child: it reports an exit on its own through
//!   [`Provider::take_exits`] (crash detection) and, on `destroy`, stops the whole group
//!   with SIGTERM, then SIGKILL after the grace period.
//! - Each live instance has a record `<log dir>/<id>.pid` (pid, start time, port,
//!   command: [`super::records`]), removed once the instance is stopped or seen
//!   exiting, so a ballast restarted after a crash can stop what this one left running.
//!   Ids whose record file still exists are skipped.
//! - Dropping the provider (or the runtime) kills every child. Only a SIGKILL of
//!   ballast itself leaves children behind: [`super::reap::reap_leftovers`] stops
//!   them at the next start; with [`ProcessProvider::after_reaping`] the first instance
//!   waits for that.

use super::logs::{copy_into, LogPolicy, RotatingLog};
use super::reap::ReapGate;
use super::records::{self, InstanceRecord};
use super::{BoxFuture, Exit, Instance, Provider, ProviderError};
use crate::process::{ManagedProcess, ProcessSpec};
use ballast_core::config::{expand_template, ProcessProvider as ProcessConfig};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::oneshot;

type StopReply = oneshot::Sender<String>;

struct Running {
    instance: Instance,
    port: u16,
    pid: u32,
    stop: oneshot::Sender<(Duration, StopReply)>,
}

/// Registered templates and the current one.
struct Templates {
    current: ProcessConfig,
    all: BTreeMap<u64, ProcessConfig>,
}

#[derive(Default)]
struct State {
    next: u64,
    /// Ports handed out to instances still being spawned.
    reserved: Vec<u16>,
    running: BTreeMap<String, Running>,
    exits: Vec<Exit>,
}

/// Local processes from a command template. See the module documentation.
pub struct ProcessProvider {
    pool: String,
    /// Template versions and the one new instances use (rolling updates).
    templates: Mutex<Templates>,
    host: String,
    logs: LogPolicy,
    state: Arc<Mutex<State>>,
    /// Reaping of a previous run's leftovers that the first instance waits for.
    gate: Option<ReapGate>,
}

impl std::fmt::Debug for ProcessProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessProvider").field("pool", &self.pool).field("command", &self.config().command).finish()
    }
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

impl ProcessProvider {
    /// Instances of `pool` from `config` (template version 0), listening on
    /// `127.0.0.1`, logging under `logs`.
    pub fn new(pool: &str, config: ProcessConfig, logs: LogPolicy) -> Self {
        let templates = Mutex::new(Templates { current: config.clone(), all: BTreeMap::from([(0, config)]) });
        ProcessProvider { pool: pool.into(), templates, host: "127.0.0.1".into(), logs, state: Default::default(), gate: None }
    }

    /// Makes every `create` wait until `gate` opens (the reaping of a previous run's
    /// leftovers, which may still hold ports of the range).
    pub fn after_reaping(mut self, gate: ReapGate) -> Self {
        self.gate = Some(gate);
        self
    }

    /// Registers template `version` (for a later [`Provider::use_template`]); replaces
    /// a template of the same version.
    pub fn add_template(&self, version: u64, config: ProcessConfig) {
        self.templates.lock().unwrap_or_else(PoisonError::into_inner).all.insert(version, config);
    }

    /// The template new instances use.
    fn config(&self) -> ProcessConfig {
        self.templates.lock().unwrap_or_else(PoisonError::into_inner).current.clone()
    }

    /// The first port of the range that no instance of ours holds and that binds now.
    fn free_port(&self, used: &[u16]) -> Result<u16, ProviderError> {
        let r = self.config().port_range;
        (r.start..=r.end)
            .find(|p| !used.contains(p) && std::net::TcpListener::bind((self.host.as_str(), *p)).is_ok())
            .ok_or(ProviderError::NoFreePort { start: r.start, end: r.end })
    }

    fn spec(&self, port: u16, id: &str) -> ProcessSpec {
        let c = &self.config();
        ProcessSpec {
            program: expand_template(&c.command, port, id).into(),
            args: c.args.iter().map(|a| expand_template(a, port, id).into()).collect(),
            env: c.env.iter().map(|(k, v)| (k.into(), expand_template(v, port, id).into())).collect(),
            working_dir: c.working_dir.as_ref().map(Into::into),
        }
    }

    async fn start(&self) -> Result<Instance, ProviderError> {
        if let Some(gate) = &self.gate {
            gate.wait().await;
        }
        let (id, port) = {
            let mut s = lock(&self.state);
            let used: Vec<u16> = s.running.values().map(|r| r.port).chain(s.reserved.iter().copied()).collect();
            let port = self.free_port(&used)?;
            s.reserved.push(port);
            (self.next_id(&mut s), port)
        };
        let started = self.spawn(&id, port).await;
        let ((child, instance), record) = match started {
            Err(e) => {
                lock(&self.state).reserved.retain(|p| *p != port);
                return Err(e);
            }
            Ok((child, instance)) => match self.record(&id, child.pid(), port) {
                Ok(record) => ((child, instance), record),
                Err(e) => {
                    // untracked, it could outlive a crash of ours: stop it instead
                    let _ = child.stop(self.config().grace_period.0).await;
                    lock(&self.state).reserved.retain(|p| *p != port);
                    return Err(e);
                }
            },
        };
        let mut s = lock(&self.state);
        s.reserved.retain(|p| *p != port);
        let (stop_tx, stop_rx) = oneshot::channel();
        let pid = child.pid();
        s.running.insert(id.clone(), Running { instance: instance.clone(), port, pid, stop: stop_tx });
        tokio::spawn(watch(child, id, record, stop_rx, self.state.clone(), self.config().grace_period.0));
        Ok(instance)
    }

    /// The next `<pool>-<n>` whose record file does not exist (a leftover that could
    /// not be reaped keeps its record, and its id), looking at most 1000 ids ahead.
    fn next_id(&self, s: &mut State) -> String {
        for _ in 0..1000 {
            s.next += 1;
            let id = format!("{}-{}", self.pool, s.next);
            if !records::record_path(&self.logs.dir, &id).exists() {
                return id;
            }
        }
        s.next += 1;
        format!("{}-{}", self.pool, s.next)
    }

    /// Writes the record of child `pid`; None when it already exited.
    fn record(&self, id: &str, pid: u32, port: u16) -> Result<Option<PathBuf>, ProviderError> {
        let spec = self.spec(port, id);
        let command = std::iter::once(spec.program.display().to_string())
            .chain(spec.args.iter().map(|a| a.to_string_lossy().into_owned()))
            .collect();
        let Some(record) = InstanceRecord::of_child(&self.pool, id, pid, port, command, self.config().grace_period.0) else {
            return Ok(None);
        };
        records::write(&self.logs.dir, &record)
            .map(Some)
            .map_err(|e| ProviderError::Failed { action: "create", reason: format!("cannot write the instance record: {e}") })
    }

    /// Opens the two logs, spawns the child and starts copying its output.
    async fn spawn(&self, id: &str, port: u16) -> Result<(ManagedProcess, Instance), ProviderError> {
        let failed = |reason: String| ProviderError::Failed { action: "create", reason };
        let open = |suffix: &'static str| async move {
            RotatingLog::open(&self.logs, &format!("{id}.{suffix}"))
                .await
                .map_err(|e| failed(format!("opening the log in {}: {e}", self.logs.dir.display())))
        };
        let (out_log, err_log) = (open("out").await?, open("err").await?);
        let mut child = ManagedProcess::spawn_captured(&self.spec(port, id)).map_err(|e| failed(e.to_string()))?;
        let (out, err) = child.take_output();
        if let Some(out) = out {
            tokio::spawn(copy_into(out, out_log));
        }
        if let Some(err) = err {
            tokio::spawn(copy_into(err, err_log));
        }
        Ok((child, Instance { id: id.into(), address: format!("{}:{port}", self.host) }))
    }

    async fn stop(&self, id: &str) -> Result<(), ProviderError> {
        let running = lock(&self.state).running.remove(id);
        let Some(running) = running else {
            // it may have exited on its own and been reported already
            return Err(ProviderError::UnknownInstance(id.into()));
        };
        let (reply_tx, reply_rx) = oneshot::channel();
        if running.stop.send((self.config().grace_period.0, reply_tx)).is_ok() {
            // an Err here means the watcher saw the exit first: stopped either way
            let _ = reply_rx.await;
        }
        Ok(())
    }
}

/// Owns one child until it exits on its own (reported as an [`Exit`]) or is told to stop.
async fn watch(
    mut child: ManagedProcess,
    id: String,
    record: Option<PathBuf>,
    stop: oneshot::Receiver<(Duration, StopReply)>,
    state: Arc<Mutex<State>>,
    default_grace: Duration,
) {
    enum Why {
        Exited(String),
        Stop(Duration, Option<StopReply>),
    }
    let why = tokio::select! {
        status = child.wait() => Why::Exited(status.map_or_else(|e| e.to_string(), |s| s.to_string())),
        req = stop => match req {
            Ok((grace, reply)) => Why::Stop(grace, Some(reply)),
            // the provider was dropped: stop the child anyway
            Err(_) => Why::Stop(default_grace, None),
        },
    };
    match why {
        Why::Exited(status) => {
            let mut s = lock(&state);
            if s.running.remove(&id).is_some() {
                s.exits.push(Exit { id, status });
            }
        }
        Why::Stop(grace, reply) => {
            let status = child.stop(grace).await.map_or_else(|e| e.to_string(), |s| s.to_string());
            if let Some(path) = &record {
                records::remove(path);
            }
            if let Some(reply) = reply {
                let _ = reply.send(status);
            }
            return;
        }
    }
    if let Some(path) = &record {
        records::remove(path);
    }
}

impl Drop for ProcessProvider {
    /// Drops every stop channel: each watcher then stops its child (SIGTERM, grace,
    /// SIGKILL). The watchers share the state, so without this the children would live on.
    fn drop(&mut self) {
        lock(&self.state).running.clear();
    }
}

impl Provider for ProcessProvider {
    fn kind(&self) -> &'static str {
        "process"
    }
    fn create(&self) -> BoxFuture<'_, Result<Instance, ProviderError>> {
        Box::pin(self.start())
    }
    fn destroy<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(self.stop(id))
    }
    fn list(&self) -> BoxFuture<'_, Result<Vec<Instance>, ProviderError>> {
        Box::pin(async { Ok(lock(&self.state).running.values().map(|r| r.instance.clone()).collect()) })
    }
    fn take_exits(&self) -> Vec<Exit> {
        std::mem::take(&mut lock(&self.state).exits)
    }
    fn process_group(&self, id: &str) -> Option<u32> {
        lock(&self.state).running.get(id).map(|r| r.pid)
    }
    fn use_template(&self, version: u64) -> Result<(), ProviderError> {
        let mut t = self.templates.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(config) = t.all.get(&version).cloned() else {
            return Err(ProviderError::Failed { action: "use template", reason: format!("no template version {version}") });
        };
        t.current = config;
        Ok(())
    }
}

#[cfg(test)]
#[path = "process_tests.rs"]
mod tests;
