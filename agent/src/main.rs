//! The `agent` binary: runs a heartbeat [`Responder`] until SIGTERM or
//! Ctrl-C, then finishes the replies in flight and exits 0.
//!
//! Exit codes: 0 after a graceful shutdown (or `--help`), 2 on bad flags,
//! 1 on fatal errors (no region, signal handlers unavailable, a second
//! signal during shutdown). SQS errors are not fatal: they are logged and
//! retried. Credentials are never printed.

use std::io::IsTerminal as _;
use std::process::ExitCode;
use std::sync::Arc;

use agent::{AGENT_VERSION, Config, Responder, SqsQueues};
use anyhow::Context as _;
use aws_config::sts::AssumeRoleProvider;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::SharedCredentialsProvider;
use clap::{CommandFactory as _, Parser, ValueEnum};
use tokio::signal::unix::{SignalKind, signal};

/// Answers the coordinator's heartbeat pings from inside the customer's
/// account.
///
/// Long-polls the heartbeat request queue, replies to each ping on the reply
/// queue (with the job queue's and dead-letter queue's approximate depths),
/// then deletes the ping. Several agents may share a queue. SQS errors,
/// AccessDenied included, are logged and retried with backoff: the agent
/// never gives up. SIGTERM or Ctrl-C stop it gracefully (a second one stops
/// it at once).
///
/// Credentials and region come from the usual AWS sources (environment,
/// profile, ECS task role...). Log verbosity follows RUST_LOG (default:
/// info).
#[derive(Debug, Parser)]
#[command(name = "agent", version, max_term_width = 100)]
struct Cli {
    /// URL of the heartbeat request queue (pings).
    #[arg(long, env = "AGENT_REQUEST_QUEUE_URL", value_name = "URL", value_parser = queue_url)]
    request_queue_url: String,

    /// URL of the heartbeat reply queue (pongs).
    #[arg(long, env = "AGENT_REPLY_QUEUE_URL", value_name = "URL", value_parser = queue_url)]
    reply_queue_url: String,

    /// URL of the job queue, whose approximate depth goes into pongs.
    #[arg(long, env = "AGENT_JOB_QUEUE_URL", value_name = "URL", value_parser = queue_url)]
    job_queue_url: Option<String>,

    /// URL of the jobs' dead-letter queue, whose approximate depth goes into
    /// pongs.
    #[arg(long, env = "AGENT_DEAD_LETTER_QUEUE_URL", value_name = "URL", value_parser = queue_url)]
    dead_letter_queue_url: Option<String>,

    /// AWS region of the queues [default: from the AWS profile].
    #[arg(long, env = "AWS_REGION", value_name = "REGION")]
    region: Option<String>,

    /// Send AWS requests to this endpoint instead of AWS's (e.g. an
    /// emulator).
    #[arg(long, env = "AWS_ENDPOINT_URL", value_name = "URL")]
    endpoint_url: Option<String>,

    /// Assume this IAM role first and use its credentials for every call.
    #[arg(long, env = "AGENT_ROLE_ARN", value_name = "ARN", value_parser = role_arn)]
    role_arn: Option<String>,

    /// Name of this worker in pongs [default: HOSTNAME-PID].
    #[arg(long, env = "AGENT_WORKER_ID", value_name = "ID")]
    worker_id: Option<String>,

    /// Number of tasks long-polling the request queue.
    #[arg(long, env = "AGENT_CONCURRENCY", value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u16).range(1..=64))]
    concurrency: u16,

    /// Log format on stderr.
    #[arg(long, env = "AGENT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Human)]
    log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    /// Readable lines.
    Human,
    /// One JSON object per line.
    Json,
}

fn queue_url(value: &str) -> Result<String, String> {
    if value.starts_with("https://") || value.starts_with("http://") {
        Ok(value.to_owned())
    } else {
        Err("expected a queue URL starting with https://".to_owned())
    }
}

