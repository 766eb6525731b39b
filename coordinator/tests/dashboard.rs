//! The dashboard in a real browser: a fleet deployed on the fake AWS, a
//! heartbeat monitor that sees one tenant die, the status service on a
//! loopback port, and Debian's Chromium (headless) logging in with a viewer
//! token, rendering the page, and taking a screenshot.
//!
//! Chromium is found at `$CHROMIUM` or `/usr/bin/chromium`; `./dev setup`
//! installs it. Without it this test fails (it never skips silently).

mod support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use coordinator::access;
use coordinator::api::{self, AppState, auth};
use coordinator::aws::fake::FakeCloud;
use coordinator::heartbeat::detector::Health;
use coordinator::heartbeat::monitor::Monitor;
use coordinator::manifest::duration::HumanDuration;
use coordinator::manifest::{self, Manifest};
use coordinator::store::sqlite::SqliteStore;

const INTERVAL: Duration = Duration::from_millis(200);
/// Dedicated tenants (heartbeated); the second one's agent dies.
const DEDICATED: [&str; 4] = ["acme", "globex", "initech", "umbrella"];
const DEAD: &str = "globex";
/// A tenant on the hosted default: no stacks, no heartbeat.
const HOSTED: &str = "hooli";
const CHROMIUM_TIMEOUT: Duration = Duration::from_secs(60);

fn manifest(dir: &Path, viewer_token: &str) -> Manifest {
    let mut text = format!(
        "[coordinator]\naccount_id = \"111111111111\"\nregion = \"us-east-1\"\nstate = \"{}\"\n\
         [release]\nversion = \"{}\"\n[rollout]\nwaves = [\"canary\", \"main\"]\n\
         [api]\n[[api.tokens]]\nsubject = \"wall-screen\"\nrole = \"viewer\"\nsha256 = \"{}\"\n",
        dir.join("state.db").display(),
        stacks::RELEASE_VERSION,
        auth::hash(viewer_token),
    );
    let tenants = DEDICATED
        .iter()
        .map(|id| (*id, "dedicated_aws\", \"byo_ai_keys"))
        .chain([(HOSTED, "byo_ai_keys")]);
    for (i, (id, capability)) in tenants.enumerate() {
        let wave = if i == 0 { "canary" } else { "main" };
        text.push_str(&format!(
            "[[tenants]]\nid = \"{id}\"\naccount_id = \"3000000000{i:02}\"\nregion = \"eu-west-1\"\n\
             external_id = \"external-id-for-tenant-{i:02}-0123456789abcdef\"\nwave = \"{wave}\"\n\
             capabilities = [\"{capability}\"]\n"
        ));
    }
    let mut m = manifest::from_text(&dir.join("deploy.toml"), text)
        .unwrap()
        .manifest;
    m.heartbeat.interval = HumanDuration::new(INTERVAL);
    m
}

/// Deploys the fleet on the fake with every agent answering.
async fn deploy(dir: &Path, viewer_token: &str) -> (FakeCloud, Arc<SqliteStore>, Arc<Manifest>) {
    let m = manifest(dir, viewer_token);
    let fake = support::fake_with_agents(&m);
    let store = Arc::new(SqliteStore::open(&m.coordinator.state_path).unwrap());
    support::deploy_on(&fake, &m, store.as_ref()).await;
    (fake, store, Arc::new(m))
}

fn state(m: &Monitor, tenant: &str) -> Health {
    m.snapshot()
        .into_iter()
        .find(|s| s.tenant.as_str() == tenant)
        .unwrap_or_else(|| panic!("{tenant} is not monitored"))
        .health
        .state
}

/// Runs heartbeat rounds one interval apart (as `Monitor::run` does) until
/// `done` holds, at most `max` of them.
async fn rounds_until(m: &Monitor, max: usize, done: impl Fn(&Monitor) -> bool) {
    let mut ticker = tokio::time::interval(INTERVAL);
    for _ in 0..max {
        ticker.tick().await;
        m.round(INTERVAL.mul_f32(0.8)).await;
        if done(m) {
            return;
        }
    }
    panic!("not reached within {max} rounds: {:#?}", m.snapshot());
}

fn chromium() -> PathBuf {
    let path = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        path.is_file(),
        "Chromium not found at {}: run `./dev setup` (it installs Debian's chromium), \
         or set $CHROMIUM to a Chromium binary",
        path.display()
    );
    path
}

