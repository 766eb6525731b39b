//! What a customer's security team checks in our templates, as tests: no
//! wildcard principals or actions in grants, the deploy role requires the
//! ExternalId, data at rest is encrypted, public access is blocked, TLS is
//! enforced, and stack-created roles carry the workload boundary.

mod support;

use serde_json::Value;
use stacks::RenderedStack;

/// Every IAM policy document in a template, with where it is.
fn policy_documents(stack: &RenderedStack) -> Vec<(String, Value)> {
    let mut docs = Vec::new();
    for (id, resource) in stack.template.body()["Resources"].as_object().unwrap() {
        let props = &resource["Properties"];
        for key in ["AssumeRolePolicyDocument", "PolicyDocument"] {
            if !props[key].is_null() {
                docs.push((format!("{id}.{key}"), props[key].clone()));
            }
        }
        for (i, policy) in props["Policies"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            docs.push((
                format!("{id}.Policies[{i}]"),
                policy["PolicyDocument"].clone(),
            ));
        }
        if let Some(sub) = props["KeyPolicy"]["Fn::Sub"].as_str() {
            docs.push((
                format!("{id}.KeyPolicy"),
                serde_json::from_str(sub).expect("key policy is JSON"),
            ));
        }
    }
    docs
}

fn as_list(v: &Value) -> Vec<Value> {
    match v {
        Value::Array(items) => items.clone(),
        Value::Null => vec![],
        other => vec![other.clone()],
    }
}

#[test]
fn grants_have_no_wildcard_principal_or_action() {
    let mut checked = 0;
    for (label, stack) in support::all_examples() {
        for (at, doc) in policy_documents(&stack) {
            for statement in doc["Statement"].as_array().unwrap() {
                checked += 1;
                if statement["Effect"] == "Deny" {
                    continue; // a Deny with Principal * restricts everyone: that is the TLS-only rule
                }
                assert_eq!(statement["Effect"], "Allow", "{label} {at}");
                let principal = &statement["Principal"];
                let wildcard = |v: &Value| as_list(v).iter().any(|p| p == "*");
                assert!(
                    principal != "*" && !wildcard(&principal["AWS"]),
                    "{label} {at}: wildcard principal"
                );
                for action in as_list(&statement["Action"]) {
                    let action = action.as_str().unwrap();
                    assert_ne!(action, "*", "{label} {at}: Action *");
                    if action.ends_with(":*") {
                        // Only the standard key policy statement that lets the
                        // account's own IAM policies govern the key.
                        assert!(
                            at.ends_with("KeyPolicy") && action == "kms:*",
                            "{label} {at}: {action}"
                        );
                        let root = principal["AWS"].as_str().unwrap();
                        assert!(root.ends_with(":root"), "{label} {at}: {root}");
                    }
                }
                assert!(
                    statement.get("NotAction").is_none() && statement.get("NotPrincipal").is_none()
                );
            }
        }
    }
    assert!(
        checked > 30,
        "only {checked} statements found: the walk is broken"
    );
}

#[test]
fn deploy_role_requires_the_external_id() {
    for (label, stack) in support::all_examples()
        .into_iter()
        .filter(|(l, _)| l.starts_with("bootstrap"))
    {
        let role = &stack.template.body()["Resources"]["CoordinatorDeployRole"]["Properties"];
        let statements = role["AssumeRolePolicyDocument"]["Statement"]
            .as_array()
            .unwrap();
        assert_eq!(statements.len(), 1, "{label}");
        let s = &statements[0];
        assert_eq!(
            s["Principal"]["AWS"]["Ref"], "CoordinatorPrincipalArn",
            "{label}"
        );
        assert_eq!(
            s["Condition"]["StringEquals"]["sts:ExternalId"]["Ref"], "ExternalId",
            "{label}"
        );
        let params = &stack.template.body()["Parameters"]["ExternalId"];
        assert_eq!(params["NoEcho"], true);
        assert_eq!(params["MinLength"], 32);
    }
}

