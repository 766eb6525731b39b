//! Capabilities through the CLI on the fake cloud: a command naming a
//! tenant without the capability it needs is refused and changes nothing
//! (no AWS call, state file unchanged); fleet-wide commands skip such
//! tenants and say so; and applying a manifest (deploy, rollout start,
//! serve) audits each tenant's capability changes with the operator.

mod support;

use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use coordinator::aws::fake::{DEFAULT_OPERATOR_ARN, FakeCloud};
use coordinator::capability_changes::{CHANGED, SET};
use coordinator::cli::{self, Cli};
use coordinator::store::audit::{self, AuditEntry};
use coordinator::store::sqlite::SqliteStore;
use coordinator::store::{NewAuditEntry, NewPlan, Store};
use serde_json::json;
use support::{
    TempManifest, TenantSpec, fake_for, fake_with_agents, manifest_text, standard_tenants,
};

const HOOLI_ACCOUNT: &str = "555555555555";

fn exit_code(code: ExitCode) -> u8 {
    (0..=255u8)
        .find(|c| code == ExitCode::from(*c))
        .expect("an exit code")
}

/// Runs the CLI in this process on `fake`.
fn run(m: &TempManifest, fake: &FakeCloud, args: &[&str]) -> u8 {
    let mut argv = vec!["coordinator", "--manifest", m.path.to_str().unwrap()];
    argv.extend_from_slice(args);
    exit_code(cli::run_with(
        Cli::try_parse_from(&argv).unwrap(),
        Some(Arc::new(fake.clone())),
    ))
}

/// Every row of every table, as text: compares a state file before and
/// after a command.
fn dump(db: &Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut out = Vec::new();
    for table in tables {
        let mut stmt = conn.prepare(&format!("SELECT * FROM \"{table}\"")).unwrap();
        let columns = stmt.column_count();
        let rows = stmt
            .query_map([], |r| {
                let values: Vec<String> = (0..columns)
                    .map(|i| format!("{:?}", r.get_ref(i).unwrap()))
                    .collect();
                Ok(values.join("|"))
            })
            .unwrap();
        for row in rows {
            out.push(format!("{table}: {}", row.unwrap()));
        }
    }
    out
}

