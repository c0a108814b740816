//! Where a pool's instances come from (`[pool.provider]`): the static instance list, local
//! processes started from a command template, or the operator's scripts.
//!
//! The file writes one flat table with a `kind`; it is read through [`RawProvider`] so
//! that type errors keep their exact field path, then turned into the [`ProviderConfig`]
//! enum, refusing fields that the chosen kind does not use.

use super::ConfigDuration;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The placeholders a process template may use.
pub const PLACEHOLDERS: [&str; 2] = ["{port}", "{instance}"];

/// Fills a process template (`command`, an argument or an env value): `{port}` becomes
/// `port` and `{instance}` becomes `instance`; other text, braces included, is kept.
pub fn expand_template(template: &str, port: u16, instance: &str) -> String {
    template.replace("{port}", &port.to_string()).replace("{instance}", instance)
}

/// A pool's provider. Default: `static`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(try_from = "RawProvider", into = "RawProvider")]
pub enum ProviderConfig {
    /// The pool's `[[pool.instance]]` list; nothing is started or stopped.
    #[default]
    Static,
    /// Local processes started by ballast.
    Process(ProcessProvider),
    /// The operator's create/destroy/list scripts (any cloud CLI).
    Exec(ExecProvider),
}

impl ProviderConfig {
    /// The config-file name of the kind.
    pub fn kind(&self) -> ProviderKind {
        match self {
            ProviderConfig::Static => ProviderKind::Static,
            ProviderConfig::Process(_) => ProviderKind::Process,
            ProviderConfig::Exec(_) => ProviderKind::Exec,
        }
    }
}

/// The kinds of provider, as written in `kind = "..."`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProviderKind {
    /// See [`ProviderConfig::Static`].
    #[default]
    Static,
    /// See [`ProviderConfig::Process`].
    Process,
    /// See [`ProviderConfig::Exec`].
    Exec,
}

/// `kind = "process"`: each instance is a child process of ballast.
///
/// `command`, `args` and `env` values are templates: `{port}` becomes the port given to the
/// instance (from `port_range`) and `{instance}` its id. `{port}` must appear somewhere,
/// or the process cannot know where to listen.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessProvider {
    /// Program to run (looked up on `PATH` when it has no `/`).
    pub command: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Extra environment variables (the child also inherits ballast's environment).
    pub env: BTreeMap<String, String>,
    /// Working directory; default: ballast's own.
    pub working_dir: Option<String>,
    /// After SIGTERM, wait this long before SIGKILL; default 10s.
    pub grace_period: ConfigDuration,
    /// Ports handed to instances; default 20000–29999.
    pub port_range: PortRange,
}

/// `kind = "exec"`: the operator's scripts create, destroy and list instances, exchanging
/// JSON on stdout (see the provider documentation for the format).
#[derive(Debug, Clone, PartialEq)]
pub struct ExecProvider {
    /// Creates one instance and prints its JSON.
    pub create: String,
    /// Destroys the instance whose id is passed as the first argument.
    pub destroy: String,
    /// Lists the current instances as a JSON array; default: ballast's own record.
    pub list: Option<String>,
    /// Longest run of one script; default 5m.
    pub timeout: ConfigDuration,
}

/// An inclusive port range, written `{ start = 20000, end = 29999 }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortRange {
    /// First port, 1–65535.
    pub start: u16,
    /// Last port, at least `start`.
    pub end: u16,
}

impl PortRange {
    /// Whether two ranges share a port.
    pub fn overlaps(&self, other: &PortRange) -> bool {
        self.start <= other.end && other.start <= self.end
    }
}

impl Default for PortRange {
    fn default() -> Self {
        PortRange { start: 20_000, end: 29_999 }
    }
}

