//! Deploying a fleet on moto, end to end: the library's [`Fleet`] (observe,
//! plan, record, apply) for three tenants in three fresh accounts, then the
//! real `coordinator` binary.
//!
//! Everything the coordinator claims is checked with independent clients:
//! plain AWS SDK clients (not the coordinator's) that assume a role of their
//! own into each tenant's account and look at the stacks and queues there.
//!
//! moto is synchronous (a stack is `CREATE_COMPLETE` when `CreateStack`
//! returns) and never rolls back; the one failure here is the deterministic
//! one moto does have: adding a queue whose name already exists with other
//! attributes fails the update with `QueueAlreadyExists` (see
//! `shared/moto-notes.md`, section 2, "Update failure").

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_cloudformation::types::StackStatus as CfnStatus;
use aws_sdk_sqs::types::QueueAttributeName;
use coordinator::access;
use coordinator::apply::Outcome;
use coordinator::aws::StackStatus;
use coordinator::aws::sdk::SdkConnector;
use coordinator::deploy::{DeployReport, Fleet, Planned};
use coordinator::manifest::{self, Manifest};
use coordinator::observe::TAG_RELEASE;
use coordinator::plan::{Action, PlanDraft, PlanOptions};
use coordinator::store::Store as _;
use coordinator::store::sqlite::SqliteStore;
use coordinator::wait::WaitPolicy;
use integration_tests::{assume_role, random_account_id, random_external_id};
use serde_json::Value;
use stacks::builtin::storage::Storage;
use stacks::builtin::worker::Worker;
use stacks::{Release, Stack as _, StackKind};

use crate::{base_config, moto};

/// The role the independent checks assume in every account: not the
/// coordinator's, so nothing here goes through the coordinator's clients.
const VERIFIER_ROLE: &str = "e2e-independent-verifier";

/// moto answers at once, so polls succeed on the first try; the short
/// deadline turns a wedged emulator into a failed test, not a hung one.
const FAST_STACK_WAIT: WaitPolicy = WaitPolicy {
    min_delay: Duration::from_millis(50),
    max_delay: Duration::from_millis(500),
    deadline: Duration::from_secs(120),
};

const FAST_CHANGE_SET_WAIT: WaitPolicy = WaitPolicy {
    min_delay: Duration::from_millis(50),
    max_delay: Duration::from_millis(500),
    deadline: Duration::from_secs(60),
};

/// The queue the test release adds to the worker stack
/// (`${AWS::StackName}-extra`).
const EXTRA_QUEUE: &str = "docproc-worker-extra";

/// One tenant of a test fleet.
#[derive(Debug, Clone)]
struct TenantSpec {
    id: &'static str,
    account: String,
    external_id: String,
    region: &'static str,
    byo_ai_keys: bool,
}

/// A manifest in a temporary directory (with its state file next to it),
/// for fresh random accounts.
#[derive(Debug)]
struct FleetFixture {
    dir: tempfile::TempDir,
    vendor_account: String,
    tenants: Vec<TenantSpec>,
}

/// `n` distinct random account ids.
fn distinct_accounts(n: usize) -> Vec<String> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    while out.len() < n {
        let id = random_account_id();
        if seen.insert(id.clone()) {
            out.push(id);
        }
    }
    out
}

impl FleetFixture {
    /// Three dedicated tenants in three regions, `bravo` with its own LLM
    /// keys, and a vendor account; all four accounts fresh and distinct.
    fn three_tenants() -> Self {
        let accounts = distinct_accounts(4);
        let tenant = |i: usize, id, region, byo_ai_keys| TenantSpec {
            id,
            account: accounts[i].clone(),
            external_id: random_external_id(),
            region,
            byo_ai_keys,
        };
        let tenants = vec![
            tenant(1, "alpha", "us-east-1", false),
            tenant(2, "bravo", "eu-west-1", true),
            tenant(3, "charlie", "us-west-2", false),
        ];
        let fixture = Self {
            dir: tempfile::tempdir().expect("temporary directory"),
            vendor_account: accounts[0].clone(),
            tenants,
        };
        std::fs::write(fixture.manifest_path(), fixture.manifest_text()).expect("write manifest");
        fixture
    }

