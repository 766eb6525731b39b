//! What a customer's security team checks in our templates, as tests: no
//! wildcard principals or actions in grants, the deploy role requires the
//! ExternalId, data at rest is encrypted, public access is blocked, TLS is
//! enforced, and stack-created roles carry the workload boundary; `*`
//! resources only for actions that have no narrower resource; the deploy
//! role's data-plane grants (secrets, probes) are limited to the prefixes
//! the coordinator uses (decision 0007).

mod support;

use serde_json::Value;
use stacks::RenderedStack;
use stacks::builtin::bootstrap::{DEPLOY_ROLE_NAME, STORAGE_PROBE_PREFIX, TENANT_SECRETS_PREFIX};

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

/// Actions AWS authorizes only on `Resource: "*"` (they have no resource
/// type), each either read-only or creating something new. Any other `*`
/// resource in an identity or resource policy is a finding. In a key
/// policy, `*` means the key itself and is always allowed.
const ACTIONS_ONLY_ON_ANY_RESOURCE: &[&str] = &[
    // The execution role creates the storage stack's key; the new key's ARN
    // does not exist before the call.
    "kms:CreateKey",
    // Random bytes for placeholder secret values; touches no secret.
    "secretsmanager:GetRandomPassword",
    // The deploy role lists the tenant's secret *names* (never values);
    // the coordinator filters on `doc-platform/<tenant>/`.
    "secretsmanager:ListSecrets",
    // The LLM probe reads the region's model catalogue, not customer data.
    "bedrock:ListFoundationModels",
];

/// The one statement with `sid` in `doc`.
fn statement<'a>(doc: &'a Value, sid: &str) -> &'a Value {
    let found: Vec<&Value> = doc["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["Sid"] == sid)
        .collect();
    assert_eq!(found.len(), 1, "statement {sid}");
    found[0]
}

fn actions(statement: &Value) -> Vec<String> {
    as_list(&statement["Action"])
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect()
}

/// The `Fn::Sub` string of a resource (or of the only resource).
fn sub(resource: &Value) -> &str {
    resource["Fn::Sub"]
        .as_str()
        .unwrap_or_else(|| panic!("not a Fn::Sub: {resource}"))
}

#[test]
fn wildcard_resources_only_for_actions_without_resource_level_permissions() {
    let mut wildcards = 0;
    for (label, stack) in support::all_examples() {
        for (at, doc) in policy_documents(&stack) {
            if at.ends_with("KeyPolicy") {
                continue; // in a key policy, "*" is the key itself
            }
            for s in doc["Statement"].as_array().unwrap() {
                if s["Effect"] != "Allow" {
                    continue;
                }
                let resources = as_list(&s["Resource"]);
                if !resources.iter().any(|r| r == "*") {
                    continue;
                }
                wildcards += 1;
                assert_eq!(resources.len(), 1, "{label} {at}: mixes * with ARNs");
                for action in actions(s) {
                    assert!(
                        ACTIONS_ONLY_ON_ANY_RESOURCE.contains(&action.as_str()),
                        "{label} {at}: {action} on Resource * (it has a resource type: name it)"
                    );
                }
            }
        }
    }
    assert!(wildcards > 0, "the walk found no * resource: it is broken");
}

/// The deploy role's inline policy in a bootstrap example.
fn deploy_policy(stack: &RenderedStack) -> Value {
    let role = &stack.template.body()["Resources"]["CoordinatorDeployRole"]["Properties"];
    assert_eq!(role["RoleName"], DEPLOY_ROLE_NAME);
    role["Policies"][0]["PolicyDocument"].clone()
}

