//! The fleet manifest, `deploy.toml`: reading, validating, and the validated
//! model the rest of the coordinator uses.
//!
//! Validation follows vector's config compiler: every problem is collected
//! before anything fails, each with file, line, column, field path and a
//! hint. It runs in stages that never stop early except on unreadable or
//! unparsable input:
//! 1. read ([`source::read`]): size limit, UTF-8;
//! 2. parse TOML, keeping positions ([`source::Source`]);
//! 3. check the structure against the JSON Schema generated from the raw
//!    types ([`schema_check`]) — the same schema published in `schemas/`;
//! 4. check cross-field rules ([`rules`], and [`secrets`] for the secret
//!    stores);
//! 5. only with no errors: build the validated [`Manifest`].
//!
//! Nothing here touches AWS or the state file.

pub mod diagnostics;
pub mod duration;
pub mod model;
pub mod raw;
pub mod rules;
pub mod schema_check;
pub mod secrets;
pub mod source;
pub mod tolerance;

use std::path::Path;

pub use diagnostics::{Diagnostic, Severity};
pub use model::{
    ApiSettings, CoordinatorSettings, HeartbeatSettings, Manifest, RolloutPolicy, Tenant,
    WavePolicy,
};

use diagnostics::Finding;
use source::Source;

/// Everything validation found, with the text to quote from.
#[derive(Debug, Clone)]
pub struct Report {
    /// Findings in file order.
    pub diagnostics: Vec<Diagnostic>,
    text: Option<String>,
}

impl Report {
    /// Number of errors.
    pub fn error_count(&self) -> usize {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .count()
    }

    /// Number of warnings.
    pub fn warning_count(&self) -> usize {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Warning)
            .count()
    }

    /// All findings rendered for a terminal.
    pub fn render(&self) -> String {
        self.diagnostics
            .iter()
            .map(|d| d.render(self.text.as_deref()))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// A manifest that passed validation, with any warnings.
#[derive(Debug, Clone)]
pub struct Validated {
    /// The model.
    pub manifest: Manifest,
    /// Warnings only.
    pub report: Report,
}

/// A manifest that failed validation.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{file} is not a valid fleet manifest ({} error(s), {} warning(s))", report.error_count(), report.warning_count())]
pub struct Invalid {
    /// The manifest file as given.
    pub file: String,
    /// Every finding.
    pub report: Report,
}

/// Reads and validates the manifest at `path`.
pub fn load(path: &Path) -> Result<Validated, Invalid> {
    let file = path.display().to_string();
    let fail = |diagnostic: Diagnostic, text: Option<String>| Invalid {
        file: file.clone(),
        report: Report {
            diagnostics: vec![diagnostic],
            text,
        },
    };
    let text = source::read(path).map_err(|e| {
        let hint = match &e {
            source::ReadError::Io { source, .. }
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                Some(
                    "pass --manifest PATH, or run from the directory that holds deploy.toml"
                        .to_owned(),
                )
            }
            source::ReadError::Io { source, .. }
                if source.kind() == std::io::ErrorKind::IsADirectory =>
            {
                Some("--manifest takes the manifest file itself, e.g. deploy.toml".to_owned())
            }
            _ => None,
        };
        let message = match &e {
            source::ReadError::Io { source, .. } => format!("{e}: {source}"),
            _ => e.to_string(),
        };
        fail(Diagnostic::in_text(&file, None, None, message, hint), None)
    })?;
    from_text(path, text)
}

/// Validates manifest `text` as if read from `path` (tests, stdin).
pub fn from_text(path: &Path, text: String) -> Result<Validated, Invalid> {
    let file = path.display().to_string();
    let fail = |diagnostic: Diagnostic, text: Option<String>| Invalid {
        file: file.clone(),
        report: Report {
            diagnostics: vec![diagnostic],
            text,
        },
    };
    if text.trim().is_empty() {
        let message = format!("{file} is empty");
        let hint = "a fleet manifest needs [coordinator], [release], [rollout] and [[tenants]]; \
                    start from the example deploy.toml";
        let diagnostic = Diagnostic::in_text(&file, None, None, message, Some(hint.into()));
        return Err(fail(diagnostic, None));
    }
    if let Some(at) = text.find('\0') {
        let message =
            "the file contains NUL bytes: a fleet manifest is a TOML text file".to_owned();
        let hint = "is this the right file? NUL bytes cannot appear in TOML".to_owned();
        let diagnostic =
            Diagnostic::in_text(&file, Some(&text), Some(at..at + 1), message, Some(hint));
        return Err(fail(diagnostic, Some(text)));
    }
    let source = Source::parse(text.clone()).map_err(|(message, span)| {
        let quoted = span
            .clone()
            .and_then(|s| text.get(s))
            .filter(|q| !q.is_empty() && q.len() <= 60 && !q.contains('\n'));
        let message = match quoted {
            Some(q) => format!("TOML syntax error: {message} (at `{q}`)"),
            None => format!("TOML syntax error: {message}"),
        };
        let hint = "fix the TOML syntax at the marked position".to_owned();
        let diagnostic = Diagnostic::in_text(&file, Some(&text), span, message, Some(hint));
        fail(diagnostic, Some(text.clone()))
    })?;
    validate(&file, path, source)
}

/// Validates a parsed manifest.
fn validate(file: &str, path: &Path, source: Source) -> Result<Validated, Invalid> {
    let json = source.to_json();
    let mut findings: Vec<Finding> = schema_check::check(&json);
    findings.extend(rules::check(&json, stacks::RELEASE_VERSION));
    let mut diagnostics: Vec<Diagnostic> = findings
        .into_iter()
        .map(|f| f.locate(file, &source))
        .collect();
    diagnostics.sort_by_key(|d| (d.line.unwrap_or(0), d.column.unwrap_or(0), d.severity));
    diagnostics.dedup();
    let report = Report {
        diagnostics,
        text: Some(source.text().to_owned()),
    };
    if report.error_count() > 0 {
        return Err(Invalid {
            file: file.to_owned(),
            report,
        });
    }
    let raw: raw::RawManifest = serde_json::from_value(json).map_err(|e| {
        // The schema and the types agree (tests keep them so); this is a bug.
        let message =
            format!("internal error: the manifest passed its schema but not its types: {e}");
        Invalid {
            file: file.to_owned(),
            report: Report {
                diagnostics: vec![Diagnostic::in_text(file, None, None, message, None)],
                text: None,
            },
        }
    })?;
    Ok(Validated {
        manifest: Manifest::from_raw(path, raw),
        report,
    })
}
