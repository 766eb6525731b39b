//! Runs the real `coordinator validate` on every broken manifest in
//! `tests/fixtures/bad-manifests/` and checks that each is rejected the way a
//! person needs: exit code 2 (never a panic), and a diagnostic with the
//! expected message, line and field, both for people (stderr) and machines
//! (`--output json`). Also: oversized input, a directory, a missing file, and
//! the valid `deploy.toml` at the repository root as a sanity check.
//!
//! Each fixture `<name>` has `<name>.expected` next to it:
//!
//! ```text
//! line: N | -          the 1-based line of the offending text, `-` for none
//! field: <path>        as printed after `(field ...)`
//! message: <text>      a distinctive substring of the error message
//! errors: N            optional: how many errors in all (default 1)
//! ```

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// The fewest fixtures the folder must hold.
const MIN_FIXTURES: usize = 22;

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bad-manifests")
}

fn coordinator(manifest: &Path, json: bool) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_coordinator"));
    command.arg("--manifest").arg(manifest);
    if json {
        command.args(["--output", "json"]);
    }
    command.arg("validate");
    command.output().expect("the coordinator binary runs")
}

/// What a fixture's diagnostic must say.
#[derive(Debug)]
struct Expected {
    line: Option<usize>,
    field: String,
    message: String,
    errors: usize,
}

fn read_expected(path: &Path) -> Expected {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut line = None;
    let mut field = None;
    let mut message = None;
    let mut errors = 1;
    for raw in text.lines().filter(|l| !l.trim().is_empty()) {
        let (key, value) = raw
            .split_once(": ")
            .unwrap_or_else(|| panic!("{}: malformed line {raw:?}", path.display()));
        match key {
            "line" => {
                line = Some(match value.trim() {
                    "-" => None,
                    n => Some(n.parse().unwrap_or_else(|_| {
                        panic!("{}: line must be a number or -", path.display())
                    })),
                });
            }
            "field" => field = Some(value.to_owned()),
            "message" => message = Some(value.to_owned()),
            "errors" => {
                errors = value
                    .trim()
                    .parse()
                    .unwrap_or_else(|_| panic!("{}: errors must be a number", path.display()));
            }
            other => panic!("{}: unknown key {other:?}", path.display()),
        }
    }
    let missing = |what: &str| -> ! { panic!("{}: no `{what}:` line", path.display()) };
    Expected {
        line: line.unwrap_or_else(|| missing("line")),
        field: field.unwrap_or_else(|| missing("field")),
        message: message.unwrap_or_else(|| missing("message")),
        errors,
    }
}

/// Every fixture in the folder (not the README, not the expectations), sorted.
fn fixtures() -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(fixtures_dir())
        .expect("the fixtures folder exists")
        .map(|entry| entry.expect("readable folder entry").path())
        .filter(|p| p.is_file())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            name != "README.md" && !name.ends_with(".expected")
        })
        .collect();
    found.sort();
    found
}

fn expected_path(fixture: &Path) -> PathBuf {
    let mut name = fixture.file_name().expect("a file name").to_owned();
    name.push(".expected");
    fixture.with_file_name(name)
}

/// One rendered diagnostic: its header (`error: ...`) and location line.
struct Block<'a> {
    header: &'a str,
    location: &'a str,
}

fn blocks(stderr: &str) -> Vec<Block<'_>> {
    let lines: Vec<&str> = stderr.lines().collect();
    lines
        .windows(2)
        .filter(|w| {
            (w[0].starts_with("error: ") || w[0].starts_with("warning: "))
                && w[1].starts_with("  --> ")
        })
        .map(|w| Block {
            header: w[0],
            location: w[1],
        })
        .collect()
}

