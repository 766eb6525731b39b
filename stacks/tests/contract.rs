//! The typed contract of each stack: parameters, outputs, template sources.

mod support;

use stacks::Stack;
use stacks::aws_names::{Arn, BucketName, QueueUrl, SecretName};
use stacks::builtin::bootstrap::Bootstrap;
use stacks::builtin::storage::Storage;
use stacks::builtin::worker::Worker;
use stacks::ids::{AccountId, ExternalId, ReleaseVersion, RoleArn, TenantId, WaveName};

#[test]
fn parameters_are_flat_strings_for_cloudformation() {
    let all = support::all_examples();
    let (_, storage) = all.iter().find(|(l, _)| l == "storage").unwrap();
    let pairs: Vec<(&str, &str)> = storage
        .parameters
        .iter()
        .map(|p| (p.parameter_key.as_str(), p.parameter_value.as_str()))
        .collect();
    assert_eq!(pairs, [("RetentionDays", "30"), ("TenantId", "acme")]);
    let (_, worker) = all.iter().find(|(l, _)| l == "worker").unwrap();
    assert_eq!(worker.parameters.len(), 6);
    let json = serde_json::to_value(&worker.parameters).unwrap();
    assert!(json[0].get("ParameterKey").is_some() && json[0].get("ParameterValue").is_some());
}

#[test]
fn outputs_parse_into_types() {
    let q = |name: &str| format!("https://sqs.eu-west-1.amazonaws.com/222222222222/{name}");
    let worker = [
        ("JobQueueUrl", q("docproc-worker-jobs")),
        ("DeadLetterQueueUrl", q("docproc-worker-jobs-dlq")),
        (
            "HeartbeatRequestQueueUrl",
            q("docproc-worker-heartbeat-requests"),
        ),
        (
            "HeartbeatReplyQueueUrl",
            q("docproc-worker-heartbeat-replies"),
        ),
        (
            "WorkerRoleArn",
            "arn:aws:iam::222222222222:role/docproc-worker-WorkerRole-ABC".into(),
        ),
        ("SomethingNewer", "ignored".into()),
    ];
    let out = Worker::parse_outputs(worker.iter().map(|(k, v)| (*k, v.as_str()))).unwrap();
    assert_eq!(out.job_queue_url.queue_name(), "docproc-worker-jobs");
    assert_eq!(out.llm_key_secret_name, None);

    let storage = [
        ("BucketName", "docproc-storage-documentsbucket-1x2y"),
        (
            "BucketArn",
            "arn:aws:s3:::docproc-storage-documentsbucket-1x2y",
        ),
        ("KmsKeyArn", "arn:aws:kms:eu-west-1:222222222222:key/abc"),
    ];
    let out = Storage::parse_outputs(storage).unwrap();
    assert_eq!(
        out.bucket_name.as_str(),
        "docproc-storage-documentsbucket-1x2y"
    );

    let bootstrap = [
        (
            "DeployRoleArn",
            "arn:aws:iam::222222222222:role/docproc-coordinator-deploy",
        ),
        (
            "ExecutionRoleArn",
            "arn:aws:iam::222222222222:role/docproc-cloudformation-execution",
        ),
        (
            "WorkloadBoundaryArn",
            "arn:aws:iam::222222222222:policy/docproc-workload-boundary",
        ),
    ];
    let out = Bootstrap::parse_outputs(bootstrap).unwrap();
    assert_eq!(out.deploy_role_arn.account_id().as_str(), "222222222222");
}

#[test]
fn bad_outputs_name_each_key() {
    let err = Storage::parse_outputs([
        ("BucketName", "Not A Bucket"),
        ("KmsKeyArn", "arn:aws:kms:eu-west-1:222222222222:key/a"),
    ])
    .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("output BucketName is malformed"), "{text}");
    assert!(text.contains("output BucketArn is missing"), "{text}");
    assert!(!text.contains("KmsKeyArn"), "{text}");
    assert_eq!(err.stack, "storage");
}

/// Values may only enter a template through `{{json ...}}`; block helpers
/// are the only other mustaches allowed.
#[test]
fn template_sources_insert_values_only_through_the_json_helper() {
    let allowed_prefixes = [
        "{{json ",
        "{{#if ",
        "{{/if}}",
        "{{else}}",
        "{{#each ",
        "{{/each}}",
        "{{#unless ",
        "{{/unless}}",
    ];
    for (name, text) in stacks::Release::builtin_sources() {
        let mut rest = *text;
        let mut count = 0;
        while let Some(i) = rest.find("{{") {
            let tail = &rest[i..];
            assert!(
                allowed_prefixes.iter().any(|p| tail.starts_with(p)),
                "{name}: mustache not allowed here: {}",
                &tail[..tail.len().min(40)]
            );
            count += 1;
            rest = &tail[2..];
        }
        assert!(
            count > 0 || *name == "none",
            "{name} has no mustaches at all"
        );
    }
}

/// Each identifier's JSON Schema pattern accepts exactly what its
/// constructor accepts, on valid and invalid samples.
#[test]
fn schema_patterns_agree_with_constructors() {
    fn check<T: schemars::JsonSchema + std::str::FromStr>(samples: &[&str]) {
        let schema = serde_json::to_value(schemars::schema_for!(T)).unwrap();
        let validator = jsonschema::validator_for(&schema).unwrap();
        for s in samples {
            let by_schema = validator.is_valid(&serde_json::Value::String((*s).to_owned()));
            let by_type = s.parse::<T>().is_ok();
            assert_eq!(
                by_schema,
                by_type,
                "{} disagrees on {s:?}",
                std::any::type_name::<T>()
            );
        }
    }
    check::<AccountId>(&["222222222222", "2222", "22222222222x", ""]);
    check::<TenantId>(&["acme", "acme-2", "Acme", "2acme", "a_b", ""]);
    check::<WaveName>(&["canary", "wave_2", "Wave", "-x"]);
    check::<ExternalId>(&[
        &"a".repeat(32),
        &"a".repeat(31),
        &format!("{}!", "a".repeat(32)),
        &format!("{}+=,.@:/_-", "a".repeat(32)),
    ]);
    check::<ReleaseVersion>(&["2026.11.0", "2026.1.12", "2026.11", "v2026.11.0"]);
    check::<RoleArn>(&[
        "arn:aws:iam::222222222222:role/x",
        "arn:aws:iam::222222222222:role/a/b",
        "arn:aws:iam::2222:role/x",
        "arn:aws:iam::222222222222:user/x",
    ]);
    check::<Arn>(&[
        "arn:aws:kms:eu-west-1:222222222222:key/x",
        "arn:aws:s3:::b",
        "arn:aws:kms",
        "arn:aws:kms:eu-west-1:12:key/x",
    ]);
    check::<QueueUrl>(&[
        "https://sqs.eu-west-1.amazonaws.com/222222222222/q",
        "http://127.0.0.1:5000/222222222222/q.fifo",
        "https://h/1/q",
        "https://h/222222222222/",
    ]);
    check::<BucketName>(&["abc", "docproc-x.y", "ab", "-abc", "Abc"]);
    check::<SecretName>(&["docproc-worker/llm-api-key", "has space", ""]);
}
