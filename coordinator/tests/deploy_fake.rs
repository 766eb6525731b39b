//! Deploying fleets end to end on the in-memory fake AWS: the happy path,
//! access that fails closed, slow, failing, rolled-back, throttled and hung
//! stacks, recovery, bad input, concurrency, and isolation between tenants.
//!
//! Library-level tests drive `Fleet` under paused tokio time; CLI tests go
//! through `cli::run_with` with the fake injected (the CLI builds its own
//! runtime, so those are plain `#[test]`s on real time, with operations that
//! take no time).

mod support;

use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use coordinator::access::{self, AccessError};
use coordinator::apply::recover::{RecoverError, RecoverRequest, recover};
use coordinator::apply::{FailedResource, Outcome};
use coordinator::aws::fake::{FakeCloud, Outcome as Script, Trust};
use coordinator::aws::{AwsError, Connector, ErrorKind, StackStatus};
use coordinator::cli::{self, Cli};
use coordinator::observe::TenantObservation;
use coordinator::plan::{Action, PlanOptions, execution_role};
use coordinator::store::Store;
use coordinator::store::sqlite::SqliteStore;
use coordinator::wait::WaitPolicy;
use stacks::ids::{AccountId, RoleArn, TenantId};
use stacks::{Release, StackKind};

use support::*;

fn tid(id: &str) -> TenantId {
    id.parse().expect("valid tenant id")
}

fn failed_tenants(report: &coordinator::deploy::DeployReport) -> Vec<String> {
    report
        .failed()
        .iter()
        .map(|t| t.tenant.to_string())
        .collect()
}

fn actions(plan: &coordinator::plan::Plan, id: &str) -> Vec<(StackKind, &'static str)> {
    plan.tenants
        .iter()
        .find(|t| t.tenant.as_str() == id)
        .unwrap_or_else(|| panic!("{id} not in the plan"))
        .items
        .iter()
        .map(|i| (i.stack, i.action.name()))
        .collect()
}

/// Asserts that both of a tenant's stacks were created and reported so.
fn assert_created(h: &Harness, report: &coordinator::deploy::DeployReport, id: &str) {
    for kind in [StackKind::Storage, StackKind::Worker] {
        let stack = h
            .stack(id, kind)
            .unwrap_or_else(|| panic!("{id} has no {kind} stack"));
        assert_eq!(stack.status, StackStatus::CreateComplete, "{id} {kind}");
        match &item(report, id, kind).outcome {
            Some(Outcome::Succeeded { status, outputs }) => {
                assert_eq!(*status, StackStatus::CreateComplete);
                assert_eq!(outputs, &stack.outputs, "{id} {kind} outputs");
            }
            other => panic!("{id} {kind}: expected success, got {other:?}"),
        }
    }
}

// ---------------------------------------------------------------------------
// 1. The happy path.

#[tokio::test(start_paused = true)]
async fn deploys_storage_then_worker_to_each_dedicated_tenant_and_records_it() {
    let h = Harness::new(standard_tenants()).await;
    let fleet = h.fleet();
    let (_, plan, report) = deploy(&fleet).await;

    assert_eq!(plan.generation, 1);
    assert_eq!(plan.parent, None);
    assert!(report.failed().is_empty(), "{report:#?}");
    assert_eq!(report.generation, 1);
    assert_eq!(report.release, stacks::RELEASE_VERSION);

    for id in ["acme", "globex", "initech"] {
        let spec = h.spec(id).clone();
        assert_eq!(
            actions(&plan, id),
            [
                (StackKind::Storage, "create"),
                (StackKind::Worker, "create")
            ]
        );
        assert_created(&h, &report, id);

        // In the tenant's own account and region.
        let storage = h.stack(id, StackKind::Storage).unwrap();
        let worker = h.stack(id, StackKind::Worker).unwrap();
        for s in [&storage, &worker] {
            assert!(
                s.stack_id.starts_with(&format!(
                    "arn:aws:cloudformation:{}:{}:stack/{}/",
                    spec.region, spec.account, s.name
                )),
                "{}",
                s.stack_id
            );
        }

        // Storage first, then the worker fed by storage's outputs.
        let creates: Vec<String> = h
            .cfn_calls(id)
            .into_iter()
            .filter(|c| c.operation == "CreateStack")
            .map(|c| c.stack.unwrap_or_default())
            .collect();
        assert_eq!(creates, ["docproc-storage", "docproc-worker"], "{id}");
        let worker_deployed = h.deployed(id, StackKind::Worker).unwrap();
        for key in ["KmsKeyArn", "BucketArn"] {
            let output = storage.outputs.get(key).expect("storage output");
            assert!(!output.is_empty());
            assert_eq!(
                worker_deployed.parameters.get(key),
                Some(output),
                "{id} worker {key}"
            );
        }
        assert!(
            worker_deployed.parameters["KmsKeyArn"].starts_with(&format!(
                "arn:aws:kms:{}:{}:key/",
                spec.region, spec.account
            )),
            "{}",
            worker_deployed.parameters["KmsKeyArn"]
        );

        // The LLM key secret only for tenants that bring their own keys.
        let byo = id == "acme";
        assert_eq!(
            worker_deployed.template_body.contains("\"LlmKeySecret\""),
            byo,
            "{id} LlmKeySecret"
        );
        assert_eq!(
            worker.outputs.contains_key("LlmKeySecretName"),
            byo,
            "{id} LlmKeySecretName"
        );

        // Stored outputs and stack states.
        for (kind, described) in [(StackKind::Storage, &storage), (StackKind::Worker, &worker)] {
            let stored = h
                .store
                .outputs(&tid(id), kind)
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("{id} {kind} outputs not stored"));
            assert_eq!(stored.outputs, described.outputs);
            assert_eq!(stored.release, stacks::RELEASE_VERSION);
            let planned_hash = &plan
                .tenants
                .iter()
                .find(|t| t.tenant.as_str() == id)
                .unwrap()
                .items
                .iter()
                .find(|i| i.stack == kind)
                .unwrap()
                .template_hash;
            assert_eq!(&stored.template_hash, planned_hash);
            assert_eq!(
                described.tags.get("docproc:template-sha256"),
                Some(planned_hash)
            );
        }
    }

    // The hosted tenant gets nothing and nobody touches its account.
    let hooli = plan
        .tenants
        .iter()
        .find(|t| t.tenant.as_str() == "hooli")
        .unwrap();
    assert!(hooli.hosted && hooli.items.is_empty());
    let hooli_report = tenant_report(&report, "hooli");
    assert!(hooli_report.items.is_empty() && hooli_report.ok());
    let hooli_account = h.spec("hooli").account_id();
    let touched: Vec<_> = h
        .fake
        .calls()
        .into_iter()
        .filter(|c| {
            c.account.as_ref() == Some(&hooli_account)
                || c.role_arn
                    .as_ref()
                    .is_some_and(|r| r.account_id() == hooli_account)
        })
        .collect();
    assert!(touched.is_empty(), "{touched:#?}");
    for kind in [StackKind::Storage, StackKind::Worker] {
        assert!(h.stack("hooli", kind).is_none());
    }

    // Stack states.
    let states = h.store.stack_states().await.unwrap();
    assert_eq!(states.len(), 6, "{states:#?}");
    for s in &states {
        assert_ne!(s.tenant.as_str(), "hooli");
        assert_eq!(s.status.as_deref(), Some("CREATE_COMPLETE"));
        assert_eq!(s.last_outcome.as_deref(), Some("succeeded"));
        assert_eq!(s.release.as_deref(), Some(stacks::RELEASE_VERSION));
        assert_eq!(s.last_reason, None);
    }

    // Deployments, with this generation's request tokens.
    let deployments = h.store.deployments(None, 100).await.unwrap();
    assert_eq!(deployments.len(), 6);
    for d in &deployments {
        assert_eq!(d.generation, 1);
        assert_eq!(d.outcome.as_deref(), Some("succeeded"));
        assert_eq!(d.token, format!("docproc-g1-{}-{}", d.tenant, d.stack));
        assert!(d.finished_at.is_some());
    }

    // The plan and the audit trail, with the operator as the actor.
    let latest = h.store.latest_plan().await.unwrap().unwrap();
    assert_eq!((latest.generation, latest.parent), (1, None));
    assert_eq!(latest.actor, coordinator::aws::fake::DEFAULT_OPERATOR_ARN);
    let audit = h.store.audit_entries(0, 1000).await.unwrap();
    let deploys: Vec<_> = audit
        .iter()
        .filter(|e| e.action == "deploy.stack")
        .collect();
    assert_eq!(deploys.len(), 6, "{audit:#?}");
    for e in &deploys {
        assert_eq!(e.actor, coordinator::aws::fake::DEFAULT_OPERATOR_ARN);
        assert_eq!(e.actor, h.operator.actor());
        assert!(e.tenant.is_some());
        assert_eq!(e.details["outcome"], "succeeded");
        assert_eq!(e.details["generation"], 1);
    }
    let records: Vec<_> = audit.iter().filter(|e| e.action == "plan.record").collect();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].details["generation"], 1);
    assert_eq!(
        records[0].actor,
        coordinator::aws::fake::DEFAULT_OPERATOR_ARN
    );

    // Planning again: nothing to do, and nothing is changed to find that out.
    h.fake.clear_calls();
    let again = fleet
        .observe_and_plan(None, PlanOptions::default())
        .await
        .unwrap();
    for t in &again.draft.tenants {
        for i in &t.items {
            assert_eq!(i.action, Action::NoChange, "{} {}", t.tenant, i.stack);
        }
    }
    assert_eq!(again.draft.counts().get("no_change"), Some(&6));
    let mutating: Vec<_> = h
        .fake
        .calls()
        .into_iter()
        .filter(|c| c.service == "cloudformation" && c.operation != "DescribeStacks")
        .collect();
    assert!(mutating.is_empty(), "{mutating:#?}");
    let second = fleet.record(again.draft.clone()).await.unwrap();
    assert_eq!((second.generation, second.parent), (2, Some(1)));
    let latest = h.store.latest_plan().await.unwrap().unwrap();
    assert_eq!((latest.generation, latest.parent), (2, Some(1)));
}

