//! `coordinator secret rewrap` through the real binary on moto: after
//! `master_key` changes in deploy.toml, the hosted store's data keys move
//! from the old master key file to the new one. A missing new key is
//! refused, a dry run writes nothing, the real run is audited, and the
//! secrets work without the old key afterwards. No value is ever shown.

use std::path::Path;

use integration_tests::{random_account_id, random_external_id};

use crate::privacy_cli::{coordinator, text};

const PLANTED: &str = "sk-ant-PLANTED-rewrap-1f2e3d4c5b6a79880796";

fn manifest(dir: &Path, secrets: &str) -> std::path::PathBuf {
    let path = dir.join("deploy.toml");
    std::fs::write(
        &path,
        format!(
            "[coordinator]\naccount_id = \"{}\"\nregion = \"us-east-1\"\nstate = \"state.db\"\n\
             [release]\nversion = \"{}\"\n[rollout]\nwaves = [\"all\"]\n{secrets}\
             [[tenants]]\nid = \"acme\"\naccount_id = \"{}\"\nregion = \"eu-west-1\"\nexternal_id = \"{}\"\nwave = \"all\"\ncapabilities = [\"byo_ai_keys\"]\n",
            random_account_id(),
            stacks::RELEASE_VERSION,
            random_account_id(),
            random_external_id(),
        ),
    )
    .expect("write the manifest");
    path
}

#[test]
fn data_keys_move_to_a_new_master_key_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let old_key = dir.path().join("state.db.master-key");
    let old_key_arg = old_key.to_str().expect("utf-8 path");
    let mut outputs = Vec::new();

    // Under the default master key file.
    let m = manifest(dir.path(), "");
    let mut run = |m: &Path, args: &[&str], stdin: Option<&str>| {
        let o = coordinator(m, args, stdin);
        outputs.push(text(&o));
        o
    };
    let o = run(&m, &["secret", "init-master-key"], None);
    assert!(o.status.success(), "{}", text(&o));
    let o = run(
        &m,
        &["secret", "put", "--tenant", "acme", "llm-api-key"],
        Some(PLANTED),
    );
    assert!(o.status.success(), "{}", text(&o));

    // deploy.toml names a new key file, which does not exist yet.
    let m = manifest(
        dir.path(),
        "[secrets]\nbackend = \"hosted\"\nmaster_key = { file = \"new.master-key\" }\n",
    );
    let o = run(&m, &["secret", "rewrap", "--from-file", old_key_arg], None);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("init-master-key"), "{}", text(&o));
    let o = run(&m, &["secret", "init-master-key"], None);
    assert!(o.status.success(), "{}", text(&o));

    // A dry run says what it would do and writes nothing: the secret still
    // does not open under the new key.
    let o = run(&m, &["secret", "rewrap", "--from-file", old_key_arg], None);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("to re-wrap"), "{}", text(&o));
    assert!(text(&o).contains("nothing written"), "{}", text(&o));
    let o = run(
        &m,
        &["secret", "rotate", "--tenant", "acme", "llm-api-key"],
        Some(PLANTED),
    );
    assert!(!o.status.success(), "{}", text(&o));

    // The real run.
    let o = run(
        &m,
        &[
            "--output",
            "json",
            "secret",
            "rewrap",
            "--from-file",
            old_key_arg,
            "--yes",
        ],
        None,
    );
    assert!(o.status.success(), "{}", text(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(report["rewrapped"], serde_json::json!(["acme"]), "{report}");

    // The old key is no longer needed.
    std::fs::remove_file(&old_key).expect("remove the old key");
    let o = run(
        &m,
        &["secret", "rotate", "--tenant", "acme", "llm-api-key"],
        Some("sk-ant-PLANTED-rewrap-rotated-00112233"),
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("version 2"), "{}", text(&o));

    // Audited, with the caller's identity.
    let o = run(&m, &["audit", "export", "--tenant", "acme"], None);
    assert!(o.status.success(), "{}", text(&o));
    let rewraps: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .filter(|e: &serde_json::Value| e["action"] == "secret.data_key_rewrapped")
        .collect();
    assert_eq!(rewraps.len(), 1, "{}", text(&o));
    assert!(
        rewraps[0]["actor"]
            .as_str()
            .is_some_and(|a| a.starts_with("arn:aws:")),
        "{}",
        rewraps[0]
    );

    for output in &outputs {
        assert!(!output.contains(PLANTED), "a value was shown:\n{output}");
        assert!(
            !output.contains("rotated-00112233"),
            "a value was shown:\n{output}"
        );
    }
}
