//! `coordinator tenant verify` on moto, through the real binary: the happy
//! half (assuming the role with the ExternalId lands in the tenant's account)
//! passes, and because moto does not enforce trust policies the refusal
//! checks fail, so the tenant is refused: exactly what the command must do
//! against an account whose role ignores the ExternalId. No secret appears
//! in its output, even with every log enabled.

use integration_tests::{random_account_id, random_external_id, workspace_binary};

#[test]
fn verify_passes_the_assume_check_and_refuses_an_unenforced_trust() {
    let dir = tempfile::tempdir().expect("temp dir");
    let account = random_account_id();
    let external_id = random_external_id();
    let manifest = dir.path().join("deploy.toml");
    std::fs::write(
        &manifest,
        format!(
            "[coordinator]\naccount_id = \"{}\"\nregion = \"us-east-1\"\nstate = \"state.db\"\n[release]\nversion = \"{}\"\n[rollout]\nwaves = [\"all\"]\n[[tenants]]\nid = \"acme\"\naccount_id = \"{account}\"\nregion = \"eu-west-1\"\nexternal_id = \"{external_id}\"\nwave = \"all\"\ncapabilities = [\"dedicated_aws\"]\n",
            random_account_id(),
            stacks::RELEASE_VERSION
        ),
    )
    .expect("write the manifest");
    let secret_key = "OperatorSecretKeyThatMustNeverBePrinted0123";
    let mut command = crate::moto_command(&workspace_binary(
        "coordinator",
        &[
            "coordinator/src",
            "stacks/src",
            "stacks/templates",
            "protocol/src",
        ],
    ));
    let output = command
        .env("AWS_SECRET_ACCESS_KEY", secret_key)
        .env("RUST_LOG", "trace")
        .args([
            "--manifest",
            manifest.to_str().expect("utf-8 path"),
            "tenant",
            "verify",
            "acme",
        ])
        .output()
        .expect("the coordinator runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    let landed = format!("landed in account {account}");
    assert!(
        stdout.contains("ok   assume_with_external_id") && stdout.contains(&landed),
        "{stdout}"
    );
    assert!(
        stdout.contains("FAIL refused_without_external_id") && stdout.contains("confused-deputy"),
        "{stdout}"
    );
    assert!(
        stderr.contains("tenant `acme` failed verification"),
        "{stderr}"
    );
    // Trace logging was on; still nothing secret.
    assert!(
        stderr.len() > 10_000,
        "trace logs were captured: {} bytes",
        stderr.len()
    );
    for text in [&stdout, &stderr] {
        assert!(
            !text.contains(secret_key),
            "the operator's secret key leaked"
        );
        assert!(!text.contains(&external_id), "the ExternalId leaked");
        assert!(
            !text.contains("<SecretAccessKey>") && !text.contains("<SessionToken>"),
            "an STS response body leaked"
        );
    }
}
