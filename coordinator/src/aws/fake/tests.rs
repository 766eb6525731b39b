mod sqs;

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use stacks::builtin::bootstrap::Bootstrap;
use stacks::builtin::examples::render_all;
use stacks::builtin::storage::Storage;
use stacks::builtin::worker::Worker;
use stacks::ids::{AccountId, ExternalId, Region, RoleArn};
use stacks::{Parameter, Release, RenderedStack, Stack, StackKind};

use super::*;
use crate::aws::{
    ChangeSetStatus, CloudFormation, CreateChangeSet, CreateStack, ErrorKind, ResourceChange,
    RoleRequest, SessionName, StackCapability, StackStatus, TenantCredentials,
};

const TENANT_ACCOUNT: &str = "222222222222";
const EXTERNAL_ID: &str = "tenantExternalId-0123456789abcdef0123456789";
const REGION: Region = Region::EuWest1;
const DEPLOY_ROLE: &str = "docproc-coordinator-deploy";

fn account(id: &str) -> AccountId {
    id.parse().unwrap()
}

fn external_id(id: &str) -> ExternalId {
    id.parse().unwrap()
}

fn role_request(role: &RoleArn, external_id: Option<&ExternalId>) -> RoleRequest {
    RoleRequest {
        role_arn: role.clone(),
        external_id: external_id.cloned(),
        session_name: SessionName::sanitize("docproc-operator"),
        source_identity: Some(SessionName::sanitize("operator")),
        duration: Duration::from_secs(3600),
    }
}

/// A tenant account whose deploy role enforces [`EXTERNAL_ID`], and
/// CloudFormation through it.
struct Tenant {
    account: AccountId,
    role: RoleArn,
    credentials: Arc<TenantCredentials>,
    cfn: Arc<dyn CloudFormation>,
}

fn tenant(cloud: &FakeCloud, id: &str) -> Tenant {
    tenant_in(cloud, id, REGION)
}

fn tenant_in(cloud: &FakeCloud, id: &str, region: Region) -> Tenant {
    let account = account(id);
    let eid = external_id(EXTERNAL_ID);
    let role = cloud.add_role(&account, DEPLOY_ROLE, Trust::requiring(&eid));
    let credentials = Arc::new(TenantCredentials::new(
        cloud.operator_sts(),
        role_request(&role, Some(&eid)),
    ));
    let cfn = cloud.tenant_cloudformation(credentials.clone(), region);
    Tenant {
        account,
        role,
        credentials,
        cfn,
    }
}

fn create_request(name: &str, body: &str, parameters: &[(&str, &str)], token: &str) -> CreateStack {
    CreateStack {
        name: name.into(),
        template_body: body.into(),
        parameters: params(parameters),
        tags: BTreeMap::from([("docproc:tenant".to_owned(), "acme".to_owned())]),
        role_arn: None,
        capabilities: vec![StackCapability::NamedIam],
        client_request_token: token.into(),
    }
}

fn change_set_request(
    stack: &str,
    name: &str,
    body: &str,
    parameters: &[(&str, &str)],
) -> CreateChangeSet {
    CreateChangeSet {
        stack_name: stack.into(),
        change_set_name: name.into(),
        template_body: body.into(),
        parameters: params(parameters),
        tags: BTreeMap::new(),
        role_arn: None,
        capabilities: vec![StackCapability::NamedIam],
        client_token: format!("{name}-token"),
    }
}

fn params(pairs: &[(&str, &str)]) -> Vec<Parameter> {
    pairs
        .iter()
        .map(|(k, v)| Parameter {
            parameter_key: (*k).into(),
            parameter_value: (*v).into(),
        })
        .collect()
}

fn rendered(kind: StackKind, label: &str) -> RenderedStack {
    let release = Release::builtin();
    let all = render_all(release, &"acme".parse().unwrap(), &account(TENANT_ACCOUNT)).unwrap();
    let (_, stack) = all.into_iter().find(|(l, _)| l == label).unwrap();
    assert_eq!(stack.kind, kind);
    stack
}

fn create_rendered(stack: &RenderedStack, token: &str) -> CreateStack {
    CreateStack {
        name: stack.kind.stack_name().into(),
        template_body: stack.template.canonical_json().into(),
        parameters: stack.parameters.clone(),
        tags: BTreeMap::new(),
        role_arn: None,
        capabilities: vec![StackCapability::NamedIam],
        client_request_token: token.into(),
    }
}

fn change_set_rendered(
    stack: &RenderedStack,
    name: &str,
    parameters: Vec<Parameter>,
) -> CreateChangeSet {
    CreateChangeSet {
        stack_name: stack.kind.stack_name().into(),
        change_set_name: name.into(),
        template_body: stack.template.canonical_json().into(),
        parameters,
        tags: BTreeMap::new(),
        role_arn: None,
        capabilities: vec![StackCapability::NamedIam],
        client_token: format!("{name}-token"),
    }
}

fn with_param(stack: &RenderedStack, key: &str, value: &str) -> Vec<Parameter> {
    let mut parameters = stack.parameters.clone();
    let p = parameters
        .iter_mut()
        .find(|p| p.parameter_key == key)
        .unwrap();
    p.parameter_value = value.into();
    parameters
}

/// A small template: a named queue, a bucket with a generated name, a topic.
fn small_template() -> serde_json::Value {
    json!({
        "Parameters": {"Retention": {"Type": "Number", "Default": 300, "MinValue": 60}},
        "Resources": {
            "Queue": {"Type": "AWS::SQS::Queue", "Properties": {
                "QueueName": {"Fn::Sub": "${AWS::StackName}-jobs"},
                "MessageRetentionPeriod": {"Ref": "Retention"}
            }},
            "Bucket": {"Type": "AWS::S3::Bucket"},
            "Old": {"Type": "AWS::SNS::Topic"}
        },
        "Outputs": {
            "QueueUrl": {"Value": {"Ref": "Queue"}},
            "QueueArn": {"Value": {"Fn::GetAtt": ["Queue", "Arn"]}},
            "BucketName": {"Value": {"Ref": "Bucket"}},
            "Where": {"Value": {"Fn::Sub": "${AWS::Partition}:${AWS::Region}:${AWS::AccountId}:${Retention}:${Bucket.Arn}"}}
        }
    })
}