    fn manifest_path(&self) -> PathBuf {
        self.dir.path().join("deploy.toml")
    }

    fn manifest_text(&self) -> String {
        let mut text = format!(
            "[coordinator]\naccount_id = \"{}\"\nregion = \"us-east-1\"\nstate = \"coordinator.db\"\n\n\
             [release]\nversion = \"{}\"\n\n[rollout]\nwaves = [\"general\"]\n",
            self.vendor_account,
            stacks::RELEASE_VERSION
        );
        for t in &self.tenants {
            let capabilities = if t.byo_ai_keys {
                r#"["dedicated_aws", "byo_ai_keys"]"#
            } else {
                r#"["dedicated_aws"]"#
            };
            text.push_str(&format!(
                "\n[[tenants]]\nid = \"{}\"\naccount_id = \"{}\"\nregion = \"{}\"\nexternal_id = \"{}\"\n\
                 wave = \"general\"\ncapabilities = {capabilities}\n",
                t.id, t.account, t.region, t.external_id
            ));
        }
        text
    }

    fn manifest(&self) -> Manifest {
        manifest::from_text(&self.manifest_path(), self.manifest_text())
            .unwrap_or_else(|e| panic!("{e}:\n{}", e.report.render()))
            .manifest
    }

    fn tenant(&self, id: &str) -> &TenantSpec {
        self.tenants
            .iter()
            .find(|t| t.id == id)
            .expect("tenant of the fixture")
    }

    /// Every region the fleet uses, plus the vendor's home region.
    fn regions(&self) -> BTreeSet<&'static str> {
        self.tenants
            .iter()
            .map(|t| t.region)
            .chain(["us-east-1"])
            .collect()
    }
}

/// An SDK config that acts in `account` and `region`, through a role of the
/// tests' own (not the coordinator's clients).
async fn independent_config(account: &str, region: &'static str) -> SdkConfig {
    let base = base_config().await;
    assume_role(&base, account, VERIFIER_ROLE, &random_external_id())
        .await
        .expect("independent AssumeRole")
        .to_builder()
        .region(aws_config::Region::new(region))
        .build()
}

async fn independent_cfn(account: &str, region: &'static str) -> aws_sdk_cloudformation::Client {
    aws_sdk_cloudformation::Client::new(&independent_config(account, region).await)
}

async fn independent_sqs(account: &str, region: &'static str) -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::new(&independent_config(account, region).await)
}

/// `DescribeStacks` for one stack name; `None` when it does not exist.
async fn describe(
    client: &aws_sdk_cloudformation::Client,
    name: &str,
) -> Option<aws_sdk_cloudformation::types::Stack> {
    match client.describe_stacks().stack_name(name).send().await {
        Ok(out) => out.stacks().first().cloned(),
        Err(e) => {
            let e = e.into_service_error();
            let message = e.meta().message().unwrap_or_default().to_owned();
            assert!(
                message.contains("does not exist"),
                "DescribeStacks {name}: {e:?}"
            );
            None
        }
    }
}

/// Names of every stack in the client's account and region (that are not
/// deleted).
async fn stack_names(client: &aws_sdk_cloudformation::Client) -> Vec<String> {
    client
        .describe_stacks()
        .send()
        .await
        .expect("DescribeStacks (all)")
        .stacks()
        .iter()
        .filter(|s| s.stack_status() != Some(&CfnStatus::DeleteComplete))
        .filter_map(|s| s.stack_name().map(str::to_owned))
        .collect()
}

fn outputs_of(stack: &aws_sdk_cloudformation::types::Stack) -> BTreeMap<String, String> {
    stack
        .outputs()
        .iter()
        .filter_map(|o| Some((o.output_key()?.to_owned(), o.output_value()?.to_owned())))
        .collect()
}

fn tags_of(stack: &aws_sdk_cloudformation::types::Stack) -> BTreeMap<String, String> {
    stack
        .tags()
        .iter()
        .filter_map(|t| Some((t.key()?.to_owned(), t.value()?.to_owned())))
        .collect()
}

fn pairs(map: &BTreeMap<String, String>) -> impl Iterator<Item = (&str, &str)> {
    map.iter().map(|(k, v)| (k.as_str(), v.as_str()))
}