// ---------------------------------------------------------------------------
// 2. `tenant verify` and the confused-deputy check (in a child process, to
// read what the command prints).

const CHILD_SCENARIO: &str = "DEPLOY_FAKE_CHILD_SCENARIO";
const CHILD_DIR: &str = "DEPLOY_FAKE_CHILD_DIR";

struct ChildRun {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn run_child(scenario: &str, dir: &std::path::Path) -> ChildRun {
    let output = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "cli_child_process",
            "--ignored",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(CHILD_SCENARIO, scenario)
        .env(CHILD_DIR, dir)
        .output()
        .expect("the test binary runs");
    ChildRun {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn exit_code(code: ExitCode) -> u8 {
    (0..=255u8)
        .find(|c| code == ExitCode::from(*c))
        .expect("an exit code")
}

/// Runs one CLI scenario for a parent test; does nothing unless started by
/// [`run_child`].
#[test]
#[ignore = "helper: run in a child process by tenant_verify_refuses_a_role_without_external_id_enforcement"]
fn cli_child_process() {
    let (Ok(scenario), Ok(dir)) = (std::env::var(CHILD_SCENARIO), std::env::var(CHILD_DIR)) else {
        return;
    };
    let tenants = standard_tenants();
    let fake = fake_for(&tenants);
    let acme = &tenants[0];
    match scenario.as_str() {
        "verify-open" => {
            // The customer's role accepts any ExternalId, or none.
            fake.add_role(
                &acme.account_id(),
                DEPLOY_ROLE,
                Trust {
                    external_id: Some(acme.external_id.parse().unwrap()),
                    enforce: false,
                },
            );
        }
        "verify-enforced" => {}
        other => panic!("unknown scenario {other}"),
    }
    let manifest = PathBuf::from(dir).join("deploy.toml");
    let cli = Cli::try_parse_from([
        "coordinator",
        "--manifest",
        manifest.to_str().unwrap(),
        "tenant",
        "verify",
        "acme",
    ])
    .unwrap();
    let code = cli::run_with(cli, Some(Arc::new(fake)));
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    std::process::exit(i32::from(exit_code(code)));
}

#[test]
fn tenant_verify_refuses_a_role_without_external_id_enforcement() {
    let m = TempManifest::new(&manifest_text(&standard_tenants(), "coordinator.db"));

    let open = run_child("verify-open", m.dir.path());
    assert_eq!(open.code, Some(1), "{}\n{}", open.stdout, open.stderr);
    assert!(
        open.stdout.contains("confused-deputy"),
        "{}\n{}",
        open.stdout,
        open.stderr
    );
    assert!(
        open.stdout.contains("FAIL refused_without_external_id "),
        "{}",
        open.stdout
    );
    assert!(
        open.stdout.contains("ok   assume_with_external_id "),
        "{}",
        open.stdout
    );
    assert!(
        open.stderr.contains("failed verification"),
        "{}",
        open.stderr
    );

    // The failed verification is audited, with the operator as the actor.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let store = SqliteStore::open(&m.dir.path().join("coordinator.db")).unwrap();
    let audit = runtime.block_on(store.audit_entries(0, 100)).unwrap();
    let verify: Vec<_> = audit
        .iter()
        .filter(|e| e.action == "tenant.verify")
        .collect();
    assert_eq!(verify.len(), 1, "{audit:#?}");
    assert_eq!(verify[0].details["passed"], false);
    assert_eq!(
        verify[0].actor,
        coordinator::aws::fake::DEFAULT_OPERATOR_ARN
    );

    let enforced = run_child("verify-enforced", m.dir.path());
    assert_eq!(
        enforced.code,
        Some(0),
        "{}\n{}",
        enforced.stdout,
        enforced.stderr
    );
    assert!(!enforced.stdout.contains("FAIL "), "{}", enforced.stdout);
    assert!(
        !enforced.stdout.contains("confused-deputy"),
        "{}",
        enforced.stdout
    );
    for check in [
        "assume_with_external_id",
        "refused_without_external_id",
        "refused_with_wrong_external_id",
    ] {
        assert!(
            enforced.stdout.contains(&format!("ok   {check} ")),
            "{check}: {}",
            enforced.stdout
        );
    }
}

// ---------------------------------------------------------------------------
// 3. AccessDenied on AssumeRole fails closed for that tenant only.

#[tokio::test(start_paused = true)]
async fn access_denied_fails_closed_for_that_tenant_only() {
    let h = Harness::new(standard_tenants()).await;
    let globex = h.spec("globex").clone();
    let role = RoleArn::for_role(&globex.account_id(), DEPLOY_ROLE).unwrap();
    h.fake.deny_assume(&role);

    let (planned, plan, report) = deploy(&h.fleet()).await;

    assert_eq!(failed_tenants(&report), ["globex"]);
    let reason = match planned.inventory.tenants.get(&tid("globex")) {
        Some(TenantObservation::Unreachable { reason, denied }) => {
            assert!(denied);
            reason.clone()
        }
        other => panic!("globex should be unreachable, got {other:?}"),
    };
    for needle in [
        "AssumeRole",
        "denied",
        "docproc-bootstrap stack",
        "fail closed",
        role.as_str(),
    ] {
        assert!(reason.contains(needle), "{needle:?} not in {reason:?}");
    }
    let tp = plan
        .tenants
        .iter()
        .find(|t| t.tenant.as_str() == "globex")
        .unwrap();
    assert_eq!(tp.unreachable.as_deref(), Some(reason.as_str()));
    for i in &tenant_report(&report, "globex").items {
        assert!(!i.ok());
        assert_eq!(i.outcome, None);
        assert_eq!(
            i.describe(),
            "blocked (not applied): the account is unreachable (see the tenant's error)"
        );
    }

    // The others are deployed.
    for id in ["acme", "initech"] {
        assert_created(&h, &report, id);
    }

    // Nothing was done in the denied account; AssumeRole was tried.
    assert!(
        h.cfn_calls("globex").is_empty(),
        "{:#?}",
        h.cfn_calls("globex")
    );
    let assumes = h
        .fake
        .calls()
        .into_iter()
        .filter(|c| c.operation == "AssumeRole" && c.role_arn.as_ref() == Some(&role))
        .count();
    assert!(assumes >= 1);
    for kind in [StackKind::Storage, StackKind::Worker] {
        assert!(h.stack("globex", kind).is_none());
    }
    let states = h.store.stack_states().await.unwrap();
    assert!(states.iter().all(|s| s.tenant.as_str() != "globex"));
    assert_eq!(states.len(), 4);
}

// ---------------------------------------------------------------------------
// 4. Credentials landing in another account fail closed.

#[tokio::test(start_paused = true)]
async fn credentials_in_the_wrong_account_fail_closed() {
    let tenants = standard_tenants()[..2].to_vec();
    let h = Harness::new(tenants).await;
    let acme = h.spec("acme").clone();
    let role = RoleArn::for_role(&acme.account_id(), DEPLOY_ROLE).unwrap();
    let elsewhere: AccountId = "999999999999".parse().unwrap();
    h.fake.land_in(&role, &elsewhere);

    // Directly: a typed WrongAccount.
    let tenant = h.manifest.tenant(&tid("acme")).unwrap();
    match access::connect(&h.fake, &h.operator, tenant).await {
        Err(e @ AccessError::WrongAccount { .. }) => {
            assert!(e.is_denied());
            let AccessError::WrongAccount {
                expected, actual, ..
            } = &e
            else {
                unreachable!()
            };
            assert_eq!(expected, &acme.account_id());
            assert_eq!(actual, &elsewhere);
        }
        other => panic!("expected WrongAccount, got {other:?}"),
    }

    // Through the fleet: that tenant fails closed, the other is deployed.
    let (planned, _, report) = deploy(&h.fleet()).await;
    assert_eq!(failed_tenants(&report), ["acme"]);
    match planned.inventory.tenants.get(&tid("acme")) {
        Some(TenantObservation::Unreachable { reason, denied }) => {
            assert!(denied);
            assert!(
                reason
                    .contains("act in account 999999999999, not the tenant's account 222222222222"),
                "{reason}"
            );
            assert!(reason.contains("fail closed"), "{reason}");
        }
        other => panic!("acme should be unreachable, got {other:?}"),
    }
    assert_created(&h, &report, "globex");

    // The credentials did land elsewhere (the identity check ran there), but
    // no CloudFormation call was made in either account.
    assert!(h.fake.calls().iter().any(|c| c.service == "sts"
        && c.operation == "GetCallerIdentity"
        && c.account.as_ref() == Some(&elsewhere)));
    assert!(h.cfn_calls("acme").is_empty());
    assert!(cfn_calls_in(&h.fake, &elsewhere).is_empty());
    for region in [acme.region(), h.spec("globex").region()] {
        assert!(
            h.fake
                .stack(&elsewhere, region, "docproc-storage")
                .is_none()
        );
    }
}

// ---------------------------------------------------------------------------
// 5. Slow operations are waited for, with progress streamed meanwhile.

#[tokio::test(start_paused = true)]
async fn a_slow_stack_is_waited_for_and_its_events_streamed() {
    let tenants = vec![standard_tenants()[1].clone()];
    let h = Harness::new(tenants).await;
    let operation = Duration::from_secs(20);
    h.fake.set_operation_duration(operation);
    let log = ProgressLog::default();
    let started = tokio::time::Instant::now();

    let (_, _, report) = deploy_with(&h.fleet(), &|p| log.record(p)).await;

    assert!(report.failed().is_empty(), "{report:#?}");
    assert_created(&h, &report, "globex");
    // Two operations in a row, each taking its time.
    assert!(
        started.elapsed() >= operation * 2,
        "{:?}",
        started.elapsed()
    );

    // The stack was polled repeatedly while it was in progress.
    let polls = h
        .cfn_calls("globex")
        .iter()
        .filter(|c| {
            c.operation == "DescribeStacks" && c.stack.as_deref() == Some("docproc-storage")
        })
        .count();
    assert!(polls >= 6, "only {polls} polls");

    let lines = log.lines();
    let at = |line: &str| {
        lines
            .iter()
            .find(|(_, l)| l == line)
            .map(|(t, _)| *t)
            .unwrap_or_else(|| panic!("no progress {line:?} in {lines:#?}"))
    };
    let storage_started = at("globex storage started create");
    let storage_in_progress = at("globex storage docproc-storage CREATE_IN_PROGRESS");
    let storage_done = at("globex storage docproc-storage CREATE_COMPLETE");
    let worker_started = at("globex worker started create");
    let worker_in_progress = at("globex worker docproc-worker CREATE_IN_PROGRESS");
    let worker_done = at("globex worker docproc-worker CREATE_COMPLETE");
    // Events arrived as they happened, not all at the end.
    assert!(storage_started <= storage_in_progress);
    assert!(storage_done - storage_in_progress >= operation);
    assert!(storage_done <= worker_started);
    assert!(worker_in_progress < worker_done);
    assert!(worker_done - worker_in_progress >= operation);
    // Each event once.
    let mut seen: Vec<&String> = lines.iter().map(|(_, l)| l).collect();
    let n = seen.len();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), n, "duplicate progress lines: {lines:#?}");
}

// ---------------------------------------------------------------------------
// 6. A failed create: ROLLBACK_COMPLETE, blocked, recovered, recreated.

#[tokio::test(start_paused = true)]
async fn a_failed_create_needs_recovery_and_is_recreated_after_confirmation() {
    let h = Harness::new(standard_tenants()).await;
    let globex = h.spec("globex").clone();
    h.fake.script(
        &globex.account_id(),
        globex.region(),
        "docproc-storage",
        Script::FailCreate {
            resource: "DocumentsBucket".into(),
            reason: "Bucket policy is malformed (injected)".into(),
        },
    );
    let fleet = h.fleet();
    let (_, _, report) = deploy(&fleet).await;

    assert_eq!(failed_tenants(&report), ["globex"]);
    let storage = item(&report, "globex", StackKind::Storage);
    match &storage.outcome {
        Some(Outcome::NeedsRecovery {
            status,
            reason,
            failed_resources,
        }) => {
            assert_eq!(*status, StackStatus::RollbackComplete);
            assert_eq!(
                reason,
                "DocumentsBucket (AWS::S3::Bucket): Bucket policy is malformed (injected)"
            );
            assert_eq!(
                failed_resources,
                &[FailedResource {
                    logical_id: "DocumentsBucket".into(),
                    resource_type: "AWS::S3::Bucket".into(),
                    status: "CREATE_FAILED".into(),
                    reason: "Bucket policy is malformed (injected)".into(),
                }]
            );
        }
        other => panic!("expected NeedsRecovery, got {other:?}"),
    }
    assert!(
        storage.describe().contains("coordinator recover"),
        "{}",
        storage.describe()
    );
    // The worker was not attempted.
    let worker = item(&report, "globex", StackKind::Worker);
    assert_eq!(worker.outcome, None);
    assert_eq!(
        worker.note.as_deref(),
        Some("an earlier stack of this tenant failed")
    );
    assert!(
        !h.cfn_calls("globex").iter().any(
            |c| c.stack.as_deref() == Some("docproc-worker") && c.operation != "DescribeStacks"
        )
    );
    assert!(h.stack("globex", StackKind::Worker).is_none());
    assert_eq!(
        h.stack("globex", StackKind::Storage).unwrap().status,
        StackStatus::RollbackComplete
    );
    let state = h
        .store
        .stack_states()
        .await
        .unwrap()
        .into_iter()
        .find(|s| s.tenant.as_str() == "globex" && s.stack == StackKind::Storage)
        .unwrap();
    assert_eq!(state.last_outcome.as_deref(), Some("needs_recovery"));
    assert_eq!(state.status.as_deref(), Some("ROLLBACK_COMPLETE"));
    assert_eq!(state.release, None);
    // Other tenants are unaffected.
    for id in ["acme", "initech"] {
        assert_created(&h, &report, id);
    }

    // The next plan blocks the tenant and says what to do.
    let planned = fleet
        .observe_and_plan(None, PlanOptions::default())
        .await
        .unwrap();
    let items = &planned
        .draft
        .tenants
        .iter()
        .find(|t| t.tenant.as_str() == "globex")
        .unwrap()
        .items;
    match &items[0].action {
        Action::Blocked { reason } => {
            assert!(
                reason.contains("coordinator recover --tenant globex --stack storage"),
                "{reason}"
            );
            assert!(reason.contains("ROLLBACK_COMPLETE"), "{reason}");
        }
        other => panic!("storage should be blocked, got {other:?}"),
    }
    assert!(
        matches!(&items[1].action, Action::Blocked { reason } if reason.contains("storage stack")),
        "{:?}",
        items[1].action
    );
    for id in ["acme", "initech"] {
        let t = planned
            .draft
            .tenants
            .iter()
            .find(|t| t.tenant.as_str() == id)
            .unwrap();
        assert!(t.items.iter().all(|i| i.action == Action::NoChange));
    }

    // Recovery refuses to delete without confirmation...
    let tenant = h.manifest.tenant(&tid("globex")).unwrap();
    let access = access::connect(&h.fake, &h.operator, tenant).await.unwrap();
    let role = execution_role(tenant);
    let unconfirmed = RecoverRequest {
        stack: StackKind::Storage,
        skip_resources: &[],
        execution_role: &role,
        confirmed: false,
        token: "docproc-recover-storage-test0001",
        wait: STACK_WAIT,
    };
    match recover(access.cloudformation.as_ref(), &unconfirmed).await {
        Err(RecoverError::NeedsConfirmation(why)) => {
            assert!(why.contains("--yes"), "{why}");
            assert!(why.contains("ROLLBACK_COMPLETE"), "{why}");
        }
        other => panic!("expected NeedsConfirmation, got {other:?}"),
    }
    assert!(!h.fake.calls().iter().any(|c| c.operation == "DeleteStack"));
    assert_eq!(
        h.stack("globex", StackKind::Storage).unwrap().status,
        StackStatus::RollbackComplete
    );

    // ...deletes with it...
    let confirmed = RecoverRequest {
        confirmed: true,
        ..unconfirmed
    };
    let recovery = recover(access.cloudformation.as_ref(), &confirmed)
        .await
        .unwrap();
    assert_eq!(recovery.before, Some(StackStatus::RollbackComplete));
    assert_eq!(recovery.action, "delete");
    assert_eq!(recovery.after, None);
    assert!(recovery.recovered, "{}", recovery.message);
    assert!(h.stack("globex", StackKind::Storage).is_none());
    let deletes: Vec<_> = h
        .cfn_calls("globex")
        .into_iter()
        .filter(|c| c.operation == "DeleteStack")
        .collect();
    assert_eq!(deletes.len(), 1);

    // ...and the next deploy recreates the tenant's stacks.
    let (_, plan, report) = deploy(&fleet).await;
    assert_eq!(
        actions(&plan, "globex"),
        [
            (StackKind::Storage, "create"),
            (StackKind::Worker, "create")
        ]
    );
    assert!(report.failed().is_empty(), "{report:#?}");
    assert_created(&h, &report, "globex");
    let storage = h.stack("globex", StackKind::Storage).unwrap();
    let worker = h.deployed("globex", StackKind::Worker).unwrap();
    assert_eq!(
        worker.parameters.get("BucketArn"),
        storage.outputs.get("BucketArn")
    );
}

/// The same recovery through the CLI: exit 1, then 2 without `--yes`, then
/// 0 with it (delete and recreate).
#[test]
fn recover_cli_needs_yes_then_deletes_and_redeploys() {
    let tenants = standard_tenants();
    let m = TempManifest::new(&manifest_text(&tenants, "coordinator.db"));
    let fake = fake_for(&tenants);
    let globex = tenants[1].clone();
    fake.script(
        &globex.account_id(),
        globex.region(),
        "docproc-storage",
        Script::FailCreate {
            resource: "DataKey".into(),
            reason: "KMS key quota exceeded (injected)".into(),
        },
    );
    let connector: Arc<dyn Connector> = Arc::new(fake.clone());
    let run = |args: &[&str]| {
        let mut argv = vec!["coordinator", "--manifest", m.path.to_str().unwrap()];
        argv.extend_from_slice(args);
        exit_code(cli::run_with(
            Cli::try_parse_from(argv).unwrap(),
            Some(connector.clone()),
        ))
    };
    let status = |stack: &str| {
        fake.stack(&globex.account_id(), globex.region(), stack)
            .map(|d| d.status)
    };

    assert_eq!(run(&["deploy", "--yes"]), 1);
    assert_eq!(
        status("docproc-storage"),
        Some(StackStatus::RollbackComplete)
    );
    assert_eq!(status("docproc-worker"), None);

    let recover_args = ["recover", "--tenant", "globex", "--stack", "storage"];
    assert_eq!(run(&recover_args), 2);
    assert_eq!(
        status("docproc-storage"),
        Some(StackStatus::RollbackComplete)
    );
    assert!(!fake.calls().iter().any(|c| c.operation == "DeleteStack"));

    let mut confirmed = recover_args.to_vec();
    confirmed.push("--yes");
    assert_eq!(run(&confirmed), 0);
    assert_eq!(status("docproc-storage"), Some(StackStatus::CreateComplete));
    assert_eq!(status("docproc-worker"), Some(StackStatus::CreateComplete));
    assert_eq!(
        fake.calls()
            .iter()
            .filter(|c| c.operation == "DeleteStack")
            .count(),
        1
    );
}

// ---------------------------------------------------------------------------
// 7. Updates that fail: UPDATE_ROLLBACK_FAILED (recovered by continuing the
// rollback) and UPDATE_ROLLBACK_COMPLETE.

const EXTRA_QUEUE: &str = r#"    "ExtraQueue": {
      "Type": "AWS::SQS::Queue",
      "DeletionPolicy": "Delete",
      "UpdateReplacePolicy": "Delete",
      "Properties": {
        "QueueName": {"Fn::Sub": "${AWS::StackName}-extra"},
        "MessageRetentionPeriod": 300,
        "SqsManagedSseEnabled": true
      }
    },
