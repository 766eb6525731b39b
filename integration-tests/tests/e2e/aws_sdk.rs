//! The coordinator's SDK implementation of the AWS seam
//! (`coordinator::aws::sdk`) against moto: operator and tenant identities,
//! and a storage stack's whole life (create, update through a change set, a
//! no-change change set, events, delete) in a fresh tenant account.
//!
//! moto differs from AWS in ways these tests rely on or work around (see
//! `shared/moto-notes.md`); each is noted where it matters.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use coordinator::aws::sdk::SdkConnector;
use coordinator::aws::{
    ChangeSetStatus, Connector, CreateChangeSet, CreateStack, ErrorKind, RoleRequest, SessionName,
    StackCapability, StackStatus, TenantCredentials,
};
use integration_tests::{MOTO_DEFAULT_ACCOUNT_ID, random_account_id, random_external_id};
use stacks::builtin::storage::{
    KeyChoice, RetentionDays, Storage, StorageParameters, StorageShape,
};
use stacks::ids::{AccountId, Region, RoleArn};
use stacks::{Release, RenderedStack, Stack as _};

use crate::base_config;

const ROLE_NAME: &str = "docproc-coordinator-deploy";
const SESSION_NAME: &str = "docproc-coordinator";
const SOURCE_IDENTITY: &str = "operator-e2e";
const REGION: Region = Region::UsEast1;

/// A connector pointed at moto, with moto's default-account credentials as
/// the operator's.
async fn connector() -> SdkConnector {
    SdkConnector::from_config(base_config().await)
}

/// Credentials for the deploy role in `account`, assumed by the operator.
fn tenant_credentials(connector: &SdkConnector, account: &AccountId) -> Arc<TenantCredentials> {
    Arc::new(TenantCredentials::new(
        connector.operator_sts(),
        RoleRequest {
            role_arn: RoleArn::for_role(account, ROLE_NAME).expect("role ARN"),
            external_id: Some(random_external_id().parse().expect("ExternalId")),
            session_name: SessionName::sanitize(SESSION_NAME),
            source_identity: Some(SessionName::sanitize(SOURCE_IDENTITY)),
            duration: Duration::from_secs(3600),
        },
    ))
}

fn fresh_account() -> AccountId {
    random_account_id().parse().expect("12 digits")
}

fn render_storage(key: KeyChoice, retention_days: u16) -> RenderedStack {
    Release::builtin()
        .render::<Storage>(
            &StorageShape { key },
            &StorageParameters {
                tenant_id: "acme".parse().expect("tenant id"),
                retention_days: RetentionDays::new(retention_days).expect("retention"),
            },
        )
        .expect("storage stack renders")
}

/// A made-up ARN of a customer's KMS key (moto does not check it exists).
fn customer_key(account: &AccountId, n: u8) -> String {
    format!("arn:aws:kms:{REGION}:{account}:key/0c7d1d5e-0000-4000-8000-{n:012}")
}

fn existing(key_arn: &str) -> KeyChoice {
    KeyChoice::Existing {
        key_arn: key_arn.parse().expect("key ARN"),
    }
}

fn stack_tags() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("docproc:tenant".to_owned(), "acme".to_owned()),
        (
            "docproc:release".to_owned(),
            Release::builtin().version().to_string(),
        ),
    ])
}

fn change_set(stack: &RenderedStack, name: &str) -> CreateChangeSet {
    CreateChangeSet {
        stack_name: stack.kind.stack_name().to_owned(),
        change_set_name: name.to_owned(),
        template_body: stack.template.canonical_json().to_owned(),
        parameters: stack.parameters.clone(),
        tags: stack_tags(),
        role_arn: None,
        capabilities: vec![StackCapability::Iam],
        client_token: format!("{name}-token"),
    }
}