/// A coordinator working for the fixture's fleet: its operator acts in the
/// vendor account (credentials assumed there, as the real coordinator runs
/// under its own role) and its state is the manifest's SQLite file.
struct Coordinator {
    connector: SdkConnector,
    store: SqliteStore,
    manifest: Manifest,
    operator: access::Operator,
}

impl Coordinator {
    async fn new(fixture: &FleetFixture) -> Self {
        let base = base_config().await;
        let vendor = assume_role(
            &base,
            &fixture.vendor_account,
            "docproc-coordinator",
            &random_external_id(),
        )
        .await
        .expect("AssumeRole into the vendor account");
        let connector = SdkConnector::from_config(vendor);
        let manifest = fixture.manifest();
        let store = SqliteStore::open(&manifest.coordinator.state_path).expect("open the state");
        let operator = access::operator(&connector).await.expect("operator");
        assert_eq!(
            operator.identity.account.as_str(),
            fixture.vendor_account,
            "the operator acts in the vendor account"
        );
        Self {
            connector,
            store,
            manifest,
            operator,
        }
    }

    fn fleet<'a>(&'a self, release: &'a Release) -> Fleet<'a> {
        Fleet {
            connector: &self.connector,
            store: &self.store,
            manifest: &self.manifest,
            release,
            operator: &self.operator,
            concurrency: 8,
            stack_wait: FAST_STACK_WAIT,
            change_set_wait: FAST_CHANGE_SET_WAIT,
        }
    }

    async fn plan(&self, release: &Release) -> Planned {
        self.fleet(release)
            .observe_and_plan(None, PlanOptions::default())
            .await
            .expect("observe and plan")
    }

    /// Observe, plan, record and apply, as `coordinator deploy --yes` does.
    async fn deploy(&self, release: &Release) -> (PlanDraft, DeployReport) {
        let fleet = self.fleet(release);
        let planned = self.plan(release).await;
        let plan = fleet
            .record(planned.draft.clone())
            .await
            .expect("record the plan");
        let report = fleet.apply(&plan, &planned, &|_| {}).await;
        (planned.draft, report)
    }
}

/// The actions planned per tenant, as (tenant, stack, action name).
fn actions(draft: &PlanDraft) -> Vec<(String, StackKind, &'static str)> {
    draft
        .tenants
        .iter()
        .flat_map(|t| &t.items)
        .map(|i| (i.tenant.to_string(), i.stack, i.action.name()))
        .collect()
}

fn tenant_report<'r>(report: &'r DeployReport, id: &str) -> &'r coordinator::deploy::TenantReport {
    report
        .tenants
        .iter()
        .find(|t| t.tenant.as_str() == id)
        .unwrap_or_else(|| panic!("tenant {id} in the report: {report:#?}"))
}

fn item_outcome<'r>(
    report: &'r DeployReport,
    tenant: &str,
    stack: StackKind,
) -> Option<&'r Outcome> {
    tenant_report(report, tenant)
        .items
        .iter()
        .find(|i| i.stack == stack)
        .unwrap_or_else(|| panic!("{tenant} {stack} in the report: {report:#?}"))
        .outcome
        .as_ref()
}

/// The built-in release with one change: the worker stack gets a harmless
/// extra queue, `ExtraQueue` (`${AWS::StackName}-extra`), so every
/// deployed worker differs from it.
fn release_with_extra_queue() -> Release {
    const ANCHOR: &str = "\"WorkerRole\": {";
    const EXTRA: &str = r#""ExtraQueue": {
      "Type": "AWS::SQS::Queue",
      "DeletionPolicy": "Delete",
      "UpdateReplacePolicy": "Delete",
      "Properties": {
        "QueueName": {"Fn::Sub": "${AWS::StackName}-extra"},
        "SqsManagedSseEnabled": true
      }
    },
    "#;
    let sources: Vec<(&'static str, &'static str)> = Release::builtin_sources()
        .iter()
        .map(|&(name, text)| {
            if name != "worker.json" {
                return (name, text);
            }
            assert_eq!(
                text.matches(ANCHOR).count(),
                1,
                "the worker template has one WorkerRole resource"
            );
            let changed = text.replacen(ANCHOR, &format!("{EXTRA}{ANCHOR}"), 1);
            let changed: &'static str = Box::leak(changed.into_boxed_str());
            (name, changed)
        })
        .collect();
    Release::from_sources("2026.12.0".parse().expect("version"), &sources)
        .expect("the changed templates compile")
}

