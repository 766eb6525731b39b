//! `[secrets]` resolution (defaults, merging) and its rules, through the
//! whole validator.

use std::path::Path;

use super::*;
use crate::manifest::{Diagnostic, Manifest, from_text};

const RECIPIENT: &str = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";

fn text(secrets: &str, tenant_extra: &str) -> String {
    format!(
        r#"
[coordinator]
account_id = "111111111111"
region = "us-east-1"
state = "state/coordinator.db"

[release]
version = "{release}"

[rollout]
waves = ["general"]

{secrets}

[[tenants]]
id = "acme"
account_id = "222222222222"
region = "eu-west-1"
external_id = "acme-external-id-0123456789abcdef0123"
wave = "general"
capabilities = ["dedicated_aws"]

[[tenants]]
id = "hooli"
account_id = "333333333333"
region = "us-west-2"
external_id = "hooli-external-id-0123456789abcdef012"
wave = "general"
capabilities = ["byo_ai_keys"]
{tenant_extra}
"#,
        release = stacks::RELEASE_VERSION,
    )
}

fn valid(secrets: &str, tenant_extra: &str) -> Manifest {
    match from_text(Path::new("/fleet/deploy.toml"), text(secrets, tenant_extra)) {
        Ok(v) => v.manifest,
        Err(e) => panic!("{}", e.report.render()),
    }
}

fn errors(secrets: &str, tenant_extra: &str) -> Vec<Diagnostic> {
    match from_text(Path::new("/fleet/deploy.toml"), text(secrets, tenant_extra)) {
        Ok(_) => panic!("accepted"),
        Err(e) => e.report.diagnostics,
    }
}

fn id(t: &str) -> TenantId {
    t.parse().unwrap()
}

#[test]
fn the_default_is_hosted_with_a_key_file_next_to_the_state() {
    let m = valid("", "");
    let expected = SecretsBackend::Hosted {
        master_key: MasterKey::File {
            path: "/fleet/state/coordinator.db.master-key".into(),
        },
    };
    assert_eq!(m.secrets.fleet, expected);
    assert_eq!(m.secrets.for_tenant(&id("acme")), &expected);
    assert!(m.secrets.overrides.is_empty());
}

#[test]
fn fleet_defaults_and_tenant_overrides() {
    let m = valid(
        r#"
[secrets]
backend = "secrets_manager"
prefix = "acme-platform"
kms_key_id = "alias/fleet-secrets"
"#,
        r#"
[tenants.secrets]
backend = "age_file"
identity = "keys/identity.txt"
recipients = ["RECIPIENT"]
"#
        .replace("RECIPIENT", RECIPIENT)
        .as_str(),
    );
    assert_eq!(
        m.secrets.for_tenant(&id("acme")),
        &SecretsBackend::SecretsManager(AwsSecrets {
            account: SecretsAccount::Vendor,
            prefix: "acme-platform".into(),
            kms_key_id: Some("alias/fleet-secrets".into()),
        })
    );
    // Another backend: the tenant's table stands alone.
    assert_eq!(
        m.secrets.for_tenant(&id("hooli")),
        &SecretsBackend::AgeFile {
            file: "/fleet/state/secrets.age".into(),
            identity: "/fleet/keys/identity.txt".into(),
            recipients: vec![RECIPIENT.into()],
        }
    );
}

#[test]
fn a_tenant_with_the_fleet_backend_inherits_unset_keys() {
    let m = valid(
        r#"
[secrets]
backend = "ssm"
prefix = "docs"
kms_key_id = "alias/fleet"
"#,
        r#"
[tenants.secrets]
kms_key_id = "alias/hooli"
"#,
    );
    assert_eq!(
        m.secrets.for_tenant(&id("hooli")),
        &SecretsBackend::Ssm(AwsSecrets {
            account: SecretsAccount::Vendor,
            prefix: "docs".into(),
            kms_key_id: Some("alias/hooli".into()),
        })
    );
    let m = valid(
        r#"
[secrets]
master_key = { kms_key_id = "alias/docproc-hosted" }
"#,
        "",
    );
    assert_eq!(
        m.secrets.fleet,
        SecretsBackend::Hosted {
            master_key: MasterKey::Kms {
                key_id: "alias/docproc-hosted".into()
            }
        }
    );
}

#[test]
fn tenant_accounts_need_dedicated_aws() {
    // At the fleet level: blamed on `secrets.account`, naming the tenant.
    let found = errors("[secrets]\nbackend = \"ssm\"\naccount = \"tenant\"\n", "");
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].field, "secrets.account");
    assert!(found[0].message.contains("`hooli`"), "{}", found[0].message);
    assert!(found[0].message.contains("dedicated_aws"));
    // In the tenant's own table.
    let found = errors(
        "",
        "[tenants.secrets]\nbackend = \"secrets_manager\"\naccount = \"tenant\"\n",
    );
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].field, "tenants[1].secrets.account");
    // The fix the hint names is accepted.
    valid(
        "[secrets]\nbackend = \"ssm\"\naccount = \"tenant\"\n",
        "[tenants.secrets]\naccount = \"vendor\"\n",
    );
}

#[test]
fn keys_of_other_backends_are_refused() {
    let found = errors("[secrets]\nprefix = \"x\"\n", "");
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].field, "secrets.prefix");
    assert!(found[0].message.contains("does not apply"));
    let found = errors(
        "[secrets]\nbackend = \"ssm\"\nmaster_key = { file = \"k\" }\n",
        "",
    );
    assert_eq!(found[0].field, "secrets.master_key");
}

#[test]
fn master_key_needs_exactly_one_key() {
    for table in [
        "master_key = {}",
        "master_key = { file = \"k\", kms_key_id = \"alias/x\" }",
    ] {
        let found = errors(&format!("[secrets]\n{table}\n"), "");
        assert_eq!(found.len(), 1, "{table}: {found:?}");
        assert_eq!(found[0].field, "secrets.master_key");
    }
}

#[test]
fn age_files_need_an_identity_and_valid_recipients() {
    let found = errors("[secrets]\nbackend = \"age_file\"\n", "");
    let fields: Vec<_> = found.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(found.len(), 2, "{fields:?}");
    let found = errors(
        "[secrets]\nbackend = \"age_file\"\nidentity = \"i\"\nrecipients = [\"age1notakey\"]\n",
        "",
    );
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].field, "secrets.recipients[0]");
}

#[test]
fn ssm_reserved_prefixes_are_refused() {
    let found = errors(
        "[secrets]\nbackend = \"ssm\"\nprefix = \"aws-things\"\n",
        "",
    );
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].field, "secrets.prefix");
    // Secrets Manager has no such rule.
    valid(
        "[secrets]\nbackend = \"secrets_manager\"\nprefix = \"aws-things\"\n",
        "",
    );
}