"#;

/// The builtin release with one extra, harmless queue in the worker.
fn release_with_extra_worker_queue() -> Release {
    let sources: Vec<(&'static str, &'static str)> = Release::builtin_sources()
        .iter()
        .map(|&(name, text)| {
            if name != "worker.json" {
                return (name, text);
            }
            let anchor = "    \"WorkerRole\": {";
            assert_eq!(text.matches(anchor).count(), 1, "anchor moved");
            let changed = text.replacen(anchor, &format!("{EXTRA_QUEUE}{anchor}"), 1);
            let leaked: &'static str = Box::leak(changed.into_boxed_str());
            (name, leaked)
        })
        .collect();
    Release::from_sources("2026.11.1".parse().unwrap(), &sources).expect("changed release")
}

#[tokio::test(start_paused = true)]
async fn failed_updates_roll_back_or_need_recovery_and_recovery_continues_the_rollback() {
    let tenants = standard_tenants()[..2].to_vec();
    let h = Harness::new(tenants).await;
    let (_, _, first) = deploy(&h.fleet()).await;
    assert!(first.failed().is_empty(), "{first:#?}");
    let before: Vec<_> = ["acme", "globex"]
        .iter()
        .map(|id| h.deployed(id, StackKind::Worker).unwrap())
        .collect();

    let (acme, globex) = (h.spec("acme").clone(), h.spec("globex").clone());
    h.fake.script(
        &acme.account_id(),
        acme.region(),
        "docproc-worker",
        Script::RollbackFails {
            resource: "ExtraQueue".into(),
            reason: "Queue name already taken (injected)".into(),
        },
    );
    h.fake.script(
        &globex.account_id(),
        globex.region(),
        "docproc-worker",
        Script::FailUpdate {
            resource: "ExtraQueue".into(),
            reason: "Queue quota exceeded (injected)".into(),
        },
    );

    let release = release_with_extra_worker_queue();
    let fleet = h.fleet_with(&release, 4, STACK_WAIT);
    let (_, plan, report) = deploy(&fleet).await;
    assert_eq!(plan.generation, 2);
    for id in ["acme", "globex"] {
        assert_eq!(
            actions(&plan, id),
            [
                (StackKind::Storage, "no_change"),
                (StackKind::Worker, "update")
            ],
            "{id}"
        );
        let worker = plan
            .tenants
            .iter()
            .find(|t| t.tenant.as_str() == id)
            .unwrap()
            .items
            .iter()
            .find(|i| i.stack == StackKind::Worker)
            .unwrap();
        match &worker.action {
            Action::Update { changes } => {
                assert_eq!(changes.len(), 1, "{changes:?}");
                assert_eq!(changes[0].logical_id, "ExtraQueue");
                assert_eq!(changes[0].action, "Add");
            }
            other => panic!("{other:?}"),
        }
    }
    let mut failed = failed_tenants(&report);
    failed.sort();
    assert_eq!(failed, ["acme", "globex"]);

    // acme: the rollback failed too.
    match &item(&report, "acme", StackKind::Worker).outcome {
        Some(Outcome::NeedsRecovery {
            status,
            reason,
            failed_resources,
        }) => {
            assert_eq!(*status, StackStatus::UpdateRollbackFailed);
            assert!(reason.contains("ExtraQueue"), "{reason}");
            assert!(
                reason.contains("Queue name already taken (injected)"),
                "{reason}"
            );
            assert!(
                failed_resources
                    .iter()
                    .all(|f| f.logical_id == "ExtraQueue" && f.status == "UPDATE_FAILED"),
                "{failed_resources:?}"
            );
            assert!(!failed_resources.is_empty());
        }
        other => panic!("expected NeedsRecovery, got {other:?}"),
    }
    assert_eq!(
        h.stack("acme", StackKind::Worker).unwrap().status,
        StackStatus::UpdateRollbackFailed
    );

    // globex: rolled back cleanly, works as before.
    match &item(&report, "globex", StackKind::Worker).outcome {
        Some(Outcome::RolledBack {
            status,
            reason,
            failed_resources,
        }) => {
            assert_eq!(*status, StackStatus::UpdateRollbackComplete);
            assert_eq!(
                reason,
                "ExtraQueue (AWS::SQS::Queue): Queue quota exceeded (injected)"
            );
            assert_eq!(failed_resources.len(), 1);
            assert_eq!(failed_resources[0].status, "UPDATE_FAILED");
        }
        other => panic!("expected RolledBack, got {other:?}"),
    }
    assert!(
        item(&report, "globex", StackKind::Worker)
            .describe()
            .starts_with("rolled_back: update rolled back: ExtraQueue")
    );
    assert_eq!(
        h.stack("globex", StackKind::Worker).unwrap().status,
        StackStatus::UpdateRollbackComplete
    );
    assert_eq!(
        h.deployed("globex", StackKind::Worker)
            .unwrap()
            .template_body,
        before[1].template_body
    );

    // Recovery of acme: continue the rollback, skipping the failed resource.
    let tenant = h.manifest.tenant(&tid("acme")).unwrap();
    let access = access::connect(&h.fake, &h.operator, tenant).await.unwrap();
    let role = execution_role(tenant);
    let skip = vec!["ExtraQueue".to_owned()];
    let recovery = recover(
        access.cloudformation.as_ref(),
        &RecoverRequest {
            stack: StackKind::Worker,
            skip_resources: &skip,
            execution_role: &role,
            confirmed: false,
            token: "docproc-recover-worker-test0001",
            wait: STACK_WAIT,
        },
    )
    .await
    .unwrap();
    assert_eq!(recovery.before, Some(StackStatus::UpdateRollbackFailed));
    assert_eq!(recovery.action, "continue_update_rollback");
    assert_eq!(recovery.after, Some(StackStatus::UpdateRollbackComplete));
    assert!(recovery.recovered, "{}", recovery.message);
    assert!(
        recovery.message.contains("skipped: ExtraQueue"),
        "{}",
        recovery.message
    );
    assert_eq!(
        h.fake
            .skipped_resources(&acme.account_id(), acme.region(), "docproc-worker"),
        ["ExtraQueue"]
    );
    assert_eq!(
        h.stack("acme", StackKind::Worker).unwrap().status,
        StackStatus::UpdateRollbackComplete
    );
    assert_eq!(
        h.deployed("acme", StackKind::Worker).unwrap().template_body,
        before[0].template_body
    );

    // Both can be planned again: the update is offered once more.
    let again = fleet
        .observe_and_plan(None, PlanOptions::default())
        .await
        .unwrap();
    for t in &again.draft.tenants {
        let names: Vec<_> = t.items.iter().map(|i| i.action.name()).collect();
        assert_eq!(names, ["no_change", "update"], "{}", t.tenant);
    }
}