/// What a deployed stack should look like.
#[derive(Debug, Clone)]
struct Expected<'a> {
    status: CfnStatus,
    /// Accepted values of its `docproc:release` tag.
    releases: &'a [&'a str],
    /// A string its template must contain.
    template_contains: Option<&'a str>,
}

impl<'a> Expected<'a> {
    /// Created by the built-in release.
    const CREATED: Expected<'static> = Expected {
        status: CfnStatus::CreateComplete,
        releases: &[stacks::RELEASE_VERSION],
        template_contains: None,
    };

    /// Updated through a change set, tagged with one of `releases`, to a
    /// template that has `marker`. moto 5.2.5 does not apply a change set's
    /// tags when it executes it (AWS does): on moto the stack keeps the tags
    /// of its creation, so its release tag still names the release it was
    /// created with (and its template-hash tag is stale); the template shows
    /// the update either way.
    fn updated(releases: &'a [&'a str], marker: &'a str) -> Self {
        Expected {
            status: CfnStatus::UpdateComplete,
            releases,
            template_contains: Some(marker),
        }
    }
}

/// Checks, with independent clients, that `tenant`'s two stacks exist in
/// its account and region only, as `storage` and `worker` say, with outputs
/// that parse.
async fn assert_stacks_deployed(
    fixture: &FleetFixture,
    tenant: &TenantSpec,
    storage: Expected<'_>,
    worker: Expected<'_>,
) {
    let cfn = independent_cfn(&tenant.account, tenant.region).await;
    for (kind, expected) in [(StackKind::Storage, storage), (StackKind::Worker, worker)] {
        let name = kind.stack_name();
        let stack = describe(&cfn, name)
            .await
            .unwrap_or_else(|| panic!("{} has no {name} in {}", tenant.id, tenant.region));
        assert_eq!(
            stack.stack_status(),
            Some(&expected.status),
            "{} {name}",
            tenant.id
        );
        let stack_id = stack.stack_id().unwrap_or_default();
        assert!(
            stack_id.starts_with(&format!(
                "arn:aws:cloudformation:{}:{}:stack/{name}/",
                tenant.region, tenant.account
            )),
            "{} {name}: {stack_id}",
            tenant.id
        );
        let tags = tags_of(&stack);
        assert_eq!(
            tags.get("docproc:tenant").map(String::as_str),
            Some(tenant.id)
        );
        let release = tags.get(TAG_RELEASE).map(String::as_str).unwrap_or("");
        assert!(
            expected.releases.contains(&release),
            "{} {name}: release tag {release:?}, expected one of {:?}",
            tenant.id,
            expected.releases
        );
        if let Some(marker) = expected.template_contains {
            let template = cfn
                .get_template()
                .stack_name(name)
                .send()
                .await
                .expect("GetTemplate")
                .template_body()
                .unwrap_or_default()
                .to_owned();
            assert!(
                template.contains(marker),
                "{} {name}: the template has no {marker}",
                tenant.id
            );
        }
        let outputs = outputs_of(&stack);
        match kind {
            StackKind::Storage => {
                let storage = Storage::parse_outputs(pairs(&outputs))
                    .unwrap_or_else(|e| panic!("{} storage outputs: {e}", tenant.id));
                assert_eq!(
                    storage.kms_key_arn.account(),
                    Some(tenant.account.as_str()),
                    "{storage:?}"
                );
            }
            StackKind::Worker => {
                let worker = Worker::parse_outputs(pairs(&outputs))
                    .unwrap_or_else(|e| panic!("{} worker outputs: {e}", tenant.id));
                assert_eq!(
                    worker.llm_key_secret_name.is_some(),
                    tenant.byo_ai_keys,
                    "{} {worker:?}",
                    tenant.id
                );
                let job_queue = worker.job_queue_url.to_string();
                assert!(
                    job_queue.contains(&tenant.account)
                        && job_queue.ends_with("/docproc-worker-jobs"),
                    "{job_queue}"
                );
                assert!(
                    worker
                        .worker_role_arn
                        .as_str()
                        .starts_with(&format!("arn:aws:iam::{}:role/", tenant.account)),
                    "{worker:?}"
                );
            }
            StackKind::Bootstrap => unreachable!(),
        }
    }
    // Nowhere else: not in the fleet's other regions of the same account.
    for region in fixture.regions() {
        if region == tenant.region {
            continue;
        }
        let other = independent_cfn(&tenant.account, region).await;
        let names = stack_names(&other).await;
        assert!(
            names.iter().all(|n| !n.starts_with("docproc-")),
            "{} has stacks in {region}, not its region {}: {names:?}",
            tenant.id,
            tenant.region
        );
    }
}