/// Checks the human output; returns what is wrong, if anything.
fn check_human(fixture: &Path, expected: &Expected, out: &Output) -> Vec<String> {
    let mut problems = Vec::new();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let file = fixture.display().to_string();
    if out.status.code() != Some(2) {
        problems.push(format!("exit code {:?}, expected 2", out.status.code()));
    }
    if stderr.contains("panicked") {
        problems.push("the validator panicked".to_owned());
    }
    if !stderr.contains("error:") {
        problems.push("no `error:` on stderr".to_owned());
    }
    if !stderr.contains(&expected.message) {
        problems.push(format!(
            "no error message containing {:?}",
            expected.message
        ));
    }
    if let Some(line) = expected.line {
        let at = format!("{file}:{line}:");
        if !stderr.contains(&at) {
            problems.push(format!("no location `{at}`"));
        }
    }
    let field = format!("(field {})", expected.field);
    if !stderr.contains(&field) {
        problems.push(format!("no `{field}`"));
    }
    // All of it in one diagnostic: the message with its own location and field.
    let location = match expected.line {
        Some(line) => format!("  --> {file}:{line}:"),
        None => format!("  --> {file} "),
    };
    let together = blocks(&stderr).iter().any(|b| {
        b.header.starts_with("error: ")
            && b.header.contains(&expected.message)
            && b.location.starts_with(&location)
            && b.location.ends_with(&field)
    });
    if problems.is_empty() && !together {
        problems.push(format!(
            "message, location `{}` and `{field}` are not in the same diagnostic",
            location.trim()
        ));
    }
    problems
}

/// Checks the JSON output; returns what is wrong, if anything.
fn check_json(fixture: &Path, expected: &Expected, out: &Output) -> Vec<String> {
    let mut problems = Vec::new();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() != Some(2) {
        problems.push(format!("exit code {:?}, expected 2", out.status.code()));
    }
    if stderr.contains("panicked") {
        problems.push("the validator panicked".to_owned());
    }
    let json: Value = match serde_json::from_str(&stdout) {
        Ok(v) => v,
        Err(e) => {
            problems.push(format!("stdout is not JSON ({e})"));
            return problems;
        }
    };
    if json["valid"] != Value::Bool(false) {
        problems.push(format!("`valid` is {}, expected false", json["valid"]));
    }
    if !json["summary"].is_null() {
        problems.push(format!("`summary` is {}, expected null", json["summary"]));
    }
    let Some(diagnostics) = json["diagnostics"].as_array() else {
        problems.push("`diagnostics` is not an array".to_owned());
        return problems;
    };
    let file = fixture.display().to_string();
    let line = expected.line.map_or(Value::Null, Value::from);
    let found = diagnostics.iter().any(|d| {
        d["severity"] == "error"
            && d["file"] == file.as_str()
            && d["line"] == line
            && d["field"] == expected.field.as_str()
            && d["message"]
                .as_str()
                .is_some_and(|m| m.contains(&expected.message))
    });
    if !found {
        problems.push(format!(
            "no JSON diagnostic with severity error, line {line}, field {:?} and a message containing {:?}",
            expected.field, expected.message
        ));
    }
    let errors = diagnostics
        .iter()
        .filter(|d| d["severity"] == "error")
        .count();
    if errors != expected.errors {
        problems.push(format!(
            "{errors} error(s), expected {} (the fixture breaks one rule; other errors are noise)",
            expected.errors
        ));
    }
    problems
}

#[test]
fn every_bad_manifest_is_rejected_with_the_right_diagnostic() {
    let fixtures = fixtures();
    assert!(
        fixtures.len() >= MIN_FIXTURES,
        "expected at least {MIN_FIXTURES} fixtures in {}, found {}",
        fixtures_dir().display(),
        fixtures.len()
    );
    let mut report = String::new();
    let mut failed = 0;
    for fixture in &fixtures {
        let expected = read_expected(&expected_path(fixture));
        let human = coordinator(fixture, false);
        let json = coordinator(fixture, true);
        let problems: Vec<String> = check_human(fixture, &expected, &human)
            .into_iter()
            .map(|p| format!("human: {p}"))
            .chain(
                check_json(fixture, &expected, &json)
                    .into_iter()
                    .map(|p| format!("json: {p}")),
            )
            .collect();
        if problems.is_empty() {
            continue;
        }
        failed += 1;
        let name = fixture.file_name().unwrap_or_default().to_string_lossy();
        let line = expected.line.map_or("-".to_owned(), |l| l.to_string());
        let _ = writeln!(report, "\n=== {name}");
        let _ = writeln!(
            report,
            "expected: line {line}, field {}, message containing {:?}",
            expected.field, expected.message
        );
        for p in problems {
            let _ = writeln!(report, "  - {p}");
        }
        let _ = writeln!(
            report,
            "--- stderr (exit {:?}):\n{}",
            human.status.code(),
            String::from_utf8_lossy(&human.stderr).trim_end()
        );
        let _ = writeln!(
            report,
            "--- json stdout:\n{}",
            String::from_utf8_lossy(&json.stdout).trim_end()
        );
    }
    assert!(
        failed == 0,
        "{failed} of {} bad manifests were not rejected as expected:\n{report}",
        fixtures.len()
    );
}

