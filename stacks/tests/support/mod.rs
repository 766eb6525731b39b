//! Helpers shared by the stacks crate's test files.
#![allow(dead_code)] // each test binary uses a different subset

use std::path::PathBuf;

use stacks::builtin::examples;
use stacks::{Release, RenderedStack};

/// Every stack in every shape, rendered for an example tenant.
pub fn all_examples() -> Vec<(String, RenderedStack)> {
    examples::render_all(
        Release::builtin(),
        &"acme".parse().unwrap(),
        &"222222222222".parse().unwrap(),
    )
    .expect("every example renders")
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Path to the project's pinned cfn-lint; fails with the command that installs it.
pub fn cfn_lint() -> PathBuf {
    let path = std::env::var_os("CFN_LINT")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".build/venv/bin/cfn-lint"));
    assert!(
        path.exists(),
        "cfn-lint not found at {}: run `./dev setup` (or `./dev test`) to install the pinned tools",
        path.display()
    );
    path
}

/// Compares `actual` with the snapshot file `relative` (from the crate root);
/// with `UPDATE_SNAPSHOTS=1` rewrites it instead.
pub fn assert_snapshot(relative: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(relative);
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        expected == actual,
        "{} is out of date; review the change and run `UPDATE_SNAPSHOTS=1 cargo test -p stacks` to accept it.\n--- expected\n{}\n+++ actual\n{}",
        path.display(),
        expected,
        actual
    );
}
