//! `coordinator serve` as a process on moto: it answers its health probe and
//! the API with a token, refuses without one, and stops cleanly (exit 0) on
//! SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use integration_tests::{random_account_id, random_external_id, workspace_binary};

/// A minimal HTTP/1.1 GET (the test needs no client library for this).
pub(crate) fn get(addr: &str, path: &str, token: Option<&str>) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n"
    )
    .expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn serve_answers_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().expect("temp dir");
    let coordinator = workspace_binary(
        "coordinator",
        &[
            "coordinator/src",
            "stacks/src",
            "stacks/templates",
            "protocol/src",
        ],
    );
    let token_json = Command::new(&coordinator)
        .args([
            "token",
            "new",
            "--subject",
            "e2e",
            "--role",
            "viewer",
            "--output",
            "json",
        ])
        .output()
        .expect("token new");
    let token: serde_json::Value = serde_json::from_slice(&token_json.stdout).expect("json");
    let manifest = dir.path().join("deploy.toml");
    std::fs::write(
        &manifest,
        format!(
            "[coordinator]\naccount_id = \"{}\"\nregion = \"us-east-1\"\nstate = \"state.db\"\n[release]\nversion = \"{}\"\n[rollout]\nwaves = [\"all\"]\n[heartbeat]\ninterval = \"1s\"\n[[tenants]]\nid = \"acme\"\naccount_id = \"{}\"\nregion = \"us-east-1\"\nexternal_id = \"{}\"\nwave = \"all\"\ncapabilities = [\"dedicated_aws\"]\n{}",
            random_account_id(),
            stacks::RELEASE_VERSION,
            random_account_id(),
            random_external_id(),
            token["manifest_lines"].as_str().expect("lines")
        ),
    )
    .expect("manifest");
    let mut command = crate::moto_command(&coordinator);
    let mut child = command
        .args([
            "--manifest",
            manifest.to_str().expect("utf-8"),
            "serve",
            "--listen",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve starts");
    // The first line names the bound address; the rest of stdout is drained
    // so the server never writes into a closed pipe.
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut first = String::new();
    stdout.read_line(&mut first).expect("read the banner");
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    let addr = first
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {first:?}"))
        .to_owned();

    assert_eq!(get(&addr, "/healthz", None), (200, "ok".to_owned()));
    assert_eq!(get(&addr, "/api/v1/fleet", None).0, 401);
    let token = token["token"].as_str().expect("token");
    let (status, body) = get(&addr, "/api/v1/tenants", Some(token));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"id\":\"acme\""), "{body}");
    assert!(!body.contains(token), "the token is never echoed");

    let pid = child.id().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "serve did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit status {status:?}");
}