#[tokio::test]
async fn operator_and_tenant_identities() {
    let connector = connector().await;
    let operator = connector
        .operator_sts()
        .caller_identity()
        .await
        .expect("operator GetCallerIdentity");
    assert_eq!(operator.account.as_str(), MOTO_DEFAULT_ACCOUNT_ID);

    let account = fresh_account();
    let credentials = tenant_credentials(&connector, &account);
    let tenant = connector
        .tenant_sts(Arc::clone(&credentials), REGION)
        .caller_identity()
        .await
        .expect("tenant GetCallerIdentity");
    assert_eq!(tenant.account, account);
    assert_eq!(
        tenant.arn,
        format!("arn:aws:sts::{account}:assumed-role/{ROLE_NAME}/{SESSION_NAME}")
    );

    // moto sets Expiration to now + DurationSeconds (and, unlike AWS, would
    // accept any duration and ignore the role's MaxSessionDuration).
    let session = credentials.session().await.expect("cached session");
    let left = session.expiration - Utc::now();
    assert!(
        left > chrono::Duration::minutes(55) && left <= chrono::Duration::minutes(61),
        "{left}"
    );
    assert!(session.access_key_id.starts_with("ASIA"), "{session:?}");
    // Debug never shows the secret parts.
    let debug = format!("{session:?}");
    assert!(debug.contains("<redacted>"), "{debug}");
}