#[test]
fn every_fixture_has_an_expectation_and_a_readme_entry() {
    let dir = fixtures_dir();
    let readme = std::fs::read_to_string(dir.join("README.md")).expect("README.md exists");
    for fixture in fixtures() {
        let name = fixture.file_name().unwrap_or_default().to_string_lossy();
        assert!(
            expected_path(&fixture).is_file(),
            "{name} has no {name}.expected"
        );
        assert!(
            readme.contains(&format!("`{name}`")),
            "README.md does not list {name}"
        );
    }
    for entry in std::fs::read_dir(&dir).expect("the fixtures folder exists") {
        let path = entry.expect("readable folder entry").path();
        if let Some(stem) = path
            .to_str()
            .and_then(|p| p.strip_suffix(".expected"))
            .map(PathBuf::from)
        {
            assert!(
                stem.is_file(),
                "{} has no fixture next to it",
                path.display()
            );
        }
    }
}

#[test]
fn an_oversized_manifest_is_refused_before_parsing() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("huge.toml");
    // A valid manifest followed by 10 MiB of comments: valid TOML, too big.
    let mut text = std::fs::read_to_string(repo_deploy_toml()).expect("deploy.toml");
    let comment = format!("# {}\n", "x".repeat(1021));
    text.reserve(10 * 1024 * 1024 + 1024);
    while text.len() < 10 * 1024 * 1024 + 1024 {
        text.push_str(&comment);
    }
    std::fs::write(&path, &text).expect("write the big manifest");

    let out = coordinator(&path, false);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr:\n{stderr}");
    assert!(!stderr.contains("panicked"), "stderr:\n{stderr}");
    assert!(
        stderr.contains(&format!("error: {}", path.display()))
            && stderr.contains("at most")
            && stderr.contains("8 MiB"),
        "expected an error naming the file and the 8 MiB size limit; stderr:\n{stderr}"
    );

    let out = coordinator(&path, true);
    assert_eq!(out.status.code(), Some(2));
    let json: Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(json["valid"], false);
    assert!(
        json["diagnostics"].as_array().is_some_and(|ds| ds
            .iter()
            .any(|d| d["severity"] == "error"
                && d["line"].is_null()
                && d["message"].as_str().is_some_and(|m| m.contains("8 MiB")))),
        "JSON: {json}"
    );
}

#[test]
fn a_directory_is_refused_naming_it() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let out = coordinator(dir.path(), false);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr:\n{stderr}");
    assert!(!stderr.contains("panicked"), "stderr:\n{stderr}");
    assert!(
        stderr.contains("error:") && stderr.contains(&dir.path().display().to_string()),
        "expected an error naming {}; stderr:\n{stderr}",
        dir.path().display()
    );

    let out = coordinator(dir.path(), true);
    assert_eq!(out.status.code(), Some(2));
    let json: Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(json["valid"], false);
}

#[test]
fn a_missing_file_is_refused_naming_it() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("no-such-deploy.toml");
    let out = coordinator(&path, false);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr:\n{stderr}");
    assert!(!stderr.contains("panicked"), "stderr:\n{stderr}");
    assert!(
        stderr.contains("error:") && stderr.contains(&path.display().to_string()),
        "expected an error naming {}; stderr:\n{stderr}",
        path.display()
    );

    let out = coordinator(&path, true);
    assert_eq!(out.status.code(), Some(2));
    let json: Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(json["valid"], false);
}

#[test]
fn an_empty_manifest_path_is_a_usage_error() {
    let out = coordinator(Path::new(""), false);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr:\n{stderr}");
    assert!(!stderr.contains("panicked"), "stderr:\n{stderr}");
    assert!(
        stderr.contains("error:") && stderr.contains("--manifest"),
        "stderr:\n{stderr}"
    );
}

fn repo_deploy_toml() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy.toml")
}

#[test]
fn the_example_deploy_toml_is_valid() {
    let path = repo_deploy_toml();
    let out = coordinator(&path, false);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = coordinator(&path, true);
    assert_eq!(out.status.code(), Some(0));
    let json: Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(json["valid"], true, "JSON: {json}");
}