fn block_on<T>(f: impl Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn audit_of(db: &Path) -> Vec<AuditEntry> {
    let store = SqliteStore::open(db).unwrap();
    block_on(store.audit_entries(0, 10_000)).unwrap()
}

fn capability_entries(db: &Path) -> Vec<AuditEntry> {
    audit_of(db)
        .into_iter()
        .filter(|e| e.action == SET || e.action == CHANGED)
        .collect()
}

fn tenant_of(e: &AuditEntry) -> &str {
    e.tenant.as_ref().map(|t| t.as_str()).unwrap_or("")
}

// ---------------------------------------------------------------------------
// Child processes, to read what a command prints (and to stop `serve`).

const CHILD_ARGS: &str = "CAPABILITIES_CHILD_ARGS";

/// Runs the CLI with the arguments in [`CHILD_ARGS`] on a fake where every
/// tenant of the manifest has its role and an answering agent; does nothing
/// unless started by [`child`].
#[test]
#[ignore = "helper: run in a child process by the tests below"]
fn cli_child_process() {
    let Ok(args) = std::env::var(CHILD_ARGS) else {
        return;
    };
    let argv: Vec<String> = serde_json::from_str(&args).unwrap();
    let cli = Cli::try_parse_from(&argv).unwrap();
    let manifest = coordinator::manifest::load(&cli.manifest).unwrap().manifest;
    let fake = fake_with_agents(&manifest);
    let code = cli::run_with(cli, Some(Arc::new(fake)));
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    std::process::exit(i32::from(exit_code(code)));
}

fn child(m: &TempManifest, args: &[&str]) -> Command {
    let mut argv = vec!["coordinator", "--manifest", m.path.to_str().unwrap()];
    argv.extend_from_slice(args);
    let mut c = Command::new(std::env::current_exe().expect("test binary"));
    c.args([
        "--exact",
        "cli_child_process",
        "--ignored",
        "--nocapture",
        "--test-threads",
        "1",
    ])
    .env(CHILD_ARGS, serde_json::to_string(&argv).unwrap());
    c
}

struct ChildRun {
    code: Option<i32>,
    stderr: String,
}

fn run_child(m: &TempManifest, args: &[&str]) -> ChildRun {
    let out = child(m, args).output().expect("the test binary runs");
    ChildRun {
        code: out.status.code(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

// ---------------------------------------------------------------------------
// 1. Naming a tenant without the capability: refused, nothing changes.

#[test]
fn naming_a_tenant_without_dedicated_aws_is_refused_and_changes_nothing() {
    let tenants = standard_tenants();
    let m = TempManifest::new(&manifest_text(&tenants, "coordinator.db"));
    let db = m.dir.path().join("coordinator.db");
    {
        // Some state to keep unchanged.
        let store = SqliteStore::open(&db).unwrap();
        block_on(async {
            store
                .record_plan(NewPlan {
                    actor: DEFAULT_OPERATOR_ARN.into(),
                    release: stacks::RELEASE_VERSION.into(),
                    manifest_digest: "sha256:00".into(),
                    summary: json!({}),
                })
                .await
                .unwrap();
            store
                .append_audit(NewAuditEntry {
                    actor: DEFAULT_OPERATOR_ARN.into(),
                    tenant: Some("hooli".parse().unwrap()),
                    action: "test.seed".into(),
                    details: json!({}),
                })
                .await
                .unwrap();
        });
    }
    let before = dump(&db);
    let files_before = m.other_files();
    // Hooli's role exists, so only the entitlement check stands in the way.
    let fake = fake_for(&tenants);
    let onboarding = m.dir.path().join("onboarding");
    for args in [
        &["deploy", "--tenant", "hooli", "--yes"][..],
        &["plan", "--tenant", "hooli"],
        &["tenant", "verify", "hooli"],
        &["heartbeat", "--once", "--tenant", "hooli"],
        &[
            "tenant",
            "onboard",
            "newco",
            "--account-id",
            "666666666666",
            "--region",
            "eu-west-1",
            "--capabilities",
            "byo_ai_keys,customer_storage",
            "--out",
            onboarding.to_str().unwrap(),
        ],
    ] {
        assert_eq!(run(&m, &fake, args), 2, "{args:?}");
        assert!(fake.calls().is_empty(), "{args:?}: {:#?}", fake.calls());
        assert_eq!(dump(&db), before, "{args:?} changed the state file");
        assert_eq!(m.other_files(), files_before, "{args:?} wrote files");
    }
    assert!(!onboarding.exists());
}

#[test]
fn the_refusal_names_the_tenant_the_capability_the_operation_and_the_fix() {
    let m = TempManifest::new(&manifest_text(&standard_tenants(), "coordinator.db"));
    for (args, operation) in [
        (&["deploy", "--tenant", "hooli", "--yes"][..], "deploy"),
        (&["plan", "--tenant", "hooli"], "plan"),
        (&["tenant", "verify", "hooli"], "tenant verify"),
        (&["heartbeat", "--once", "--tenant", "hooli"], "heartbeat"),
    ] {
        let out = run_child(&m, args);
        assert_eq!(out.code, Some(2), "{args:?}: {}", out.stderr);
        let expected = format!(
            "error: tenant `hooli` is not entitled to {operation}: it lacks the `dedicated_aws` capability; \
             if the tenant's contract includes it, add \"dedicated_aws\" to the tenant's `capabilities` in deploy.toml"
        );
        assert!(out.stderr.contains(&expected), "{args:?}: {}", out.stderr);
    }
    let out = run_child(
        &m,
        &[
            "tenant",
            "onboard",
            "newco",
            "--account-id",
            "666666666666",
            "--region",
            "eu-west-1",
            "--capabilities",
            "byo_ai_keys",
            "--out",
            m.dir.path().join("onboarding").to_str().unwrap(),
        ],
    );
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("--capabilities"), "{}", out.stderr);
    assert!(out.stderr.contains("`dedicated_aws`"), "{}", out.stderr);
    assert!(out.stderr.contains("tenant onboard"), "{}", out.stderr);
}

// ---------------------------------------------------------------------------
// 2. Fleet-wide: skipped and said so.

#[test]
fn a_fleet_wide_deploy_skips_tenants_without_dedicated_aws_and_says_so() {
    let m = TempManifest::new(&manifest_text(&standard_tenants(), "coordinator.db"));
    let out = run_child(&m, &["deploy", "--yes"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stderr.contains(
            "note: deploy skips 1 tenant(s) without the `dedicated_aws` capability: hooli"
        ),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("audit: tenant hooli capabilities set: [byo_ai_keys]"),
        "{}",
        out.stderr
    );
}

// ---------------------------------------------------------------------------
// 3. Capability changes between applied manifests are audited.

/// `standard_tenants` with changed capabilities.
fn with_capabilities(changes: &[(&str, &[&'static str])]) -> Vec<TenantSpec> {
    let mut tenants = standard_tenants();
    for (id, caps) in changes {
        let t = tenants.iter_mut().find(|t| t.id == *id).unwrap();
        t.capabilities = caps.to_vec();
    }
    tenants
}

fn digest_of(m: &TempManifest) -> String {
    audit::digest(&std::fs::read(&m.path).unwrap())
}

#[test]
fn deploy_audits_capability_changes_between_applied_manifests() {
    let tenants = standard_tenants();
    let m = TempManifest::new(&manifest_text(&tenants, "coordinator.db"));
    let db = m.dir.path().join("coordinator.db");
    let fake = fake_for(&tenants);

    // First application: every tenant's set is recorded.
    assert_eq!(run(&m, &fake, &["deploy", "--yes"]), 0);
    let first = capability_entries(&db);
    let v1 = digest_of(&m);
    let summary: Vec<(&str, &str, serde_json::Value)> = first
        .iter()
        .map(|e| {
            (
                e.action.as_str(),
                tenant_of(e),
                e.details["capabilities"].clone(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (SET, "acme", json!(["byo_ai_keys", "dedicated_aws"])),
            (SET, "globex", json!(["dedicated_aws"])),
            (SET, "initech", json!(["dedicated_aws"])),
            (SET, "hooli", json!(["byo_ai_keys"])),
        ]
    );
    for e in &first {
        assert_eq!(e.actor, DEFAULT_OPERATOR_ARN);
        assert_eq!(e.details["manifest_digest"], v1.as_str());
    }
    // The hosted tenant was skipped: nothing happened in its account.
    assert!(
        !fake
            .calls()
            .iter()
            .any(|c| c.account.as_ref().map(|a| a.as_str()) == Some(HOOLI_ACCOUNT)),
        "{:#?}",
        fake.calls()
    );

    // The same manifest again: nothing new.
    assert_eq!(run(&m, &fake, &["deploy", "--yes"]), 0);
    assert_eq!(capability_entries(&db).len(), 4);

    // Capabilities that do not change any stack: acme and globex gain one,
    // hooli loses one; initech is unchanged.
    let v2 = with_capabilities(&[
        (
            "acme",
            &["dedicated_aws", "byo_ai_keys", "customer_storage"],
        ),
        ("globex", &["dedicated_aws", "customer_storage"]),
        ("hooli", &[]),
    ]);
    std::fs::write(&m.path, manifest_text(&v2, "coordinator.db")).unwrap();
    assert_eq!(run(&m, &fake, &["deploy", "--yes"]), 0);
    let v2_digest = digest_of(&m);
    let changed: Vec<AuditEntry> = capability_entries(&db).split_off(4);
    let summary: Vec<(&str, &str, serde_json::Value, serde_json::Value)> = changed
        .iter()
        .map(|e| {
            (
                e.action.as_str(),
                tenant_of(e),
                e.details["added"].clone(),
                e.details["removed"].clone(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (CHANGED, "acme", json!(["customer_storage"]), json!([])),
            (CHANGED, "globex", json!(["customer_storage"]), json!([])),
            (CHANGED, "hooli", json!([]), json!(["byo_ai_keys"])),
        ]
    );
    for e in &changed {
        assert_eq!(e.actor, DEFAULT_OPERATOR_ARN);
        assert_eq!(e.details["manifest_digest"], v2_digest.as_str());
    }

    // A deploy of one tenant applies the manifest to that tenant only.
    let v3 = with_capabilities(&[
        ("acme", &["dedicated_aws", "byo_ai_keys"]),
        ("initech", &["dedicated_aws", "customer_storage"]),
    ]);
    std::fs::write(&m.path, manifest_text(&v3, "coordinator.db")).unwrap();
    assert_eq!(
        run(&m, &fake, &["deploy", "--tenant", "initech", "--yes"]),
        0
    );
    let latest: Vec<AuditEntry> = capability_entries(&db).split_off(7);
    assert_eq!(latest.len(), 1, "{latest:#?}");
    assert_eq!(tenant_of(&latest[0]), "initech");
    assert_eq!(latest[0].details["added"], json!(["customer_storage"]));

    // Plan applies nothing.
    assert_eq!(run(&m, &fake, &["plan"]), 0);
    assert_eq!(capability_entries(&db).len(), 8);

    // And the chain with all of it verifies.
    assert_eq!(run(&m, &fake, &["audit", "verify"]), 0);
}

#[test]
fn a_cancelled_deploy_applies_nothing() {
    let m = TempManifest::new(&manifest_text(&standard_tenants(), "coordinator.db"));
    // Without --yes and without a terminal the deploy is refused after
    // planning: the manifest was not applied.
    let out = run_child(&m, &["deploy"]);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(capability_entries(&m.dir.path().join("coordinator.db")).is_empty());
}

#[test]
fn rollout_start_audits_capabilities_and_leaves_out_hosted_tenants() {
    let tenants = standard_tenants();
    let text = manifest_text(&tenants, "coordinator.db").replace(
        "[rollout]\nwaves = [\"general\"]\n",
        "[rollout]\nwaves = [\"general\"]\nbake_time = \"0s\"\n",
    );
    let m = TempManifest::new(&text);
    let manifest = coordinator::manifest::load(&m.path).unwrap().manifest;
    let fake = fake_with_agents(&manifest);
    let code = run(
        &m,
        &fake,
        &["rollout", "start", "--yes", "--poll-interval", "1"],
    );
    assert_eq!(code, 0);
    let db = m.dir.path().join("coordinator.db");
    let entries = capability_entries(&db);
    let tenants: Vec<&str> = entries.iter().map(tenant_of).collect();
    assert_eq!(tenants, ["acme", "globex", "initech", "hooli"]);
    assert!(
        entries
            .iter()
            .all(|e| e.action == SET && e.actor == DEFAULT_OPERATOR_ARN)
    );
    // The rollout never touched hooli.
    let store = SqliteStore::open(&db).unwrap();
    let events = block_on(async {
        let latest = store.latest_rollout().await.unwrap().unwrap();
        store.rollout_events(latest.id).await.unwrap()
    });
    assert!(
        events
            .iter()
            .all(|e| e.event.tenant.as_ref().map(|t| t.as_str()) != Some("hooli")),
        "{events:#?}"
    );
    assert!(
        events
            .iter()
            .any(|e| e.event.tenant.as_ref().map(|t| t.as_str()) == Some("acme"))
    );
}

#[test]
fn serve_start_audits_capabilities() {
    let tenants = with_capabilities(&[("globex", &["dedicated_aws", "customer_storage"])]);
    let text = format!(
        "{}\n[api]\nlisten = \"127.0.0.1:0\"\n\n[[api.tokens]]\nsubject = \"wall\"\nrole = \"viewer\"\nsha256 = \"{}\"\n",
        manifest_text(&tenants, "coordinator.db"),
        "ab".repeat(32)
    );
    let m = TempManifest::new(&text);
    let db = m.dir.path().join("coordinator.db");
    let serve = child(&m, &["serve"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("serve starts");
    let deadline = Instant::now() + Duration::from_secs(60);
    let entries = loop {
        let entries = if db.exists() {
            capability_entries(&db)
        } else {
            Vec::new()
        };
        if entries.len() == 4 || Instant::now() > deadline {
            break entries;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let _ = Command::new("kill")
        .args(["-TERM", &serve.id().to_string()])
        .status();
    let out = serve.wait_with_output().unwrap();
    assert_eq!(
        entries.len(),
        4,
        "serve did not record ({:?}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let globex = entries.iter().find(|e| tenant_of(e) == "globex").unwrap();
    assert_eq!(globex.action, SET);
    assert_eq!(
        globex.details["capabilities"],
        json!(["customer_storage", "dedicated_aws"])
    );
    assert_eq!(globex.actor, DEFAULT_OPERATOR_ARN);
}