#[tokio::test]
async fn storage_stack_lifecycle_in_a_tenant_account() {
    let connector = connector().await;
    let account = fresh_account();
    let cfn = connector.tenant_cloudformation(tenant_credentials(&connector, &account), REGION);
    let name = stacks::StackKind::Storage.stack_name();

    // Missing stack: AWS and moto answer ValidationError "Stack with id X
    // does not exist", which the SDK implementation turns into None.
    assert_eq!(cfn.describe_stack(name).await.expect("describe"), None);

    // Create, with the customer's own key (the stack's own key is covered by
    // `the_storage_stack_creates_its_own_key`).
    // moto is synchronous: the stack is CREATE_COMPLETE as soon as
    // CreateStack returns (AWS: CREATE_IN_PROGRESS, poll until settled).
    let key_a = customer_key(&account, 1);
    let created = render_storage(existing(&key_a), 30);
    let stack_id = cfn
        .create_stack(&CreateStack {
            name: name.to_owned(),
            template_body: created.template.canonical_json().to_owned(),
            parameters: created.parameters.clone(),
            tags: stack_tags(),
            role_arn: None,
            capabilities: vec![StackCapability::Iam],
            client_request_token: "create-storage-1".to_owned(),
        })
        .await
        .expect("CreateStack");
    assert!(
        stack_id.starts_with(&format!(
            "arn:aws:cloudformation:{REGION}:{account}:stack/{name}/"
        )),
        "{stack_id}"
    );

    let described = cfn
        .describe_stack(name)
        .await
        .expect("describe")
        .expect("stack exists");
    assert_eq!(described.status, StackStatus::CreateComplete);
    assert_eq!(described.stack_id, stack_id);
    assert_eq!(described.name, name);
    assert_eq!(described.tags, stack_tags());
    assert_eq!(
        described
            .parameters
            .get("RetentionDays")
            .map(String::as_str),
        Some("30")
    );
    assert_eq!(
        described.parameters.get("TenantId").map(String::as_str),
        Some("acme")
    );
    let outputs = Storage::parse_outputs(
        described
            .outputs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str())),
    )
    .expect("storage outputs parse");
    assert_eq!(outputs.kms_key_arn.as_str(), key_a);
    assert!(
        outputs
            .bucket_arn
            .as_str()
            .ends_with(outputs.bucket_name.as_str()),
        "{outputs:?}"
    );

    // The stack is in the tenant's account, not the operator's (moto's
    // default account 123456789012).
    let operator_cfn = connector.operator_cloudformation(REGION);
    assert_eq!(
        operator_cfn
            .describe_stack(name)
            .await
            .expect("operator describe"),
        None
    );

    // Update through a change set: another key and a longer retention.
    // moto reports added and removed resources, and Modify only when a
    // resource's properties literally change in the template (a parameter
    // change alone is not reported, unlike AWS); here the bucket's
    // KMSMasterKeyID changes.
    let key_b = customer_key(&account, 2);
    let updated = render_storage(existing(&key_b), 90);
    cfn.create_change_set(&change_set(&updated, "update-1"))
        .await
        .expect("CreateChangeSet");
    let description = cfn
        .describe_change_set(name, "update-1")
        .await
        .expect("DescribeChangeSet");
    // moto: CREATE_COMPLETE / AVAILABLE at once (AWS: CREATE_PENDING,
    // CREATE_IN_PROGRESS first).
    assert_eq!(
        description.status,
        ChangeSetStatus::CreateComplete,
        "{description:?}"
    );
    assert_eq!(description.execution_status.as_deref(), Some("AVAILABLE"));
    assert!(!description.is_empty_change());
    // moto leaves Replacement out (AWS: "False" for a bucket's encryption).
    assert_eq!(
        description
            .changes
            .iter()
            .map(|c| (
                c.action.as_str(),
                c.logical_id.as_str(),
                c.resource_type.as_str()
            ))
            .collect::<Vec<_>>(),
        [("Modify", "DocumentsBucket", "AWS::S3::Bucket")],
        "{description:?}"
    );

    // moto's first ExecuteChangeSet attempt fails with HTTP 500: its S3
    // bucket update applies BucketEncryption, then reads the template's
    // BucketName (which the storage template leaves to CloudFormation) to
    // re-tag the bucket, KeyError 'BucketName'. It has already stored the
    // new template, so the SDK's retry finds nothing left to modify and
    // succeeds. (AWS treats a retry with the same ClientRequestToken as the
    // same request.) The stack keeps an orphan UPDATE_IN_PROGRESS event.
    cfn.execute_change_set(name, "update-1", "execute-update-1")
        .await
        .expect("ExecuteChangeSet");
    let described = cfn
        .describe_stack(name)
        .await
        .expect("describe")
        .expect("stack exists");
    assert_eq!(described.status, StackStatus::UpdateComplete);
    assert_eq!(
        described
            .parameters
            .get("RetentionDays")
            .map(String::as_str),
        Some("90")
    );
    // moto keeps the outputs computed at creation through a change-set
    // update, even a literal one like this KmsKeyArn: it still says key A
    // (AWS: key B).
    let outputs = Storage::parse_outputs(
        described
            .outputs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str())),
    )
    .expect("storage outputs parse after the update");
    let kms_key = outputs.kms_key_arn.as_str();
    assert!(kms_key == key_b || kms_key == key_a, "{outputs:?}");

    // The same template and parameters again: no change. Three ways to
    // say so:
    // - AWS creates a FAILED change set whose reason says it "didn't contain
    //   changes" (`is_empty_change`);
    // - moto refuses CreateChangeSet with ValidationError "No updates are to
    //   be performed." (NoUpdates), but only if the template is byte-identical
    //   and every parameter compares equal;
    // - here moto never finds them equal: it stores the Number parameter
    //   RetentionDays as the integer 90 and compares it with the string "90",
    //   so it creates an AVAILABLE change set with no changes at all (which
    //   would execute as an UPDATE_COMPLETE that changes nothing).
    let unchanged = change_set(&updated, "update-2");
    match cfn.create_change_set(&unchanged).await {
        Err(e) => assert_eq!(e.kind, ErrorKind::NoUpdates, "{e}"),
        Ok(_) => {
            let description = cfn
                .describe_change_set(name, "update-2")
                .await
                .expect("DescribeChangeSet");
            let moto_number_quirk = description.status == ChangeSetStatus::CreateComplete
                && description.changes.is_empty();
            assert!(
                description.is_empty_change() || moto_number_quirk,
                "{description:?}"
            );
            cfn.delete_change_set(name, "update-2")
                .await
                .expect("DeleteChangeSet");
            // moto answers an unknown change set with ValidationError "...
            // does not exist" (AWS: ChangeSetNotFound); both are NotFound.
            let e = cfn
                .describe_change_set(name, "update-2")
                .await
                .expect_err("deleted change set");
            assert_eq!(e.kind, ErrorKind::NotFound, "{e}");
        }
    }

    // Events, newest first. moto only records stack-level events (no
    // per-resource ones): CREATE_IN_PROGRESS, CREATE_COMPLETE, then
    // UPDATE_IN_PROGRESS twice (the failed attempt's and the retry's) and
    // UPDATE_COMPLETE.
    let events = cfn.stack_events(name).await.expect("DescribeStackEvents");
    assert!(!events.is_empty());
    assert!(
        events.windows(2).all(|w| w[0].timestamp >= w[1].timestamp),
        "{events:#?}"
    );
    assert_eq!(events[0].status, "UPDATE_COMPLETE", "{events:#?}");
    assert_eq!(
        events.last().map(|e| e.status.as_str()),
        Some("CREATE_IN_PROGRESS")
    );
    assert!(events.iter().all(|e| !e.event_id.is_empty()));

    // ContinueUpdateRollback is not implemented in moto: a bare HTTP 500
    // (NotImplementedError), retried by the SDK, then reported as transient.
    // On AWS a stack that is not in UPDATE_ROLLBACK_FAILED gets a
    // ValidationError.
    let e = cfn
        .continue_update_rollback(name, &[], None, "continue-1")
        .await
        .expect_err("ContinueUpdateRollback");
    assert!(
        matches!(e.kind, ErrorKind::Transient | ErrorKind::Validation),
        "{e:?}"
    );

    // Delete: immediate in moto; the name then no longer resolves.
    cfn.delete_stack(name, None, "delete-storage-1")
        .await
        .expect("DeleteStack");
    assert_eq!(cfn.describe_stack(name).await.expect("describe"), None);
    // By id, a deleted stack is still visible as DELETE_COMPLETE.
    let by_id = cfn
        .describe_stack(&stack_id)
        .await
        .expect("describe by id")
        .expect("deleted stack by id");
    assert_eq!(by_id.status, StackStatus::DeleteComplete);
}