fn change(action: &str, logical: &str, ty: &str, replacement: Option<&str>) -> ResourceChange {
    ResourceChange {
        action: action.into(),
        logical_id: logical.into(),
        resource_type: ty.into(),
        replacement: replacement.map(Into::into),
    }
}

fn stack_statuses(events: &[StackEvent], stack: &str) -> Vec<String> {
    events
        .iter()
        .filter(|e| e.logical_id == stack)
        .map(|e| e.status.clone())
        .collect()
}

// ----- STS -----

#[tokio::test]
async fn operator_identity_is_configurable() {
    let cloud = FakeCloud::new();
    let me = cloud.operator_sts().caller_identity().await.unwrap();
    assert_eq!(me.account.as_str(), "111111111111");
    assert_eq!(
        me.arn,
        "arn:aws:sts::111111111111:assumed-role/docproc-coordinator/operator"
    );
    assert!(
        me.user_id.starts_with("AROA") && me.user_id.ends_with(":operator"),
        "{}",
        me.user_id
    );

    let other = FakeCloud::with_operator(
        account("999999999999"),
        "arn:aws:sts::999999999999:assumed-role/ops/alice",
    );
    let me = other.operator_sts().caller_identity().await.unwrap();
    assert_eq!(me.account.as_str(), "999999999999");
    assert_eq!(me.arn, "arn:aws:sts::999999999999:assumed-role/ops/alice");
}

#[tokio::test]
async fn external_id_is_enforced_only_when_the_trust_says_so() {
    let cloud = FakeCloud::new();
    let sts = cloud.operator_sts();
    let acct = account(TENANT_ACCOUNT);
    let right = external_id(EXTERNAL_ID);
    let wrong = external_id("someOtherExternalId-0123456789abcdef01234");

    let strict = cloud.add_role(&acct, "strict", Trust::requiring(&right));
    assert_eq!(strict.as_str(), "arn:aws:iam::222222222222:role/strict");
    let session = sts
        .assume_role(&role_request(&strict, Some(&right)))
        .await
        .unwrap();
    assert!(
        session.access_key_id.starts_with("ASIA222222222222"),
        "{}",
        session.access_key_id
    );
    for presented in [Some(&wrong), None] {
        let err = sts
            .assume_role(&role_request(&strict, presented))
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::AccessDenied);
        assert_eq!(err.code.as_deref(), Some("AccessDenied"));
        assert_eq!((err.service, err.operation), ("sts", "AssumeRole"));
        assert_eq!(
            err.message,
            "User: arn:aws:sts::111111111111:assumed-role/docproc-coordinator/operator is not authorized to perform: sts:AssumeRole on resource: arn:aws:iam::222222222222:role/strict"
        );
    }

    // The confused-deputy hole: a trust policy that names an ExternalId but
    // does not enforce it, and one without any.
    let lax = cloud.add_role(
        &acct,
        "lax",
        Trust {
            external_id: Some(right.clone()),
            enforce: false,
        },
    );
    let open = cloud.add_role(&acct, "open", Trust::open());
    for role in [&lax, &open] {
        for presented in [Some(&right), Some(&wrong), None] {
            sts.assume_role(&role_request(role, presented))
                .await
                .unwrap();
        }
    }
    assert_eq!(cloud.assume_count(), 9);
}

#[tokio::test]
async fn unknown_denied_and_over_long_sessions_are_refused() {
    let cloud = FakeCloud::new();
    let sts = cloud.operator_sts();
    let acct = account(TENANT_ACCOUNT);
    let eid = external_id(EXTERNAL_ID);

    let never_added = RoleArn::for_role(&acct, "nobody").unwrap();
    let err = sts
        .assume_role(&role_request(&never_added, Some(&eid)))
        .await
        .unwrap_err();
    assert_eq!(
        (err.kind, err.code.as_deref()),
        (ErrorKind::AccessDenied, Some("AccessDenied"))
    );

    let role = cloud.add_role(&acct, DEPLOY_ROLE, Trust::requiring(&eid));
    cloud.deny_assume(&role);
    let err = sts
        .assume_role(&role_request(&role, Some(&eid)))
        .await
        .unwrap_err();
    assert_eq!(
        (err.kind, err.code.as_deref()),
        (ErrorKind::AccessDenied, Some("AccessDenied"))
    );
    cloud.allow_assume(&role);
    sts.assume_role(&role_request(&role, Some(&eid)))
        .await
        .unwrap();

    let mut long = role_request(&role, Some(&eid));
    long.duration = Duration::from_secs(7200);
    let err = sts.assume_role(&long).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Validation);
    assert!(
        err.message.contains("MaxSessionDuration"),
        "{}",
        err.message
    );
    cloud.set_max_session_duration(&role, Duration::from_secs(7200));
    sts.assume_role(&long).await.unwrap();
}

#[tokio::test]
async fn tenant_identity_and_landing_in_another_account() {
    let cloud = FakeCloud::new();
    let t = tenant(&cloud, TENANT_ACCOUNT);
    let id = cloud
        .tenant_sts(t.credentials.clone(), REGION)
        .caller_identity()
        .await
        .unwrap();
    assert_eq!(id.account, t.account);
    assert_eq!(
        id.arn,
        "arn:aws:sts::222222222222:assumed-role/docproc-coordinator-deploy/docproc-operator"
    );
    assert!(id.user_id.starts_with("AROA") && id.user_id.ends_with(":docproc-operator"));

    // A second tenant whose role (misconfigured, or malicious) lands in
    // someone else's account: identity and CloudFormation both act there.
    let t2 = tenant(&cloud, "333333333333");
    let elsewhere = account("444444444444");
    cloud.land_in(&t2.role, &elsewhere);
    let id = cloud
        .tenant_sts(t2.credentials.clone(), REGION)
        .caller_identity()
        .await
        .unwrap();
    assert_eq!(id.account, elsewhere);
    assert_eq!(
        id.arn,
        "arn:aws:sts::444444444444:assumed-role/docproc-coordinator-deploy/docproc-operator"
    );
    let body = small_template().to_string();
    t2.cfn
        .create_stack(&create_request("landed", &body, &[], "t"))
        .await
        .unwrap();
    assert!(cloud.stack(&elsewhere, REGION, "landed").is_some());
    assert!(cloud.stack(&t2.account, REGION, "landed").is_none());
    let call = cloud
        .calls()
        .into_iter()
        .find(|c| c.operation == "CreateStack")
        .unwrap();
    assert_eq!(call.account, Some(elsewhere));
}