/// Nothing of docproc's in the vendor's own account, in any region the
/// fleet uses.
async fn assert_vendor_account_untouched(fixture: &FleetFixture) {
    for region in fixture.regions() {
        let cfn = independent_cfn(&fixture.vendor_account, region).await;
        let names = stack_names(&cfn).await;
        assert!(
            names.iter().all(|n| !n.starts_with("docproc-")),
            "stacks in the vendor account {} ({region}): {names:?}",
            fixture.vendor_account
        );
    }
}

#[tokio::test]
async fn fleet_deploys_three_tenants_then_a_release_that_fails_in_one() {
    let fixture = FleetFixture::three_tenants();
    let coordinator = Coordinator::new(&fixture).await;
    let builtin = Release::builtin();

    // 1. First deploy: both stacks created in every tenant's account.
    let (draft, report) = coordinator.deploy(builtin).await;
    let expected: Vec<_> = fixture
        .tenants
        .iter()
        .flat_map(|t| {
            [
                (t.id.to_owned(), StackKind::Storage, "create"),
                (t.id.to_owned(), StackKind::Worker, "create"),
            ]
        })
        .collect();
    assert_eq!(actions(&draft), expected);
    assert!(report.failed().is_empty(), "{report:#?}");
    for t in &fixture.tenants {
        for kind in [StackKind::Storage, StackKind::Worker] {
            match item_outcome(&report, t.id, kind) {
                Some(Outcome::Succeeded { status, .. }) => {
                    assert_eq!(*status, StackStatus::CreateComplete, "{} {kind}", t.id);
                }
                other => panic!("{} {kind}: {other:?}", t.id),
            }
        }
    }
    for t in &fixture.tenants {
        assert_stacks_deployed(&fixture, t, Expected::CREATED, Expected::CREATED).await;
    }

    // 2. Planning again changes nothing.
    let again = coordinator.plan(builtin).await;
    let unchanged: Vec<_> = actions(&again.draft)
        .into_iter()
        .filter(|(_, _, action)| *action != "no_change")
        .collect();
    assert!(unchanged.is_empty(), "{:#?}", again.draft);
    assert_eq!(actions(&again.draft).len(), 6);

    // 3. A release whose worker has an extra queue, where `charlie` already
    //    has a queue of that name with other attributes: its update fails,
    //    the others go through. moto compares only the attributes the
    //    template sets (SqsManagedSseEnabled here) with the existing queue's
    //    and silently adopts the queue when they match, so the clash must be
    //    in one of those; VisibilityTimeout 77 marks the queue as ours.
    let release = release_with_extra_queue();
    let charlie = fixture.tenant("charlie");
    let sqs = independent_sqs(&charlie.account, charlie.region).await;
    sqs.create_queue()
        .queue_name(EXTRA_QUEUE)
        .attributes(QueueAttributeName::VisibilityTimeout, "77")
        .attributes(QueueAttributeName::SqsManagedSseEnabled, "false")
        .send()
        .await
        .expect("pre-create the clashing queue");

    let (draft, report) = coordinator.deploy(&release).await;
    for tp in &draft.tenants {
        let actions: Vec<_> = tp.items.iter().map(|i| (i.stack, &i.action)).collect();
        assert_eq!(actions.len(), 2, "{tp:#?}");
        assert_eq!(
            actions[0],
            (StackKind::Storage, &Action::NoChange),
            "{tp:#?}"
        );
        let (stack, Action::Update { changes }) = actions[1] else {
            panic!("{}: worker not planned as an update: {tp:#?}", tp.tenant);
        };
        assert_eq!(stack, StackKind::Worker);
        assert!(
            changes.iter().any(|c| c.action == "Add"
                && c.logical_id == "ExtraQueue"
                && c.resource_type == "AWS::SQS::Queue"),
            "{changes:#?}"
        );
    }
    let failed: Vec<&str> = report.failed().iter().map(|t| t.tenant.as_str()).collect();
    assert_eq!(failed, ["charlie"], "{report:#?}");
    for id in ["alpha", "bravo"] {
        match item_outcome(&report, id, StackKind::Worker) {
            Some(Outcome::Succeeded { status, .. }) => {
                assert_eq!(*status, StackStatus::UpdateComplete, "{id}");
            }
            other => panic!("{id} worker: {other:?}"),
        }
    }
    let reason = match item_outcome(&report, "charlie", StackKind::Worker) {
        Some(o @ Outcome::Failed { .. }) => o.reason().unwrap_or_default(),
        other => panic!("charlie worker: {other:?}"),
    };
    assert!(
        reason.contains("QueueAlreadyExists") || reason.contains(EXTRA_QUEUE),
        "charlie's reason should name the clashing queue: {reason}"
    );
    // The failure is recorded in the state for `status` to show.
    let states = coordinator
        .store
        .stack_states()
        .await
        .expect("stack states");
    let charlie_worker = states
        .iter()
        .find(|s| s.tenant.as_str() == "charlie" && s.stack == StackKind::Worker)
        .expect("charlie's worker state");
    assert_eq!(charlie_worker.last_outcome.as_deref(), Some("failed"));
    assert_eq!(charlie_worker.last_reason.as_deref(), Some(reason.as_str()));

    // The two that succeeded are on the new release, with the new queue in
    // their own account; charlie's clashing queue is as it was made.
    for id in ["alpha", "bravo"] {
        let t = fixture.tenant(id);
        assert_stacks_deployed(
            &fixture,
            t,
            Expected::CREATED,
            Expected::updated(&["2026.12.0", stacks::RELEASE_VERSION], "\"ExtraQueue\""),
        )
        .await;
        independent_sqs(&t.account, t.region)
            .await
            .get_queue_url()
            .queue_name(EXTRA_QUEUE)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{id} has no {EXTRA_QUEUE}: {e:?}"));
    }
    let url = sqs
        .get_queue_url()
        .queue_name(EXTRA_QUEUE)
        .send()
        .await
        .expect("charlie's queue")
        .queue_url()
        .expect("url")
        .to_owned();
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::VisibilityTimeout)
        .send()
        .await
        .expect("GetQueueAttributes");
    assert_eq!(
        attributes
            .attributes()
            .and_then(|a| a.get(&QueueAttributeName::VisibilityTimeout))
            .map(String::as_str),
        Some("77")
    );

    // 4. Planning the new release again: nothing left to do for the two
    //    that took it; charlie's worker is still to update.
    //    (On moto the updated workers' template-hash tags are stale, see
    //    `Expected::updated`, so they are previewed again, and the preview
    //    finds no changes.)
    let again = coordinator.plan(&release).await;
    let changes: Vec<_> = actions(&again.draft)
        .into_iter()
        .filter(|(_, _, action)| *action != "no_change")
        .collect();
    assert_eq!(
        changes,
        [("charlie".to_owned(), StackKind::Worker, "update")],
        "{:#?}",
        again.draft
    );

    // 5. The coordinator never deployed anything into the vendor's account.
    assert_vendor_account_untouched(&fixture).await;
}