// ---------------------------------------------------------------------------
// 8. Throttled polls are retried within the deadline.

#[tokio::test(start_paused = true)]
async fn throttled_describe_calls_during_the_wait_are_retried() {
    let tenants = vec![standard_tenants()[2].clone()];
    let h = Harness::new(tenants).await;
    let initech = h.spec("initech").clone();
    let fleet = h.fleet();
    let planned = fleet
        .observe_and_plan(None, PlanOptions::default())
        .await
        .unwrap();
    let plan = fleet.record(planned.draft.clone()).await.unwrap();

    // Throttle the polls of the apply (not the observation).
    h.fake.clear_calls();
    h.fake
        .throttle(&initech.account_id(), initech.region(), "DescribeStacks", 5);
    let started = tokio::time::Instant::now();
    let report = fleet.apply(&plan, &planned, &|_| {}).await;

    assert!(report.failed().is_empty(), "{report:#?}");
    assert_created(&h, &report, "initech");
    assert!(started.elapsed() < STACK_WAIT.deadline);
    let describes = h
        .cfn_calls("initech")
        .into_iter()
        .filter(|c| c.operation == "DescribeStacks")
        .count();
    // Five throttled polls, then at least one per stack that answered.
    assert!(describes >= 7, "{describes} DescribeStacks calls");
    let polls_before_worker = h
        .cfn_calls("initech")
        .into_iter()
        .take_while(|c| {
            !(c.operation == "CreateStack" && c.stack.as_deref() == Some("docproc-worker"))
        })
        .filter(|c| c.operation == "DescribeStacks")
        .count();
    assert!(polls_before_worker >= 6, "{polls_before_worker}");
}

