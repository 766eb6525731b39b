//! The heartbeat agent against moto, in a fresh account per test: the
//! library's `Responder` on `SqsQueues` answers pings sent with the SDK, and
//! so does the real `agent` binary (assuming a role into the tenant's
//! account, as moto needs), which then exits 0 promptly on SIGTERM.

use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ::agent::protocol::{self, Ping, Pong};
use ::agent::{Config, Responder, SqsQueues};
use aws_config::SdkConfig;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::QueueAttributeName;
use integration_tests::{
    REGION, TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY, assume_role, random_account_id,
    random_external_id,
};

use crate::{base_config, moto};

/// How long to wait for pongs.
const PONG_DEADLINE: Duration = Duration::from_secs(30);

/// How long the binary may take to exit after SIGTERM.
const EXIT_DEADLINE: Duration = Duration::from_secs(10);

/// A tenant account with the worker stack's heartbeat and job queues.
struct Tenant {
    account: String,
    config: SdkConfig,
    sqs: Client,
    requests: String,
    replies: String,
    jobs: String,
}

async fn tenant() -> Tenant {
    let account = random_account_id();
    let config = assume_role(
        &base_config().await,
        &account,
        "agent",
        &random_external_id(),
    )
    .await
    .expect("assume a role in the tenant's account");
    let sqs = Client::new(&config);
    let mut urls = Vec::new();
    for name in [
        "docproc-worker-heartbeat-requests",
        "docproc-worker-heartbeat-replies",
        "docproc-worker-jobs",
    ] {
        let created = sqs
            .create_queue()
            .queue_name(name)
            .send()
            .await
            .unwrap_or_else(|e| panic!("create queue {name}: {e:?}"));
        urls.push(created.queue_url().expect("QueueUrl").to_owned());
    }
    let [requests, replies, jobs] = <[String; 3]>::try_from(urls).expect("three queues");
    Tenant {
        account,
        config,
        sqs,
        requests,
        replies,
        jobs,
    }
}

impl Tenant {
    async fn send(&self, queue: &str, body: String) {
        self.sqs
            .send_message()
            .queue_url(queue)
            .message_body(body)
            .send()
            .await
            .expect("SendMessage");
    }

    /// Sends a ping as the coordinator would; returns it.
    async fn ping(&self, seq: u64) -> Ping {
        let ping = Ping::new("acme", seq, "e2e-coordinator");
        self.send(&self.requests, protocol::encode_ping(&ping))
            .await;
        ping
    }

    /// Receives (and deletes) pongs until `count` arrived or
    /// [`PONG_DEADLINE`] passed.
    async fn pongs(&self, count: usize) -> Vec<Pong> {
        let deadline = Instant::now() + PONG_DEADLINE;
        let mut pongs = Vec::new();
        while pongs.len() < count && Instant::now() < deadline {
            let output = self
                .sqs
                .receive_message()
                .queue_url(&self.replies)
                .max_number_of_messages(10)
                .wait_time_seconds(2)
                .send()
                .await
                .expect("ReceiveMessage on the reply queue");
            for message in output.messages() {
                let body = message.body().expect("a body");
                pongs.push(protocol::decode_pong(body).expect("a pong"));
                self.sqs
                    .delete_message()
                    .queue_url(&self.replies)
                    .receipt_handle(message.receipt_handle().expect("a receipt handle"))
                    .send()
                    .await
                    .expect("DeleteMessage");
            }
        }
        pongs
    }

    /// Messages on a queue, visible or in flight.
    async fn messages_on(&self, queue: &str) -> u64 {
        let output = self
            .sqs
            .get_queue_attributes()
            .queue_url(queue)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .expect("GetQueueAttributes");
        let attributes = output.attributes().expect("attributes");
        [
            QueueAttributeName::ApproximateNumberOfMessages,
            QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
        ]
        .iter()
        .map(|name| {
            attributes
                .get(name)
                .map_or(0, |v| v.parse::<u64>().expect("a count"))
        })
        .sum()
    }
}