/// The `coordinator` binary next to this test binary (`target/<profile>/`).
/// Cargo builds a workspace member's binaries for its own tests only, not for
/// another crate's: `./dev test` (`cargo test --workspace --all-targets`)
/// builds it; with `cargo test -p integration-tests` alone, build it first.
/// Fails when it is missing or older than the sources that go into it, so a
/// stale binary is never tested.
fn coordinator_binary() -> PathBuf {
    integration_tests::workspace_binary(
        "coordinator",
        &[
            "coordinator/src",
            "stacks/src",
            "stacks/templates",
            "protocol/src",
        ],
    )
}

/// Runs the coordinator binary against moto with dummy credentials, as a
/// user would with `AWS_ENDPOINT_URL` set. Nothing of the host's AWS
/// configuration leaks in.
async fn run_coordinator(fixture: &FleetFixture, args: &[&str]) -> Output {
    let no_file = fixture.dir.path().join("no-such-aws-file");
    tokio::process::Command::new(coordinator_binary())
        .arg("--manifest")
        .arg(fixture.manifest_path())
        .args(args)
        .current_dir(fixture.dir.path())
        .stdin(Stdio::null())
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_DEFAULT_REGION")
        .env_remove("RUST_LOG")
        .env("AWS_ENDPOINT_URL", moto().endpoint())
        .env("AWS_ACCESS_KEY_ID", integration_tests::TEST_ACCESS_KEY_ID)
        .env(
            "AWS_SECRET_ACCESS_KEY",
            integration_tests::TEST_SECRET_ACCESS_KEY,
        )
        .env("AWS_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", &no_file)
        .env("AWS_SHARED_CREDENTIALS_FILE", &no_file)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .kill_on_drop(true)
        .output()
        .await
        .expect("run the coordinator binary")
}