/// The provider table exactly as written: every kind's fields, all optional.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProvider {
    #[serde(default)]
    kind: ProviderKind,
    #[serde(default)]
    command: Option<String>,
    #[serde(default)]
    args: Option<Vec<String>>,
    #[serde(default)]
    env: Option<BTreeMap<String, String>>,
    #[serde(default)]
    working_dir: Option<String>,
    #[serde(default)]
    grace_period: Option<ConfigDuration>,
    #[serde(default)]
    port_range: Option<PortRange>,
    #[serde(default)]
    create: Option<String>,
    #[serde(default)]
    destroy: Option<String>,
    #[serde(default)]
    list: Option<String>,
    #[serde(default)]
    timeout: Option<ConfigDuration>,
}

impl RawProvider {
    /// The fields that are set, by name, for "not used by this kind" errors.
    fn set_fields(&self) -> Vec<(&'static str, ProviderKind)> {
        use ProviderKind::{Exec, Process};
        let fields = [
            ("command", self.command.is_some(), Process),
            ("args", self.args.is_some(), Process),
            ("env", self.env.is_some(), Process),
            ("working_dir", self.working_dir.is_some(), Process),
            ("grace_period", self.grace_period.is_some(), Process),
            ("port_range", self.port_range.is_some(), Process),
            ("create", self.create.is_some(), Exec),
            ("destroy", self.destroy.is_some(), Exec),
            ("list", self.list.is_some(), Exec),
            ("timeout", self.timeout.is_some(), Exec),
        ];
        fields.into_iter().filter(|f| f.1).map(|f| (f.0, f.2)).collect()
    }
}

impl ProviderKind {
    /// The config-file name of the kind.
    pub fn name(self) -> &'static str {
        match self {
            ProviderKind::Static => "static",
            ProviderKind::Process => "process",
            ProviderKind::Exec => "exec",
        }
    }
}

impl TryFrom<RawProvider> for ProviderConfig {
    type Error = String;
    fn try_from(raw: RawProvider) -> Result<Self, String> {
        let stray: Vec<String> = raw
            .set_fields()
            .into_iter()
            .filter(|(_, owner)| *owner != raw.kind)
            .map(|(name, owner)| format!("`{name}` (used by kind = \"{}\")", owner.name()))
            .collect();
        if !stray.is_empty() {
            return Err(format!(
                "kind = \"{}\" does not use {}; remove it or change kind",
                raw.kind.name(),
                stray.join(", ")
            ));
        }
        let missing = |field: &str| {
            format!("kind = \"{}\" needs `{field}`", raw.kind.name())
        };
        Ok(match raw.kind {
            ProviderKind::Static => ProviderConfig::Static,
            ProviderKind::Process => ProviderConfig::Process(ProcessProvider {
                command: raw.command.ok_or_else(|| missing("command"))?,
                args: raw.args.unwrap_or_default(),
                env: raw.env.unwrap_or_default(),
                working_dir: raw.working_dir,
                grace_period: raw.grace_period.unwrap_or(ConfigDuration::from_secs(10)),
                port_range: raw.port_range.unwrap_or_default(),
            }),
            ProviderKind::Exec => ProviderConfig::Exec(ExecProvider {
                create: raw.create.ok_or_else(|| missing("create"))?,
                destroy: raw.destroy.ok_or_else(|| missing("destroy"))?,
                list: raw.list,
                timeout: raw.timeout.unwrap_or(ConfigDuration::from_secs(300)),
            }),
        })
    }
}

impl From<ProviderConfig> for RawProvider {
    fn from(p: ProviderConfig) -> RawProvider {
        match p {
            ProviderConfig::Static => RawProvider::default(),
            ProviderConfig::Process(p) => RawProvider {
                kind: ProviderKind::Process,
                command: Some(p.command),
                args: Some(p.args),
                env: Some(p.env),
                working_dir: p.working_dir,
                grace_period: Some(p.grace_period),
                port_range: Some(p.port_range),
                ..RawProvider::default()
            },
            ProviderConfig::Exec(e) => RawProvider {
                kind: ProviderKind::Exec,
                create: Some(e.create),
                destroy: Some(e.destroy),
                list: e.list,
                timeout: Some(e.timeout),
                ..RawProvider::default()
            },
        }
    }
}
