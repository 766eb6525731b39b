//! The worker-side heartbeat responder, embeddable in the vendor's document
//! worker (or run on its own as the `agent` binary).
//!
//! The coordinator sends [`protocol::Ping`]s to a tenant's heartbeat request
//! queue; a [`Responder`] long-polls that queue, answers each ping with a
//! [`protocol::Pong`] on the reply queue (with the job queue's and
//! dead-letter queue's approximate depths), and deletes the ping.
//!
//! Embedding it:
//!
//! ```no_run
//! use std::sync::Arc;
//! use agent::{Config, Responder, SqsQueues};
//!
//! # async fn example(sdk_config: aws_config::SdkConfig) -> Result<(), agent::ConfigError> {
//! let mut config = Config::new(
//!     "worker-7",
//!     "https://sqs.eu-west-1.amazonaws.com/123456789012/docproc-worker-heartbeat-requests",
//!     "https://sqs.eu-west-1.amazonaws.com/123456789012/docproc-worker-heartbeat-replies",
//! );
//! config.job_queue_url = Some("https://sqs.eu-west-1.amazonaws.com/123456789012/docproc-worker-jobs".into());
//! let responder = Responder::new(config, Arc::new(SqsQueues::new(&sdk_config)))?;
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let task = tokio::spawn({
//!     let responder = responder.clone();
//!     async move { responder.run(stopped).await }
//! });
//! // ... the worker's own work; on shutdown:
//! let _ = stop.send(());
//! let stats = task.await.expect("responder task");
//! println!("answered {} pings", stats.pings_answered);
//! # Ok(())
//! # }
//! ```
//!
//! Modules: [`queues`] (the SQS seam), [`sqs`] (on `aws-sdk-sqs`), [`fake`]
//! (in memory, for tests), [`responder`] (the responder itself).

pub mod fake;
pub mod queues;
pub mod responder;
pub mod sqs;

/// The heartbeat protocol crate this agent speaks (for [`protocol::VERSION`],
/// and to build pings in tests).
pub use protocol;

pub use queues::{ErrorKind, Message, QueueError, Queues};
pub use responder::{AGENT_VERSION, Config, ConfigError, Responder, Stats, StatsSnapshot};
pub use sqs::SqsQueues;