#[tokio::test]
async fn credentials_are_refreshed_on_every_call_and_revocation_bites() {
    let cloud = FakeCloud::new();
    // Sessions shorter than the 5-minute refresh margin: every call re-assumes.
    cloud.set_session_ttl(Duration::from_secs(60));
    let t = tenant(&cloud, TENANT_ACCOUNT);
    assert!(
        t.cfn
            .describe_stack("docproc-storage")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(cloud.assume_count(), 1);
    t.cfn.describe_stack("docproc-storage").await.unwrap();
    assert_eq!(cloud.assume_count(), 2);

    cloud.deny_assume(&t.role);
    let err = t.cfn.describe_stack("docproc-storage").await.unwrap_err();
    assert_eq!(
        (err.kind, err.operation),
        (ErrorKind::AccessDenied, "AssumeRole")
    );
    assert_eq!(cloud.assume_count(), 3);
    // The refused call never reached CloudFormation.
    let describes = cloud
        .calls()
        .iter()
        .filter(|c| c.operation == "DescribeStacks")
        .count();
    assert_eq!(describes, 2);
}

#[tokio::test]
async fn long_sessions_are_cached() {
    let cloud = FakeCloud::new();
    let t = tenant(&cloud, TENANT_ACCOUNT);
    for _ in 0..3 {
        t.cfn.describe_stack("docproc-storage").await.unwrap();
    }
    assert_eq!(cloud.assume_count(), 1);
    // Revocation does not end sessions already issued (as in AWS).
    cloud.deny_assume(&t.role);
    t.cfn.describe_stack("docproc-storage").await.unwrap();
}

// ----- CloudFormation: real templates -----

#[tokio::test]
async fn outputs_of_every_real_stack_parse() {
    let cloud = FakeCloud::new();
    let acct = account(TENANT_ACCOUNT);
    let release = Release::builtin();
    let all = render_all(release, &"acme".parse().unwrap(), &acct).unwrap();
    assert_eq!(all.len(), 6);
    for (i, (label, stack)) in all.iter().enumerate() {
        // Each variant in its own region, so stack names do not collide.
        let region = Region::ALL[i];
        let t = tenant_in(&cloud, TENANT_ACCOUNT, region);
        let name = stack.kind.stack_name();
        t.cfn
            .create_stack(&create_rendered(stack, label))
            .await
            .unwrap();
        let desc = t.cfn.describe_stack(name).await.unwrap().unwrap();
        assert_eq!(desc.status, StackStatus::CreateComplete, "{label}");
        assert!(desc.stack_id.starts_with(&format!(
            "arn:aws:cloudformation:{region}:{acct}:stack/{name}/"
        )));
        let pairs = || desc.outputs.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        match stack.kind {
            StackKind::Bootstrap => {
                let o = Bootstrap::parse_outputs(pairs()).unwrap();
                assert_eq!(
                    o.deploy_role_arn.as_str(),
                    format!("arn:aws:iam::{acct}:role/docproc-coordinator-deploy")
                );
                assert_eq!(
                    o.execution_role_arn.as_str(),
                    format!("arn:aws:iam::{acct}:role/docproc-cloudformation-execution")
                );
                assert_eq!(
                    o.workload_boundary_arn.as_str(),
                    format!("arn:aws:iam::{acct}:policy/docproc-workload-boundary")
                );
                // NoEcho parameters are masked, but stored.
                assert_eq!(desc.parameters["ExternalId"], "****");
                let deployed = cloud.deployed(&acct, region, name).unwrap();
                assert_eq!(
                    deployed.parameters["ExternalId"],
                    "exampleExternalId-0123456789abcdef0123456789"
                );
                assert_eq!(deployed.template_body, stack.template.canonical_json());
            }
            StackKind::Storage => {
                let o = Storage::parse_outputs(pairs()).unwrap();
                let bucket = o.bucket_name.as_str();
                let suffix = bucket
                    .strip_prefix("docproc-storage-documentsbucket-")
                    .unwrap();
                assert!(
                    suffix.len() == 6 && suffix.chars().all(|c| c.is_ascii_lowercase()),
                    "{bucket}"
                );
                assert_eq!(o.bucket_arn.as_str(), format!("arn:aws:s3:::{bucket}"));
                if label == "storage-existing-key" {
                    assert_eq!(
                        o.kms_key_arn.as_str(),
                        format!("arn:aws:kms:eu-west-1:{acct}:key/customer-owned-key")
                    );
                } else {
                    let key_id = o
                        .kms_key_arn
                        .as_str()
                        .strip_prefix(&format!("arn:aws:kms:{region}:{acct}:key/"))
                        .unwrap();
                    assert_eq!(key_id.len(), 36);
                    assert_eq!(key_id.matches('-').count(), 4);
                }
                assert_eq!(desc.parameters["RetentionDays"], "30");
            }
            StackKind::Worker => {
                let o = Worker::parse_outputs(pairs()).unwrap();
                let url = |q: &str| {
                    format!("https://sqs.{region}.amazonaws.com/{acct}/docproc-worker-{q}")
                };
                assert_eq!(o.job_queue_url.as_str(), url("jobs"));
                assert_eq!(o.dead_letter_queue_url.as_str(), url("jobs-dlq"));
                assert_eq!(
                    o.heartbeat_request_queue_url.as_str(),
                    url("heartbeat-requests")
                );
                assert_eq!(
                    o.heartbeat_reply_queue_url.as_str(),
                    url("heartbeat-replies")
                );
                let role = o
                    .worker_role_arn
                    .as_str()
                    .strip_prefix(&format!(
                        "arn:aws:iam::{acct}:role/docproc-worker-WorkerRole-"
                    ))
                    .unwrap();
                assert_eq!(role.len(), 12);
                let secret = o.llm_key_secret_name.map(|s| s.as_str().to_owned());
                if label == "worker-llm-key-secret" {
                    assert_eq!(secret.as_deref(), Some("docproc-worker/llm-api-key"));
                } else {
                    assert_eq!(secret, None);
                }
            }
        }
    }
}

#[tokio::test]
async fn capabilities_and_parameters_are_checked() {
    let cloud = FakeCloud::new();
    let t = tenant(&cloud, TENANT_ACCOUNT);
    let worker = rendered(StackKind::Worker, "worker");
    let mut request = create_rendered(&worker, "w");
    request.capabilities = vec![];
    let err = t.cfn.create_stack(&request).await.unwrap_err();
    assert_eq!(
        err.code.as_deref(),
        Some("InsufficientCapabilitiesException")
    );
    assert_eq!(err.message, "Requires capabilities : [CAPABILITY_IAM]");

    let bootstrap = rendered(StackKind::Bootstrap, "bootstrap");
    let mut request = create_rendered(&bootstrap, "b");
    request.capabilities = vec![StackCapability::Iam];
    let err = t.cfn.create_stack(&request).await.unwrap_err();
    assert_eq!(
        err.message,
        "Requires capabilities : [CAPABILITY_NAMED_IAM]"
    );

    let storage = rendered(StackKind::Storage, "storage");
    let mut request = create_rendered(&storage, "s");
    request.parameters = with_param(&storage, "RetentionDays", "0");
    let err = t.cfn.create_stack(&request).await.unwrap_err();
    assert_eq!(
        (err.kind, err.code.as_deref()),
        (ErrorKind::Validation, Some("ValidationError"))
    );
    assert_eq!(
        err.message,
        "Parameter 'RetentionDays' must be a number not less than 1"
    );
    request
        .parameters
        .retain(|p| p.parameter_key != "RetentionDays");
    let err = t.cfn.create_stack(&request).await.unwrap_err();
    assert_eq!(err.message, "Parameters: [RetentionDays] must have values");

    let bad = json!({"Resources": {"Q": {"Type": "AWS::SQS::Queue", "Properties": {"RedrivePolicy": {"Ref": "Missing"}}}}});
    let err = t
        .cfn
        .create_stack(&create_request("bad", &bad.to_string(), &[], "x"))
        .await
        .unwrap_err();
    assert_eq!(
        err.message,
        "Template format error: Unresolved resource dependencies [Missing] in the Resources block of the template"
    );
    // Nothing was created by the refused calls.
    assert!(cloud.stack(&t.account, REGION, "docproc-worker").is_none());
    assert_eq!(cloud.max_concurrent_operations(), 0);
}

// ----- CloudFormation: lifecycle -----

#[tokio::test]
async fn create_is_idempotent_per_request_token() {
    let cloud = FakeCloud::new();
    let t = tenant(&cloud, TENANT_ACCOUNT);
    let body = small_template().to_string();
    let id = t
        .cfn
        .create_stack(&create_request("s", &body, &[], "token-1"))
        .await
        .unwrap();
    let again = t
        .cfn
        .create_stack(&create_request("s", &body, &[], "token-1"))
        .await
        .unwrap();
    assert_eq!(id, again);
    let events = cloud.events(&t.account, REGION, "s");
    assert_eq!(
        stack_statuses(&events, "s"),
        ["CREATE_COMPLETE", "CREATE_IN_PROGRESS"]
    );
    assert_eq!(events[1].reason.as_deref(), Some("User Initiated"));
    assert_eq!(events[0].resource_type, "AWS::CloudFormation::Stack");

    let err = t
        .cfn
        .create_stack(&create_request("s", &body, &[], "token-2"))
        .await
        .unwrap_err();
    assert_eq!(
        (err.kind, err.code.as_deref()),
        (ErrorKind::AlreadyExists, Some("AlreadyExistsException"))
    );
    assert_eq!(err.message, "Stack [s] already exists");

    // Change sets too: same name and token is the same change set.
    let cs = change_set_request("s", "cs", &body, &[("Retention", "600")]);
    let first = t.cfn.create_change_set(&cs).await.unwrap();
    assert_eq!(t.cfn.create_change_set(&cs).await.unwrap(), first);
    let other_token = CreateChangeSet {
        client_token: "other".into(),
        ..cs
    };
    let err = t.cfn.create_change_set(&other_token).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::AlreadyExists);
}

