//! End-to-end tests against one moto server shared by the whole binary.
//!
//! This is the crate's only test binary (one binary means one moto process);
//! each area is a module in `tests/e2e/`. Every test works in its own random
//! account ids, so tests run in parallel and never reset the server.

use std::path::Path;

use aws_config::SdkConfig;
use integration_tests::moto::{self, MotoServer};

#[path = "e2e/agent.rs"]
mod agent;
#[path = "e2e/aws_sdk.rs"]
mod aws_sdk;
#[path = "e2e/deploy.rs"]
mod deploy;
#[path = "e2e/heartbeat.rs"]
mod heartbeat;
#[path = "e2e/rollout.rs"]
mod rollout;
#[path = "e2e/serve.rs"]
mod serve;
#[path = "e2e/sqs.rs"]
mod sqs;
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
