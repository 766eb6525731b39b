//! The `coordinator` binary end to end, offline: render, schema, exit codes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn coordinator(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_coordinator"))
        .current_dir(repo_root())
        .args(args)
        .output()
        .expect("the binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn cfn_lint() -> PathBuf {
    let path = std::env::var_os("CFN_LINT")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".build/venv/bin/cfn-lint"));
    assert!(
        path.exists(),
        "cfn-lint not found at {}: run `./dev setup`",
        path.display()
    );
    path
}

#[test]
fn render_writes_every_tenants_stacks_and_they_pass_cfn_lint() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("rendered");
    let result = coordinator(&["render", "--out", out.to_str().unwrap(), "--output", "json"]);
    assert!(result.status.success(), "{}", text(&result.stderr));
    let report: serde_json::Value = serde_json::from_slice(&result.stdout).unwrap();
    let rendered = report["rendered"].as_array().unwrap();
    // Three dedicated tenants get bootstrap + storage + worker, the hosted one only bootstrap.
    assert_eq!(rendered.len(), 10);
    let mut templates = Vec::new();
    for tenant in ["acme", "globex", "initech"] {
        for stack in ["bootstrap", "storage", "worker"] {
            let t = out.join(tenant).join(format!("{stack}.template.json"));
            let p = out.join(tenant).join(format!("{stack}.parameters.json"));
            assert!(t.exists() && p.exists(), "{} missing", t.display());
            templates.push(t);
        }
    }
    assert!(out.join("hooli/bootstrap.template.json").exists());
    assert!(
        !out.join("hooli/storage.template.json").exists(),
        "a hosted tenant gets no storage stack"
    );
    templates.push(out.join("hooli/bootstrap.template.json"));

    // The worker's storage-fed parameters are marked, not invented.
    let params: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("acme/worker.parameters.json")).unwrap(),
    )
    .unwrap();
    let kms = params
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["ParameterKey"] == "KmsKeyArn")
        .unwrap();
    assert_eq!(kms["FromStackOutput"]["Stack"], "docproc-storage");
    assert!(kms.get("ParameterValue").is_none());

    let lint = Command::new(cfn_lint())
        .args(["--format", "parseable", "--"])
        .args(&templates)
        .output()
        .unwrap();
    assert!(
        lint.status.success() && lint.stdout.is_empty(),
        "cfn-lint: {}{}",
        text(&lint.stdout),
        text(&lint.stderr)
    );
}

#[test]
fn render_of_one_tenant_and_stack() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path();
    let result = coordinator(&[
        "render",
        "--tenant",
        "globex",
        "--stack",
        "storage",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(result.status.success(), "{}", text(&result.stderr));
    let files: Vec<_> = std::fs::read_dir(out.join("globex"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(files.len(), 2, "{files:?}");
    let params = std::fs::read_to_string(out.join("globex/storage.parameters.json")).unwrap();
    assert!(
        params.contains("\"RetentionDays\"") && params.contains("\"7\""),
        "{params}"
    );
}

#[test]
fn bad_render_requests_exit_2_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("never");
    let out = out.to_str().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (
            &["render", "--tenant", "acm", "--out", out],
            "unknown tenant `acm`: did you mean `acme`?",
        ),
        (
            &[
                "render", "--tenant", "hooli", "--stack", "worker", "--out", out,
            ],
            "dedicated_aws",
        ),
        (
            &["render", "--stack", "database", "--out", out],
            "unknown stack \"database\"",
        ),
        (
            &["render", "--tenant", "Not_A_Tenant", "--out", out],
            "not a valid tenant id",
        ),
        (
            &["--manifest", "does/not/exist.toml", "render", "--out", out],
            "does/not/exist.toml",
        ),
        (&["render"], "--out"),
    ];
    for (args, expected) in cases {
        let result = coordinator(args);
        let stderr = text(&result.stderr);
        assert_eq!(result.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(expected),
            "{args:?}: expected {expected:?} in {stderr}"
        );
        assert!(!Path::new(out).exists(), "{args:?} wrote output");
    }
}

#[test]
fn the_example_manifest_is_valid() {
    let result = coordinator(&["validate", "--output", "json"]);
    assert!(result.status.success(), "{}", text(&result.stderr));
    let report: serde_json::Value = serde_json::from_slice(&result.stdout).unwrap();
    assert_eq!(report["valid"], true);
    assert_eq!(report["summary"]["tenants"], 4);
    assert_eq!(report["diagnostics"].as_array().unwrap().len(), 0);
}

/// `schemas/` is generated from the Rust types; it must not drift.
#[test]
fn published_schemas_are_up_to_date() {
    let dir = repo_root().join("schemas");
    let generated = coordinator::schemas::all();
    let mut stale = Vec::new();
    for file in &generated {
        let committed = std::fs::read_to_string(dir.join(&file.path)).unwrap_or_default();
        if committed != file.text {
            stale.push(file.path.clone());
        }
    }
    let mut on_disk = Vec::new();
    let mut stack = vec![dir.clone()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                on_disk.push(
                    path.strip_prefix(&dir)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }
    let extra: Vec<_> = on_disk
        .iter()
        .filter(|p| !generated.iter().any(|g| &g.path == *p))
        .collect();
    assert!(
        stale.is_empty() && extra.is_empty(),
        "schemas/ is out of date (stale: {stale:?}, not generated: {extra:?}); regenerate with `cargo run -p coordinator -- schema --out schemas` and review the diff"
    );
}

#[test]
fn schema_command_writes_the_same_files() {
    let dir = tempfile::tempdir().unwrap();
    let result = coordinator(&["schema", "--out", dir.path().to_str().unwrap()]);
    assert!(result.status.success(), "{}", text(&result.stderr));
    for file in coordinator::schemas::all() {
        assert_eq!(
            std::fs::read_to_string(dir.path().join(&file.path)).unwrap(),
            file.text
        );
    }
}

#[test]
fn help_explains_every_command() {
    let result = coordinator(&["--help"]);
    assert!(result.status.success());
    let help = text(&result.stdout);
    for command in ["validate", "render", "schema", "--manifest", "--output"] {
        assert!(help.contains(command), "--help lacks {command}:\n{help}");
    }
    let result = coordinator(&["no-such-command"]);
    assert_eq!(result.status.code(), Some(2));
}