/// The storage stack creates its own KMS key on moto. (moto 5.2.5 returns
/// HTTP 500 for an `AWS::KMS::Key` with CloudFormation `Tags`, which is why
/// the template tags the key only through stack tags.)
#[tokio::test]
async fn the_storage_stack_creates_its_own_key() {
    let connector = connector().await;
    let account = fresh_account();
    let cfn = connector.tenant_cloudformation(tenant_credentials(&connector, &account), REGION);
    let stack = render_storage(KeyChoice::Create, 30);
    let name = stack.kind.stack_name();
    cfn.create_stack(&CreateStack {
        name: name.to_owned(),
        template_body: stack.template.canonical_json().to_owned(),
        parameters: stack.parameters.clone(),
        tags: stack_tags(),
        role_arn: None,
        capabilities: vec![StackCapability::Iam],
        client_request_token: "create-storage-own-key".to_owned(),
    })
    .await
    .expect("CreateStack with the stack's own key");
    let described = cfn
        .describe_stack(name)
        .await
        .expect("describe")
        .expect("stack exists");
    assert_eq!(described.status, StackStatus::CreateComplete);
    let outputs = Storage::parse_outputs(
        described
            .outputs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str())),
    )
    .expect("storage outputs parse");
    assert_eq!(
        outputs.kms_key_arn.account(),
        Some(account.as_str()),
        "{outputs:?}"
    );
    assert_eq!(outputs.kms_key_arn.service(), "kms");
}
