//! Helpers for deploying fleets on the in-memory fake AWS: manifests, a
//! fake with each tenant's deploy role, a fleet over an in-memory store, and
//! ways to look at the fake's call log.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use coordinator::access::{self, Operator};
use coordinator::apply::Progress;
use coordinator::aws::fake::{Call, FakeCloud, Trust};
use coordinator::deploy::{DeployReport, Fleet, ItemReport, Planned, TenantReport};
use coordinator::manifest::Manifest;
use coordinator::plan::{Plan, PlanOptions};
use coordinator::store::sqlite::SqliteStore;
use coordinator::wait::WaitPolicy;
use stacks::ids::{AccountId, Region, TenantId};
use stacks::{Release, StackKind};

/// The deploy role's name in every tenant account.
pub const DEPLOY_ROLE: &str = "docproc-coordinator-deploy";
/// The vendor account (the fake operator's account).
pub const VENDOR_ACCOUNT: &str = "111111111111";

/// Stack waits for tests: short delays, a deadline far beyond any fake
/// operation unless a test shortens it.
pub const STACK_WAIT: WaitPolicy = WaitPolicy {
    min_delay: Duration::from_millis(500),
    max_delay: Duration::from_secs(2),
    deadline: Duration::from_secs(600),
};

/// Change-set waits for tests.
pub const CHANGE_SET_WAIT: WaitPolicy = WaitPolicy {
    min_delay: Duration::from_millis(200),
    max_delay: Duration::from_secs(1),
    deadline: Duration::from_secs(60),
};

/// One `[[tenants]]` entry.
#[derive(Debug, Clone)]
pub struct TenantSpec {
    pub id: String,
    pub account: String,
    pub region: String,
    pub external_id: String,
    pub capabilities: Vec<&'static str>,
}

impl TenantSpec {
    /// A tenant with a distinct account and ExternalId derived from `n`.
    pub fn numbered(id: &str, n: u32, region: &str, capabilities: &[&'static str]) -> Self {
        Self {
            id: id.to_owned(),
            account: format!("{:012}", 200_000_000_000u64 + u64::from(n) * 1_111),
            region: region.to_owned(),
            external_id: format!("TestExternalId-{n:04}-0123456789abcdefghijklmnop"),
            capabilities: capabilities.to_vec(),
        }
    }

    pub fn tenant_id(&self) -> TenantId {
        self.id.parse().expect("valid tenant id")
    }

    pub fn account_id(&self) -> AccountId {
        self.account.parse().expect("valid account id")
    }

    pub fn region(&self) -> Region {
        self.region.parse().expect("valid region")
    }
}

/// Three dedicated tenants (acme brings its own AI keys) and one hosted one.
pub fn standard_tenants() -> Vec<TenantSpec> {
    vec![
        TenantSpec {
            id: "acme".into(),
            account: "222222222222".into(),
            region: "eu-west-1".into(),
            external_id: "jETE7Z9YTepNk2z3Op8cy9w2LY1mmupALzi08IBD".into(),
            capabilities: vec!["dedicated_aws", "byo_ai_keys"],
        },
        TenantSpec {
            id: "globex".into(),
            account: "333333333333".into(),
            region: "us-east-1".into(),
            external_id: "FQwRRI2yICPEp6ZOF4eBoFdJeOuY4L61Bzo82922".into(),
            capabilities: vec!["dedicated_aws"],
        },
        TenantSpec {
            id: "initech".into(),
            account: "444444444444".into(),
            region: "eu-central-1".into(),
            external_id: "BfCI4RRvg8gadkEdCoFWOjls61GOKrxzw05fU25a".into(),
            capabilities: vec!["dedicated_aws"],
        },
        TenantSpec {
            id: "hooli".into(),
            account: "555555555555".into(),
            region: "us-west-2".into(),
            external_id: "V0eL6mgAns6JIgMuUAUVfFmStNjkrKHkRKFzoQtB".into(),
            capabilities: vec!["byo_ai_keys"],
        },
    ]
}

/// The text of a manifest with `tenants`, its state at `state`.
pub fn manifest_text(tenants: &[TenantSpec], state: &str) -> String {
    let mut text = format!(
        "[coordinator]\naccount_id = \"{VENDOR_ACCOUNT}\"\nregion = \"us-east-1\"\nstate = \"{state}\"\n\n\
         [release]\nversion = \"{}\"\n\n[rollout]\nwaves = [\"general\"]\n",
        stacks::RELEASE_VERSION
    );
    for t in tenants {
        let caps: Vec<String> = t.capabilities.iter().map(|c| format!("\"{c}\"")).collect();
        text.push_str(&format!(
            "\n[[tenants]]\nid = \"{}\"\naccount_id = \"{}\"\nregion = \"{}\"\nexternal_id = \"{}\"\nwave = \"general\"\ncapabilities = [{}]\n",
            t.id,
            t.account,
            t.region,
            t.external_id,
            caps.join(", ")
        ));
    }
    text
}

/// A validated manifest of `tenants` (as if read from `deploy.toml`).
pub fn manifest(tenants: &[TenantSpec]) -> Manifest {
    coordinator::manifest::from_text(
        Path::new("deploy.toml"),
        manifest_text(tenants, "coordinator.db"),
    )
    .unwrap_or_else(|e| panic!("test manifest is invalid: {}", e.report.render()))
    .manifest
}

/// A fake cloud where every tenant's deploy role requires its ExternalId.
pub fn fake_for(tenants: &[TenantSpec]) -> FakeCloud {
    let fake = FakeCloud::new();
    for t in tenants {
        let external_id = t.external_id.parse().expect("valid ExternalId");
        fake.add_role(&t.account_id(), DEPLOY_ROLE, Trust::requiring(&external_id));
    }
    fake
}

/// Everything a fleet needs, owned.
pub struct Harness {
    pub tenants: Vec<TenantSpec>,
    pub fake: FakeCloud,
    pub store: SqliteStore,
    pub manifest: Manifest,
    pub operator: Operator,
}

impl Harness {
    /// A harness for `tenants` on a fresh fake; call inside the (paused)
    /// runtime so the fake's clock is the test's.
    pub async fn new(tenants: Vec<TenantSpec>) -> Self {
        let fake = fake_for(&tenants);
        Self::with_fake(tenants, fake).await
    }

