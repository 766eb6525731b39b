//! Snapshot tests of plans for the situations an SRE meets: new tenants,
//! tenants in sync, updates, destructive updates, stacks that need an
//! operator, unreachable and hosted tenants.

use std::collections::BTreeMap;
use std::path::Path;

use stacks::Release;
use stacks::builtin::storage::Storage;

use super::*;
use crate::aws::{CallerIdentity, StackStatus};
use crate::manifest;
use crate::observe::TAG_TEMPLATE_HASH;

const MANIFEST: &str = r#"
[coordinator]
account_id = "111111111111"
region = "us-east-1"
state = "state.db"

[release]
version = "2026.11.0"

[rollout]
waves = ["canary", "general"]

[[tenants]]
id = "fresh"
account_id = "200000000001"
region = "eu-west-1"
external_id = "fresh-external-id-0123456789abcdef0123"
wave = "canary"
capabilities = ["dedicated_aws"]

[[tenants]]
id = "insync"
account_id = "200000000002"
region = "eu-west-1"
external_id = "insync-external-id-0123456789abcdef012"
wave = "canary"
capabilities = ["dedicated_aws", "byo_ai_keys"]

[[tenants]]
id = "drifted"
account_id = "200000000003"
region = "us-east-1"
external_id = "drifted-external-id-0123456789abcdef01"
wave = "general"
capabilities = ["dedicated_aws"]

[[tenants]]
id = "stuck"
account_id = "200000000004"
region = "us-east-1"
external_id = "stuck-external-id-0123456789abcdef0123"
wave = "general"
capabilities = ["dedicated_aws"]

[[tenants]]
id = "revoked"
account_id = "200000000005"
region = "us-east-1"
external_id = "revoked-external-id-0123456789abcdef01"
wave = "general"
capabilities = ["dedicated_aws"]

[[tenants]]
id = "hosted"
account_id = "200000000006"
region = "us-east-1"
external_id = "hosted-external-id-0123456789abcdef012"
wave = "general"
capabilities = ["byo_ai_keys"]
"#;

fn manifest() -> Manifest {
    manifest::from_text(Path::new("deploy.toml"), MANIFEST.to_owned())
        .unwrap()
        .manifest
}

fn identity(account: &str) -> CallerIdentity {
    CallerIdentity {
        account: account.parse().unwrap(),
        arn: format!("arn:aws:sts::{account}:assumed-role/docproc-coordinator-deploy/op"),
        user_id: "AROA:op".into(),
    }
}