// ---------------------------------------------------------------------------
// 9. A deadline ends the wait: timed out, not hung.

#[tokio::test(start_paused = true)]
async fn a_hung_operation_times_out_at_the_deadline() {
    let tenants = vec![standard_tenants()[1].clone()];
    let h = Harness::new(tenants).await;
    let globex = h.spec("globex").clone();
    h.fake.script(
        &globex.account_id(),
        globex.region(),
        "docproc-storage",
        Script::Hang,
    );
    let wait = WaitPolicy {
        min_delay: Duration::from_secs(1),
        max_delay: Duration::from_secs(5),
        deadline: Duration::from_secs(60),
    };
    let fleet = h.fleet_with(Release::builtin(), 4, wait);
    let wall = std::time::Instant::now();
    let started = tokio::time::Instant::now();

    let (_, _, report) = tokio::time::timeout(Duration::from_secs(3600), deploy(&fleet))
        .await
        .expect("the deploy must end at its deadline, not hang");

    let elapsed = started.elapsed();
    assert!(
        elapsed >= wait.deadline && elapsed < wait.deadline + Duration::from_secs(10),
        "{elapsed:?}"
    );
    assert!(
        wall.elapsed() < Duration::from_secs(10),
        "{:?}",
        wall.elapsed()
    );
    assert_eq!(failed_tenants(&report), ["globex"]);
    let storage = item(&report, "globex", StackKind::Storage);
    assert_eq!(
        storage.outcome,
        Some(Outcome::TimedOut {
            status: Some(StackStatus::CreateInProgress),
            waited: wait.deadline,
        })
    );
    assert!(
        storage
            .describe()
            .starts_with("timed_out: still CREATE_IN_PROGRESS after 60s"),
        "{}",
        storage.describe()
    );
    let worker = item(&report, "globex", StackKind::Worker);
    assert_eq!(worker.outcome, None);
    assert!(h.stack("globex", StackKind::Worker).is_none());
    // The operation may still be running; it is recorded as timed out.
    assert_eq!(
        h.stack("globex", StackKind::Storage).unwrap().status,
        StackStatus::CreateInProgress
    );
    let state = h
        .store
        .stack_states()
        .await
        .unwrap()
        .into_iter()
        .find(|s| s.stack == StackKind::Storage)
        .unwrap();
    assert_eq!(state.last_outcome.as_deref(), Some("timed_out"));
    assert_eq!(state.status.as_deref(), Some("CREATE_IN_PROGRESS"));
}

