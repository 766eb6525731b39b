//! `coordinator privacy export|apply` through the real binary on moto: the
//! configurations round-trip through a directory of files, an invalid file
//! stops the whole apply before anything is written, a dry run writes
//! nothing, and applying the same files twice changes nothing the second
//! time.

use crate::privacy_cli::{coordinator, text, two_tenant_manifest};

const PLANTED: &str = "sk-ant-PLANTED-gitops-a1b2c3d4e5f60718";

#[test]
fn configurations_round_trip_through_a_directory_and_apply_all_or_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let m = two_tenant_manifest(dir.path());
    let configs = dir.path().join("privacy");
    let configs_arg = configs.to_str().expect("utf-8 path");
    let mut outputs = Vec::new();
    let mut run = |args: &[&str], stdin: Option<&str>| {
        let o = coordinator(&m, args, stdin);
        outputs.push(text(&o));
        o
    };
    assert!(run(&["secret", "init-master-key"], None).status.success());
    let o = run(
        &["secret", "put", "--tenant", "acme", "llm-api-key"],
        Some(PLANTED),
    );
    assert!(o.status.success(), "{}", text(&o));

    // Export: one file per tenant, hosted defaults included.
    let o = run(&["privacy", "export", "--dir", configs_arg], None);
    assert!(o.status.success(), "{}", text(&o));
    let plain_hosted = std::fs::read_to_string(configs.join("plain.toml")).expect("plain.toml");
    assert!(plain_hosted.contains("mode = \"hosted\""), "{plain_hosted}");
    assert!(configs.join("acme.toml").exists());

    // Edited: acme brings its own key; plain asks for it without the
    // capability. The whole apply is refused and nothing is written.
    let byok = "[llm]\nmode = \"byok\"\nprovider = \"anthropic\"\nmodel = \"claude-sonnet-4-5\"\nkey = \"llm-api-key\"\n";
    std::fs::write(configs.join("acme.toml"), byok).expect("edit acme");
    std::fs::write(configs.join("plain.toml"), byok).expect("edit plain");
    let o = run(&["privacy", "apply", "--dir", configs_arg], None);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("plain"), "{}", text(&o));
    assert!(text(&o).contains("byo_ai_keys"), "{}", text(&o));
    let o = run(&["privacy", "history", "--tenant", "acme"], None);
    assert!(text(&o).contains("never configured"), "{}", text(&o));

    // A dry run says what would change and writes nothing.
    std::fs::write(configs.join("plain.toml"), &plain_hosted).expect("restore plain");
    let o = run(
        &[
            "--output",
            "json",
            "privacy",
            "apply",
            "--dir",
            configs_arg,
            "--dry-run",
        ],
        None,
    );
    assert!(o.status.success(), "{}", text(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(report["tenants"][0]["tenant"], "acme", "{report}");
    assert_eq!(report["tenants"][0]["result"], "would change", "{report}");
    assert_eq!(report["tenants"][1]["result"], "unchanged", "{report}");
    let o = run(&["privacy", "history", "--tenant", "acme"], None);
    assert!(text(&o).contains("never configured"), "{}", text(&o));

    // Applied once, then again: the second time changes nothing.
    let o = run(&["privacy", "apply", "--dir", configs_arg], None);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("acme: changed (version 1)"),
        "{}",
        text(&o)
    );
    assert!(
        text(&o).contains("plain: unchanged (version 0)"),
        "{}",
        text(&o)
    );
    let o = run(&["privacy", "apply", "--dir", configs_arg], None);
    assert!(
        text(&o).contains("acme: unchanged (version 1)"),
        "{}",
        text(&o)
    );

    // Exported again, the file holds what was applied.
    let o = run(
        &[
            "privacy",
            "export",
            "--dir",
            configs_arg,
            "--tenant",
            "acme",
        ],
        None,
    );
    assert!(o.status.success(), "{}", text(&o));
    let acme = std::fs::read_to_string(configs.join("acme.toml")).expect("acme.toml");
    assert!(acme.contains("version 1 when exported"), "{acme}");
    assert!(acme.contains("provider = \"anthropic\""), "{acme}");

    // A file for a tenant deploy.toml does not have is refused.
    std::fs::write(configs.join("nobody.toml"), &plain_hosted).expect("write nobody");
    let o = run(&["privacy", "apply", "--dir", configs_arg], None);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("nobody"), "{}", text(&o));

    for output in &outputs {
        assert!(!output.contains(PLANTED), "a value was shown:\n{output}");
    }
}
