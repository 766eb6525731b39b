//! Every built-in stack, in every shape, passes cfn-lint with no findings at
//! all (errors, warnings or informational).

mod support;

use std::process::Command;

#[test]
fn every_stack_and_shape_passes_cfn_lint() {
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (label, stack) in support::all_examples() {
        let path = dir.path().join(format!("{label}.json"));
        std::fs::write(&path, stack.template.pretty_json()).unwrap();
        files.push(path);
    }
    assert_eq!(files.len(), 6);
    let output = Command::new(support::cfn_lint())
        .args(["--format", "parseable", "--include-checks", "I", "--"])
        .args(&files)
        .output()
        .expect("cfn-lint runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.trim().is_empty(),
        "cfn-lint found problems (exit {:?}):\n{stdout}\n{stderr}",
        output.status.code()
    );
}
