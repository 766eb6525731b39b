//! No secret ever leaves the coordinator: not the tenants' temporary
//! credentials, not the ExternalIds, in logs (at TRACE), reports, plans, or
//! the state database. Runs a deploy and a failing one on the fake AWS with
//! every log captured.

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use coordinator::access;
use coordinator::aws::fake::{FakeCloud, Trust};
use coordinator::deploy::Fleet;
use coordinator::manifest;
use coordinator::plan::PlanOptions;
use coordinator::store::Store;
use coordinator::store::sqlite::SqliteStore;
use coordinator::wait::WaitPolicy;
use std::time::Duration;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

const EXTERNAL_A: &str = "planted-external-id-AAAAAAAAAAAAAAAAAAAAAAAA";
const EXTERNAL_B: &str = "planted-external-id-BBBBBBBBBBBBBBBBBBBBBBBB";

fn manifest_text(dir: &Path) -> String {
    format!(
        r#"
[coordinator]
account_id = "111111111111"
region = "us-east-1"
state = "{state}"

[release]
version = "{release}"

[rollout]
waves = ["canary"]

[[tenants]]
id = "alpha"
account_id = "210000000001"
region = "eu-west-1"
external_id = "{EXTERNAL_A}"
wave = "canary"
capabilities = ["dedicated_aws", "byo_ai_keys"]

[[tenants]]
id = "bravo"
account_id = "210000000002"
region = "us-east-1"
external_id = "{EXTERNAL_B}"
wave = "canary"
capabilities = ["dedicated_aws"]
"#,
        state = dir.join("state.db").display(),
        release = stacks::RELEASE_VERSION,
    )
}

#[tokio::test]
async fn credentials_and_external_ids_appear_nowhere() {
    let dir = tempfile::tempdir().unwrap();
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let m = manifest::from_text(&dir.path().join("deploy.toml"), manifest_text(dir.path()))
        .unwrap()
        .manifest;
    let fake = FakeCloud::new();
    for t in &m.tenants {
        fake.add_role(
            &t.account_id,
            "docproc-coordinator-deploy",
            Trust::requiring(&t.external_id),
        );
    }
    // Bravo revokes access: its failure path is logged and reported too.
    fake.deny_assume(&m.tenants[1].role_arn);
    let store = SqliteStore::open(&m.coordinator.state_path).unwrap();
    let operator = access::operator(&fake).await.unwrap();
    let fast = WaitPolicy {
        min_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
        deadline: Duration::from_secs(10),
    };
    let release = stacks::Release::builtin();
    let fleet = Fleet {
        connector: &fake,
        store: &store,
        manifest: &m,
        release,
        operator: &operator,
        concurrency: 2,
        stack_wait: fast,
        change_set_wait: fast,
    };
    let planned = fleet
        .observe_and_plan(None, PlanOptions::default())
        .await
        .unwrap();
    let plan = fleet.record(planned.draft.clone()).await.unwrap();
    let report = fleet
        .apply(&plan, &planned, &|p| tracing::info!(?p, "progress"))
        .await;
    assert!(report.tenants[0].ok(), "{report:?}");
    assert!(!report.tenants[1].ok(), "bravo's access was revoked");
    // A second, credential-refreshing round.
    let planned_again = fleet
        .observe_and_plan(None, PlanOptions::default())
        .await
        .unwrap();

    let mut everything = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    for text in [
        serde_json::to_string(&plan).unwrap(),
        serde_json::to_string(&report).unwrap(),
        serde_json::to_string(&planned.inventory).unwrap(),
        serde_json::to_string(&planned_again.inventory).unwrap(),
        format!("{planned:?} {planned_again:?} {m:?}"),
        serde_json::to_string(&store.audit_entries(0, 1000).await.unwrap()).unwrap(),
        serde_json::to_string(&store.deployments(None, 1000).await.unwrap()).unwrap(),
        serde_json::to_string(&store.stack_states().await.unwrap()).unwrap(),
        serde_json::to_string(&store.latest_plan().await.unwrap()).unwrap(),
    ] {
        everything.push_str(&text);
    }
    // The SQLite file itself, WAL included.
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("state.db")
        {
            everything.push_str(&String::from_utf8_lossy(&std::fs::read(path).unwrap()));
        }
    }
    assert!(
        everything.len() > 10_000,
        "captured too little to mean anything: {}",
        everything.len()
    );
    assert!(
        everything.contains("deploy.stack"),
        "the audit log was captured"
    );
    assert!(fake.assume_count() >= 2);
    for planted in [
        "fake-secret-",
        "fake-session-token-",
        EXTERNAL_A,
        EXTERNAL_B,
    ] {
        assert!(!everything.contains(planted), "{planted} leaked");
    }
}
