//! Typed stack outputs parsed from the key/value pairs `DescribeStacks` returns.
//!
//! An [`OutputReader`] pulls each expected key, validates it into its type,
//! and collects every problem (missing key, malformed value) before failing,
//! so one error names all that is wrong with a stack's outputs. Keys the
//! stack returns but the type does not know are ignored: a newer template may
//! add outputs an older coordinator does not read.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use crate::ids::InvalidId;

/// One thing wrong with a stack's outputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputProblem {
    /// A required output key is absent.
    Missing {
        /// The output key.
        key: &'static str,
    },
    /// An output is present but its value does not validate.
    Malformed {
        /// The output key.
        key: &'static str,
        /// The validation error.
        error: InvalidId,
    },
}

impl fmt::Display for OutputProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OutputProblem::Missing { key } => write!(f, "output {key} is missing"),
            OutputProblem::Malformed { key, error } => {
                write!(f, "output {key} is malformed: {error}")
            }
        }
    }
}

/// A stack's outputs do not match its typed declaration.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "the {stack} stack's outputs are unusable ({}); check that the stack deployed completely and from this release's template",
    problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
)]
pub struct OutputsError {
    /// Which stack.
    pub stack: &'static str,
    /// Every problem found.
    pub problems: Vec<OutputProblem>,
}

/// Reads typed values out of a stack's raw outputs, collecting problems.
#[derive(Debug)]
pub struct OutputReader<'a> {
    stack: &'static str,
    values: BTreeMap<&'a str, &'a str>,
    problems: Vec<OutputProblem>,
}

impl<'a> OutputReader<'a> {
    /// A reader over `pairs` (output key, output value) of stack `stack`.
    pub fn new(stack: &'static str, pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self {
            stack,
            values: pairs.into_iter().collect(),
            problems: Vec::new(),
        }
    }

    /// A required output; records a problem and returns `None` when absent
    /// or malformed.
    pub fn required<T: FromStr<Err = InvalidId>>(&mut self, key: &'static str) -> Option<T> {
        match self.values.get(key) {
            None => {
                self.problems.push(OutputProblem::Missing { key });
                None
            }
            Some(raw) => self.parse(key, raw),
        }
    }

    /// An optional output: absent is fine, malformed is a problem.
    pub fn optional<T: FromStr<Err = InvalidId>>(&mut self, key: &'static str) -> Option<T> {
        let raw = *self.values.get(key)?;
        self.parse(key, raw)
    }

    fn parse<T: FromStr<Err = InvalidId>>(&mut self, key: &'static str, raw: &str) -> Option<T> {
        raw.parse()
            .map_err(|error| self.problems.push(OutputProblem::Malformed { key, error }))
            .ok()
    }

    /// Builds the typed outputs if no problem was recorded. `build` returns
    /// `None` only when a required value is absent, which has been recorded.
    pub fn finish<T>(self, build: impl FnOnce() -> Option<T>) -> Result<T, OutputsError> {
        match (self.problems.is_empty(), build()) {
            (true, Some(outputs)) => Ok(outputs),
            _ => Err(OutputsError {
                stack: self.stack,
                problems: self.problems,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::AccountId;

    #[test]
    fn collects_every_problem() {
        let pairs = [("A", "222222222222"), ("B", "nope"), ("Extra", "ignored")];
        let mut r = OutputReader::new("test", pairs);
        let a: Option<AccountId> = r.required("A");
        let b: Option<AccountId> = r.required("B");
        let c: Option<AccountId> = r.required("C");
        let d: Option<AccountId> = r.optional("D");
        assert!(a.is_some() && d.is_none());
        let err = r.finish(|| Some((a?, b?, c?))).unwrap_err();
        assert_eq!(err.problems.len(), 2);
        let text = err.to_string();
        assert!(
            text.contains("output B is malformed") && text.contains("output C is missing"),
            "{text}"
        );
    }
}