// ---------------------------------------------------------------------------
// 10. Bad input changes nothing: exit 2, no AWS call, no state file.

fn assert_bad_input_changes_nothing(manifest_text: &str, args: &[&str]) {
    let m = TempManifest::new(manifest_text);
    let fake = FakeCloud::new();
    for t in standard_tenants() {
        fake.add_role(
            &t.account_id(),
            DEPLOY_ROLE,
            Trust::requiring(&t.external_id.parse().unwrap()),
        );
    }
    fake.fail_all();
    let mut argv = vec!["coordinator", "--manifest", m.path.to_str().unwrap()];
    argv.extend_from_slice(args);
    let code = cli::run_with(
        Cli::try_parse_from(&argv).unwrap(),
        Some(Arc::new(fake.clone())),
    );
    assert_eq!(exit_code(code), 2, "{argv:?}");
    assert!(fake.calls().is_empty(), "{argv:?}: {:#?}", fake.calls());
    assert!(
        m.other_files().is_empty(),
        "{argv:?}: {:?}",
        m.other_files()
    );
}

#[test]
fn an_unknown_tenant_is_bad_input_and_changes_nothing() {
    let text = manifest_text(&standard_tenants(), "coordinator.db");
    for args in [
        &["deploy", "--tenant", "nope", "--yes"][..],
        &["plan", "--tenant", "nope"],
        &["tenant", "verify", "nope"],
        &["recover", "--tenant", "nope", "--stack", "storage", "--yes"],
    ] {
        assert_bad_input_changes_nothing(&text, args);
    }
}

