//! The seed's end-to-end path on moto, through the real binaries: a tenant
//! is configured with its own S3 bucket and its own LLM key (kept in the
//! tenant's Secrets Manager, reached through its role); the probes pass and
//! the admin API shows both dependencies customer-managed and passing, with
//! their last-validated times; then the customer breaks the bucket grant,
//! and within a probe interval the admin API shows the failure with its
//! code and remedy while the effective configuration fails closed (424),
//! never falling back to the vendor's bucket.
//!
//! The LLM provider is a local server speaking the OpenAI wire format for
//! `GET /v1/models` (no network here).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use integration_tests::{assume_role, random_account_id, random_external_id, workspace_binary};

use crate::serve::get;

const LLM_KEY: &str = "sk-PLANTED-customer-llm-key-7f3a9c2b1d0e";
const ROLE: &str = "docproc-coordinator-deploy";

/// A tiny OpenAI-compatible server: `GET /v1/models` with the right bearer
/// key lists `gpt-4o`; any other key gets 401. Runs until the test ends.
fn llm_provider() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut head = String::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                head.push_str(&line);
            }
            let authorized = head
                .lines()
                .any(|l| l.eq_ignore_ascii_case(&format!("authorization: Bearer {LLM_KEY}")));
            let (status, body) = if !head.starts_with("GET /v1/models") {
                (
                    "404 Not Found",
                    r#"{"error":{"message":"not found"}}"#.to_owned(),
                )
            } else if authorized {
                ("200 OK", r#"{"object":"list","data":[{"id":"gpt-4o","object":"model"},{"id":"gpt-3.5-turbo","object":"model"}]}"#.to_owned())
            } else {
                ("401 Unauthorized", r#"{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","code":"invalid_api_key"}}"#.to_owned())
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    format!("http://{addr}/v1")
}

fn coordinator_bin() -> std::path::PathBuf {
    workspace_binary(
        "coordinator",
        &[
            "coordinator/src",
            "stacks/src",
            "stacks/templates",
            "protocol/src",
        ],
    )
}

fn run(manifest: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = crate::moto_command(&coordinator_bin())
        .arg("--manifest")
        .arg(manifest)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the coordinator runs");
    let mut input = child.stdin.take().expect("stdin");
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).expect("stdin");
    }
    drop(input);
    child.wait_with_output().expect("exit")
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\n{}\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn token(role: &str) -> (String, String) {
    let out = Command::new(coordinator_bin())
        .args([
            "token",
            "new",
            "--subject",
            role,
            "--role",
            role,
            "--output",
            "json",
        ])
        .output()
        .expect("token new");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    (
        json["token"].as_str().expect("token").to_owned(),
        json["manifest_lines"].as_str().expect("lines").to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customer_storage_and_byok_pass_then_a_broken_grant_fails_closed_within_an_interval() {
    let dir = tempfile::tempdir().expect("temp dir");
    let account = random_account_id();
    let external_id = random_external_id();
    let tenant = format!("t{}", &account[..8]);
    let bucket = format!("docs-{}", &account[..10]);
    let provider = llm_provider();

    // The customer's bucket, in its own account.
    let base = crate::base_config().await;
    let customer = assume_role(&base, &account, ROLE, &external_id)
        .await
        .expect("assume the tenant role");
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&customer)
            .force_path_style(true)
            .build(),
    );
    s3.create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("create the bucket");

    let (viewer, viewer_lines) = token("viewer");
    let (service, service_lines) = token("service");
    let manifest = dir.path().join("deploy.toml");
    std::fs::write(
        &manifest,
        format!(
            "[coordinator]\naccount_id = \"{}\"\nregion = \"us-east-1\"\nstate = \"state.db\"\n\
             [release]\nversion = \"{}\"\n[rollout]\nwaves = [\"all\"]\n[heartbeat]\ninterval = \"1s\"\n\
             [secrets]\nbackend = \"secrets_manager\"\naccount = \"tenant\"\n\
             [[tenants]]\nid = \"{tenant}\"\naccount_id = \"{account}\"\nregion = \"us-east-1\"\n\
             external_id = \"{external_id}\"\nwave = \"all\"\n\
             capabilities = [\"dedicated_aws\", \"customer_storage\", \"byo_ai_keys\"]\n\
             {viewer_lines}{service_lines}",
            random_account_id(),
            stacks::RELEASE_VERSION,
        ),
    )
    .expect("manifest");

    // The key goes into the tenant's own Secrets Manager; the configuration
    // names it, and the bucket, and nothing secret.
    let o = run(
        &manifest,
        &["secret", "put", "--tenant", &tenant, "llm-api-key"],
        Some(LLM_KEY),
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("Secrets Manager in tenant"),
        "{}",
        text(&o)
    );
    let config = dir.path().join("privacy.toml");
    std::fs::write(
        &config,
        format!(
            "[storage]\nmode = \"customer_s3\"\nbucket = \"{bucket}\"\nregion = \"us-east-1\"\n\
             [llm]\nmode = \"byok\"\nprovider = \"openai_compatible\"\nbase_url = \"{provider}\"\nmodel = \"gpt-4o\"\nkey = \"llm-api-key\"\n"
        ),
    )
    .expect("config");
    let o = run(
        &manifest,
        &[
            "privacy",
            "set",
            "--tenant",
            &tenant,
            "--file",
            config.to_str().expect("utf-8"),
        ],
        None,
    );
    assert!(o.status.success(), "{}", text(&o));

    // Probes on demand: both pass.
    let o = run(
        &manifest,
        &["--output", "json", "check", "--tenant", &tenant],
        None,
    );
    assert!(o.status.success(), "{}", text(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let status = |probe: &str| {
        report["outcomes"]
            .as_array()
            .expect("outcomes")
            .iter()
            .find(|x| x["probe"] == probe)
            .map(|x| x["status"].as_str().unwrap_or_default().to_owned())
    };
    assert_eq!(status("storage").as_deref(), Some("passing"), "{report}");
    assert_eq!(status("llm").as_deref(), Some("passing"), "{report}");
    assert_eq!(
        status("heartbeat").as_deref(),
        Some("not_applicable"),
        "{report}"
    );
    for outcome in report["outcomes"].as_array().expect("outcomes") {
        eprintln!(
            "probe {} {} in {} ms",
            outcome["probe"], outcome["status"], outcome["latency_ms"]
        );
    }

    // The service runs the probes every second.
    let mut serve = crate::moto_command(&coordinator_bin())
        .arg("--manifest")
        .arg(&manifest)
        .args(["serve", "--listen", "127.0.0.1:0", "--probe-interval", "1s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("serve");
    let mut stdout = BufReader::new(serve.stdout.take().expect("stdout"));
    let mut first = String::new();
    stdout.read_line(&mut first).expect("banner");
    let mut serve_out = String::new();
    let addr = first
        .split("http://")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {first:?}"))
        .to_owned();
    let privacy_path = format!("/api/v1/tenants/{tenant}/privacy");
    let effective_path = format!("/api/v1/tenants/{tenant}/effective-config");
    let privacy = || {
        let (code, body) = get(&addr, &privacy_path, Some(&viewer));
        assert_eq!(code, 200, "{body}");
        assert!(!body.contains(LLM_KEY), "the key in an API reply: {body}");
        serde_json::from_str::<serde_json::Value>(&body).expect("json")
    };

    // Both green, customer-managed, with last-validated times.
    let view = privacy();
    for dep in ["storage", "llm"] {
        assert_eq!(view[dep]["managed_by"], "customer", "{view}");
        assert_eq!(view[dep]["check"]["state"], "passing", "{view}");
        assert!(view[dep]["check"]["last_validated"].is_string(), "{view}");
    }
    assert_eq!(view["hosted_fallback"]["enabled"], false);
    let (code, body) = get(&addr, &effective_path, Some(&service));
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"customer\""), "{body}");

    // The customer's security team denies writes to the bucket.
    let policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Deny","Principal":"*","Action":"s3:PutObject","Resource":"arn:aws:s3:::{bucket}/*"}}]}}"#
    );
    s3.put_bucket_policy()
        .bucket(&bucket)
        .policy(policy)
        .send()
        .await
        .expect("put the bucket policy");
    let broke = Instant::now();
    let view = loop {
        let view = privacy();
        if view["storage"]["check"]["state"] == "failing" {
            break view;
        }
        assert!(
            broke.elapsed() < Duration::from_secs(20),
            "the failure never showed: {view}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let shown_after = broke.elapsed();
    assert_eq!(
        view["storage"]["check"]["last_error_code"], "storage.access_denied_put",
        "{view}"
    );
    assert!(
        view["storage"]["check"]["remedy"]
            .as_str()
            .is_some_and(|r| r.contains("s3:PutObject")),
        "{view}"
    );
    assert!(
        view["storage"]["check"]["last_validated"].is_string(),
        "the last pass is kept: {view}"
    );
    assert_eq!(view["llm"]["check"]["state"], "passing", "{view}");
    // Fail closed: the workers are told no, never "use the hosted bucket".
    let (code, body) = get(&addr, &effective_path, Some(&service));
    assert_eq!(code, 424, "{body}");
    assert!(!body.contains(LLM_KEY), "the key in an API reply: {body}");
    let refused: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(refused["refusals"][0]["dependency"], "storage", "{refused}");
    assert_eq!(refused["refusals"][0]["code"], "storage.access_denied_put");
    assert_ne!(refused["effective"]["storage"]["use"], "hosted");
    eprintln!("the broken grant showed after {shown_after:?} at a 1 s probe interval");

    let _ = Command::new("kill")
        .args(["-TERM", &serve.id().to_string()])
        .status();
    let status = serve.wait().expect("serve exits");
    stdout.read_to_string(&mut serve_out).expect("stdout");
    let mut stderr = String::new();
    serve
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("stderr");
    assert!(status.success(), "{status:?}\n{serve_out}\n{stderr}");
    assert!(
        !format!("{serve_out}{stderr}").contains(LLM_KEY),
        "the key was printed"
    );
}
