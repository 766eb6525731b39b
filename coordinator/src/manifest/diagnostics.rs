//! Findings about a manifest, located by field path and line, rendered for
//! people (rustc-style, with the offending line) or as JSON for machines.

use std::fmt::Write as _;
use std::ops::Range;

use serde::Serialize;

use super::source::{FieldPath, Source, line_col};

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The manifest is rejected.
    Error,
    /// Accepted, but probably not what was meant (`--deny-warnings` rejects).
    Warning,
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// The manifest file as given.
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// The field, e.g. `tenants[2].account_id`.
    pub field: String,
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    pub hint: Option<String>,
    #[serde(skip)]
    span: Option<Range<usize>>,
}

/// A finding before it is located in the file.
#[derive(Debug, Clone)]
pub struct Finding {
    /// Error or warning.
    pub severity: Severity,
    /// The field it is about.
    pub path: FieldPath,
    /// Point at the key rather than its value (unknown keys).
    pub at_key: bool,
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    pub hint: Option<String>,
}

impl Finding {
    /// An error at `path`.
    pub fn error(path: FieldPath, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            path,
            at_key: false,
            message: message.into(),
            hint: None,
        }
    }

    /// A warning at `path`.
    pub fn warning(path: FieldPath, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Warning,
            ..Self::error(path, message)
        }
    }

    /// Adds a hint.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Points at the key instead of the value.
    pub fn at_key(mut self) -> Self {
        self.at_key = true;
        self
    }

    /// Locates the finding in `source`: the field itself, else its nearest
    /// ancestor present in the file.
    pub fn locate(self, file: &str, source: &Source) -> Diagnostic {
        let mut path = self.path.clone();
        let mut span = source.span_of(&path, self.at_key);
        while span.is_none() && !path.0.is_empty() {
            path.0.pop();
            span = source.span_of(&path, false);
        }
        let (line, column) = match &span {
            Some(s) => {
                let (l, c) = source.line_col(s.start);
                (Some(l), Some(c))
            }
            None => (None, None),
        };
        Diagnostic {
            severity: self.severity,
            file: file.to_owned(),
            line,
            column,
            field: self.path.to_string(),
            message: self.message,
            hint: self.hint,
            span,
        }
    }
}

impl Diagnostic {
    /// A finding about the file as a whole, or a syntax error at `span`.
    pub fn in_text(
        file: &str,
        text: Option<&str>,
        span: Option<Range<usize>>,
        message: String,
        hint: Option<String>,
    ) -> Self {
        let (line, column) = match (text, &span) {
            (Some(t), Some(s)) => {
                let (l, c) = line_col(t, s.start);
                (Some(l), Some(c))
            }
            _ => (None, None),
        };
        Diagnostic {
            severity: Severity::Error,
            file: file.to_owned(),
            line,
            column,
            field: FieldPath::root().to_string(),
            message,
            hint,
            span,
        }
    }

    /// Renders for a terminal: header, location, the source line with a
    /// caret under the offending text, and the hint.
    pub fn render(&self, text: Option<&str>) -> String {
        let mut out = String::new();
        let label = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let _ = writeln!(out, "{label}: {}", self.message);
        let location = match (self.line, self.column) {
            (Some(l), Some(c)) => format!("{}:{l}:{c}", self.file),
            _ => self.file.clone(),
        };
        let _ = writeln!(out, "  --> {location} (field {})", self.field);
        if let (Some(text), Some(line), Some(column), Some(span)) =
            (text, self.line, self.column, &self.span)
            && let Some(source_line) = text.lines().nth(line - 1)
        {
            let shown: String = source_line
                .chars()
                .take(160)
                .map(|c| {
                    if c.is_control() && c != '\t' {
                        '\u{fffd}'
                    } else {
                        c
                    }
                })
                .collect();
            let width = text[span.clone()]
                .lines()
                .next()
                .map_or(1, |l| l.chars().count().max(1));
            let width = width.min(shown.chars().count().saturating_sub(column - 1).max(1));
            let gutter = " ".repeat(line.to_string().len());
            let _ = writeln!(out, "{gutter} |");
            let _ = writeln!(out, "{line} | {shown}");
            let _ = writeln!(
                out,
                "{gutter} | {}{}",
                " ".repeat(column - 1),
                "^".repeat(width)
            );
        }
        if let Some(hint) = &self.hint {
            let _ = writeln!(out, "  = hint: {hint}");
        }
        out
    }
}