#[test]
fn an_invalid_manifest_is_bad_input_and_changes_nothing() {
    let mut tenants = standard_tenants();
    // Two tenants in one account, the second also reusing an ExternalId.
    let mut copy = tenants[0].clone();
    copy.id = "acme-two".into();
    tenants.push(copy);
    let text = manifest_text(&tenants, "coordinator.db");
    assert!(
        coordinator::manifest::from_text(std::path::Path::new("deploy.toml"), text.clone())
            .is_err()
    );
    for args in [
        &["deploy", "--yes"][..],
        &["plan"],
        &["tenant", "verify", "acme"],
    ] {
        assert_bad_input_changes_nothing(&text, args);
    }
}

#[test]
fn a_state_directory_that_does_not_exist_is_bad_input_and_changes_nothing() {
    let text = manifest_text(&standard_tenants(), "missing/coordinator.db");
    for args in [
        &["deploy", "--yes"][..],
        &["plan"],
        &["tenant", "verify", "acme"],
    ] {
        assert_bad_input_changes_nothing(&text, args);
    }
}

// ---------------------------------------------------------------------------
// 11. Concurrency is bounded.

#[tokio::test(start_paused = true)]
async fn tenants_are_deployed_concurrently_within_the_bound() {
    let regions = ["eu-west-1", "us-east-1", "eu-central-1", "us-west-2"];
    let tenants: Vec<TenantSpec> = (1..=12u32)
        .map(|n| {
            TenantSpec::numbered(
                &format!("tenant{n:02}"),
                n,
                regions[n as usize % regions.len()],
                &["dedicated_aws"],
            )
        })
        .collect();
    let h = Harness::new(tenants).await;
    h.fake.set_operation_duration(Duration::from_secs(30));
    let fleet = h.fleet_with(Release::builtin(), 3, STACK_WAIT);

    let (_, _, report) = deploy(&fleet).await;

    assert!(report.failed().is_empty(), "{report:#?}");
    assert_eq!(report.tenants.len(), 12);
    for t in &h.tenants {
        assert_created(&h, &report, &t.id);
    }
    let max = h.fake.max_concurrent_operations();
    assert!(max <= 3, "{max} operations at once with concurrency 3");
    assert!(max > 1, "tenants were deployed one at a time");
    assert_eq!(h.fake.operations_in_progress(), 0);
}

// ---------------------------------------------------------------------------
// 12. One tenant's failure never stops the others.

#[tokio::test(start_paused = true)]
async fn a_rejected_call_fails_only_its_tenant_and_is_named_in_the_report() {
    let h = Harness::new(standard_tenants()).await;
    let acme = h.spec("acme").clone();
    h.fake.script(
        &acme.account_id(),
        acme.region(),
        "docproc-storage",
        Script::Reject(
            AwsError::new(
                ErrorKind::Validation,
                "cloudformation",
                "CreateStack",
                "Template format error: injected",
            )
            .with_code("ValidationError"),
        ),
    );
    // One at a time, the failing tenant first.
    let fleet = h.fleet_with(Release::builtin(), 1, STACK_WAIT);
    let (_, _, report) = deploy(&fleet).await;

    assert_eq!(failed_tenants(&report), ["acme"]);
    let storage = item(&report, "acme", StackKind::Storage);
    assert_eq!(
        storage.describe(),
        "failed: cloudformation CreateStack failed (ValidationError): Template format error: injected"
    );
    assert!(!storage.describe().contains('\n'));
    match &storage.outcome {
        Some(Outcome::Failed { status, .. }) => assert_eq!(*status, None),
        other => panic!("expected Failed, got {other:?}"),
    }
    assert_eq!(
        item(&report, "acme", StackKind::Worker).describe(),
        "create (not applied): an earlier stack of this tenant failed"
    );
    assert!(h.stack("acme", StackKind::Storage).is_none());
    assert!(h.stack("acme", StackKind::Worker).is_none());
    for id in ["globex", "initech"] {
        assert_created(&h, &report, id);
        assert!(tenant_report(&report, id).ok());
    }
    // Reported in manifest order.
    let order: Vec<&str> = report.tenants.iter().map(|t| t.tenant.as_str()).collect();
    assert_eq!(order, ["acme", "globex", "initech", "hooli"]);
    // The failure is recorded and audited.
    let deployments = h.store.deployments(Some(&tid("acme")), 10).await.unwrap();
    assert_eq!(deployments.len(), 1);
    assert_eq!(deployments[0].outcome.as_deref(), Some("failed"));
    assert!(
        deployments[0]
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("Template format error: injected"))
    );
}

