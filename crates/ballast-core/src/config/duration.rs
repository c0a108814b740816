//! Durations written as `"30s"`, `"3m"`, `"1h"`, `"250ms"` in the config file.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A duration that reads and writes as a human string (`"30s"`, `"1h 30m"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ConfigDuration(pub Duration);

impl ConfigDuration {
    /// `secs` whole seconds.
    pub const fn from_secs(secs: u64) -> Self {
        ConfigDuration(Duration::from_secs(secs))
    }
}

impl FromStr for ConfigDuration {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        humantime::parse_duration(s.trim())
            .map(ConfigDuration)
            .map_err(|e| format!("invalid duration {s:?} ({e}); write e.g. \"250ms\", \"30s\", \"3m\", \"1h\""))
    }
}

impl fmt::Display for ConfigDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl Serialize for ConfigDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ConfigDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}