#[tokio::test]
async fn responder_answers_pings_on_moto() {
    let tenant = tenant().await;
    tenant.send(&tenant.jobs, "job 1".into()).await;
    tenant.send(&tenant.jobs, "job 2".into()).await;

    let mut config = Config::new("e2e-in-process", &tenant.requests, &tenant.replies);
    config.job_queue_url = Some(tenant.jobs.clone());
    config.concurrency = 2;
    let responder = Responder::new(config, Arc::new(SqsQueues::new(&tenant.config)))
        .expect("valid responder config");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn({
        let responder = responder.clone();
        async move { responder.run(stopped).await }
    });

    let mut pings = Vec::new();
    for seq in 1..=3 {
        pings.push(tenant.ping(seq).await);
    }
    let pongs = tenant.pongs(3).await;
    let _ = stop.send(());
    let stats = tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("the responder stops promptly")
        .expect("responder task");

    let sent: BTreeSet<_> = pings.iter().map(|p| p.nonce.clone()).collect();
    let answered: BTreeSet<_> = pongs.iter().map(|p| p.nonce.clone()).collect();
    assert_eq!(pongs.len(), 3, "{pongs:?}");
    assert_eq!(answered, sent);
    for pong in &pongs {
        let ping = pings
            .iter()
            .find(|p| p.nonce == pong.nonce)
            .expect("its ping");
        assert_eq!(pong.seq, ping.seq);
        assert_eq!(pong.tenant, "acme");
        assert_eq!(pong.worker_id, "e2e-in-process");
        assert_eq!(pong.agent_version, ::agent::AGENT_VERSION);
        assert_eq!(pong.job_queue_depth, Some(2));
        assert_eq!(pong.dead_letter_depth, None);
    }
    assert_eq!(stats.pings_answered, 3, "{stats:?}");
    assert_eq!(stats.receive_errors + stats.send_errors, 0, "{stats:?}");
    assert_eq!(
        tenant.messages_on(&tenant.requests).await,
        0,
        "answered pings are deleted"
    );
}

/// The `agent` binary of this workspace build.
fn agent_binary() -> PathBuf {
    integration_tests::workspace_binary("agent", &["agent/src", "protocol/src"])
}

/// Kills the child if the test ends before it exited.
struct Reaper(Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Polls for the child's exit for up to `deadline`.
async fn wait_for_exit(child: &mut Child, deadline: Duration) -> Option<ExitStatus> {
    let until = Instant::now() + deadline;
    while Instant::now() < until {
        if let Some(status) = child.try_wait().expect("wait for the agent") {
            return Some(status);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

#[tokio::test]
async fn agent_binary_answers_a_ping_and_exits_0_on_sigterm() {
    let binary = agent_binary();
    let tenant = tenant().await;
    tenant.send(&tenant.jobs, "job".into()).await;
    let log_path =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("agent-{}.log", tenant.account));
    let log = File::create(&log_path).expect("create the agent's log file");
    let read_log = || std::fs::read_to_string(&log_path).unwrap_or_default();

    let mut command = Command::new(&binary);
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy().into_owned();
        if name.starts_with("AWS_") || name.starts_with("AGENT_") {
            command.env_remove(name);
        }
    }
    command
        .args([
            "--role-arn",
            &format!("arn:aws:iam::{}:role/agent", tenant.account),
        ])
        .args(["--worker-id", "e2e-binary"])
        .args(["--job-queue-url", &tenant.jobs])
        .env("AGENT_REQUEST_QUEUE_URL", &tenant.requests)
        .env("AGENT_REPLY_QUEUE_URL", &tenant.replies)
        .env("AWS_REGION", REGION)
        .env("AWS_ENDPOINT_URL", moto().endpoint())
        .env("AWS_ACCESS_KEY_ID", TEST_ACCESS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", TEST_SECRET_ACCESS_KEY)
        .env("AWS_CONFIG_FILE", "/nonexistent/agent-e2e/config")
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/agent-e2e/credentials",
        )
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    let mut agent = Reaper(command.spawn().expect("start the agent binary"));

    let ping = tenant.ping(1).await;
    let pongs = tenant.pongs(1).await;
    assert_eq!(
        pongs.len(),
        1,
        "no pong from the agent binary; its log:\n{}",
        read_log()
    );
    let pong = &pongs[0];
    assert_eq!(pong.nonce, ping.nonce);
    assert_eq!(pong.seq, 1);
    assert_eq!(pong.worker_id, "e2e-binary");
    assert_eq!(pong.job_queue_depth, Some(1));

    let pid = agent.0.id().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("run kill");
    assert!(killed.success(), "kill -TERM {pid} failed");
    let status = wait_for_exit(&mut agent.0, EXIT_DEADLINE).await;
    let log = read_log();
    let status = status.unwrap_or_else(|| {
        panic!("the agent did not exit within {EXIT_DEADLINE:?} of SIGTERM; its log:\n{log}")
    });
    assert!(
        status.success(),
        "the agent exited with {status}; its log:\n{log}"
    );
    assert!(log.contains("SIGTERM"), "{log}");
    assert!(log.contains("heartbeat responder stopped"), "{log}");
    assert!(
        !log.contains(TEST_SECRET_ACCESS_KEY) && !log.contains("wJalrXUtnFEMI"),
        "credentials in the agent's log:\n{log}"
    );
    assert_eq!(
        tenant.messages_on(&tenant.requests).await,
        0,
        "the answered ping is deleted"
    );
}