fn describe_output(output: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn json_stdout(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON document ({e}):\n{}",
            describe_output(output)
        )
    })
}

#[tokio::test]
async fn the_coordinator_binary_deploys_and_reports_status() {
    let fixture = FleetFixture::three_tenants();
    // Fail early, before moto work, when the binary is missing.
    coordinator_binary();
    let _ = moto();

    // An unknown tenant is bad input: exit 2, nothing done.
    let unknown =
        run_coordinator(&fixture, &["deploy", "--tenant", "does-not-exist", "--yes"]).await;
    assert_eq!(
        unknown.status.code(),
        Some(2),
        "{}",
        describe_output(&unknown)
    );

    let deployed = run_coordinator(&fixture, &["deploy", "--yes", "--output", "json"]).await;
    assert_eq!(
        deployed.status.code(),
        Some(0),
        "{}",
        describe_output(&deployed)
    );
    let json = json_stdout(&deployed);
    let tenants = json["report"]["tenants"]
        .as_array()
        .unwrap_or_else(|| panic!("report.tenants: {json:#}"));
    let ids: Vec<&str> = tenants
        .iter()
        .filter_map(|t| t["tenant"].as_str())
        .collect();
    assert_eq!(ids, ["alpha", "bravo", "charlie"], "{json:#}");
    for t in tenants {
        let items = t["items"].as_array().expect("items");
        let stacks: Vec<&str> = items.iter().filter_map(|i| i["stack"].as_str()).collect();
        assert_eq!(stacks, ["storage", "worker"], "{t:#}");
        for item in items {
            assert_eq!(item["action"], "create", "{item:#}");
            assert_eq!(item["outcome"]["outcome"], "succeeded", "{item:#}");
            assert_eq!(item["outcome"]["status"], "CREATE_COMPLETE", "{item:#}");
        }
    }
    assert_eq!(json["report"]["release"], stacks::RELEASE_VERSION);

    let status = run_coordinator(&fixture, &["status", "--output", "json"]).await;
    assert_eq!(
        status.status.code(),
        Some(0),
        "{}",
        describe_output(&status)
    );
    let json = json_stdout(&status);
    assert_eq!(json["desired_release"], stacks::RELEASE_VERSION, "{json:#}");
    let tenants = json["tenants"].as_array().expect("tenants");
    assert_eq!(tenants.len(), 3, "{json:#}");
    for t in tenants {
        assert_eq!(t["release"], stacks::RELEASE_VERSION, "{t:#}");
        assert_eq!(t["hosted"], false, "{t:#}");
        let stacks: Vec<(&str, &str)> = t["stacks"]
            .as_array()
            .expect("stacks")
            .iter()
            .map(|s| {
                (
                    s["stack"].as_str().unwrap_or_default(),
                    s["status"].as_str().unwrap_or_default(),
                )
            })
            .collect();
        assert_eq!(
            stacks,
            [
                ("storage", "CREATE_COMPLETE"),
                ("worker", "CREATE_COMPLETE")
            ],
            "{t:#}"
        );
    }

    // And the stacks really are in each tenant's account.
    for t in &fixture.tenants {
        assert_stacks_deployed(&fixture, t, Expected::CREATED, Expected::CREATED).await;
    }
}