#[test]
fn buckets_are_encrypted_private_and_tls_only() {
    let mut buckets = 0;
    for (label, stack) in support::all_examples() {
        let resources = stack.template.body()["Resources"]
            .as_object()
            .unwrap()
            .clone();
        for (id, r) in resources
            .iter()
            .filter(|(_, r)| r["Type"] == "AWS::S3::Bucket")
        {
            buckets += 1;
            let p = &r["Properties"];
            let sse = &p["BucketEncryption"]["ServerSideEncryptionConfiguration"][0];
            assert_eq!(
                sse["ServerSideEncryptionByDefault"]["SSEAlgorithm"], "aws:kms",
                "{label} {id}"
            );
            assert_eq!(sse["BucketKeyEnabled"], true);
            for flag in [
                "BlockPublicAcls",
                "BlockPublicPolicy",
                "IgnorePublicAcls",
                "RestrictPublicBuckets",
            ] {
                assert_eq!(
                    p["PublicAccessBlockConfiguration"][flag], true,
                    "{label} {id} {flag}"
                );
            }
            assert_eq!(p["VersioningConfiguration"]["Status"], "Enabled");
            assert_eq!(
                p["LifecycleConfiguration"]["Rules"][0]["ExpirationInDays"]["Ref"],
                "RetentionDays"
            );
            assert_eq!(
                r["DeletionPolicy"], "Retain",
                "{label} {id}: documents must survive a stack deletion"
            );
            let tls_only = resources.values().any(|policy| {
                policy["Type"] == "AWS::S3::BucketPolicy"
                    && policy["Properties"]["Bucket"]["Ref"] == id.as_str()
                    && denies_insecure_transport(&policy["Properties"]["PolicyDocument"])
            });
            assert!(tls_only, "{label} {id}: no TLS-only bucket policy");
        }
    }
    assert_eq!(buckets, 2);
}

fn denies_insecure_transport(doc: &Value) -> bool {
    doc["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["Effect"] == "Deny" && s["Condition"]["Bool"]["aws:SecureTransport"] == "false")
}

#[test]
fn queues_are_encrypted_and_tls_only() {
    let mut queues = 0;
    for (label, stack) in support::all_examples() {
        let resources = stack.template.body()["Resources"]
            .as_object()
            .unwrap()
            .clone();
        for (id, r) in resources
            .iter()
            .filter(|(_, r)| r["Type"] == "AWS::SQS::Queue")
        {
            queues += 1;
            let p = &r["Properties"];
            assert!(
                p["KmsMasterKeyId"]["Ref"] == "KmsKeyArn" || p["SqsManagedSseEnabled"] == true,
                "{label} {id}: not encrypted"
            );
            if id.starts_with("Job") {
                assert_eq!(
                    p["KmsMasterKeyId"]["Ref"], "KmsKeyArn",
                    "{label} {id}: job queues use the tenant key"
                );
            }
            let tls_only = resources.values().any(|policy| {
                policy["Type"] == "AWS::SQS::QueuePolicy"
                    && as_list(&policy["Properties"]["Queues"])
                        .iter()
                        .any(|q| q["Ref"] == id.as_str())
                    && denies_insecure_transport(&policy["Properties"]["PolicyDocument"])
            });
            assert!(tls_only, "{label} {id}: no TLS-only queue policy");
        }
    }
    assert_eq!(queues, 8);
}

#[test]
fn stack_created_roles_carry_the_workload_boundary() {
    for (label, stack) in support::all_examples()
        .into_iter()
        .filter(|(l, _)| !l.starts_with("bootstrap"))
    {
        for (id, r) in stack.template.body()["Resources"].as_object().unwrap() {
            if r["Type"] == "AWS::IAM::Role" {
                assert_eq!(
                    r["Properties"]["PermissionsBoundary"]["Ref"], "PermissionsBoundaryArn",
                    "{label} {id}"
                );
            }
        }
    }
    // And the execution role can only create roles that carry it.
    let (_, bootstrap) = support::all_examples().into_iter().next().unwrap();
    let exec = &bootstrap.template.body()["Resources"]["CloudFormationExecutionRole"]["Properties"];
    let statements = exec["Policies"][0]["PolicyDocument"]["Statement"]
        .as_array()
        .unwrap();
    let create = statements
        .iter()
        .find(|s| as_list(&s["Action"]).contains(&"iam:CreateRole".into()))
        .unwrap();
    assert_eq!(
        create["Condition"]["StringEquals"]["iam:PermissionsBoundary"]["Ref"],
        "WorkloadBoundary"
    );
    for s in statements.iter().filter(|s| s["Condition"].is_null()) {
        for a in as_list(&s["Action"]) {
            assert!(
                ![
                    "iam:CreateRole",
                    "iam:PutRolePolicy",
                    "iam:AttachRolePolicy"
                ]
                .contains(&a.as_str().unwrap())
            );
        }
    }
}
