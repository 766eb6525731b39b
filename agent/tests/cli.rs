//! The `agent` binary's command line: help, exit code 2 on bad flags, exit
//! code 1 on fatal errors. (Answering pings is covered against moto by
//! `integration-tests/tests/e2e/agent.rs`.)

use std::process::{Command, Output};

const REQUESTS: &str =
    "https://sqs.us-east-1.amazonaws.com/210987654321/docproc-worker-heartbeat-requests";
const REPLIES: &str =
    "https://sqs.us-east-1.amazonaws.com/210987654321/docproc-worker-heartbeat-replies";

/// The binary with a clean environment: no AWS or AGENT_ settings leak in
/// from the caller.
fn agent() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_agent"));
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy().into_owned();
        if name.starts_with("AWS_") || name.starts_with("AGENT_") || name == "RUST_LOG" {
            command.env_remove(name);
        }
    }
    command
        .env("AWS_CONFIG_FILE", "/nonexistent/agent-test/config")
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/agent-test/credentials",
        )
        .env("AWS_EC2_METADATA_DISABLED", "true");
    command
}

fn run(command: &mut Command) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = command.output().expect("run the agent binary");
    (
        status.code().expect("exited normally"),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

#[test]
fn help_lists_every_flag_with_its_environment_variable() {
    let (code, stdout, _) = run(agent().arg("--help"));
    assert_eq!(code, 0);
    for text in [
        "--request-queue-url",
        "AGENT_REQUEST_QUEUE_URL",
        "--reply-queue-url",
        "AGENT_REPLY_QUEUE_URL",
        "--job-queue-url",
        "AGENT_JOB_QUEUE_URL",
        "--dead-letter-queue-url",
        "--region",
        "AWS_REGION",
        "--endpoint-url",
        "AWS_ENDPOINT_URL",
        "--role-arn",
        "--worker-id",
        "--concurrency",
        "--log-format",
        "human",
        "json",
        "SIGTERM",
    ] {
        assert!(stdout.contains(text), "--help lacks {text:?}:\n{stdout}");
    }
    let (code, stdout, _) = run(agent().arg("--version"));
    assert_eq!(code, 0);
    assert!(stdout.contains(env!("CARGO_PKG_VERSION")), "{stdout}");
}

#[test]
fn bad_flags_exit_2() {
    let cases: [&[&str]; 6] = [
        &[],
        &["--request-queue-url", REQUESTS],
        &[
            "--request-queue-url",
            "not a url",
            "--reply-queue-url",
            REPLIES,
        ],
        &[
            "--request-queue-url",
            REQUESTS,
            "--reply-queue-url",
            REPLIES,
            "--concurrency",
            "0",
        ],
        &[
            "--request-queue-url",
            REQUESTS,
            "--reply-queue-url",
            REPLIES,
            "--log-format",
            "xml",
        ],
        &[
            "--request-queue-url",
            REQUESTS,
            "--reply-queue-url",
            REPLIES,
            "--role-arn",
            "agent",
        ],
    ];
    for args in cases {
        let (code, _, stderr) = run(agent().args(args));
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(stderr.contains("error"), "{args:?}: {stderr}");
    }
    let (code, _, stderr) = run(agent().args([
        "--request-queue-url",
        REQUESTS,
        "--reply-queue-url",
        REQUESTS,
    ]));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("must differ"), "{stderr}");
}

#[test]
fn flags_fall_back_to_the_environment() {
    // Everything from the environment except a region: fatal, exit 1 (so
    // the queue URLs were accepted).
    let (code, _, stderr) = run(agent()
        .env("AGENT_REQUEST_QUEUE_URL", REQUESTS)
        .env("AGENT_REPLY_QUEUE_URL", REPLIES)
        .env("AGENT_CONCURRENCY", "0"));
    assert_eq!(code, 2, "AGENT_CONCURRENCY is read: {stderr}");
    let (code, _, stderr) = run(agent()
        .env("AGENT_REQUEST_QUEUE_URL", REQUESTS)
        .env("AGENT_REPLY_QUEUE_URL", REPLIES)
        .env("AGENT_LOG_FORMAT", "json"));
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("no AWS region"), "{stderr}");
    assert!(stderr.trim_start().starts_with('{'), "JSON logs: {stderr}");
}
