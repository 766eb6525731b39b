//! The status service over real HTTP: a server on a random loopback port,
//! serving a fleet deployed on the fake AWS (three dedicated tenants, one of
//! them with a dead agent, and one hosted tenant), two tokens (viewer and
//! operator), and planted secrets that must never come back: the tenants'
//! ExternalIds, the tokens themselves, and the fake's credentials.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser as _;
use coordinator::access;
use coordinator::api::{self, AppState, auth};
use coordinator::aws::fake::FakeCloud;
use coordinator::cli::{self, Cli};
use coordinator::heartbeat::detector::Health;
use coordinator::heartbeat::monitor::Monitor;
use coordinator::manifest::duration::HumanDuration;
use coordinator::manifest::raw::{RawToken, TokenRole};
use coordinator::manifest::{self, Manifest};
use coordinator::store::Store;
use coordinator::store::sqlite::SqliteStore;
use reqwest::header::{self, HeaderMap};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use support::{TempManifest, VENDOR_ACCOUNT};

const INTERVAL: Duration = Duration::from_millis(200);
const VIEWER: &str = "wallboard";
const OPERATOR: &str = "sre-oncall";
const SERVICE: &str = "doc-worker";
/// The tenant whose agent stops answering.
const DEAD: &str = "initech";
const HOSTED: &str = "hooli";

/// (id, account, region, wave, capabilities); ExternalIds are planted.
const TENANTS: &[(&str, &str, &str, &str, &str)] = &[
    (
        "acme",
        "222222222222",
        "eu-west-1",
        "canary",
        "\"dedicated_aws\", \"byo_ai_keys\"",
    ),
    (
        "globex",
        "333333333333",
        "us-east-1",
        "general",
        "\"dedicated_aws\"",
    ),
    (
        "initech",
        "444444444444",
        "eu-central-1",
        "general",
        "\"dedicated_aws\"",
    ),
    (
        "hooli",
        "555555555555",
        "us-west-2",
        "general",
        "\"byo_ai_keys\"",
    ),
];

/// A recognizable ExternalId for tenant `id` (at least 32 characters).
fn planted_external_id(id: &str) -> String {
    format!("PLANTEDEXTID-{id}-Zq8XkP2mW7rT4vN9bL3cH6")
}

fn manifest_text(state: &str, tokens: &str) -> String {
    let mut text = format!(
        "[coordinator]\naccount_id = \"{VENDOR_ACCOUNT}\"\nregion = \"us-east-1\"\nstate = \"{state}\"\n\n\
         [release]\nversion = \"{}\"\n\n[rollout]\nwaves = [\"canary\", \"general\"]\n{tokens}",
        stacks::RELEASE_VERSION
    );
    for (id, account, region, wave, caps) in TENANTS {
        text.push_str(&format!(
            "\n[[tenants]]\nid = \"{id}\"\naccount_id = \"{account}\"\nregion = \"{region}\"\nexternal_id = \"{}\"\nwave = \"{wave}\"\ncapabilities = [{caps}]\n",
            planted_external_id(id)
        ));
    }
    text
}