    /// A harness over a prepared fake.
    pub async fn with_fake(tenants: Vec<TenantSpec>, fake: FakeCloud) -> Self {
        let store = SqliteStore::in_memory().expect("in-memory store");
        Self::with_fake_and_store(tenants, fake, store).await
    }

    /// A harness over a prepared fake and store.
    pub async fn with_fake_and_store(
        tenants: Vec<TenantSpec>,
        fake: FakeCloud,
        store: SqliteStore,
    ) -> Self {
        let manifest = manifest(&tenants);
        let operator = access::operator(&fake).await.expect("operator identity");
        Self {
            tenants,
            fake,
            store,
            manifest,
            operator,
        }
    }

    pub fn spec(&self, id: &str) -> &TenantSpec {
        self.tenants
            .iter()
            .find(|t| t.id == id)
            .unwrap_or_else(|| panic!("no tenant {id}"))
    }

    /// A fleet over the builtin release.
    pub fn fleet(&self) -> Fleet<'_> {
        self.fleet_with(Release::builtin(), 4, STACK_WAIT)
    }

    pub fn fleet_with<'a>(
        &'a self,
        release: &'a Release,
        concurrency: usize,
        stack_wait: WaitPolicy,
    ) -> Fleet<'a> {
        Fleet {
            connector: &self.fake,
            store: &self.store,
            manifest: &self.manifest,
            release,
            operator: &self.operator,
            concurrency,
            stack_wait,
            change_set_wait: CHANGE_SET_WAIT,
        }
    }

    /// A stack as the fake shows it now.
    pub fn stack(&self, id: &str, kind: StackKind) -> Option<coordinator::aws::StackDescription> {
        let t = self.spec(id);
        self.fake
            .stack(&t.account_id(), t.region(), kind.stack_name())
    }

    /// What a stack is deployed with now.
    pub fn deployed(
        &self,
        id: &str,
        kind: StackKind,
    ) -> Option<coordinator::aws::fake::DeployedStack> {
        let t = self.spec(id);
        self.fake
            .deployed(&t.account_id(), t.region(), kind.stack_name())
    }

    /// CloudFormation calls acting in `id`'s account.
    pub fn cfn_calls(&self, id: &str) -> Vec<Call> {
        cfn_calls_in(&self.fake, &self.spec(id).account_id())
    }
}

/// Observe, plan, record and apply once.
pub async fn deploy(fleet: &Fleet<'_>) -> (Planned, Plan, DeployReport) {
    deploy_with(fleet, &|_| {}).await
}

/// Observe, plan, record and apply once, with progress.
pub async fn deploy_with(
    fleet: &Fleet<'_>,
    progress: &(dyn Fn(Progress<'_>) + Send + Sync),
) -> (Planned, Plan, DeployReport) {
    let planned = fleet
        .observe_and_plan(None, PlanOptions::default())
        .await
        .expect("plan");
    let plan = fleet.record(planned.draft.clone()).await.expect("record");
    let report = fleet.apply(&plan, &planned, progress).await;
    (planned, plan, report)
}

/// CloudFormation calls that acted in `account`.
pub fn cfn_calls_in(fake: &FakeCloud, account: &AccountId) -> Vec<Call> {
    fake.calls()
        .into_iter()
        .filter(|c| c.service == "cloudformation" && c.account.as_ref() == Some(account))
        .collect()
}

/// The report of one tenant.
pub fn tenant_report<'r>(report: &'r DeployReport, id: &str) -> &'r TenantReport {
    report
        .tenants
        .iter()
        .find(|t| t.tenant.as_str() == id)
        .unwrap_or_else(|| panic!("no report for {id}: {report:#?}"))
}

/// The report of one tenant's stack.
pub fn item<'r>(report: &'r DeployReport, id: &str, kind: StackKind) -> &'r ItemReport {
    tenant_report(report, id)
        .items
        .iter()
        .find(|i| i.stack == kind)
        .unwrap_or_else(|| panic!("no {kind} item for {id}: {report:#?}"))
}