#[tokio::test]
async fn outputs_of_a_small_template() {
    let cloud = FakeCloud::new();
    let t = tenant(&cloud, TENANT_ACCOUNT);
    let body = small_template().to_string();
    t.cfn
        .create_stack(&create_request(
            "small",
            &body,
            &[("Retention", "120")],
            "t",
        ))
        .await
        .unwrap();
    let desc = t.cfn.describe_stack("small").await.unwrap().unwrap();
    assert_eq!(
        desc.outputs["QueueUrl"],
        "https://sqs.eu-west-1.amazonaws.com/222222222222/small-jobs"
    );
    assert_eq!(
        desc.outputs["QueueArn"],
        "arn:aws:sqs:eu-west-1:222222222222:small-jobs"
    );
    let bucket = &desc.outputs["BucketName"];
    assert!(
        bucket.starts_with("small-bucket-") && bucket.len() == 19,
        "{bucket}"
    );
    assert_eq!(
        desc.outputs["Where"],
        format!("aws:eu-west-1:222222222222:120:arn:aws:s3:::{bucket}")
    );
    assert_eq!(
        desc.parameters,
        BTreeMap::from([("Retention".to_owned(), "120".to_owned())])
    );
    assert_eq!(desc.tags["docproc:tenant"], "acme");
    // Stable per stack, different for another stack.
    assert_eq!(
        &t.cfn
            .describe_stack("small")
            .await
            .unwrap()
            .unwrap()
            .outputs["BucketName"],
        bucket
    );
    t.cfn
        .create_stack(&create_request("small2", &body, &[], "t"))
        .await
        .unwrap();
    let other = t.cfn.describe_stack("small2").await.unwrap().unwrap();
    assert_ne!(
        other.outputs["BucketName"].strip_prefix("small2-"),
        bucket.strip_prefix("small-")
    );
    assert_eq!(other.parameters["Retention"], "300");
}

