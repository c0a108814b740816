//! Reading config text into a [`Config`] (and writing it back), with errors that name the
//! field path and the line.

use super::{validate, Config, FieldError};
use serde_path_to_error::{Path, Segment};

/// The largest config text [`parse`] accepts: 4 MiB. A real config is a few KiB; the cap
/// keeps a hostile or mistaken file (a log, a binary) from costing memory and time.
pub const MAX_CONFIG_BYTES: usize = 4 * 1024 * 1024;

/// Why config text could not be read or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The text is larger than [`MAX_CONFIG_BYTES`].
    #[error("config is {size} bytes; the limit is {limit} bytes (4 MiB)")]
    TooLarge {
        /// Size of the given text in bytes.
        size: usize,
        /// The limit in bytes.
        limit: usize,
    },
    /// The text is not valid TOML.
    #[error("{}invalid TOML: {message}", location(*line, *column))]
    Syntax {
        /// 1-based line of the problem, when known.
        line: Option<usize>,
        /// 1-based column (in characters) of the problem, when known.
        column: Option<usize>,
        /// What the TOML parser expected.
        message: String,
    },
    /// The TOML is valid but a field has the wrong type, an unknown name or a bad value.
    #[error("{path}: {message}{}", line.map(|l| format!(" (line {l})")).unwrap_or_default())]
    Field {
        /// Field path, e.g. `pool "api".balance` or `balancer[0].route[2].split`.
        path: String,
        /// 1-based line of the problem, when known.
        line: Option<usize>,
        /// What is wrong and what is expected.
        message: String,
    },
    /// The config could not be written as TOML.
    #[error("cannot write the config as TOML: {0}")]
    Serialize(String),
}

fn location(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!("line {l}, column {c}: "),
        (Some(l), None) => format!("line {l}: "),
        _ => String::new(),
    }
}

impl ConfigError {
    /// The same problem as a [`FieldError`], for reports that list every problem.
    pub fn to_field_error(&self) -> FieldError {
        match self {
            ConfigError::Field { path, line, message } => FieldError::new(
                path.clone(),
                match line {
                    Some(l) => format!("{message} (line {l})"),
                    None => message.clone(),
                },
            ),
            ConfigError::Syntax { line, column, message } => {
                let at = location(*line, *column);
                let path = at.trim_end_matches(": ");
                FieldError::new(if path.is_empty() { "config" } else { path }, format!("invalid TOML: {message}"))
            }
            other => FieldError::new("config", other.to_string()),
        }
    }
}

/// Parses config text. Checks shapes and types only (see [`validate`] for meaning) and
/// stops at the first problem, naming its field path and line.
pub fn parse(text: &str) -> Result<Config, ConfigError> {
    if text.len() > MAX_CONFIG_BYTES {
        return Err(ConfigError::TooLarge { size: text.len(), limit: MAX_CONFIG_BYTES });
    }
    let de = toml::Deserializer::parse(text).map_err(|e| {
        let (line, column) = line_col(text, e.span());
        ConfigError::Syntax { line, column, message: e.message().trim().to_string() }
    })?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let (line, _) = line_col(text, e.inner().span());
        ConfigError::Field {
            path: render_path(text, e.path()),
            line,
            message: e.inner().message().trim().to_string(),
        }
    })
}

/// Parses and validates, turning a parse error into a one-element list: what
/// `ballast check` prints.
pub fn parse_and_validate(text: &str) -> Result<Config, Vec<FieldError>> {
    let config = parse(text).map_err(|e| vec![e.to_field_error()])?;
    let errors = validate(&config);
    if errors.is_empty() {
        Ok(config)
    } else {
        Err(errors)
    }
}

/// Writes a config back as TOML that [`parse`] reads to an equal config.
pub fn to_toml(config: &Config) -> Result<String, ConfigError> {
    toml::to_string(config).map_err(|e| ConfigError::Serialize(e.to_string()))
}

/// 1-based line and column (in characters) of the start of `span`.
fn line_col(text: &str, span: Option<std::ops::Range<usize>>) -> (Option<usize>, Option<usize>) {
    let Some(start) = span.map(|s| s.start) else {
        return (None, None);
    };
    let Some(before) = text.get(..start) else {
        return (None, None);
    };
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (Some(line), Some(column))
}

/// Renders a serde path the way validation errors do: `pool "api".balance` when the
/// element has a usable name, `pool[0].balance` otherwise.
fn render_path(text: &str, path: &Path) -> String {
    let mut out = String::new();
    let segments: Vec<&Segment> = path.iter().collect();
    let mut i = 0;
    while i < segments.len() {
        match (segments[i], segments.get(i + 1)) {
            (Segment::Map { key }, Some(Segment::Seq { index })) if i == 0 => {
                match element_name(text, key, *index) {
                    Some(name) => out.push_str(&format!("{key} {name:?}")),
                    None => out.push_str(&format!("{key}[{index}]")),
                }
                i += 2;
                continue;
            }
            (Segment::Map { key }, _) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            (Segment::Seq { index }, _) => out.push_str(&format!("[{index}]")),
            (Segment::Enum { variant }, _) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(variant);
            }
            (Segment::Unknown, _) => {}
        }
        i += 1;
    }
    if out.is_empty() {
        "config".to_string()
    } else {
        out
    }
}

/// The `name` of `[[key]]` number `index`, when it is a non-empty string unique among
/// its siblings (so the rendered path points at one element).
fn element_name(text: &str, key: &str, index: usize) -> Option<String> {
    let table: toml::Table = text.parse().ok()?;
    let items = table.get(key)?.as_array()?;
    let name_of = |v: &toml::Value| v.get("name").and_then(|n| n.as_str()).map(str::to_string);
    let name = name_of(items.get(index)?)?;
    let unique = items.iter().filter(|v| name_of(v).as_deref() == Some(name.as_str())).count() == 1;
    (unique && !name.is_empty()).then_some(name)
}
