//! `failure_tolerance` as people write it in `deploy.toml`: a count of
//! tenants (`2`) or a percentage of the wave (`"10%"`).

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

/// How many failed tenants a wave tolerates before the rollout halts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureTolerance {
    /// At most this many tenants of the wave may fail.
    Count(u32),
    /// At most this percentage of the wave's tenants may fail, rounded down
    /// (see [`FailureTolerance::allowed`]).
    Percent(u8),
}

impl Default for FailureTolerance {
    fn default() -> Self {
        FailureTolerance::Count(0)
    }
}

impl FailureTolerance {
    /// The pattern a percentage must match.
    pub const PERCENT_PATTERN: &'static str = "^(100|[1-9]?[0-9])%$";

    /// The number of failed tenants a wave of `wave_size` tenants tolerates.
    /// A percentage rounds *down*, as CloudFormation StackSets'
    /// `FailureTolerancePercentage` does: 10% of 9 tenants tolerates 0
    /// failures, 10% of 10 tolerates 1. The rollout halts when failures
    /// *exceed* this number.
    pub fn allowed(self, wave_size: usize) -> usize {
        match self {
            FailureTolerance::Count(n) => n as usize,
            FailureTolerance::Percent(p) => wave_size * usize::from(p) / 100,
        }
    }
}

impl FromStr for FailureTolerance {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "{s:?} is not a failure tolerance: write a count (e.g. 2) or a percentage from 0% to 100% (e.g. \"10%\")"
            )
        };
        if let Some(digits) = s.strip_suffix('%') {
            if digits.is_empty() || digits.len() > 3 || !digits.bytes().all(|b| b.is_ascii_digit())
            {
                return Err(bad());
            }
            let p: u8 = digits.parse().map_err(|_| bad())?;
            if p > 100 {
                return Err(bad());
            }
            Ok(FailureTolerance::Percent(p))
        } else {
            s.parse().map(FailureTolerance::Count).map_err(|_| bad())
        }
    }
}

impl fmt::Display for FailureTolerance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailureTolerance::Count(n) => write!(f, "{n}"),
            FailureTolerance::Percent(p) => write!(f, "{p}%"),
        }
    }
}

impl Serialize for FailureTolerance {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            FailureTolerance::Count(n) => s.serialize_u32(*n),
            FailureTolerance::Percent(_) => s.collect_str(self),
        }
    }
}

impl<'de> Deserialize<'de> for FailureTolerance {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            Count(u32),
            Text(String),
        }
        match Either::deserialize(d)? {
            Either::Count(n) => Ok(FailureTolerance::Count(n)),
            Either::Text(t) => t.parse().map_err(serde::de::Error::custom),
        }
    }
}

impl JsonSchema for FailureTolerance {
    fn schema_name() -> Cow<'static, str> {
        "FailureTolerance".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "failed tenants a wave tolerates: a count (e.g. 2) or a percentage of the wave, rounded down (e.g. \"10%\")",
            "oneOf": [
                { "type": "integer", "minimum": 0, "maximum": 100000 },
                { "type": "string", "pattern": FailureTolerance::PERCENT_PATTERN },
            ],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prints_and_rounds_down() {
        let t: FailureTolerance = "10%".parse().unwrap();
        assert_eq!(t, FailureTolerance::Percent(10));
        assert_eq!(t.to_string(), "10%");
        assert_eq!(t.allowed(9), 0);
        assert_eq!(t.allowed(10), 1);
        assert_eq!(t.allowed(29), 2);
        assert_eq!("3".parse::<FailureTolerance>().unwrap().allowed(1), 3);
        assert_eq!(FailureTolerance::Percent(100).allowed(7), 7);
        for bad in ["", "%", "101%", "-1", "1.5%", "10 %", "ten"] {
            assert!(bad.parse::<FailureTolerance>().is_err(), "{bad} accepted");
        }
        let json: FailureTolerance = serde_json::from_str("2").unwrap();
        assert_eq!(json, FailureTolerance::Count(2));
        let json: FailureTolerance = serde_json::from_str("\"25%\"").unwrap();
        assert_eq!(json, FailureTolerance::Percent(25));
        assert_eq!(serde_json::to_string(&json).unwrap(), "\"25%\"");
    }
}