#[tokio::test]
async fn change_set_diff_detects_replacement_and_execute_applies_it() {
    let cloud = FakeCloud::new();
    let t = tenant(&cloud, TENANT_ACCOUNT);
    let old = small_template();
    t.cfn
        .create_stack(&create_request("app", &old.to_string(), &[], "t"))
        .await
        .unwrap();
    let before = t.cfn.describe_stack("app").await.unwrap().unwrap();

    let mut new = old.clone();
    new["Resources"]["Queue"]["Properties"]["QueueName"] =
        json!({"Fn::Sub": "${AWS::StackName}-jobs-v2"});
    new["Resources"]["Bucket"]["Properties"] =
        json!({"VersioningConfiguration": {"Status": "Enabled"}});
    new["Resources"].as_object_mut().unwrap().remove("Old");
    new["Resources"]["New"] = json!({"Type": "AWS::SNS::Topic"});
    let new_body = new.to_string();
    let id = t
        .cfn
        .create_change_set(&change_set_request("app", "rename", &new_body, &[]))
        .await
        .unwrap();
    assert!(id.starts_with("arn:aws:cloudformation:eu-west-1:222222222222:changeSet/rename/"));
    let cs = t.cfn.describe_change_set("app", "rename").await.unwrap();
    assert_eq!(cs.status, ChangeSetStatus::CreateComplete);
    assert_eq!(cs.execution_status.as_deref(), Some("AVAILABLE"));
    assert_eq!(
        cs.changes,
        [
            change("Modify", "Bucket", "AWS::S3::Bucket", Some("False")),
            change("Add", "New", "AWS::SNS::Topic", None),
            change("Remove", "Old", "AWS::SNS::Topic", None),
            change("Modify", "Queue", "AWS::SQS::Queue", Some("True")),
        ]
    );

    // A parameter change modifies the resources that use it, in place.
    t.cfn
        .create_change_set(&change_set_request(
            "app",
            "retention",
            &old.to_string(),
            &[("Retention", "600")],
        ))
        .await
        .unwrap();
    let cs = t.cfn.describe_change_set("app", "retention").await.unwrap();
    assert_eq!(
        cs.changes,
        [change("Modify", "Queue", "AWS::SQS::Queue", Some("False"))]
    );

    t.cfn
        .execute_change_set("app", &id, "exec-1")
        .await
        .unwrap();
    let after = t.cfn.describe_stack("app").await.unwrap().unwrap();
    assert_eq!(after.status, StackStatus::UpdateComplete);
    assert_eq!(
        after.outputs["QueueUrl"],
        "https://sqs.eu-west-1.amazonaws.com/222222222222/app-jobs-v2"
    );
    assert_eq!(after.outputs["BucketName"], before.outputs["BucketName"]);
    assert_eq!(after.stack_id, before.stack_id);
    assert_eq!(
        cloud
            .deployed(&t.account, REGION, "app")
            .unwrap()
            .template_body,
        new_body
    );
    let cs = t.cfn.describe_change_set("app", "rename").await.unwrap();
    assert_eq!(cs.execution_status.as_deref(), Some("EXECUTE_COMPLETE"));
    let events = t.cfn.stack_events("app").await.unwrap();
    assert_eq!(
        stack_statuses(&events, "app")[..3],
        [
            "UPDATE_COMPLETE",
            "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS",
            "UPDATE_IN_PROGRESS"
        ]
    );

    // Executing removed the other change set; executing again is refused,
    // unless it is a retry with the same token.
    let err = t
        .cfn
        .describe_change_set("app", "retention")
        .await
        .unwrap_err();
    assert_eq!(
        (err.kind, err.code.as_deref()),
        (ErrorKind::NotFound, Some("ChangeSetNotFound"))
    );
    t.cfn
        .execute_change_set("app", "rename", "exec-1")
        .await
        .unwrap();
    let err = t
        .cfn
        .execute_change_set("app", "rename", "exec-2")
        .await
        .unwrap_err();
    assert_eq!(
        (err.kind, err.code.as_deref()),
        (ErrorKind::Validation, Some("InvalidChangeSetStatus"))
    );
    assert_eq!(
        cloud.stack(&t.account, REGION, "app").unwrap().status,
        StackStatus::UpdateComplete
    );

    t.cfn.delete_change_set("app", "rename").await.unwrap();
    let err = t.cfn.delete_change_set("app", "rename").await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound);
    let err = t.cfn.describe_change_set("app", "never").await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound);
}

#[tokio::test]
async fn unchanged_template_and_parameters_make_an_empty_change_set() {
    let cloud = FakeCloud::new();
    let t = tenant(&cloud, TENANT_ACCOUNT);
    let storage = rendered(StackKind::Storage, "storage");
    t.cfn
        .create_stack(&create_rendered(&storage, "c"))
        .await
        .unwrap();
    let request = change_set_rendered(&storage, "same", storage.parameters.clone());
    t.cfn.create_change_set(&request).await.unwrap();
    let cs = t
        .cfn
        .describe_change_set("docproc-storage", "same")
        .await
        .unwrap();
    assert_eq!(cs.status, ChangeSetStatus::Failed);
    assert_eq!(cs.execution_status.as_deref(), Some("UNAVAILABLE"));
    assert_eq!(
        cs.status_reason.as_deref(),
        Some(
            "The submitted information didn't contain changes. Submit different information to create a change set."
        )
    );
    assert!(cs.changes.is_empty() && cs.is_empty_change());
    let err = t
        .cfn
        .execute_change_set("docproc-storage", "same", "x")
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Validation);

    // Re-serialised, the same template is still the same.
    let pretty = CreateChangeSet {
        change_set_name: "pretty".into(),
        template_body: storage.template.pretty_json(),
        ..request
    };
    t.cfn.create_change_set(&pretty).await.unwrap();
    assert!(
        t.cfn
            .describe_change_set("docproc-storage", "pretty")
            .await
            .unwrap()
            .is_empty_change()
    );

    // A changed parameter is a change.
    let changed = change_set_rendered(
        &storage,
        "longer",
        with_param(&storage, "RetentionDays", "60"),
    );
    t.cfn.create_change_set(&changed).await.unwrap();
    let cs = t
        .cfn
        .describe_change_set("docproc-storage", "longer")
        .await
        .unwrap();
    assert_eq!(cs.status, ChangeSetStatus::CreateComplete);
    assert_eq!(
        cs.changes,
        [change(
            "Modify",
            "DocumentsBucket",
            "AWS::S3::Bucket",
            Some("False")
        )]
    );
}