fn role_arn(value: &str) -> Result<String, String> {
    let parts: Vec<&str> = value.splitn(6, ':').collect();
    match parts.as_slice() {
        ["arn", partition, "iam", "", account, resource]
            if partition.starts_with("aws")
                && account.len() == 12
                && account.bytes().all(|b| b.is_ascii_digit())
                && resource
                    .strip_prefix("role/")
                    .is_some_and(|name| !name.is_empty()) =>
        {
            Ok(value.to_owned())
        }
        _ => Err("expected an IAM role ARN like arn:aws:iam::123456789012:role/NAME".to_owned()),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "agent failed");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let worker_id = cli
        .worker_id
        .clone()
        .filter(|id| !id.trim().is_empty())
        .unwrap_or_else(default_worker_id);
    let mut config = Config::new(&worker_id, &cli.request_queue_url, &cli.reply_queue_url);
    config.job_queue_url = cli.job_queue_url.clone();
    config.dead_letter_queue_url = cli.dead_letter_queue_url.clone();
    config.concurrency = cli.concurrency.into();
    if let Err(e) = config.validate() {
        Cli::command()
            .error(clap::error::ErrorKind::ArgumentConflict, e)
            .exit();
    }

    // Before anything slow, so an early SIGTERM is not lost.
    let mut terminate = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;

    let sdk_config = sdk_config(&cli, &worker_id).await?;
    let responder = Responder::new(config, Arc::new(SqsQueues::new(&sdk_config)))?;
    tracing::info!(
        version = AGENT_VERSION,
        role_arn = cli.role_arn.as_deref(),
        "agent starting"
    );

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let name = tokio::select! {
            _ = terminate.recv() => "SIGTERM",
            _ = interrupt.recv() => "SIGINT",
        };
        tracing::info!(
            signal = name,
            "shutting down (send it again to stop at once)"
        );
        let _ = stop.send(());
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
        tracing::error!("second signal: exiting without finishing replies in flight");
        std::process::exit(1);
    });
    responder.run(stopped).await;
    Ok(())
}

/// The SDK configuration: the default chain, with the region and endpoint
/// from the flags, and the role assumed if asked.
async fn sdk_config(cli: &Cli, worker_id: &str) -> anyhow::Result<SdkConfig> {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(region) = cli.region.as_deref().filter(|r| !r.is_empty()) {
        loader = loader.region(Region::new(region.to_owned()));
    }
    if let Some(endpoint) = cli.endpoint_url.as_deref().filter(|e| !e.is_empty()) {
        loader = loader.endpoint_url(endpoint);
    }
    let base = loader.load().await;
    if base.region().is_none() {
        anyhow::bail!("no AWS region: pass --region or set AWS_REGION");
    }
    let Some(role_arn) = cli.role_arn.as_deref() else {
        return Ok(base);
    };
    let provider = AssumeRoleProvider::builder(role_arn)
        .session_name(session_name(worker_id))
        .configure(&base)
        .build()
        .await;
    Ok(base
        .to_builder()
        .credentials_provider(SharedCredentialsProvider::new(provider))
        .build())
}

/// `docproc-agent-<worker id>`, reduced to what a role session name allows.
fn session_name(worker_id: &str) -> String {
    format!("docproc-agent-{worker_id}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "+=,.@-_".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect()
}

/// `<hostname>-<pid>`.
fn default_worker_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown-host".to_owned());
    format!("{host}-{}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn flag_values_are_checked() {
        assert!(role_arn("arn:aws:iam::123456789012:role/agent").is_ok());
        assert!(role_arn("arn:aws-cn:iam::123456789012:role/path/agent").is_ok());
        assert!(role_arn("arn:aws:iam::12345:role/agent").is_err());
        assert!(role_arn("arn:aws:iam::123456789012:user/agent").is_err());
        assert!(role_arn("agent").is_err());
        assert!(queue_url("https://sqs.us-east-1.amazonaws.com/1/q").is_ok());
        assert!(queue_url("sqs://q").is_err());
    }

    #[test]
    fn session_names_are_valid() {
        assert_eq!(session_name("host 1/2"), "docproc-agent-host-1-2");
        assert_eq!(session_name(&"x".repeat(100)).len(), 64);
        assert!(default_worker_id().ends_with(&format!("-{}", std::process::id())));
    }
}