#[test]
fn deploy_role_keeps_tenant_secrets_only_under_the_coordinator_prefix() {
    for (label, stack) in support::all_examples()
        .into_iter()
        .filter(|(l, _)| l.starts_with("bootstrap"))
    {
        let doc = deploy_policy(&stack);

        // Secrets Manager: exactly what coordinator::secrets calls, on
        // `doc-platform/*` only (the ARN's random suffix is under the `*`).
        let sm = statement(&doc, "TenantSecretsInSecretsManager");
        assert_eq!(
            actions(sm),
            [
                "secretsmanager:CreateSecret",
                "secretsmanager:PutSecretValue",
                "secretsmanager:GetSecretValue",
                "secretsmanager:DeleteSecret"
            ],
            "{label}"
        );
        let secrets_arn = format!(
            "arn:${{AWS::Partition}}:secretsmanager:${{AWS::Region}}:${{AWS::AccountId}}:secret:{TENANT_SECRETS_PREFIX}/*"
        );
        assert_eq!(sub(&sm["Resource"]), secrets_arn, "{label}");
        let list = statement(&doc, "ListTenantSecretNames");
        assert_eq!(actions(list), ["secretsmanager:ListSecrets"], "{label}");

        let ssm = statement(&doc, "TenantSecretsInParameterStore");
        assert_eq!(
            actions(ssm),
            [
                "ssm:PutParameter",
                "ssm:GetParameter",
                "ssm:GetParametersByPath",
                "ssm:DeleteParameter"
            ],
            "{label}"
        );
        let parameters_arn = format!(
            "arn:${{AWS::Partition}}:ssm:${{AWS::Region}}:${{AWS::AccountId}}:parameter/{TENANT_SECRETS_PREFIX}/*"
        );
        assert_eq!(sub(&ssm["Resource"]), parameters_arn, "{label}");

        // A customer-managed key only through the service, only for those
        // names (its encryption context); the AWS managed keys need nothing.
        for (sid, service, context, arn) in [
            (
                "TenantSecretsKeyThroughSecretsManager",
                "secretsmanager",
                "kms:EncryptionContext:SecretARN",
                &secrets_arn,
            ),
            (
                "TenantSecretsKeyThroughParameterStore",
                "ssm",
                "kms:EncryptionContext:PARAMETER_ARN",
                &parameters_arn,
            ),
        ] {
            let s = statement(&doc, sid);
            let condition = &s["Condition"];
            assert_eq!(
                sub(&condition["StringEquals"]["kms:ViaService"]),
                format!("{service}.${{AWS::Region}}.amazonaws.com"),
                "{label} {sid}"
            );
            assert_eq!(sub(&condition["StringLike"][context]), arn, "{label} {sid}");
        }

        for s in doc["Statement"].as_array().unwrap() {
            let sid = s["Sid"].as_str().unwrap();
            for action in actions(s) {
                // No other statement touches secrets or parameters.
                if action.starts_with("secretsmanager:") || action.starts_with("ssm:") {
                    assert!(
                        sid.starts_with("TenantSecrets") || sid == "ListTenantSecretNames",
                        "{label} {sid}: {action}"
                    );
                }
                // Every key use goes through a service, never direct.
                if action.starts_with("kms:") {
                    assert!(
                        !s["Condition"]["StringEquals"]["kms:ViaService"].is_null(),
                        "{label} {sid}: {action} without kms:ViaService"
                    );
                }
                // The deploy role's own policy reaches no bucket: the storage
                // stack's bucket policy grants the probe's prefix.
                assert!(!action.starts_with("s3:"), "{label} {sid}: {action}");
            }
        }

        let bedrock = statement(&doc, "ProbeListsBedrockModels");
        assert_eq!(
            actions(bedrock),
            ["bedrock:ListFoundationModels"],
            "{label}"
        );
        assert!(
            actions(bedrock).len() == 1 && bedrock["Resource"] == "*",
            "{label}"
        );
    }
}

#[test]
fn storage_stack_lets_the_deploy_role_probe_only_its_prefix() {
    let deploy_role =
        format!("arn:${{AWS::Partition}}:iam::${{AWS::AccountId}}:role/{DEPLOY_ROLE_NAME}");
    let mut key_policies = 0;
    for (label, stack) in support::all_examples()
        .into_iter()
        .filter(|(l, _)| l.starts_with("storage"))
    {
        let resources = &stack.template.body()["Resources"];
        let policy = &resources["DocumentsBucketPolicy"]["Properties"]["PolicyDocument"];
        let allows: Vec<&Value> = policy["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["Effect"] == "Allow")
            .collect();
        assert_eq!(allows.len(), 2, "{label}: only the probe's two grants");
        for s in &allows {
            assert_eq!(sub(&s["Principal"]["AWS"]), deploy_role, "{label}");
        }

        let objects = statement(policy, "CoordinatorStorageProbeObjects");
        assert_eq!(
            actions(objects),
            ["s3:PutObject", "s3:GetObject", "s3:DeleteObject"],
            "{label}"
        );
        assert_eq!(
            sub(&objects["Resource"]),
            format!("${{DocumentsBucket.Arn}}/{STORAGE_PROBE_PREFIX}/*"),
            "{label}"
        );

        let list = statement(policy, "CoordinatorStorageProbeConfirmsDeletion");
        assert_eq!(actions(list), ["s3:ListBucket"], "{label}");
        assert_eq!(
            list["Resource"]["Fn::GetAtt"],
            serde_json::json!(["DocumentsBucket", "Arn"])
        );
        for prefix in as_list(&list["Condition"]["StringLike"]["s3:prefix"]) {
            assert!(
                prefix
                    .as_str()
                    .unwrap()
                    .starts_with(&format!("{STORAGE_PROBE_PREFIX}/")),
                "{label}: ListBucket beyond the probe's prefix: {prefix}"
            );
        }
        assert!(!list["Condition"]["StringLike"]["s3:prefix"].is_null());

        // The key the stack creates: the deploy role may use it only
        // through S3 (so only on objects S3 lets it touch).
        for (at, doc) in policy_documents(&stack) {
            if !at.ends_with("KeyPolicy") {
                continue;
            }
            key_policies += 1;
            let probe = statement(&doc, "CoordinatorStorageProbeThroughS3");
            assert_eq!(probe["Principal"]["AWS"], deploy_role, "{label}");
            assert_eq!(
                actions(probe),
                ["kms:GenerateDataKey", "kms:Decrypt"],
                "{label}"
            );
            assert_eq!(
                probe["Condition"]["StringEquals"]["kms:ViaService"],
                "s3.${AWS::Region}.amazonaws.com",
                "{label}"
            );
        }
    }
    assert_eq!(key_policies, 1, "only the created key has a policy of ours");
}