#[tokio::test]
async fn scripted_create_failure_rolls_back() {
    let cloud = FakeCloud::new();
    let t = tenant(&cloud, TENANT_ACCOUNT);
    let storage = rendered(StackKind::Storage, "storage");
    let name = "docproc-storage";
    cloud.script(
        &t.account,
        REGION,
        name,
        Outcome::FailCreate {
            resource: "DocumentsBucket".into(),
            reason: "Resource handler returned message: \"Access Denied\"".into(),
        },
    );
    let first_id = t
        .cfn
        .create_stack(&create_rendered(&storage, "c1"))
        .await
        .unwrap();
    let desc = t.cfn.describe_stack(name).await.unwrap().unwrap();
    assert_eq!(desc.status, StackStatus::RollbackComplete);
    assert_eq!(
        desc.status_reason.as_deref(),
        Some(
            "The following resource(s) failed to create: [DocumentsBucket]. Rollback requested by user."
        )
    );
    assert!(desc.outputs.is_empty());

    let events = t.cfn.stack_events(name).await.unwrap();
    assert_eq!(
        stack_statuses(&events, name),
        [
            "ROLLBACK_COMPLETE",
            "ROLLBACK_IN_PROGRESS",
            "CREATE_IN_PROGRESS"
        ]
    );
    let failed = events.iter().find(|e| e.status == "CREATE_FAILED").unwrap();
    assert_eq!(failed.logical_id, "DocumentsBucket");
    assert_eq!(failed.resource_type, "AWS::S3::Bucket");
    assert_eq!(
        failed.reason.as_deref(),
        Some("Resource handler returned message: \"Access Denied\"")
    );
    assert!(events.windows(2).all(|w| w[0].timestamp >= w[1].timestamp));

    // A rolled-back stack blocks its name and cannot be updated: delete it.
    let err = t
        .cfn
        .create_stack(&create_rendered(&storage, "c2"))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::AlreadyExists);
    let err = t
        .cfn
        .create_change_set(&change_set_rendered(
            &storage,
            "cs",
            storage.parameters.clone(),
        ))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Validation);
    assert!(
        err.message
            .contains("is in ROLLBACK_COMPLETE state and can not be updated"),
        "{}",
        err.message
    );
    t.cfn.delete_stack(name, None, "d").await.unwrap();
    assert!(t.cfn.describe_stack(name).await.unwrap().is_none());
    // Deleted stacks are still visible by id, as in AWS.
    let gone = t.cfn.describe_stack(&first_id).await.unwrap().unwrap();
    assert_eq!(gone.status, StackStatus::DeleteComplete);
    let second_id = t
        .cfn
        .create_stack(&create_rendered(&storage, "c3"))
        .await
        .unwrap();
    assert_ne!(first_id, second_id);
    assert_eq!(
        t.cfn.describe_stack(name).await.unwrap().unwrap().status,
        StackStatus::CreateComplete
    );
    let old_events = t.cfn.stack_events(&first_id).await.unwrap();
    assert_eq!(old_events[0].status, "DELETE_COMPLETE");
    // Deleting what does not exist is fine.
    t.cfn.delete_stack("never-was", None, "d").await.unwrap();
}

#[tokio::test]
async fn failed_rollback_needs_continue_update_rollback() {
    let cloud = FakeCloud::new();
    let t = tenant(&cloud, TENANT_ACCOUNT);
    let storage = rendered(StackKind::Storage, "storage");
    let name = "docproc-storage";
    t.cfn
        .create_stack(&create_rendered(&storage, "c"))
        .await
        .unwrap();
    let before = t.cfn.describe_stack(name).await.unwrap().unwrap();
    let err = t
        .cfn
        .continue_update_rollback(name, &[], None, "early")
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Validation);

    cloud.script(
        &t.account,
        REGION,
        name,
        Outcome::RollbackFails {
            resource: "DataKey".into(),
            reason: "Key is pending deletion".into(),
        },
    );
    t.cfn
        .create_change_set(&change_set_rendered(
            &storage,
            "cs",
            with_param(&storage, "RetentionDays", "60"),
        ))
        .await
        .unwrap();
    t.cfn.execute_change_set(name, "cs", "e").await.unwrap();
    let desc = t.cfn.describe_stack(name).await.unwrap().unwrap();
    assert_eq!(desc.status, StackStatus::UpdateRollbackFailed);
    assert_eq!(
        desc.status_reason.as_deref(),
        Some("The following resource(s) failed to update: [DataKey]. ")
    );
    assert_eq!(
        t.cfn
            .describe_change_set(name, "cs")
            .await
            .unwrap()
            .execution_status
            .as_deref(),
        Some("EXECUTE_FAILED")
    );
    let events = t.cfn.stack_events(name).await.unwrap();
    assert_eq!(
        stack_statuses(&events, name)[..3],
        [
            "UPDATE_ROLLBACK_FAILED",
            "UPDATE_ROLLBACK_IN_PROGRESS",
            "UPDATE_IN_PROGRESS"
        ]
    );
    assert_eq!(
        events
            .iter()
            .filter(|e| e.logical_id == "DataKey" && e.status == "UPDATE_FAILED")
            .count(),
        2
    );

    let err = t
        .cfn
        .create_change_set(&change_set_rendered(
            &storage,
            "cs2",
            storage.parameters.clone(),
        ))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Validation);
    let err = t
        .cfn
        .continue_update_rollback(name, &["DocumentsBucket".into()], None, "bad")
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Validation);

    t.cfn
        .continue_update_rollback(name, &["DataKey".into()], None, "k")
        .await
        .unwrap();
    let desc = t.cfn.describe_stack(name).await.unwrap().unwrap();
    assert_eq!(desc.status, StackStatus::UpdateRollbackComplete);
    assert_eq!(desc.parameters["RetentionDays"], "30");
    assert_eq!(desc.outputs, before.outputs);
    assert_eq!(
        cloud.skipped_resources(&t.account, REGION, name),
        ["DataKey"]
    );
    // A retry of the same request is harmless.
    t.cfn
        .continue_update_rollback(name, &["DataKey".into()], None, "k")
        .await
        .unwrap();
    // Rolled back, the stack can be updated again.
    t.cfn
        .create_change_set(&change_set_rendered(
            &storage,
            "cs3",
            with_param(&storage, "RetentionDays", "90"),
        ))
        .await
        .unwrap();
    t.cfn.execute_change_set(name, "cs3", "e3").await.unwrap();
    assert_eq!(
        cloud.stack(&t.account, REGION, name).unwrap().parameters["RetentionDays"],
        "90"
    );
}

