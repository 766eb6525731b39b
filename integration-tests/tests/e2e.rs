//! End-to-end tests against one moto server shared by the whole binary.
//!
//! This is the crate's only test binary (one binary means one moto process);
//! each area is a module in `tests/e2e/`. Every test works in its own random
//! account ids, so tests run in parallel and never reset the server.

use std::path::Path;
use std::process::{Child, Command, Stdio};

use aws_config::SdkConfig;
use coordinator::manifest::Tenant;
use integration_tests::moto::{self, MotoServer};
use stacks::builtin::worker::WorkerOutputs;

#[path = "e2e/agent.rs"]
mod agent;
#[path = "e2e/aws_sdk.rs"]
mod aws_sdk;
#[path = "e2e/customer_dependencies.rs"]
mod customer_dependencies;
#[path = "e2e/deploy.rs"]
mod deploy;
#[path = "e2e/heartbeat.rs"]
mod heartbeat;
#[path = "e2e/privacy_cli.rs"]
mod privacy_cli;
#[path = "e2e/privacy_gitops.rs"]
mod privacy_gitops;
#[path = "e2e/rollout.rs"]
mod rollout;
#[path = "e2e/secret_rewrap.rs"]
mod secret_rewrap;
#[path = "e2e/secrets.rs"]
mod secrets;
#[path = "e2e/serve.rs"]
mod serve;
#[path = "e2e/sqs.rs"]
mod sqs;
#[path = "e2e/storage_probe.rs"]
mod storage_probe;
#[path = "e2e/sts.rs"]
mod sts;
#[path = "e2e/verify.rs"]
mod verify;

/// The moto server of this test process (started on first use).
fn moto() -> &'static MotoServer {
    moto::shared(Path::new(env!("CARGO_TARGET_TMPDIR")))
}

/// An [`SdkConfig`] for moto with dummy credentials (moto's default account).
async fn base_config() -> SdkConfig {
    integration_tests::sdk_config(moto().endpoint()).await
}

/// A command for `program` whose AWS settings point at this process's moto
/// with the test credentials, and at nothing inherited from the environment.
fn moto_command(program: &Path) -> Command {
    let mut command = Command::new(program);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("AWS_") {
            command.env_remove(name);
        }
    }
    command
        .env("AWS_ENDPOINT_URL", moto().endpoint())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", integration_tests::TEST_ACCESS_KEY_ID)
        .env(
            "AWS_SECRET_ACCESS_KEY",
            integration_tests::TEST_SECRET_ACCESS_KEY,
        );
    command
}

/// A real `agent` process answering in `tenant`'s account, logging to
/// `log_dir/agent-<tenant>.log`.
fn spawn_agent(tenant: &Tenant, queues: &WorkerOutputs, log_dir: &Path) -> Child {
    let log =
        std::fs::File::create(log_dir.join(format!("agent-{}.log", tenant.id))).expect("agent log");
    moto_command(&integration_tests::workspace_binary(
        "agent",
        &["agent/src", "protocol/src"],
    ))
    .env("AWS_REGION", tenant.region.as_str())
    .env("RUST_LOG", "warn")
    .arg("--role-arn")
    .arg(format!(
        "arn:aws:iam::{}:role/docproc-worker",
        tenant.account_id
    ))
    .arg("--request-queue-url")
    .arg(queues.heartbeat_request_queue_url.as_str())
    .arg("--reply-queue-url")
    .arg(queues.heartbeat_reply_queue_url.as_str())
    .arg("--job-queue-url")
    .arg(queues.job_queue_url.as_str())
    .arg("--worker-id")
    .arg(format!("e2e-{}", tenant.id))
    .stdin(Stdio::null())
    .stdout(log.try_clone().expect("log handle"))
    .stderr(log)
    .spawn()
    .expect("the agent starts")
}

/// Agent processes, killed when the test ends, even by a panic.
struct Agents(Vec<Child>);

impl Drop for Agents {
    fn drop(&mut self) {
        for a in &mut self.0 {
            let _ = a.kill();
            let _ = a.wait();
        }
    }
}