fn storage_outputs(account: &str) -> BTreeMap<String, String> {
    [
        (
            "BucketName",
            "docproc-storage-documentsbucket-abc".to_owned(),
        ),
        (
            "BucketArn",
            "arn:aws:s3:::docproc-storage-documentsbucket-abc".to_owned(),
        ),
        (
            "KmsKeyArn",
            format!("arn:aws:kms:eu-west-1:{account}:key/k"),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// A stack deployed exactly as desired for `tenant`.
fn deployed_as_desired(
    m: &Manifest,
    tenant: &str,
    kind: StackKind,
    status: &str,
) -> StackDescription {
    let t = m.tenant(&tenant.parse().unwrap()).unwrap();
    let outputs = storage_outputs(t.account_id.as_str());
    let storage =
        Storage::parse_outputs(outputs.iter().map(|(k, v)| (k.as_str(), v.as_str()))).unwrap();
    let desired = desired::deployed(
        Release::builtin(),
        t,
        &Upstream {
            storage: Some(storage),
        },
    )
    .unwrap();
    let d = desired.into_iter().find(|d| d.kind == kind).unwrap();
    let rendered = d.rendered.unwrap();
    StackDescription {
        stack_id: format!(
            "arn:aws:cloudformation:us-east-1:{}:stack/{}/1",
            t.account_id,
            kind.stack_name()
        ),
        name: kind.stack_name().into(),
        status: StackStatus::parse(status),
        status_reason: None,
        parameters: rendered
            .parameters
            .iter()
            .map(|p| (p.parameter_key.clone(), p.parameter_value.clone()))
            .collect(),
        outputs: if kind == StackKind::Storage {
            outputs
        } else {
            BTreeMap::new()
        },
        tags: [(
            TAG_TEMPLATE_HASH.to_owned(),
            rendered.template_hash().to_string(),
        )]
        .into(),
    }
}

fn inventory(m: &Manifest) -> Inventory {
    let mut tenants = BTreeMap::new();
    let observed = |account: &str, stacks: Vec<(StackKind, Option<StackDescription>)>| {
        TenantObservation::Observed {
            identity: identity(account),
            stacks: stacks.into_iter().collect(),
        }
    };
    tenants.insert(
        "fresh".parse().unwrap(),
        observed(
            "200000000001",
            vec![(StackKind::Storage, None), (StackKind::Worker, None)],
        ),
    );
    tenants.insert(
        "insync".parse().unwrap(),
        observed(
            "200000000002",
            vec![
                (
                    StackKind::Storage,
                    Some(deployed_as_desired(
                        m,
                        "insync",
                        StackKind::Storage,
                        "CREATE_COMPLETE",
                    )),
                ),
                (
                    StackKind::Worker,
                    Some(deployed_as_desired(
                        m,
                        "insync",
                        StackKind::Worker,
                        "UPDATE_COMPLETE",
                    )),
                ),
            ],
        ),
    );
    let mut old_worker =
        deployed_as_desired(m, "drifted", StackKind::Worker, "UPDATE_ROLLBACK_COMPLETE");
    old_worker
        .tags
        .insert(TAG_TEMPLATE_HASH.into(), "an-older-release".into());
    let mut old_storage = deployed_as_desired(m, "drifted", StackKind::Storage, "CREATE_COMPLETE");
    old_storage
        .parameters
        .insert("RetentionDays".into(), "90".into());
    tenants.insert(
        "drifted".parse().unwrap(),
        observed(
            "200000000003",
            vec![
                (StackKind::Storage, Some(old_storage)),
                (StackKind::Worker, Some(old_worker)),
            ],
        ),
    );
    let mut failed = deployed_as_desired(m, "stuck", StackKind::Storage, "ROLLBACK_COMPLETE");
    failed.status_reason =
        Some("The following resource(s) failed to create: [DocumentsBucket].".into());
    tenants.insert(
        "stuck".parse().unwrap(),
        observed(
            "200000000004",
            vec![
                (StackKind::Storage, Some(failed)),
                (
                    StackKind::Worker,
                    Some(deployed_as_desired(
                        m,
                        "stuck",
                        StackKind::Worker,
                        "UPDATE_IN_PROGRESS",
                    )),
                ),
            ],
        ),
    );
    tenants.insert(
        "revoked".parse().unwrap(),
        TenantObservation::Unreachable {
            reason: "tenant revoked: AssumeRole into arn:aws:iam::200000000005:role/docproc-coordinator-deploy was denied".into(),
            denied: true,
        },
    );
    Inventory {
        observed_at: None,
        tenants,
    }
}

fn change(action: &str, id: &str, ty: &str, replacement: Option<&str>) -> ResourceChange {
    ResourceChange {
        action: action.into(),
        logical_id: id.into(),
        resource_type: ty.into(),
        replacement: replacement.map(Into::into),
    }
}

fn previews() -> Previews {
    let drifted: TenantId = "drifted".parse().unwrap();
    [
        (
            (drifted.clone(), StackKind::Storage),
            Preview::Changes {
                changes: vec![change(
                    "Modify",
                    "DocumentsBucket",
                    "AWS::S3::Bucket",
                    Some("False"),
                )],
            },
        ),
        (
            (drifted, StackKind::Worker),
            Preview::Changes {
                changes: vec![
                    change("Modify", "JobQueue", "AWS::SQS::Queue", Some("True")),
                    change("Add", "ExtraQueue", "AWS::SQS::Queue", None),
                ],
            },
        ),
    ]
    .into()
}

#[test]
fn candidates_are_exactly_the_drifted_stacks() {
    let m = manifest();
    let candidates = update_candidates(&m, &inventory(&m), Release::builtin(), None).unwrap();
    let names: Vec<String> = candidates
        .iter()
        .map(|c| format!("{}/{}", c.tenant, c.stack))
        .collect();
    assert_eq!(names, ["drifted/storage", "drifted/worker"]);
    assert!(candidates.iter().all(|c| {
        c.execution_role
            .as_str()
            .ends_with(":role/docproc-cloudformation-execution")
    }));
}

#[test]
fn fleet_plan_snapshot() {
    let m = manifest();
    let draft = plan(
        &m,
        &inventory(&m),
        Release::builtin(),
        &previews(),
        None,
        PlanOptions::default(),
    )
    .unwrap();
    insta::assert_snapshot!(
        "fleet_plan",
        render::human(&draft, &m, "Plan for release 2026.11.0")
    );
    let actions: Vec<(String, &str)> = draft
        .tenants
        .iter()
        .flat_map(|t| &t.items)
        .map(|i| (format!("{}/{}", i.tenant, i.stack), i.action.name()))
        .collect();
    assert_eq!(
        actions,
        [
            ("fresh/storage".to_owned(), "create"),
            ("fresh/worker".to_owned(), "create"),
            ("insync/storage".to_owned(), "no_change"),
            ("insync/worker".to_owned(), "no_change"),
            ("drifted/storage".to_owned(), "update"),
            ("drifted/worker".to_owned(), "blocked"),
            ("stuck/storage".to_owned(), "blocked"),
            ("stuck/worker".to_owned(), "blocked"),
            ("revoked/storage".to_owned(), "blocked"),
            ("revoked/worker".to_owned(), "blocked"),
        ]
    );
}

#[test]
fn allow_replace_turns_a_destructive_update_into_an_update() {
    let m = manifest();
    let only: TenantId = "drifted".parse().unwrap();
    let options = PlanOptions {
        allow_replace: true,
    };
    let draft = plan(
        &m,
        &inventory(&m),
        Release::builtin(),
        &previews(),
        Some(&only),
        options,
    )
    .unwrap();
    assert_eq!(draft.tenants.len(), 1);
    let worker = &draft.tenants[0].items[1];
    assert!(matches!(&worker.action, Action::Update { changes } if changes.len() == 2));
}

#[test]
fn plan_json_snapshot() {
    let m = manifest();
    let only: TenantId = "fresh".parse().unwrap();
    let draft = plan(
        &m,
        &inventory(&m),
        Release::builtin(),
        &previews(),
        Some(&only),
        PlanOptions::default(),
    )
    .unwrap();
    insta::assert_json_snapshot!("fresh_tenant_plan", draft);
}

#[test]
fn planning_is_deterministic() {
    let m = manifest();
    let inv = inventory(&m);
    let a = plan(
        &m,
        &inv,
        Release::builtin(),
        &previews(),
        None,
        PlanOptions::default(),
    )
    .unwrap();
    let b = plan(
        &m,
        &inv,
        Release::builtin(),
        &previews(),
        None,
        PlanOptions::default(),
    )
    .unwrap();
    assert_eq!(
        serde_json::to_string(&a).unwrap(),
        serde_json::to_string(&b).unwrap()
    );
}