/// Progress events as lines, with when they arrived (tokio time).
#[derive(Debug, Default)]
pub struct ProgressLog {
    pub lines: Mutex<Vec<(tokio::time::Instant, String)>>,
}

impl ProgressLog {
    pub fn record(&self, p: Progress<'_>) {
        let line = match p {
            Progress::Started {
                tenant,
                stack,
                action,
            } => format!("{tenant} {stack} started {action}"),
            Progress::Event {
                tenant,
                stack,
                event,
            } => format!("{tenant} {stack} {} {}", event.logical_id, event.status),
        };
        self.lines
            .lock()
            .unwrap()
            .push((tokio::time::Instant::now(), line));
    }

    pub fn lines(&self) -> Vec<(tokio::time::Instant, String)> {
        self.lines.lock().unwrap().clone()
    }
}

/// A temporary directory holding `deploy.toml` (state `coordinator.db`
/// beside it, unless `state` says otherwise).
pub struct TempManifest {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
}

impl TempManifest {
    pub fn new(text: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("deploy.toml");
        std::fs::write(&path, text).expect("write manifest");
        Self { dir, path }
    }

    /// Every entry in the directory except the manifest.
    pub fn other_files(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut stack = vec![self.dir.path().to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).expect("read dir") {
                let p = e.expect("entry").path();
                if p.is_dir() {
                    out.push(p.clone());
                    stack.push(p);
                } else if p != self.path {
                    out.push(p);
                }
            }
        }
        out
    }
}

/// A fake cloud in which every tenant of `m` has its deploy role (trusting
/// its own ExternalId) and an agent answering heartbeats.
pub fn fake_with_agents(m: &Manifest) -> FakeCloud {
    let fake = FakeCloud::new();
    for t in &m.tenants {
        fake.add_role(
            &t.account_id,
            "docproc-coordinator-deploy",
            Trust::requiring(&t.external_id),
        );
        fake.respond_to_pings(&t.account_id, t.region, true);
    }
    fake
}

/// Deploys `m`'s fleet on `fake` into `store` with fast waits; panics unless
/// every tenant ends as planned.
pub async fn deploy_on(
    fake: &FakeCloud,
    m: &Manifest,
    store: &dyn coordinator::store::Store,
) -> DeployReport {
    let operator = access::operator(fake).await.expect("operator");
    let fast = WaitPolicy {
        min_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
        deadline: Duration::from_secs(10),
    };
    let fleet = Fleet {
        connector: fake,
        store,
        manifest: m,
        release: Release::builtin(),
        operator: &operator,
        concurrency: 8,
        stack_wait: fast,
        change_set_wait: fast,
    };
    let (_, _, report) = deploy(&fleet).await;
    assert!(report.failed().is_empty(), "{report:?}");
    report
}

/// Records that `tenant` stored secret `name` (as `coordinator secret put`
/// does after writing the value), so configurations may reference it.
pub async fn record_secret_put(
    store: &dyn coordinator::store::Store,
    tenant: &TenantId,
    name: &str,
    actor: &str,
) {
    use coordinator::store::privacy::{SecretAction, SecretWrite};
    let write = SecretWrite {
        tenant: tenant.clone(),
        name: name.parse().unwrap(),
        backend: coordinator::secrets::BackendKind::Hosted,
        version: Some("1".into()),
        digest: Some("sha256:00".into()),
        action: SecretAction::Put,
        actor: actor.into(),
        at: chrono::Utc::now(),
    };
    let audit = coordinator::store::NewAuditEntry {
        actor: actor.into(),
        tenant: Some(tenant.clone()),
        action: "secret.put".into(),
        details: serde_json::json!({ "name": name }),
    };
    store.record_secret_write(write, audit).await.unwrap();
}

/// Records, as an earlier deployment would have, that `tenant`'s `stack`
/// operation succeeded after about `took` (the store's clock is the wall
/// clock, not a paused one, so this sleeps for real). Records a plan of
/// generation 1 first if there is none.
pub async fn record_earlier_operation(
    store: &SqliteStore,
    tenant: &str,
    stack: StackKind,
    took: Duration,
) {
    use coordinator::store::{DeploymentResult, NewDeployment, NewPlan, Store as _};
    if store.latest_plan().await.unwrap().is_none() {
        store
            .record_plan(NewPlan {
                actor: "test".into(),
                release: "earlier".into(),
                manifest_digest: "d".into(),
                summary: serde_json::json!({}),
            })
            .await
            .unwrap();
    }
    let id = store
        .start_deployment(NewDeployment {
            generation: 1,
            tenant: tenant.parse().unwrap(),
            stack,
            action: "create".into(),
            token: "earlier".into(),
        })
        .await
        .unwrap();
    std::thread::sleep(took);
    store
        .finish_deployment(
            id,
            DeploymentResult {
                outcome: "succeeded".into(),
                status: None,
                reason: None,
            },
        )
        .await
        .unwrap();
}