/// One HTTP exchange, as the client saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    path: String,
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Seen {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| {
            panic!(
                "{} {} did not answer JSON ({e}): {}",
                self.method, self.path, self.body
            )
        })
    }

    fn content_type(&self) -> &str {
        self.headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    /// A JSON error body with a status.
    fn assert_error(&self, status: StatusCode) {
        assert_eq!(
            self.status, status,
            "{} {}: {}",
            self.method, self.path, self.body
        );
        assert!(
            self.content_type().starts_with("application/json"),
            "{} {}: {:?}",
            self.method,
            self.path,
            self.headers
        );
        let error = self.json();
        assert!(
            error["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{error}"
        );
    }
}

/// How a request authenticates.
#[derive(Debug, Clone, Copy)]
enum Auth<'a> {
    None,
    Bearer(&'a str),
    Cookie(&'a str),
}

/// A running status service over a deployed fleet.
struct World {
    _dir: tempfile::TempDir,
    fake: FakeCloud,
    store: Arc<SqliteStore>,
    manifest: Arc<Manifest>,
    monitor: Arc<Monitor>,
    viewer: String,
    operator: String,
    service: String,
    base: String,
    http: reqwest::Client,
    seen: Mutex<Vec<Seen>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl World {
    /// Deploys the fleet, runs heartbeat rounds until the dead tenant is
    /// unreachable, and starts the server.
    async fn start() -> World {
        let dir = tempfile::tempdir().unwrap();
        let (viewer, operator, service) = (auth::generate(), auth::generate(), auth::generate());
        let text = manifest_text(&dir.path().join("state.db").display().to_string(), "");
        let mut m = manifest::from_text(&dir.path().join("deploy.toml"), text)
            .unwrap_or_else(|e| panic!("test manifest is invalid: {}", e.report.render()))
            .manifest;
        m.heartbeat.interval = HumanDuration::new(INTERVAL);
        m.api.tokens = vec![
            RawToken {
                subject: VIEWER.into(),
                role: TokenRole::Viewer,
                sha256: auth::hash(&viewer),
            },
            RawToken {
                subject: OPERATOR.into(),
                role: TokenRole::Operator,
                sha256: auth::hash(&operator),
            },
            RawToken {
                subject: SERVICE.into(),
                role: TokenRole::Service,
                sha256: auth::hash(&service),
            },
        ];
        let fake = support::fake_with_agents(&m);
        let store = Arc::new(SqliteStore::open(&m.coordinator.state_path).unwrap());
        support::deploy_on(&fake, &m, store.as_ref()).await;
        let operator_identity = access::operator(&fake).await.unwrap();

        let manifest = Arc::new(m);
        let monitor = Arc::new(
            Monitor::new(
                Arc::new(fake.clone()),
                store.clone(),
                manifest.clone(),
                operator_identity,
            )
            .await
            .unwrap(),
        );
        // Everyone answers, then the dead tenant's agent stops.
        rounds(&monitor, 2).await;
        let dead = manifest
            .tenants
            .iter()
            .find(|t| t.id.as_str() == DEAD)
            .unwrap();
        fake.respond_to_pings(&dead.account_id, dead.region, false);
        // Rounds until it is unreachable and the others are healthy (a
        // loaded machine can delay a round enough to make a live tenant late
        // for a round; it recovers at the next).
        let settled = |m: &Monitor| {
            health_of(m, DEAD) == Health::Unreachable
                && health_of(m, "acme") == Health::Healthy
                && health_of(m, "globex") == Health::Healthy
        };
        let mut seen = Vec::new();
        for _ in 0..12 {
            rounds(&monitor, 1).await;
            seen.push(
                monitor
                    .snapshot()
                    .into_iter()
                    .map(|s| s.health.state)
                    .collect::<Vec<_>>(),
            );
            if settled(&monitor) {
                break;
            }
        }
        assert!(settled(&monitor), "states per round: {seen:?}");

        let state = AppState {
            manifest: manifest.clone(),
            store: store.clone(),
            monitor: monitor.clone(),
            tokens: auth::Tokens::new(manifest.api.tokens.clone()),
        };
        let (bound_tx, bound_rx) = tokio::sync::oneshot::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(api::serve(
            state,
            "127.0.0.1:0".parse().unwrap(),
            move |addr| {
                let _ = bound_tx.send(addr);
            },
            async move {
                let _ = stop_rx.await;
            },
        ));
        let addr = tokio::time::timeout(Duration::from_secs(10), bound_rx)
            .await
            .expect("the server binds")
            .expect("the server reports its address");
        assert!(addr.ip().is_loopback() && addr.port() != 0, "{addr}");
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        World {
            _dir: dir,
            fake,
            store,
            manifest,
            monitor,
            viewer,
            operator,
            service,
            base: format!("http://{addr}"),
            http,
            seen: Mutex::new(Vec::new()),
            stop: Some(stop_tx),
            server: Some(server),
        }
    }

    /// Sends a request and records the response.
    async fn send(&self, method: Method, path: &str, auth: Auth<'_>) -> Seen {
        self.send_with(method, path, auth, None).await
    }

    /// Sends a request with an optional JSON body and records the response.
    async fn send_with(
        &self,
        method: Method,
        path: &str,
        auth: Auth<'_>,
        body: Option<&Value>,
    ) -> Seen {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(body);
        }
        match auth {
            Auth::None => {}
            Auth::Bearer(token) => request = request.bearer_auth(token),
            Auth::Cookie(token) => {
                request = request.header(header::COOKIE, format!("{}={token}", auth::COOKIE));
            }
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.text().await.unwrap();
        let seen = Seen {
            method,
            path: path.to_owned(),
            status,
            headers,
            body,
        };
        self.seen.lock().unwrap().push(seen.clone());
        seen
    }

    async fn get(&self, path: &str, auth: Auth<'_>) -> Seen {
        self.send(Method::GET, path, auth).await
    }

    /// GET with the viewer's bearer token, expecting 200 and JSON.
    async fn get_json(&self, path: &str) -> Value {
        let seen = self.get(path, Auth::Bearer(&self.viewer)).await;
        assert_eq!(seen.status, StatusCode::OK, "GET {path}: {}", seen.body);
        assert!(
            seen.content_type().starts_with("application/json"),
            "GET {path}: {:?}",
            seen.headers
        );
        seen.json()
    }

    /// Every exchange so far.
    fn exchanges(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Values that must never appear in a response.
    fn planted(&self) -> Vec<String> {
        let mut planted = vec![
            self.viewer.clone(),
            self.operator.clone(),
            auth::hash(&self.viewer),
            auth::hash(&self.operator),
            "fake-secret-".to_owned(),
            "fake-session-token-".to_owned(),
            "PLANTEDEXTID".to_owned(),
        ];
        for t in &self.manifest.tenants {
            planted.push(t.external_id.to_string());
            // The fake's access key ids are ASIA<account><seq>.
            planted.push(format!("ASIA{}", t.account_id));
        }
        planted
    }

    fn tenant(&self, id: &str) -> &manifest::Tenant {
        self.manifest
            .tenants
            .iter()
            .find(|t| t.id.as_str() == id)
            .unwrap_or_else(|| panic!("no tenant {id}"))
    }

    /// Stacks deployed across the fleet.
    fn stacks_deployed(&self) -> usize {
        self.manifest
            .tenants
            .iter()
            .map(|t| t.deployed_stacks().len())
            .sum()
    }

    /// Stops the server gracefully and checks it ended well.
    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            tokio::time::timeout(Duration::from_secs(10), server)
                .await
                .expect("the server stops after the shutdown signal")
                .expect("the server task did not panic")
                .expect("the server ended without an I/O error");
        }
    }
}

/// Runs `n` rounds starting one interval apart, as `Monitor::run` does.
async fn rounds(m: &Monitor, n: usize) {
    let mut ticker = tokio::time::interval(INTERVAL);
    for _ in 0..n {
        ticker.tick().await;
        m.round(INTERVAL.mul_f32(0.8)).await;
    }
    ticker.tick().await;
}

fn health_of(m: &Monitor, tenant: &str) -> Health {
    m.snapshot()
        .into_iter()
        .find(|s| s.tenant.as_str() == tenant)
        .unwrap_or_else(|| panic!("{tenant} is not monitored"))
        .health
        .state
}

fn ids(tenants: &Value) -> Vec<&str> {
    tenants
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {tenants}"))
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect()
}

/// Every protected route: (method, path).
fn protected_routes() -> Vec<(Method, &'static str)> {
    vec![
        (Method::GET, "/"),
        (Method::GET, "/assets/app.js"),
        (Method::GET, "/assets/app.css"),
        (Method::GET, "/metrics"),
        (Method::GET, "/api/v1/openapi.json"),
        (Method::GET, "/api/v1/fleet"),
        (Method::GET, "/api/v1/tenants"),
        (Method::GET, "/api/v1/tenants?state=unreachable"),
        (Method::GET, "/api/v1/tenants/acme"),
        (Method::GET, "/api/v1/tenants/no-such-tenant"),
        (Method::GET, "/api/v1/audit"),
        (Method::GET, "/api/v1/audit?after=1&limit=2"),
        (Method::POST, "/api/v1/heartbeat/round"),
        (Method::GET, "/api/v1/tenants/acme/privacy"),
        (Method::PUT, "/api/v1/tenants/acme/privacy"),
        (Method::PUT, "/api/v1/tenants/acme/privacy/hosted-fallback"),
        (Method::GET, "/api/v1/tenants/acme/effective-config"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn healthz_fleet_and_tenants_agree_with_the_monitor() {
    let w = World::start().await;

    let health = w.get("/healthz", Auth::None).await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.body, "ok");

    // The fleet summary.
    let snapshot = w.monitor.snapshot();
    let fleet = w.get_json("/api/v1/fleet").await;
    assert_eq!(fleet["desired_release"], stacks::RELEASE_VERSION);
    assert_eq!(fleet["tenants"], 4);
    assert_eq!(fleet["monitored"], 3);
    assert_eq!(fleet["monitored"], snapshot.len());
    let mut by_state: BTreeMap<String, u64> = Health::ALL
        .iter()
        .map(|h| (h.as_str().to_owned(), 0))
        .collect();
    for s in &snapshot {
        *by_state.get_mut(s.health.state.as_str()).unwrap() += 1;
    }
    assert_eq!(fleet["by_state"], serde_json::to_value(&by_state).unwrap());
    assert_eq!(fleet["by_state"]["healthy"], 2);
    assert_eq!(fleet["by_state"]["unreachable"], 1);
    assert_eq!(
        fleet["by_wave"],
        serde_json::json!({ "canary": 1, "general": 3 })
    );
    assert!(
        fleet["generated_at"]
            .as_str()
            .is_some_and(|t| chrono::DateTime::parse_from_rfc3339(t).is_ok()),
        "{fleet}"
    );

    // Every tenant, in manifest order, with stacks and heartbeats.
    let tenants = w.get_json("/api/v1/tenants").await;
    assert_eq!(ids(&tenants), ["acme", "globex", "initech", "hooli"]);
    for view in tenants.as_array().unwrap() {
        let id = view["id"].as_str().unwrap();
        let t = w.tenant(id);
        assert_eq!(view["account_id"], t.account_id.to_string());
        assert_eq!(view["region"], t.region.to_string());
        assert_eq!(view["wave"], t.wave.to_string());
        let caps: BTreeSet<String> = t.capabilities.iter().map(ToString::to_string).collect();
        let shown: BTreeSet<String> = view["capabilities"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_owned())
            .collect();
        assert_eq!(shown, caps);
        if id == HOSTED {
            assert_eq!(view["hosted"], true, "{view}");
            assert_eq!(view["heartbeat"], Value::Null, "{view}");
            assert_eq!(view["stacks"], serde_json::json!([]), "{view}");
            assert_eq!(view["release"], Value::Null, "{view}");
            continue;
        }
        assert_eq!(view["hosted"], false, "{view}");
        assert_eq!(view["release"], stacks::RELEASE_VERSION, "{view}");
        let stacks_shown = view["stacks"].as_array().unwrap();
        let expected: Vec<String> = t
            .deployed_stacks()
            .iter()
            .map(ToString::to_string)
            .collect();
        let names: Vec<String> = stacks_shown
            .iter()
            .map(|s| s["stack"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(names, expected, "{view}");
        for s in stacks_shown {
            assert_eq!(s["status"], "CREATE_COMPLETE", "{view}");
            assert_eq!(s["release"], stacks::RELEASE_VERSION, "{view}");
            assert_eq!(s["last_outcome"], "succeeded", "{view}");
            assert_eq!(s["last_error"], Value::Null, "{view}");
        }
        // The heartbeat is exactly the monitor's.
        let status = snapshot
            .iter()
            .find(|s| s.tenant.as_str() == id)
            .unwrap_or_else(|| panic!("{id} is not monitored"));
        let expected =
            serde_json::to_value(api::views::HeartbeatView::from(&status.health)).unwrap();
        assert_eq!(view["heartbeat"], expected, "{id}");
        if id == DEAD {
            assert_eq!(view["heartbeat"]["state"], "unreachable");
            assert!(view["heartbeat"]["consecutive_misses"].as_u64().unwrap() >= 1);
            assert!(view["last_error"].is_string(), "{view}");
        } else {
            assert_eq!(view["heartbeat"]["state"], "healthy");
            assert!(view["heartbeat"]["last_seen"].is_string(), "{view}");
            assert_eq!(view["last_error"], Value::Null, "{view}");
        }
    }

    // Filters.
    let unreachable = w.get_json("/api/v1/tenants?state=unreachable").await;
    assert_eq!(ids(&unreachable), [DEAD]);
    let healthy = w.get_json("/api/v1/tenants?state=healthy").await;
    assert_eq!(ids(&healthy), ["acme", "globex"]);
    let late = w.get_json("/api/v1/tenants?state=late").await;
    assert_eq!(ids(&late), Vec::<&str>::new());
    let canary = w.get_json("/api/v1/tenants?wave=canary").await;
    assert_eq!(ids(&canary), ["acme"]);
    let general = w.get_json("/api/v1/tenants?wave=general").await;
    assert_eq!(ids(&general), ["globex", "initech", "hooli"]);
    let both = w
        .get_json("/api/v1/tenants?wave=general&state=healthy")
        .await;
    assert_eq!(ids(&both), ["globex"]);
    let nowhere = w.get_json("/api/v1/tenants?wave=no-such-wave").await;
    assert_eq!(ids(&nowhere), Vec::<&str>::new());

    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tenant_detail_audit_paging_and_errors() {
    let w = World::start().await;

    // A dedicated tenant in detail.
    let acme = w.get_json("/api/v1/tenants/acme").await;
    assert_eq!(acme["tenant"]["id"], "acme");
    assert_eq!(acme["tenant"]["heartbeat"]["state"], "healthy");
    let outputs = acme["outputs"].as_array().unwrap();
    assert_eq!(outputs.len(), 2, "{acme}");
    for o in outputs {
        assert_eq!(o["release"], stacks::RELEASE_VERSION);
        assert!(!o["outputs"].as_object().unwrap().is_empty(), "{o}");
    }
    let deployments = acme["deployments"].as_array().unwrap();
    assert_eq!(deployments.len(), 2, "{acme}");
    for d in deployments {
        assert_eq!(d["outcome"], "succeeded", "{d}");
        assert_eq!(d["status"], "CREATE_COMPLETE", "{d}");
        assert_eq!(d["generation"], 1, "{d}");
    }
    assert!(
        !acme["heartbeat_history"].as_array().unwrap().is_empty(),
        "{acme}"
    );
    let audit = acme["audit"].as_array().unwrap();
    assert_eq!(audit.len(), 2, "one deploy.stack entry per stack: {acme}");
    assert!(audit.iter().all(|e| e["tenant"] == "acme"));
    assert!(
        audit[0]["seq"].as_u64() > audit[1]["seq"].as_u64(),
        "newest first: {acme}"
    );

    // The dead tenant's history shows the way down.
    let dead = w.get_json(&format!("/api/v1/tenants/{DEAD}")).await;
    let history: Vec<&str> = dead["heartbeat_history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["state"].as_str().unwrap())
        .collect();
    assert_eq!(history.first(), Some(&"unreachable"), "{history:?}");
    assert!(history.len() >= 2, "{history:?}");

    // The hosted tenant has nothing deployed and no heartbeat.
    let hooli = w.get_json(&format!("/api/v1/tenants/{HOSTED}")).await;
    assert_eq!(hooli["tenant"]["hosted"], true);
    assert_eq!(hooli["tenant"]["heartbeat"], Value::Null);
    assert_eq!(hooli["outputs"], serde_json::json!([]));
    assert_eq!(hooli["deployments"], serde_json::json!([]));
    assert_eq!(hooli["heartbeat_history"], serde_json::json!([]));

    // Unknown and malformed ids: 404 with a JSON error.
    for path in [
        "/api/v1/tenants/no-such-tenant",
        "/api/v1/tenants/NOT%20VALID",
    ] {
        w.get(path, Auth::Bearer(&w.viewer))
            .await
            .assert_error(StatusCode::NOT_FOUND);
    }
    let no_asset = w.get("/assets/nope.js", Auth::Bearer(&w.viewer)).await;
    no_asset.assert_error(StatusCode::NOT_FOUND);

    // The audit log: the plan and one entry per stack.
    let stored = w.store.audit_entries(0, 1000).await.unwrap();
    assert_eq!(stored.len(), 1 + w.stacks_deployed());
    let first = w.get_json("/api/v1/audit").await;
    let all: Vec<u64> = first["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(all, stored.iter().map(|e| e.seq).collect::<Vec<_>>());
    assert_eq!(first["next_after"], Value::Null, "one page holds all");
    assert_eq!(first["entries"][0]["action"], "plan.record");
    for (shown, entry) in first["entries"].as_array().unwrap().iter().zip(&stored) {
        assert_eq!(shown["hash"], entry.hash.as_str());
        assert_eq!(shown["actor"], entry.actor.as_str());
    }

    // Paged by 3: every entry once, in order, the last page without a cursor.
    let mut paged = Vec::new();
    let mut after = 0;
    let mut pages = 0;
    loop {
        let page = w
            .get_json(&format!("/api/v1/audit?after={after}&limit=3"))
            .await;
        pages += 1;
        assert!(pages <= 10, "paging does not end");
        let entries = page["entries"].as_array().unwrap();
        assert!(entries.len() <= 3, "{page}");
        paged.extend(entries.iter().map(|e| e["seq"].as_u64().unwrap()));
        match page["next_after"].as_u64() {
            Some(next) => {
                assert_eq!(entries.len(), 3, "{page}");
                assert_eq!(Some(next), entries.last().unwrap()["seq"].as_u64());
                after = next;
            }
            None => {
                assert_eq!(page["next_after"], Value::Null, "{page}");
                break;
            }
        }
    }
    assert_eq!(paged, all);
    assert_eq!(
        pages,
        all.len().div_ceil(3) + usize::from(all.len().is_multiple_of(3))
    );
    // Limits are clamped to 1..=500; after the end is empty.
    let one = w.get_json("/api/v1/audit?limit=0").await;
    assert_eq!(one["entries"].as_array().unwrap().len(), 1);
    assert_eq!(one["next_after"], all[0]);
    let big = w.get_json("/api/v1/audit?limit=100000").await;
    assert_eq!(big["entries"].as_array().unwrap().len(), all.len());
    let past = w
        .get_json(&format!("/api/v1/audit?after={}", all.last().unwrap()))
        .await;
    assert_eq!(past["entries"], serde_json::json!([]));
    assert_eq!(past["next_after"], Value::Null);
    // A cursor that is not a number is a client error.
    let bad = w
        .get("/api/v1/audit?after=abc", Auth::Bearer(&w.viewer))
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.body);

    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_protected_route_needs_a_valid_token_and_the_right_role() {
    let w = World::start().await;
    let wrong = auth::generate();

    for (method, path) in protected_routes() {
        for auth in [
            Auth::None,
            Auth::Bearer(&wrong),
            Auth::Bearer(""),
            Auth::Cookie(&wrong),
        ] {
            let seen = w.send(method.clone(), path, auth).await;
            assert_eq!(
                seen.status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} with {auth:?}: {}",
                seen.body
            );
            if path == "/" {
                // A browser gets a page that says how to log in.
                assert!(
                    seen.content_type().starts_with("text/html"),
                    "{:?}",
                    seen.headers
                );
                assert!(seen.body.contains("/login?token="), "{}", seen.body);
            } else {
                seen.assert_error(StatusCode::UNAUTHORIZED);
            }
        }
        // A hash of a valid token is not a token.
        let hashed = auth::hash(&w.viewer);
        let seen = w.send(method.clone(), path, Auth::Bearer(&hashed)).await;
        assert_eq!(seen.status, StatusCode::UNAUTHORIZED, "{method} {path}");
        // Both roles pass authentication (the operator endpoint aside).
        let as_viewer = w.send(method.clone(), path, Auth::Bearer(&w.viewer)).await;
        if path == "/api/v1/heartbeat/round"
            || method == Method::PUT
            || path.ends_with("/effective-config")
        {
            as_viewer.assert_error(StatusCode::FORBIDDEN);
        } else {
            assert!(
                as_viewer.status == StatusCode::OK || as_viewer.status == StatusCode::NOT_FOUND,
                "{method} {path} as viewer: {} {}",
                as_viewer.status,
                as_viewer.body
            );
        }
    }
    // No audit entry from refused requests.
    let stored = w.store.audit_entries(0, 1000).await.unwrap();
    assert!(
        stored.iter().all(|e| e.action != "heartbeat.round"),
        "{stored:?}"
    );

    // `/healthz` needs nothing, and ignores a bad token.
    for auth in [Auth::None, Auth::Bearer(&wrong)] {
        let seen = w.get("/healthz", auth).await;
        assert_eq!(seen.status, StatusCode::OK);
    }
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_operator_runs_a_round_and_it_is_audited() {
    let w = World::start().await;
    let before = w.monitor.counters.values();
    let audit_before = w.store.audit_entries(0, 1000).await.unwrap().len();

    let refused = w
        .send(
            Method::POST,
            "/api/v1/heartbeat/round",
            Auth::Bearer(&w.viewer),
        )
        .await;
    refused.assert_error(StatusCode::FORBIDDEN);
    assert_eq!(
        w.store.audit_entries(0, 1000).await.unwrap().len(),
        audit_before
    );
    assert_eq!(w.monitor.counters.values().pings_sent, before.pings_sent);

    let ran = w
        .send(
            Method::POST,
            "/api/v1/heartbeat/round",
            Auth::Bearer(&w.operator),
        )
        .await;
    assert_eq!(ran.status, StatusCode::OK, "{}", ran.body);
    assert_eq!(ran.json(), serde_json::json!({ "tenants": 3 }));
    assert_eq!(
        w.monitor.counters.values().pings_sent,
        before.pings_sent + 3,
        "one ping per monitored tenant"
    );

    let audit = w.get_json("/api/v1/audit").await;
    let entries = audit["entries"].as_array().unwrap();
    assert_eq!(entries.len(), audit_before + 1);
    let last = entries.last().unwrap();
    assert_eq!(last["actor"], format!("token:{OPERATOR}"));
    assert_eq!(last["action"], "heartbeat.round");
    assert_eq!(last["tenant"], Value::Null);
    assert_eq!(last["details"], serde_json::json!({ "trigger": "api" }));

    // The GET method is not a way in.
    let get = w
        .get("/api/v1/heartbeat/round", Auth::Bearer(&w.operator))
        .await;
    assert_eq!(get.status, StatusCode::METHOD_NOT_ALLOWED);

    // States still agree with the monitor after the round.
    let tenants = w.get_json("/api/v1/tenants").await;
    for s in w.monitor.snapshot() {
        let view = tenants
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["id"] == s.tenant.as_str())
            .unwrap();
        assert_eq!(view["heartbeat"]["state"], s.health.state.as_str());
    }
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn login_sets_an_http_only_cookie_that_opens_the_dashboard() {
    let w = World::start().await;

    let login = w
        .get(&format!("/login?token={}", w.viewer), Auth::None)
        .await;
    assert!(login.status.is_redirection(), "{}", login.status);
    assert_eq!(
        login.headers.get(header::LOCATION).unwrap(),
        "/",
        "the token leaves the address bar"
    );
    let cookies: Vec<&str> = login
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(cookies.len(), 1, "{cookies:?}");
    let attributes: Vec<&str> = cookies[0].split(';').map(str::trim).collect();
    assert_eq!(
        attributes[0],
        format!("{}={}", auth::COOKIE, w.viewer),
        "{cookies:?}"
    );
    assert!(attributes.contains(&"HttpOnly"), "{cookies:?}");
    assert!(attributes.contains(&"SameSite=Strict"), "{cookies:?}");
    assert!(attributes.contains(&"Path=/"), "{cookies:?}");

    // The cookie authorizes the API and the dashboard.
    let fleet = w.get("/api/v1/fleet", Auth::Cookie(&w.viewer)).await;
    assert_eq!(fleet.status, StatusCode::OK, "{}", fleet.body);
    assert_eq!(fleet.json()["tenants"], 4);
    let index = w.get("/", Auth::Cookie(&w.viewer)).await;
    assert_eq!(index.status, StatusCode::OK);
    assert!(
        index.content_type().starts_with("text/html"),
        "{:?}",
        index.headers
    );
    assert_eq!(
        index.headers.get(header::CACHE_CONTROL).unwrap(),
        "no-store"
    );
    assert!(
        index.body.contains("<html")
            || index.body.contains("<!doctype")
            || index.body.contains("<!DOCTYPE")
    );
    let js = w.get("/assets/app.js", Auth::Cookie(&w.viewer)).await;
    assert_eq!(js.status, StatusCode::OK);
    assert!(
        js.content_type().starts_with("text/javascript"),
        "{:?}",
        js.headers
    );
    assert!(!js.body.is_empty());
    let css = w.get("/assets/app.css", Auth::Cookie(&w.viewer)).await;
    assert_eq!(css.status, StatusCode::OK);
    assert!(
        css.content_type().starts_with("text/css"),
        "{:?}",
        css.headers
    );
    // The dashboard loads nothing from elsewhere (the machines are offline).
    for page in [&index, &js, &css] {
        assert!(
            !page.body.contains("http://") && !page.body.contains("https://"),
            "{} refers to another origin",
            page.path
        );
    }
    // A viewer's cookie does not make it an operator.
    let round = w
        .send(
            Method::POST,
            "/api/v1/heartbeat/round",
            Auth::Cookie(&w.viewer),
        )
        .await;
    round.assert_error(StatusCode::FORBIDDEN);

    // A wrong token gets no cookie.
    let wrong = auth::generate();
    for path in [format!("/login?token={wrong}"), "/login?token=".to_owned()] {
        let refused = w.get(&path, Auth::None).await;
        refused.assert_error(StatusCode::UNAUTHORIZED);
        assert!(refused.headers.get(header::SET_COOKIE).is_none());
    }
    w.stop().await;
}

/// `$ref`s anywhere in `value`.
fn refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                if k == "$ref" {
                    out.push(v.as_str().expect("$ref is a string").to_owned());
                } else {
                    refs(v, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_openapi_document_is_valid_and_stable() {
    let w = World::start().await;
    let seen = w.get("/api/v1/openapi.json", Auth::Bearer(&w.viewer)).await;
    assert_eq!(seen.status, StatusCode::OK);
    assert!(seen.content_type().starts_with("application/json"));
    let mut doc = seen.json();
    assert_eq!(doc, api::openapi::document(), "served as generated");

    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
    let schemas = doc["components"]["schemas"]
        .as_object()
        .expect("components.schemas");
    for name in [
        "FleetSummary",
        "TenantView",
        "TenantDetail",
        "AuditPage",
        "HeartbeatView",
        "StackView",
    ] {
        assert!(schemas.contains_key(name), "{name} missing");
    }
    let mut found = Vec::new();
    refs(&doc, &mut found);
    assert!(!found.is_empty());
    for r in &found {
        let name = r
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("{r} does not point into components.schemas"));
        assert!(schemas.contains_key(name), "{r} does not resolve");
    }
    // Every schema is a valid JSON Schema (2020-12, OpenAPI 3.1's dialect).
    for (name, schema) in schemas {
        let mut schema = schema.clone();
        schema["$schema"] = Value::from("https://json-schema.org/draft/2020-12/schema");
        assert!(
            jsonschema::meta::is_valid(&schema),
            "components.schemas.{name} is not a valid schema: {schema}"
        );
    }
    // Every API path is documented, with unique operation ids and a 200.
    let paths = doc["paths"].as_object().unwrap();
    let mut operation_ids = BTreeSet::new();
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            assert!(
                ["get", "post", "put"].contains(&method.as_str()),
                "{path} {method}"
            );
            let id = op["operationId"].as_str().unwrap();
            assert!(operation_ids.insert(id.to_owned()), "duplicate {id}");
            assert!(op["responses"]["200"].is_object(), "{path} {method}");
        }
    }
    for (method, path) in [
        ("get", "/api/v1/fleet"),
        ("get", "/api/v1/tenants"),
        ("get", "/api/v1/tenants/{id}"),
        ("get", "/api/v1/audit"),
        ("post", "/api/v1/heartbeat/round"),
        ("get", "/api/v1/tenants/{id}/privacy"),
        ("get", "/api/v1/tenants/{id}/effective-config"),
        ("put", "/api/v1/tenants/{id}/privacy"),
        ("put", "/api/v1/tenants/{id}/privacy/hosted-fallback"),
        ("get", "/metrics"),
        ("get", "/healthz"),
    ] {
        assert!(paths[path][method].is_object(), "{method} {path}");
    }
    assert_eq!(
        doc["paths"]["/healthz"]["get"]["security"],
        serde_json::json!([])
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );

    doc["info"]["version"] = Value::from("[version]");
    insta::assert_json_snapshot!("openapi", doc);
    w.stop().await;
}

/// A JSON Schema validator for `schema` (from the OpenAPI document), with
/// `#/components/schemas/...` references resolving into the document.
fn validator(doc: &Value, schema: &Value) -> jsonschema::Validator {
    let mut root = serde_json::json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "components": doc["components"].clone(),
    });
    for (k, v) in schema.as_object().unwrap() {
        root[k] = v.clone();
    }
    jsonschema::validator_for(&root).unwrap_or_else(|e| panic!("{e}: {root}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn responses_validate_against_the_openapi_schemas() {
    let w = World::start().await;
    let doc = api::openapi::document();
    let nullable = serde_json::to_string(&doc)
        .unwrap()
        .contains("\"nullable\"");
    let schema_of = |path: &str, method: &str| {
        doc["paths"][path][method]["responses"]["200"]["content"]["application/json"]["schema"]
            .clone()
    };
    for (path, template, method) in [
        ("/api/v1/fleet", "/api/v1/fleet", "get"),
        ("/api/v1/tenants", "/api/v1/tenants", "get"),
        ("/api/v1/tenants/acme", "/api/v1/tenants/{id}", "get"),
        ("/api/v1/tenants/hooli", "/api/v1/tenants/{id}", "get"),
        ("/api/v1/tenants/initech", "/api/v1/tenants/{id}", "get"),
        ("/api/v1/audit?limit=3", "/api/v1/audit", "get"),
        (
            "/api/v1/tenants/acme/privacy",
            "/api/v1/tenants/{id}/privacy",
            "get",
        ),
    ] {
        let body = w.get_json(path).await;
        let v = validator(&doc, &schema_of(template, method));
        let errors: Vec<String> = v
            .iter_errors(&body)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "GET {path} does not match its schema{}: {errors:#?}",
            if nullable {
                " (the document uses OpenAPI 3.0's `nullable`)"
            } else {
                ""
            }
        );
    }
    assert!(!nullable, "`nullable` is not a keyword of OpenAPI 3.1");
    w.stop().await;
}

fn sample<'a>(
    scrape: &'a prometheus_parse::Scrape,
    metric: &str,
    labels: &[(&str, &str)],
) -> &'a prometheus_parse::Sample {
    let matching: Vec<&prometheus_parse::Sample> = scrape
        .samples
        .iter()
        .filter(|s| s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .collect();
    assert_eq!(matching.len(), 1, "{metric}{labels:?}: {matching:?}");
    matching[0]
}

fn counter(scrape: &prometheus_parse::Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    match sample(scrape, metric, labels).value {
        prometheus_parse::Value::Counter(v) => v,
        ref other => panic!("{metric} is not a counter: {other:?}"),
    }
}

fn gauge(scrape: &prometheus_parse::Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    match sample(scrape, metric, labels).value {
        prometheus_parse::Value::Gauge(v) => v,
        ref other => panic!("{metric} is not a gauge: {other:?}"),
    }
}

fn untyped(scrape: &prometheus_parse::Scrape, metric: &str) -> f64 {
    match sample(scrape, metric, &[]).value {
        prometheus_parse::Value::Untyped(v) => v,
        ref other => panic!("{metric}: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metrics_parse_and_match_the_fleet() {
    use coordinator::probes::{ProbeError, ProbeName, ProbeOutcome, ProbeStatus};
    use coordinator::store::ProbeStore;
    let w = World::start().await;
    // Two probe outcomes: acme's storage passes, globex's LLM key fails.
    let passed_at = chrono::Utc::now();
    for (tenant, probe, status) in [
        ("acme", ProbeName::Storage, ProbeStatus::Passing),
        ("globex", ProbeName::Llm, ProbeStatus::Failing),
    ] {
        let outcome = ProbeOutcome {
            tenant: tenant.parse().unwrap(),
            probe,
            status,
            at: passed_at,
            latency_ms: 3,
            error: (status == ProbeStatus::Failing)
                .then(|| ProbeError::new("llm.invalid_key", "401", "rotate the key")),
            detail: None,
        };
        w.store.put_probe(&outcome, "sha256:x").await.unwrap();
    }
    let seen = w.get("/metrics", Auth::Bearer(&w.viewer)).await;
    assert_eq!(seen.status, StatusCode::OK, "{}", seen.body);
    assert_eq!(
        seen.content_type(),
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let scrape =
        prometheus_parse::Scrape::parse(seen.body.lines().map(|l| Ok(l.to_owned()))).unwrap();
    let snapshot = w.monitor.snapshot();
    let counters = w.monitor.counters.values();

    // Every documented family has help text.
    for family in [
        "docproc_tenants",
        "docproc_heartbeat_rtt_seconds",
        "docproc_heartbeat_pings_sent_total",
        "docproc_heartbeat_pongs_received_total",
        "docproc_heartbeat_pongs_unmatched_total",
        "docproc_heartbeat_malformed_total",
        "docproc_heartbeat_errors_total",
        "docproc_deployments_total",
        "docproc_tenant_last_heartbeat_timestamp_seconds",
        "docproc_probes",
        "docproc_probe_last_pass_timestamp_seconds",
    ] {
        assert!(scrape.docs.contains_key(family), "no HELP for {family}");
        assert!(
            seen.body.contains(&format!("# TYPE {family} ")),
            "no TYPE for {family}"
        );
    }

    // Tenants by latest probe outcome, and the last pass per tenant.
    for (probe, status, n) in [
        ("storage", "passing", 1.0),
        ("storage", "failing", 0.0),
        ("llm", "failing", 1.0),
        ("heartbeat", "passing", 0.0),
    ] {
        assert_eq!(
            gauge(
                &scrape,
                "docproc_probes",
                &[("probe", probe), ("status", status)]
            ),
            n,
            "{probe} {status}"
        );
    }
    let passes: Vec<_> = scrape
        .samples
        .iter()
        .filter(|s| s.metric == "docproc_probe_last_pass_timestamp_seconds")
        .map(|s| {
            (
                s.labels.get("tenant").unwrap().to_owned(),
                s.labels.get("probe").unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(passes, [("acme".to_owned(), "storage".to_owned())]);

    // Tenants per state, one series per state.
    for h in Health::ALL {
        let n = snapshot.iter().filter(|s| s.health.state == *h).count();
        assert_eq!(
            gauge(&scrape, "docproc_tenants", &[("state", h.as_str())]),
            n as f64,
            "{}",
            h.as_str()
        );
    }
    assert_eq!(
        gauge(&scrape, "docproc_tenants", &[("state", "healthy")]),
        2.0
    );
    assert_eq!(
        gauge(&scrape, "docproc_tenants", &[("state", "unreachable")]),
        1.0
    );
    let state_series = scrape
        .samples
        .iter()
        .filter(|s| s.metric == "docproc_tenants")
        .count();
    assert_eq!(state_series, Health::ALL.len());

    // Counters: as the monitor counts them, and activity happened.
    for (name, value) in [
        ("docproc_heartbeat_pings_sent_total", counters.pings_sent),
        (
            "docproc_heartbeat_pongs_received_total",
            counters.pongs_received,
        ),
        (
            "docproc_heartbeat_pongs_unmatched_total",
            counters.pongs_unmatched,
        ),
        ("docproc_heartbeat_malformed_total", counters.malformed),
        ("docproc_heartbeat_errors_total", counters.errors),
    ] {
        assert_eq!(counter(&scrape, name, &[]), value as f64, "{name}");
    }
    assert!(counters.pings_sent > 0 && counters.pongs_received > 0);
    assert!(counter(&scrape, "docproc_heartbeat_pings_sent_total", &[]) > 0.0);
    assert!(counter(&scrape, "docproc_heartbeat_pongs_received_total", &[]) > 0.0);
    assert!(
        counters.pings_sent >= counters.pongs_received,
        "{counters:?}"
    );

    // The round-trip histogram: cumulative buckets ending in +Inf = count.
    let rtt = sample(&scrape, "docproc_heartbeat_rtt_seconds", &[]);
    let prometheus_parse::Value::Histogram(buckets) = &rtt.value else {
        panic!("not a histogram: {rtt:?}");
    };
    let mut bounds: Vec<f64> = buckets.iter().map(|b| b.less_than).collect();
    assert_eq!(bounds.pop(), Some(f64::INFINITY));
    assert_eq!(bounds, api::metrics::RTT_BUCKETS);
    for pair in buckets.windows(2) {
        assert!(pair[0].less_than < pair[1].less_than, "{buckets:?}");
        assert!(
            pair[0].count <= pair[1].count,
            "not cumulative: {buckets:?}"
        );
    }
    let count = untyped(&scrape, "docproc_heartbeat_rtt_seconds_count");
    let sum = untyped(&scrape, "docproc_heartbeat_rtt_seconds_sum");
    assert_eq!(buckets.last().unwrap().count, count);
    assert_eq!(
        count, counters.pongs_received as f64,
        "one round trip per matched pong"
    );
    assert!(count > 0.0 && sum >= 0.0);
    assert!(
        sum <= count * INTERVAL.as_secs_f64() * 10.0,
        "round trips are short on the fake: {sum}"
    );

    // Deployments by outcome: every stack was created once.
    assert_eq!(
        counter(
            &scrape,
            "docproc_deployments_total",
            &[("outcome", "succeeded")]
        ),
        w.stacks_deployed() as f64
    );
    assert_eq!(w.stacks_deployed(), 6);
    for outcome in [
        "no_change",
        "failed",
        "rolled_back",
        "needs_recovery",
        "timed_out",
    ] {
        assert_eq!(
            counter(
                &scrape,
                "docproc_deployments_total",
                &[("outcome", outcome)]
            ),
            0.0,
            "{outcome}"
        );
    }

    // The last pong per tenant: the monitored tenants that answered at least
    // once, never the hosted one, at the monitor's time.
    let last: BTreeMap<String, f64> = scrape
        .samples
        .iter()
        .filter(|s| s.metric == "docproc_tenant_last_heartbeat_timestamp_seconds")
        .map(|s| match s.value {
            prometheus_parse::Value::Gauge(v) => (s.labels.get("tenant").unwrap().to_owned(), v),
            ref other => panic!("not a gauge: {other:?}"),
        })
        .collect();
    let expected: BTreeMap<String, f64> = snapshot
        .iter()
        .filter_map(|s| {
            s.health
                .last_pong_at
                .map(|t| (s.tenant.to_string(), t.timestamp_millis() as f64 / 1000.0))
        })
        .collect();
    assert_eq!(last, expected);
    assert!(!last.contains_key(HOSTED));
    assert!(last.contains_key(DEAD), "it answered before it died");
    let now = chrono::Utc::now().timestamp() as f64;
    for (tenant, at) in &last {
        assert!((now - 120.0..=now + 1.0).contains(at), "{tenant}: {at}");
    }

    // A second scrape does not count the same round trips twice.
    let again = w.get("/metrics", Auth::Bearer(&w.viewer)).await;
    let scrape =
        prometheus_parse::Scrape::parse(again.body.lines().map(|l| Ok(l.to_owned()))).unwrap();
    assert_eq!(
        untyped(&scrape, "docproc_heartbeat_rtt_seconds_count"),
        count
    );
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn planted_secrets_never_leave_the_service() {
    let w = World::start().await;
    // The fake handed out credentials, so there is something to leak.
    assert!(
        w.fake
            .calls()
            .iter()
            .any(|c| c.service == "sts" && c.operation == "AssumeRole")
    );

    // Every endpoint, every way of asking.
    let wrong = auth::generate();
    for (method, path) in protected_routes() {
        for auth in [
            Auth::None,
            Auth::Bearer(&wrong),
            Auth::Bearer(&w.viewer),
            Auth::Bearer(&w.operator),
            Auth::Cookie(&w.viewer),
        ] {
            w.send(method.clone(), path, auth).await;
        }
    }
    for id in ["acme", "globex", "initech", "hooli"] {
        w.get(&format!("/api/v1/tenants/{id}"), Auth::Bearer(&w.operator))
            .await;
    }
    for path in [
        "/healthz".to_owned(),
        "/api/v1/tenants?wave=canary".to_owned(),
        "/api/v1/audit?limit=500".to_owned(),
        "/assets/nope.js".to_owned(),
        "/no/such/route".to_owned(),
        format!("/login?token={wrong}"),
    ] {
        w.get(&path, Auth::Bearer(&w.viewer)).await;
    }
    // The login's cookie carries the token by design; nothing else may.
    let login = w
        .get(&format!("/login?token={}", w.viewer), Auth::None)
        .await;
    assert!(login.status.is_redirection());
    // (So the scan below can see a token where one is.)
    let cookie = login.headers.get(header::SET_COOKIE).unwrap();
    assert!(cookie.to_str().unwrap().contains(w.viewer.as_str()));

    let planted = w.planted();
    let exchanges = w.exchanges();
    assert!(exchanges.len() >= 70, "{}", exchanges.len());
    let mut leaks = Vec::new();
    for seen in &exchanges {
        let is_login_cookie = seen.path.starts_with("/login?") && seen.status.is_redirection();
        for (name, value) in &seen.headers {
            if is_login_cookie && name == header::SET_COOKIE {
                continue;
            }
            let value = String::from_utf8_lossy(value.as_bytes());
            for p in &planted {
                if value.contains(p.as_str()) {
                    leaks.push(format!("{} {} header {name}: {p}", seen.method, seen.path));
                }
            }
        }
        for p in &planted {
            if seen.body.contains(p.as_str()) {
                leaks.push(format!("{} {} body: {p}", seen.method, seen.path));
            }
        }
    }
    assert!(leaks.is_empty(), "planted secrets in responses: {leaks:#?}");
    w.stop().await;
}

fn exit_code(code: std::process::ExitCode) -> u8 {
    (0..=255u8)
        .find(|c| code == std::process::ExitCode::from(*c))
        .expect("an exit code")
}

#[test]
fn serve_refuses_to_start_without_tokens() {
    let m = TempManifest::new(&manifest_text("coordinator.db", ""));
    let fake = FakeCloud::new();
    let cli = Cli::try_parse_from([
        "coordinator",
        "--manifest",
        m.path.to_str().unwrap(),
        "serve",
        "--listen",
        "127.0.0.1:0",
    ])
    .unwrap();
    assert_eq!(exit_code(cli::run_with(cli, Some(Arc::new(fake)))), 2);
}

#[test]
fn token_new_checks_its_subject() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("deploy.toml");
    let run = |subject: &str| {
        let cli = Cli::try_parse_from([
            "coordinator",
            "--manifest",
            manifest.to_str().unwrap(),
            "--output",
            "json",
            "token",
            "new",
            "--subject",
            subject,
            "--role",
            "viewer",
        ])
        .unwrap();
        exit_code(cli::run_with(cli, None))
    };
    assert_eq!(run("wallboard"), 0);
    assert_eq!(run("not a subject"), 2);
    assert_eq!(run(""), 2);
    assert!(!Path::new(&manifest).exists(), "token new writes nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn privacy_configuration_is_shown_and_changed_only_by_operators_with_audit() {
    use coordinator::store::PrivacyStore;

    use serde_json::json;

    let w = World::start().await;
    let path = "/api/v1/tenants/acme/privacy";
    let audit_count = || async { w.store.audit_entries(0, 10_000).await.unwrap().len() };

    // Never configured: hosted everywhere, unmistakably.
    let view = w.get_json(path).await;
    assert_eq!(view["version"], 0);
    assert_eq!(view["storage"]["mode"], "hosted");
    assert_eq!(view["storage"]["managed_by"], "vendor");
    assert_eq!(view["storage"]["check"]["state"], "not_applicable");
    assert_eq!(view["llm"]["managed_by"], "vendor");
    assert_eq!(view["hosted_fallback"]["enabled"], false);
    assert_eq!(view["changed_by"], Value::Null);
    assert_eq!(
        view["capabilities"],
        json!(["byo_ai_keys", "dedicated_aws"])
    );

    let byok = json!({
        "config": {"llm": {"mode": "byok", "provider": "anthropic",
                           "model": "claude-sonnet-4-5", "key": "llm-api-key"}},
        "expected_version": 0
    });
    // A viewer may not change it.
    let before = audit_count().await;
    let seen = w
        .send_with(Method::PUT, path, Auth::Bearer(&w.viewer), Some(&byok))
        .await;
    seen.assert_error(StatusCode::FORBIDDEN);

    // acme is not entitled to customer storage: 422 naming the capability.
    let s3 = json!({
        "config": {"storage": {"mode": "customer_s3", "bucket": "acme-docs",
                               "region": "eu-west-1", "credentials": "s3-credentials"}},
        "expected_version": 0
    });
    let seen = w
        .send_with(Method::PUT, path, Auth::Bearer(&w.operator), Some(&s3))
        .await;
    assert_eq!(
        seen.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        seen.body
    );
    let problems = seen.json()["problems"].clone();
    assert!(
        problems
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["missing_capability"] == "customer_storage"),
        "{problems}"
    );
    // The key's secret does not exist yet: 422 saying how to store it.
    let seen = w
        .send_with(Method::PUT, path, Auth::Bearer(&w.operator), Some(&byok))
        .await;
    assert_eq!(
        seen.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        seen.body
    );
    assert!(
        seen.body.contains("coordinator secret put"),
        "{}",
        seen.body
    );
    // A body that is not a configuration: 422, nothing written.
    let seen = w
        .send_with(
            Method::PUT,
            path,
            Auth::Bearer(&w.operator),
            Some(&json!({"config": {"llm": {"mode": "psychic"}}, "expected_version": 0})),
        )
        .await;
    assert_eq!(
        seen.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        seen.body
    );
    assert_eq!(
        audit_count().await,
        before,
        "refused changes are not audited"
    );
    assert_eq!(
        w.store
            .current_privacy(&"acme".parse().unwrap())
            .await
            .unwrap(),
        None
    );

    // Once the secret exists, the operator's change is written and audited.
    support::record_secret_put(
        w.store.as_ref(),
        &"acme".parse().unwrap(),
        "llm-api-key",
        "test",
    )
    .await;
    let seen = w
        .send_with(Method::PUT, path, Auth::Bearer(&w.operator), Some(&byok))
        .await;
    assert_eq!(seen.status, StatusCode::OK, "{}", seen.body);
    assert_eq!(seen.json()["result"], "written");
    assert_eq!(seen.json()["record"]["version"], 1);
    let last = w
        .store
        .audit_entries(0, 10_000)
        .await
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!(last.action, "tenant.privacy_changed");
    assert_eq!(last.actor, format!("token:{OPERATOR}"));
    assert_eq!(last.tenant.as_ref().map(|t| t.as_str()), Some("acme"));
    assert_eq!(last.details["llm"], json!({"from": "hosted", "to": "byok"}));

    // A second writer that read version 0 is refused.
    let seen = w
        .send_with(Method::PUT, path, Auth::Bearer(&w.operator), Some(&byok))
        .await;
    seen.assert_error(StatusCode::CONFLICT);

    // Hosted fallback: needs a reason; then enabled, audited, shown.
    let fallback = "/api/v1/tenants/acme/privacy/hosted-fallback";
    let seen = w
        .send_with(
            Method::PUT,
            fallback,
            Auth::Bearer(&w.operator),
            Some(&json!({"enabled": true, "expected_version": 1})),
        )
        .await;
    assert_eq!(
        seen.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        seen.body
    );
    let seen = w
        .send_with(
            Method::PUT,
            fallback,
            Auth::Bearer(&w.operator),
            Some(
                &json!({"enabled": true, "reason": "INC-7 provider outage", "expected_version": 1}),
            ),
        )
        .await;
    assert_eq!(seen.status, StatusCode::OK, "{}", seen.body);
    let last = w
        .store
        .audit_entries(0, 10_000)
        .await
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!(last.action, "tenant.hosted_fallback_enabled");
    assert_eq!(last.details["reason"], "INC-7 provider outage");

    let view = w.get_json(path).await;
    assert_eq!(view["version"], 2);
    assert_eq!(view["llm"]["mode"], "byok");
    assert_eq!(view["llm"]["managed_by"], "customer");
    assert_eq!(view["llm"]["check"]["state"], "not_checked");
    assert_eq!(view["llm"]["config"]["key"], "llm-api-key");
    assert_eq!(view["storage"]["managed_by"], "vendor");
    assert_eq!(view["hosted_fallback"]["enabled"], true);
    assert_eq!(view["hosted_fallback"]["reason"], "INC-7 provider outage");
    assert_eq!(view["changed_by"], format!("token:{OPERATOR}"));
    // The tenant detail carries the same view.
    let detail = w.get_json("/api/v1/tenants/acme").await;
    assert_eq!(detail["privacy"], view);
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn effective_config_fails_closed_for_service_tokens() {
    use coordinator::privacy::change;
    use coordinator::probes::{ProbeError, ProbeName, ProbeOutcome, ProbeStatus};

    use coordinator::store::{PrivacyStore, ProbeStore};
    use serde_json::json;

    let w = World::start().await;
    let acme = w.tenant("acme").clone();
    let path = "/api/v1/tenants/acme/effective-config";

    // Only service and operator tokens; a service token reads nothing else.
    w.send(Method::GET, path, Auth::Bearer(&w.viewer))
        .await
        .assert_error(StatusCode::FORBIDDEN);
    w.send(Method::GET, "/api/v1/fleet", Auth::Bearer(&w.service))
        .await
        .assert_error(StatusCode::FORBIDDEN);

    // A hosted tenant resolves to hosted.
    let seen = w
        .send(
            Method::GET,
            "/api/v1/tenants/globex/effective-config",
            Auth::Bearer(&w.service),
        )
        .await;
    assert_eq!(seen.status, StatusCode::OK, "{}", seen.body);
    assert_eq!(seen.json()["storage"], json!({"use": "hosted"}));
    assert_eq!(seen.json()["llm"], json!({"use": "hosted"}));

    // acme brings its own key: refused until the probe passes.
    support::record_secret_put(w.store.as_ref(), &acme.id, "llm-api-key", "test").await;
    let config = serde_json::from_value(json!({"llm": {"mode": "byok", "provider": "anthropic",
        "model": "claude-sonnet-4-5", "key": "llm-api-key"}}))
    .unwrap();
    change::set_config(w.store.as_ref(), &acme, config, Some(0), "test")
        .await
        .unwrap();
    let seen = w.send(Method::GET, path, Auth::Bearer(&w.service)).await;
    assert_eq!(seen.status, StatusCode::FAILED_DEPENDENCY, "{}", seen.body);
    let body = seen.json();
    assert_eq!(body["refusals"][0]["dependency"], "llm");
    assert_eq!(body["refusals"][0]["code"], "llm.not_validated");
    assert!(
        body["refusals"][0]["remedy"]
            .as_str()
            .unwrap()
            .contains("coordinator check")
    );
    assert_eq!(body["effective"]["storage"], json!({"use": "hosted"}));

    let digest = w
        .store
        .current_privacy(&acme.id)
        .await
        .unwrap()
        .unwrap()
        .digest;
    let outcome = |status, error: Option<ProbeError>| ProbeOutcome {
        tenant: acme.id.clone(),
        probe: ProbeName::Llm,
        status,
        at: chrono::Utc::now(),
        latency_ms: 12,
        error,
        detail: None,
    };
    // A pass of this configuration: the customer's key is used.
    w.store
        .put_probe(&outcome(ProbeStatus::Passing, None), &digest)
        .await
        .unwrap();
    let seen = w.send(Method::GET, path, Auth::Bearer(&w.service)).await;
    assert_eq!(seen.status, StatusCode::OK, "{}", seen.body);
    assert_eq!(seen.json()["llm"]["use"], "customer");

    // The key is revoked: refused with the probe's code and remedy, never hosted.
    let revoked = ProbeError::new(
        "llm.invalid_key",
        "401 from Anthropic",
        "store a valid key with `coordinator secret rotate`",
    );
    w.store
        .put_probe(&outcome(ProbeStatus::Failing, Some(revoked)), &digest)
        .await
        .unwrap();
    let seen = w.send(Method::GET, path, Auth::Bearer(&w.service)).await;
    assert_eq!(seen.status, StatusCode::FAILED_DEPENDENCY, "{}", seen.body);
    assert_eq!(seen.json()["refusals"][0]["code"], "llm.invalid_key");
    assert_eq!(
        seen.json()["refusals"][0]["remedy"],
        "store a valid key with `coordinator secret rotate`"
    );

    // An operator enables fallback (audited): hosted, and marked as fallback.
    let seen = w
        .send_with(
            Method::PUT,
            "/api/v1/tenants/acme/privacy/hosted-fallback",
            Auth::Bearer(&w.operator),
            Some(&json!({"enabled": true, "reason": "CHG-9 key rotation window", "expected_version": 1})),
        )
        .await;
    assert_eq!(seen.status, StatusCode::OK, "{}", seen.body);
    let seen = w.send(Method::GET, path, Auth::Bearer(&w.service)).await;
    assert_eq!(seen.status, StatusCode::OK, "{}", seen.body);
    let llm = &seen.json()["llm"];
    assert_eq!(llm["use"], "hosted_fallback");
    assert_eq!(llm["reason"], "CHG-9 key rotation window");
    assert_eq!(llm["cause"]["code"], "llm.invalid_key");
    // The dashboard's view shows the failing check with its remedy.
    let view = w.get_json("/api/v1/tenants/acme/privacy").await;
    assert_eq!(view["llm"]["check"]["state"], "failing");
    assert_eq!(view["llm"]["check"]["last_error_code"], "llm.invalid_key");
    assert!(view["llm"]["check"]["last_validated"].is_string(), "{view}");
    w.stop().await;
}