/// Runs headless Chromium on `url` with `extra` flags, in a fresh profile,
/// killed (with everything it started) after `CHROMIUM_TIMEOUT`; returns
/// its standard output.
async fn run_chromium(extra: &[String], url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let mut cmd = tokio::process::Command::new(chromium());
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        "--enable-logging=stderr",
        "--v=0",
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()))
    .args(extra)
    .arg(url)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .process_group(0)
    .kill_on_drop(true);
    let child = cmd.spawn().expect("cannot start chromium");
    let group = child.id().expect("chromium has a pid");
    match tokio::time::timeout(CHROMIUM_TIMEOUT, child.wait_with_output()).await {
        Ok(output) => {
            let output = output.expect("waiting for chromium");
            kill_group(group); // helpers that outlived the browser, if any
            assert!(
                output.status.success(),
                "chromium failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
            let log = String::from_utf8_lossy(&output.stderr);
            assert!(!log.contains("Uncaught"), "a script error on {url}:\n{log}");
            String::from_utf8_lossy(&output.stdout).into_owned()
        }
        Err(_) => {
            kill_group(group);
            panic!("chromium did not finish within {CHROMIUM_TIMEOUT:?} on {url}; killed it");
        }
    }
}

/// Ends Chromium's process group (it starts helper processes).
fn kill_group(group: u32) {
    let _ = std::process::Command::new("kill")
        .args(["-KILL", "--", &format!("-{group}")])
        .stderr(Stdio::null())
        .status();
}

/// A `<tr>` of the dumped DOM with a `data-state` attribute.
#[derive(Debug)]
struct Row {
    /// Its `data-tenant` (rows of the fleet table).
    tenant: Option<String>,
    state: String,
    text: String,
}

fn attribute(tag: &str, name: &str) -> Option<String> {
    let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    let len = tag[start..].find('"')?;
    Some(tag[start..start + len].to_owned())
}