// ---------------------------------------------------------------------------
// Bugs found in code these tests do not own (ignored until fixed).

/// After an update rolls back, the stack still runs the release it ran
/// before; the recorded stack state should say so.
#[tokio::test(start_paused = true)]

async fn a_rolled_back_update_keeps_the_recorded_release_of_the_stack() {
    let h = Harness::new(vec![standard_tenants()[1].clone()]).await;
    let (_, _, first) = deploy(&h.fleet()).await;
    assert!(first.failed().is_empty(), "{first:#?}");
    let globex = h.spec("globex").clone();
    let deployed_hash = h
        .store
        .outputs(&tid("globex"), StackKind::Worker)
        .await
        .unwrap()
        .unwrap()
        .template_hash;
    h.fake.script(
        &globex.account_id(),
        globex.region(),
        "docproc-worker",
        Script::FailUpdate {
            resource: "ExtraQueue".into(),
            reason: "Queue quota exceeded (injected)".into(),
        },
    );
    let release = release_with_extra_worker_queue();
    let (_, _, report) = deploy(&h.fleet_with(&release, 4, STACK_WAIT)).await;
    assert!(matches!(
        item(&report, "globex", StackKind::Worker).outcome,
        Some(Outcome::RolledBack { .. })
    ));
    let state = h
        .store
        .stack_states()
        .await
        .unwrap()
        .into_iter()
        .find(|s| s.stack == StackKind::Worker)
        .unwrap();
    assert_eq!(state.status.as_deref(), Some("UPDATE_ROLLBACK_COMPLETE"));
    assert_eq!(state.last_outcome.as_deref(), Some("rolled_back"));
    // The stack runs the previous release and template.
    assert_eq!(state.release.as_deref(), Some(stacks::RELEASE_VERSION));
    assert_eq!(state.template_hash.as_deref(), Some(deployed_hash.as_str()));
}

/// `coordinator recover` fixes the stack, but the state it leaves behind
/// still says the stack needs recovery, so `coordinator status` tells the
/// operator to run `coordinator recover` again.
#[test]

fn recover_records_the_recovered_stack_state() {
    let tenants = vec![standard_tenants()[0].clone()];
    let m = TempManifest::new(&manifest_text(&tenants, "coordinator.db"));
    let fake = fake_for(&tenants);
    let acme = tenants[0].clone();
    let state_path = m.dir.path().join("coordinator.db");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = SqliteStore::open(&state_path).unwrap();
        let h = Harness::with_fake_and_store(tenants.clone(), fake.clone(), store).await;
        let (_, _, first) = deploy(&h.fleet()).await;
        assert!(first.failed().is_empty(), "{first:#?}");
        fake.script(
            &acme.account_id(),
            acme.region(),
            "docproc-worker",
            Script::RollbackFails {
                resource: "ExtraQueue".into(),
                reason: "Queue name already taken (injected)".into(),
            },
        );
        let release = release_with_extra_worker_queue();
        let (_, _, report) = deploy(&h.fleet_with(&release, 4, STACK_WAIT)).await;
        assert!(matches!(
            item(&report, "acme", StackKind::Worker).outcome,
            Some(Outcome::NeedsRecovery { .. })
        ));
    });

    let code = cli::run_with(
        Cli::try_parse_from([
            "coordinator",
            "--manifest",
            m.path.to_str().unwrap(),
            "recover",
            "--tenant",
            "acme",
            "--stack",
            "worker",
            "--skip-resource",
            "ExtraQueue",
        ])
        .unwrap(),
        Some(Arc::new(fake.clone())),
    );
    assert_eq!(exit_code(code), 0);
    assert_eq!(
        fake.stack(&acme.account_id(), acme.region(), "docproc-worker")
            .unwrap()
            .status,
        StackStatus::UpdateRollbackComplete
    );

    let store = SqliteStore::open(&state_path).unwrap();
    let state = runtime
        .block_on(store.stack_states())
        .unwrap()
        .into_iter()
        .find(|s| s.stack == StackKind::Worker)
        .unwrap();
    assert_eq!(state.status.as_deref(), Some("UPDATE_ROLLBACK_COMPLETE"));
    assert_ne!(state.last_outcome.as_deref(), Some("needs_recovery"));
}

/// Deploys `acme` with 300 ms stack operations and 5 ms..10 s polls after
/// recording, when `history`, that each of its stacks took about 300 ms
/// last time; returns the deploy's (virtual) duration.
async fn deploy_after(history: bool) -> Duration {
    let h = Harness::new(standard_tenants()[..1].to_vec()).await;
    if history {
        for stack in [StackKind::Storage, StackKind::Worker] {
            record_earlier_operation(&h.store, "acme", stack, Duration::from_millis(300)).await;
        }
    }
    h.fake.set_operation_duration(Duration::from_millis(300));
    let policy = WaitPolicy {
        min_delay: Duration::from_millis(5),
        max_delay: Duration::from_secs(10),
        deadline: Duration::from_secs(60),
    };
    let fleet = h.fleet_with(Release::builtin(), 8, policy);
    let started = tokio::time::Instant::now();
    let (_, _, report) = deploy(&fleet).await;
    assert!(report.failed().is_empty(), "{report:#?}");
    started.elapsed()
}

#[tokio::test(start_paused = true)]
async fn a_stack_is_polled_densely_around_the_time_its_last_operation_took() {
    // Backing off from 5 ms, a 300 ms operation is first seen settled at
    // the poll after 5+10+20+40+80+160 = 315 ms at the earliest.
    let plain = deploy_after(false).await;
    assert!(plain >= Duration::from_millis(630), "{plain:?}");
    // With each stack's last duration on record, polls every 5 ms from
    // 3/4 of it see each one within 5 ms.
    let expected = deploy_after(true).await;
    assert!(expected <= Duration::from_millis(610), "{expected:?}");
}
