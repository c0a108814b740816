//! Durations written as `"30s"`, `"3m"`, `"1h"`, `"250ms"` in the config file.

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A duration that reads and writes as a human string (`"30s"`, `"1h 30m"`).
///
/// Parsing refuses anything longer than [`ConfigDuration::MAX`] (365 days): no ballast
/// setting needs more, and a bound keeps `now + duration` arithmetic from overflowing in
/// the code that consumes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ConfigDuration(pub Duration);

impl ConfigDuration {
    /// The longest duration the config accepts: 365 days.
    pub const MAX: Duration = Duration::from_secs(365 * 24 * 3600);

    /// `secs` whole seconds.
    pub const fn from_secs(secs: u64) -> Self {
        ConfigDuration(Duration::from_secs(secs))
    }

    /// `millis` milliseconds.
    pub const fn from_millis(millis: u64) -> Self {
        ConfigDuration(Duration::from_millis(millis))
    }

    /// Whether this is exactly zero.
    pub fn is_zero(self) -> bool {
        self.0.is_zero()
    }
}

impl From<ConfigDuration> for Duration {
    fn from(d: ConfigDuration) -> Duration {
        d.0
    }
}

impl FromStr for ConfigDuration {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let hint = "write e.g. \"250ms\", \"30s\", \"3m\", \"1h\"";
        if s.trim().is_empty() {
            return Err(format!("empty duration; {hint}"));
        }
        let d = humantime::parse_duration(s.trim())
            .map_err(|e| format!("invalid duration {s:?} ({e}); {hint}"))?;
        if d > Self::MAX {
            return Err(format!("duration {s:?} is longer than the maximum of 365 days"));
        }
        Ok(ConfigDuration(d))
    }
}

impl fmt::Display for ConfigDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_zero() {
            return f.write_str("0s");
        }
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl Serialize for ConfigDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

struct DurationVisitor;

impl Visitor<'_> for DurationVisitor {
    type Value = ConfigDuration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration string such as \"250ms\", \"30s\", \"3m\" or \"1h\"")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<ConfigDuration, E> {
        v.parse().map_err(E::custom)
    }
}

impl<'de> Deserialize<'de> for ConfigDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(DurationVisitor)
    }
}
