//! Durations as people write them in `deploy.toml`: `500ms`, `30s`, `10m`,
//! `2h`. One unit per value, whole numbers only, so there is exactly one way
//! to read each.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

/// A duration written as a number and a unit (`ms`, `s`, `m`, `h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HumanDuration(Duration);

impl HumanDuration {
    /// The pattern a value must match.
    pub const PATTERN: &'static str = "^[0-9]{1,9}(ms|s|m|h)$";

    /// Wraps a duration.
    pub const fn new(d: Duration) -> Self {
        Self(d)
    }

    /// The duration.
    pub fn get(self) -> Duration {
        self.0
    }
}

impl FromStr for HumanDuration {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (digits, unit) = s.split_at(split);
        let bad = || {
            format!(
                "{s:?} is not a duration: write a whole number and a unit, e.g. 500ms, 30s, 10m, 2h"
            )
        };
        if digits.is_empty() || digits.len() > 9 {
            return Err(bad());
        }
        let n: u64 = digits.parse().map_err(|_| bad())?;
        let d = match unit {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n * 60),
            "h" => Duration::from_secs(n * 3600),
            _ => return Err(bad()),
        };
        Ok(Self(d))
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if ms.is_multiple_of(3_600_000) && ms > 0 {
            write!(f, "{}h", ms / 3_600_000)
        } else if ms.is_multiple_of(60_000) && ms > 0 {
            write!(f, "{}m", ms / 60_000)
        } else if ms.is_multiple_of(1000) {
            write!(f, "{}s", ms / 1000)
        } else {
            write!(f, "{ms}ms")
        }
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for HumanDuration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": HumanDuration::PATTERN,
            "description": "a duration: a whole number and a unit (ms, s, m, h), e.g. 30s",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        for (text, d) in [
            ("500ms", 500),
            ("30s", 30_000),
            ("10m", 600_000),
            ("2h", 7_200_000),
            ("0s", 0),
        ] {
            let parsed: HumanDuration = text.parse().unwrap();
            assert_eq!(parsed.get(), Duration::from_millis(d));
            assert_eq!(parsed.to_string(), text);
        }
        for bad in ["", "30", "s", "1.5s", "30 s", "-1s", "30sec", "9999999999s"] {
            assert!(bad.parse::<HumanDuration>().is_err(), "{bad} accepted");
        }
    }
}