/// The text of an HTML fragment: tags dropped, whitespace collapsed.
fn text(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => {
                in_tag = true;
                out.push(' ');
            }
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The table rows with a state (`<tr ... data-state=...>`) of a fragment.
fn state_rows(html: &str) -> Vec<Row> {
    html.split("<tr ")
        .skip(1)
        .filter_map(|chunk| {
            let (tag, rest) = chunk.split_once('>')?;
            let tenant = attribute(&format!(" {tag}"), "data-tenant");
            let state = attribute(&format!(" {tag}"), "data-state")?;
            let body = rest.split("</tr>").next().unwrap_or_default();
            Some(Row {
                tenant,
                state,
                text: text(body),
            })
        })
        .collect()
}

/// The `<section id="...">` of a fragment.
fn section<'a>(html: &'a str, id: &str) -> &'a str {
    let start = html
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no section #{id} in:\n{html}"));
    let end = html[start..]
        .find("</section>")
        .map_or(html.len(), |e| start + e);
    &html[start..end]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_a_dead_tenant_in_a_real_browser() {
    chromium(); // fail early, before the fleet is deployed
    let dir = tempfile::tempdir().unwrap();
    let viewer = auth::generate();
    let (fake, store, manifest) = deploy(dir.path(), &viewer).await;
    let operator = access::operator(&fake).await.unwrap();
    let monitor = Arc::new(
        Monitor::new(
            Arc::new(fake.clone()),
            store.clone(),
            manifest.clone(),
            operator,
        )
        .await
        .unwrap(),
    );

    // Everyone answers, then one agent dies.
    rounds_until(&monitor, 10, |m| {
        DEDICATED.iter().all(|t| state(m, t) == Health::Healthy)
    })
    .await;
    let dead = manifest
        .tenants
        .iter()
        .find(|t| t.id.as_str() == DEAD)
        .unwrap();
    fake.respond_to_pings(&dead.account_id, dead.region, false);
    rounds_until(&monitor, 12, |m| state(m, DEAD) == Health::Unreachable).await;
    for t in DEDICATED {
        let expected = if t == DEAD {
            Health::Unreachable
        } else {
            Health::Healthy
        };
        assert_eq!(state(&monitor, t), expected, "{:#?}", monitor.snapshot());
    }
    assert_eq!(
        monitor.snapshot().len(),
        DEDICATED.len(),
        "the hosted tenant is not monitored"
    );

    // The status service on a loopback port.
    let state = AppState {
        manifest: manifest.clone(),
        store: store.clone(),
        monitor: monitor.clone(),
        tokens: auth::Tokens::new(manifest.api.tokens.clone()),
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
    let server = tokio::spawn(api::serve(
        state,
        "127.0.0.1:0".parse().unwrap(),
        move |addr| {
            let _ = addr_tx.send(addr);
        },
        async move {
            let _ = stop_rx.await;
        },
    ));
    let addr = addr_rx.await.expect("the server listens");
    let login = format!("http://{addr}/login?token={viewer}");
    let render = |url: String| async move {
        run_chromium(
            &["--virtual-time-budget=8000".into(), "--dump-dom".into()],
            &url,
        )
        .await
    };

    // The fleet view (the dumped DOM is kept next to the screenshots).
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let dom = render(login.clone()).await;
    std::fs::write(tmp.join("dashboard.html"), &dom).unwrap();
    let rows = state_rows(&dom);
    assert_eq!(
        rows.len(),
        DEDICATED.len() + 1,
        "one row per tenant: {rows:#?}\n{dom}"
    );
    for t in DEDICATED {
        let row = rows
            .iter()
            .find(|r| r.tenant.as_deref() == Some(t))
            .unwrap_or_else(|| panic!("no row for {t}: {dom}"));
        if t == DEAD {
            assert_eq!(row.state, "unreachable", "{row:?}");
            assert!(row.text.contains("Unreachable"), "{row:?}");
            assert!(
                row.text.contains("no pong"),
                "the last error in words: {row:?}"
            );
        } else {
            assert_eq!(row.state, "healthy", "{row:?}");
            assert!(row.text.contains("Healthy"), "{row:?}");
            assert!(
                row.text.contains(" ago"),
                "last seen as relative time: {row:?}"
            );
        }
        assert!(row.text.contains(stacks::RELEASE_VERSION), "{row:?}");
        assert!(
            row.text.contains("CREATE_COMPLETE"),
            "stack statuses: {row:?}"
        );
    }
    let hosted = rows
        .iter()
        .find(|r| r.tenant.as_deref() == Some(HOSTED))
        .expect("the hosted tenant's row");
    assert_eq!(hosted.state, "hosted", "{hosted:?}");
    assert!(hosted.text.contains("Hosted default"), "{hosted:?}");
    assert!(hosted.text.contains("no heartbeat"), "{hosted:?}");
    assert_eq!(
        rows[0].tenant.as_deref(),
        Some(DEAD),
        "the tenant needing attention is on top: {rows:#?}"
    );
    assert!(text(&dom).contains(&format!("Desired release {}", stacks::RELEASE_VERSION)));
    assert!(
        !dom.contains("Stale data") && !dom.contains("Session expired"),
        "{dom}"
    );
    assert!(
        !dom.contains("[object"),
        "every value rendered as text: {dom}"
    );

    // A filtered view, from the URL alone.
    let dom = render(format!("{login}#/?state=unreachable&wave=main")).await;
    let rows = state_rows(&dom);
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert_eq!(rows[0].tenant.as_deref(), Some(DEAD));
    assert!(
        text(&dom).contains("Showing 1 of 5 tenants"),
        "{}",
        text(&dom)
    );

    // A screenshot, for people (and to see that the page paints).
    let png = tmp.join("dashboard.png");
    let _ = std::fs::remove_file(&png);
    run_chromium(
        &[
            "--virtual-time-budget=8000".into(),
            format!("--screenshot={}", png.display()),
            "--window-size=1400,900".into(),
        ],
        &login,
    )
    .await;
    let size = std::fs::metadata(&png).map(|m| m.len()).unwrap_or(0);
    assert!(size > 10_000, "{} is {size} bytes", png.display());

    // The dead tenant brings its own LLM key (documents stay in the hosted
    // bucket); an SRE configured it.
    configure_byok(&store, &manifest, DEAD).await;

    // The dead tenant's page: its history, stacks, outputs and a way back.
    let tenant_page = format!("{login}#/tenants/{DEAD}");
    let dom = render(tenant_page.clone()).await;
    std::fs::write(tmp.join("dashboard-tenant.html"), &dom).unwrap();
    let history = section(&dom, "history");
    let changes = state_rows(history);
    let states: Vec<&str> = changes.iter().map(|c| c.state.as_str()).collect();
    assert_eq!(
        states.first(),
        Some(&"unreachable"),
        "newest first: {changes:#?}"
    );
    assert!(
        states.contains(&"late") && states.contains(&"healthy"),
        "{changes:#?}"
    );
    assert!(
        text(history).contains("Unreachable") && text(history).contains("Late"),
        "{history}"
    );
    assert!(
        text(section(&dom, "stacks")).contains("CREATE_COMPLETE"),
        "{dom}"
    );
    assert!(
        !text(section(&dom, "outputs")).contains("No outputs recorded"),
        "{dom}"
    );
    assert!(
        text(section(&dom, "deployments")).contains("succeeded"),
        "{dom}"
    );
    assert!(
        text(section(&dom, "audit")).contains("deploy.stack"),
        "{dom}"
    );
    assert!(
        dom.contains("href=\"#/\"") && text(&dom).contains("All tenants"),
        "a link back: {dom}"
    );
    assert!(
        !dom.contains("[object"),
        "every value rendered as text: {dom}"
    );
    assert!(
        text(&dom).contains("Missed rounds"),
        "the heartbeat facts: {dom}"
    );
    // Privacy: hosted vs customer-managed is unmistakable, in words.
    let privacy = section(&dom, "privacy");
    let rows: Vec<(Option<String>, Option<String>)> = privacy
        .split("<tr")
        .skip(1)
        .filter_map(|row| {
            let tag = row.split('>').next()?;
            let tag = format!("<tr{tag}>");
            Some((
                attribute(&tag, "data-dependency"),
                attribute(&tag, "data-managed-by"),
            ))
        })
        .filter(|(d, _)| d.is_some())
        .collect();
    assert_eq!(
        rows,
        [
            (Some("storage".into()), Some("vendor".into())),
            (Some("llm".into()), Some("customer".into()))
        ],
        "{privacy}"
    );
    let words = text(privacy);
    for expected in [
        "Hosted by the vendor",
        "Customer-managed",
        "anthropic model claude-sonnet-4-5",
        "key in secret `llm-api-key`",
        "FAILING",
        "llm.invalid_key Anthropic refused the key (401)",
        "What to do: store a valid key with `coordinator secret rotate",
        "7 min ago",
        "n/a (vendor-hosted)",
        "Disabled: fails closed",
        "Version 1",
        "by arn:aws:sts::111111111111:assumed-role/sre/alice",
    ] {
        assert!(
            words.contains(expected),
            "{expected:?} missing from {words}"
        );
    }

    let png = tmp.join("dashboard-tenant.png");
    let _ = std::fs::remove_file(&png);
    run_chromium(
        &[
            "--virtual-time-budget=8000".into(),
            format!("--screenshot={}", png.display()),
            "--window-size=1400,2200".into(),
        ],
        &tenant_page,
    )
    .await;
    let size = std::fs::metadata(&png).map(|m| m.len()).unwrap_or(0);
    assert!(size > 10_000, "{} is {size} bytes", png.display());

    let _ = stop_tx.send(());
    server.await.unwrap().unwrap();
}

/// Gives `tenant` its own Anthropic key, as `coordinator secret put` and
/// `coordinator privacy set` would.
async fn configure_byok(store: &SqliteStore, manifest: &Manifest, tenant: &str) {
    use coordinator::privacy::change;
    use coordinator::store::PrivacyStore;
    let actor = "arn:aws:sts::111111111111:assumed-role/sre/alice";
    let t = manifest
        .tenants
        .iter()
        .find(|t| t.id.as_str() == tenant)
        .unwrap();
    support::record_secret_put(store, &t.id, "llm-api-key", actor).await;
    let config = serde_json::from_value(serde_json::json!({
        "llm": {"mode": "byok", "provider": "anthropic", "model": "claude-sonnet-4-5", "key": "llm-api-key"}
    }))
    .unwrap();
    change::set_config(store, t, config, Some(0), actor)
        .await
        .unwrap();

    // Its key passed a probe, then the customer revoked it.
    use coordinator::probes::{ProbeError, ProbeName, ProbeOutcome, ProbeStatus};
    use coordinator::store::ProbeStore;
    let digest = store.current_privacy(&t.id).await.unwrap().unwrap().digest;
    for (status, minutes_ago) in [(ProbeStatus::Passing, 7), (ProbeStatus::Failing, 1)] {
        let outcome = ProbeOutcome {
            tenant: t.id.clone(),
            probe: ProbeName::Llm,
            status,
            at: chrono::Utc::now() - chrono::Duration::minutes(minutes_ago),
            latency_ms: 120,
            error: (status == ProbeStatus::Failing).then(|| {
                ProbeError::new(
                    "llm.invalid_key",
                    "Anthropic refused the key (401)",
                    "store a valid key with `coordinator secret rotate --tenant globex llm-api-key`",
                )
            }),
            detail: None,
        };
        store.put_probe(&outcome, &digest).await.unwrap();
    }
}