#[tokio::test(start_paused = true)]
async fn slow_operations_are_in_progress_until_their_duration_passes() {
    let cloud = FakeCloud::new();
    cloud.set_operation_duration(Duration::from_secs(60));
    let t = tenant(&cloud, TENANT_ACCOUNT);
    let body = small_template().to_string();
    t.cfn
        .create_stack(&create_request("slow", &body, &[], "t"))
        .await
        .unwrap();
    let desc = t.cfn.describe_stack("slow").await.unwrap().unwrap();
    assert_eq!(desc.status, StackStatus::CreateInProgress);
    assert!(desc.outputs.is_empty());
    tokio::time::sleep(Duration::from_secs(59)).await;
    assert_eq!(
        t.cfn.describe_stack("slow").await.unwrap().unwrap().status,
        StackStatus::CreateInProgress
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let desc = t.cfn.describe_stack("slow").await.unwrap().unwrap();
    assert_eq!(desc.status, StackStatus::CreateComplete);
    assert_eq!(desc.outputs.len(), 4);
    let events = t.cfn.stack_events("slow").await.unwrap();
    assert_eq!(
        events[0].timestamp - events[1].timestamp,
        chrono::Duration::seconds(60)
    );

    // A failing update on a stack with its own duration: it fails half-way,
    // then rolls back; the old outputs stay visible throughout.
    cloud.set_stack_operation_duration(&t.account, REGION, "slow", Duration::from_secs(10));
    cloud.script(
        &t.account,
        REGION,
        "slow",
        Outcome::FailUpdate {
            resource: "Queue".into(),
            reason: "Queue already exists".into(),
        },
    );
    t.cfn
        .create_change_set(&change_set_request(
            "slow",
            "cs",
            &body,
            &[("Retention", "900")],
        ))
        .await
        .unwrap();
    t.cfn.execute_change_set("slow", "cs", "e").await.unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let desc = t.cfn.describe_stack("slow").await.unwrap().unwrap();
    assert_eq!(desc.status, StackStatus::UpdateInProgress);
    assert_eq!(desc.outputs.len(), 4);
    let err = t
        .cfn
        .create_change_set(&change_set_request("slow", "cs2", &body, &[]))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Validation);
    let err = t.cfn.delete_stack("slow", None, "d").await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Validation);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let desc = t.cfn.describe_stack("slow").await.unwrap().unwrap();
    assert_eq!(desc.status, StackStatus::UpdateRollbackInProgress);
    assert_eq!(
        desc.status_reason.as_deref(),
        Some("The following resource(s) failed to update: [Queue]. ")
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    let desc = t.cfn.describe_stack("slow").await.unwrap().unwrap();
    assert_eq!(desc.status, StackStatus::UpdateRollbackComplete);
    assert_eq!(desc.parameters["Retention"], "300");

    // A hung delete never ends.
    cloud.script(&t.account, REGION, "slow", Outcome::Hang);
    t.cfn.delete_stack("slow", None, "d").await.unwrap();
    tokio::time::sleep(Duration::from_secs(86_400)).await;
    assert_eq!(
        t.cfn.describe_stack("slow").await.unwrap().unwrap().status,
        StackStatus::DeleteInProgress
    );
    assert_eq!(cloud.operations_in_progress(), 1);
}

#[tokio::test(start_paused = true)]
async fn seeded_stacks_and_concurrency() {
    let cloud = FakeCloud::new();
    cloud.set_operation_duration(Duration::from_secs(30));
    let body = small_template().to_string();
    let a = tenant(&cloud, "200000000001");
    let b = tenant(&cloud, "200000000002");
    let c = tenant(&cloud, "200000000003");

    // Someone else is updating a's stack.
    cloud.put_stack(
        &a.account,
        REGION,
        "app",
        StackStatus::UpdateInProgress,
        &body,
        &[],
    );
    let err = a
        .cfn
        .create_change_set(&change_set_request(
            "app",
            "cs",
            &body,
            &[("Retention", "600")],
        ))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Validation);
    b.cfn
        .create_stack(&create_request("app", &body, &[], "t"))
        .await
        .unwrap();
    c.cfn
        .create_stack(&create_request("app", &body, &[], "t"))
        .await
        .unwrap();
    assert_eq!(cloud.operations_in_progress(), 3);
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(cloud.operations_in_progress(), 0);
    assert_eq!(
        cloud.stack(&a.account, REGION, "app").unwrap().status,
        StackStatus::UpdateComplete
    );
    a.cfn
        .create_change_set(&change_set_request(
            "app",
            "cs",
            &body,
            &[("Retention", "600")],
        ))
        .await
        .unwrap();
    a.cfn.execute_change_set("app", "cs", "e").await.unwrap();
    assert_eq!(cloud.operations_in_progress(), 1);
    assert_eq!(cloud.max_concurrent_operations(), 3);

    // A stack left in UPDATE_ROLLBACK_FAILED by someone else.
    let id = cloud.put_stack(
        &b.account,
        REGION,
        "stuck",
        StackStatus::UpdateRollbackFailed,
        &body,
        &[],
    );
    assert!(id.contains(":stack/stuck/"));
    let desc = b.cfn.describe_stack("stuck").await.unwrap().unwrap();
    assert_eq!(desc.status, StackStatus::UpdateRollbackFailed);
    assert_eq!(
        desc.outputs["QueueUrl"],
        "https://sqs.eu-west-1.amazonaws.com/200000000002/stuck-jobs"
    );
    b.cfn
        .continue_update_rollback("stuck", &["Queue".into()], None, "k")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(
        b.cfn.describe_stack("stuck").await.unwrap().unwrap().status,
        StackStatus::UpdateRollbackComplete
    );
    assert_eq!(
        cloud.skipped_resources(&b.account, REGION, "stuck"),
        ["Queue"]
    );
}

