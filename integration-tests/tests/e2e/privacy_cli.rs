//! `coordinator secret` and `coordinator privacy` through the real binary on
//! moto (the caller's identity comes from STS): a tenant's LLM key stored in
//! the hosted, envelope-encrypted store, listed, rotated, referenced by the
//! privacy configuration, and never shown: not in any output, not in the
//! state file. A tenant without the capability is refused and nothing
//! changes.

use std::io::Write as _;
use std::path::Path;
use std::process::{Output, Stdio};

use integration_tests::{random_account_id, random_external_id, workspace_binary};

const PLANTED: &str = "sk-ant-PLANTED-e2e-5b9f0c1d2e3f4a5b6c7d8e9f";
const ROTATED: &str = "sk-ant-PLANTED-rotated-0a1b2c3d4e5f60718293";

pub(crate) fn coordinator(manifest: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut command = crate::moto_command(&workspace_binary(
        "coordinator",
        &[
            "coordinator/src",
            "stacks/src",
            "stacks/templates",
            "protocol/src",
        ],
    ));
    command
        .env("RUST_LOG", "trace")
        .arg("--manifest")
        .arg(manifest)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("the coordinator runs");
    let mut input = child.stdin.take().expect("stdin");
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).expect("write stdin");
    }
    drop(input);
    child.wait_with_output().expect("the coordinator exits")
}

pub(crate) fn text(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// deploy.toml in `dir` with two tenants in fresh accounts: `acme`
/// (`byo_ai_keys`) and `plain` (no capability), hosted secrets.
pub(crate) fn two_tenant_manifest(dir: &Path) -> std::path::PathBuf {
    let manifest = dir.join("deploy.toml");
    std::fs::write(
        &manifest,
        format!(
            "[coordinator]\naccount_id = \"{}\"\nregion = \"us-east-1\"\nstate = \"state.db\"\n\
             [release]\nversion = \"{}\"\n[rollout]\nwaves = [\"all\"]\n\
             [[tenants]]\nid = \"acme\"\naccount_id = \"{}\"\nregion = \"eu-west-1\"\nexternal_id = \"{}\"\nwave = \"all\"\ncapabilities = [\"byo_ai_keys\"]\n\
             [[tenants]]\nid = \"plain\"\naccount_id = \"{}\"\nregion = \"eu-west-1\"\nexternal_id = \"{}\"\nwave = \"all\"\ncapabilities = []\n",
            random_account_id(),
            stacks::RELEASE_VERSION,
            random_account_id(),
            random_external_id(),
            random_account_id(),
            random_external_id(),
        ),
    )
    .expect("write the manifest");
    manifest
}

#[test]
fn secrets_and_privacy_configuration_through_the_cli_never_show_a_value() {
    let dir = tempfile::tempdir().expect("temp dir");
    let manifest = two_tenant_manifest(dir.path());
    let mut outputs = Vec::new();
    let mut run = |args: &[&str], stdin: Option<&str>| {
        let o = coordinator(&manifest, args, stdin);
        outputs.push(text(&o));
        o
    };

    // Without the master key file the hosted store refuses, saying what to do.
    let o = run(&["secret", "list", "--tenant", "acme"], None);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("master key"), "{}", text(&o));
    let o = run(&["secret", "init-master-key"], None);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("created"), "{}", text(&o));

    // Store the key from stdin; argv never carries it.
    let o = run(
        &["secret", "put", "--tenant", "acme", "llm-api-key"],
        Some(&format!("{PLANTED}\n")),
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("version 1"), "{}", text(&o));
    // A second put is refused: rotation is explicit.
    let o = run(
        &["secret", "put", "--tenant", "acme", "llm-api-key"],
        Some(PLANTED),
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("secret rotate"), "{}", text(&o));
    let o = run(
        &["secret", "rotate", "--tenant", "acme", "llm-api-key"],
        Some(ROTATED),
    );
    assert!(o.status.success(), "{}", text(&o));

    // Listed with version, who and when; no value.
    let o = run(
        &["--output", "json", "secret", "list", "--tenant", "acme"],
        None,
    );
    assert!(o.status.success(), "{}", text(&o));
    let list: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    let secrets = list["secrets"].as_array().expect("secrets");
    assert_eq!(secrets.len(), 1, "{list}");
    assert_eq!(secrets[0]["name"], "llm-api-key");
    assert_eq!(secrets[0]["version"], "2");
    assert!(
        secrets[0]["updated_by"]
            .as_str()
            .is_some_and(|a| a.starts_with("arn:aws:")),
        "{list}"
    );
    assert_eq!(secrets[0]["in_use"], false);

    // The privacy configuration references it by name.
    let config = dir.path().join("privacy.toml");
    std::fs::write(
        &config,
        "[llm]\nmode = \"byok\"\nprovider = \"anthropic\"\nmodel = \"claude-sonnet-4-5\"\nkey = \"llm-api-key\"\n",
    )
    .expect("write the config");
    let config = config.to_str().expect("utf-8 path");
    let o = run(
        &["privacy", "set", "--tenant", "acme", "--file", config],
        None,
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = run(
        &["--output", "json", "privacy", "show", "--tenant", "acme"],
        None,
    );
    let view: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(view["llm"]["managed_by"], "customer", "{view}");
    assert_eq!(view["storage"]["managed_by"], "vendor", "{view}");
    assert_eq!(view["version"], 1);
    // A secret in use cannot be deleted.
    let o = run(
        &[
            "secret",
            "delete",
            "--tenant",
            "acme",
            "llm-api-key",
            "--yes",
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("privacy set"), "{}", text(&o));

    // A tenant without the capability: refused, naming it; nothing changes.
    let state = dir.path().join("state.db");
    let before = std::fs::read(&state).expect("state file");
    let o = run(
        &["secret", "put", "--tenant", "plain", "llm-api-key"],
        Some(PLANTED),
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("byo_ai_keys"), "{}", text(&o));
    let o = run(
        &["privacy", "set", "--tenant", "plain", "--file", config],
        None,
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("`byo_ai_keys`"), "{}", text(&o));
    assert_eq!(
        std::fs::read(&state).expect("state file"),
        before,
        "the state file changed"
    );

    // Audited: who, what, which version, a digest; never the value.
    let o = run(&["audit", "export", "--tenant", "acme"], None);
    assert!(o.status.success(), "{}", text(&o));
    let actions: Vec<String> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).expect("JSON line")["action"].to_string()
        })
        .collect();
    assert_eq!(
        actions,
        [
            "\"secret.put\"",
            "\"secret.rotate\"",
            "\"tenant.privacy_changed\""
        ],
        "{}",
        text(&o)
    );
    let o = run(&["audit", "verify"], None);
    assert!(o.status.success(), "{}", text(&o));

    // The value is nowhere: outputs (with trace logging) and the state file.
    let all = outputs.join("\n");
    for planted in [PLANTED, ROTATED, "PLANTED"] {
        assert!(!all.contains(planted), "{planted} printed:\n{all}");
    }
    for file in std::fs::read_dir(dir.path()).expect("dir") {
        let path = file.expect("entry").path();
        let bytes = std::fs::read(&path).unwrap_or_default();
        let found = bytes.windows(7).any(|w| w == b"PLANTED");
        assert!(!found, "{} holds the value in clear", path.display());
    }
}