#[tokio::test]
async fn rejected_calls_change_nothing() {
    let cloud = FakeCloud::new();
    let t = tenant(&cloud, TENANT_ACCOUNT);
    let body = small_template().to_string();
    let denied = AwsError::new(
        ErrorKind::AccessDenied,
        "test",
        "test",
        "not authorized to perform: cloudformation:CreateStack",
    )
    .with_code("AccessDenied");
    cloud.script(&t.account, REGION, "app", Outcome::Reject(denied));
    let err = t
        .cfn
        .create_stack(&create_request("app", &body, &[], "t"))
        .await
        .unwrap_err();
    assert_eq!(
        (err.kind, err.service, err.operation),
        (ErrorKind::AccessDenied, "cloudformation", "CreateStack")
    );
    assert!(t.cfn.describe_stack("app").await.unwrap().is_none());
    t.cfn
        .create_stack(&create_request("app", &body, &[], "t"))
        .await
        .unwrap();
    assert_eq!(
        cloud.stack(&t.account, REGION, "app").unwrap().status,
        StackStatus::CreateComplete
    );

    cloud.script(
        &t.account,
        REGION,
        "app",
        Outcome::FailDelete {
            resource: "Bucket".into(),
            reason: "The bucket you tried to delete is not empty".into(),
        },
    );
    t.cfn.delete_stack("app", None, "d").await.unwrap();
    let desc = cloud.stack(&t.account, REGION, "app").unwrap();
    assert_eq!(desc.status, StackStatus::DeleteFailed);
    assert_eq!(
        desc.status_reason.as_deref(),
        Some("The following resource(s) failed to delete: [Bucket]. ")
    );
}

#[tokio::test]
async fn throttling_hits_only_the_named_operation() {
    let cloud = FakeCloud::new();
    let t = tenant(&cloud, TENANT_ACCOUNT);
    let elsewhere = tenant_in(&cloud, TENANT_ACCOUNT, Region::UsEast1);
    cloud.throttle(&t.account, REGION, "DescribeStacks", 2);
    elsewhere.cfn.describe_stack("app").await.unwrap();
    for _ in 0..2 {
        let err = t.cfn.describe_stack("app").await.unwrap_err();
        assert_eq!(
            (err.kind, err.code.as_deref()),
            (ErrorKind::Throttled, Some("Throttling"))
        );
        assert_eq!(
            (err.service, err.operation),
            ("cloudformation", "DescribeStacks")
        );
    }
    let err = t.cfn.stack_events("app").await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound);
    t.cfn.describe_stack("app").await.unwrap();

    // The operator's AssumeRole can be throttled too.
    let fresh = tenant(&cloud, "555555555555");
    cloud.throttle(&cloud.operator_identity().account, REGION, "AssumeRole", 1);
    let err = fresh.cfn.describe_stack("app").await.unwrap_err();
    assert_eq!(
        (err.kind, err.operation),
        (ErrorKind::Throttled, "AssumeRole")
    );
    fresh.cfn.describe_stack("app").await.unwrap();
}

#[tokio::test]
async fn fail_all_fails_and_records_every_call() {
    let cloud = FakeCloud::new();
    let t = tenant(&cloud, TENANT_ACCOUNT);
    let operator = account("111111111111");
    cloud.fail_all();
    let err = cloud.operator_sts().caller_identity().await.unwrap_err();
    assert_eq!(
        (err.kind, err.code.as_deref()),
        (ErrorKind::Transient, Some("ServiceUnavailable"))
    );
    let err = t.cfn.describe_stack("app").await.unwrap_err();
    assert_eq!((err.service, err.operation), ("sts", "AssumeRole"));
    assert_eq!(
        cloud.calls(),
        [
            Call {
                service: "sts",
                operation: "GetCallerIdentity",
                account: Some(operator.clone()),
                region: None,
                stack: None,
                role_arn: None,
                queue: None,
            },
            Call {
                service: "sts",
                operation: "AssumeRole",
                account: Some(operator.clone()),
                region: None,
                stack: None,
                role_arn: Some(t.role.clone()),
                queue: None,
            },
        ]
    );

    cloud.stop_failing();
    cloud.clear_calls();
    t.cfn.describe_stack("app").await.unwrap();
    let calls = cloud.calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].operation, "AssumeRole");
    assert_eq!(
        calls[1],
        Call {
            service: "cloudformation",
            operation: "DescribeStacks",
            account: Some(t.account.clone()),
            region: Some(REGION),
            stack: Some("app".into()),
            role_arn: None,
            queue: None,
        }
    );
}

#[tokio::test(start_paused = true)]
async fn latency_applies_to_every_call() {
    let cloud = FakeCloud::new();
    cloud.set_latency(Duration::from_millis(100));
    let t = tenant(&cloud, TENANT_ACCOUNT);
    let start = Instant::now();
    t.cfn.describe_stack("app").await.unwrap();
    // AssumeRole, then DescribeStacks.
    assert_eq!(start.elapsed(), Duration::from_millis(200));
    let start = Instant::now();
    t.cfn.describe_stack("app").await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_millis(100));
}
