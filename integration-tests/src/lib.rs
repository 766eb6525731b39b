//! Helpers for the end-to-end tests, which run against a real AWS emulator:
//! a moto server (`moto[server]`, pinned in `tools/requirements.txt` and
//! installed into `.build/venv` by `./dev setup`).
//!
//! - [`moto::shared`] starts one moto server per test process, lazily, and
//!   shares it between tests; the server dies with the test process.
//! - [`sdk_config`] builds an [`SdkConfig`] pointed at that server with dummy
//!   credentials (they land in moto's default account 123456789012).
//! - [`assume_role`] assumes a role in a given account id and returns an
//!   [`SdkConfig`] whose calls land in that account: moto keeps every account
//!   apart, so each test works in its own fresh [`random_account_id`]s and
//!   never resets the shared server.
//! - [`auth_moto::AuthMoto`] starts a test's own server, for IAM auth
//!   enforcement (global to a moto process, so never on the shared one).
//!
//! moto does not enforce ExternalIds, trust policies or even that the role
//! exists (see `shared/moto-notes.md`): a successful assume-role here proves
//! the request was well formed and routed, not that it would be authorised.

pub mod auth_moto;
pub mod moto;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{Context as _, bail};

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use rand::Rng as _;

/// Region every test uses.
pub const REGION: &str = "us-east-1";

/// Access key id of the static dummy credentials (AWS's documentation key).
pub const TEST_ACCESS_KEY_ID: &str = "AKIAIOSFODNN7EXAMPLE";

/// Secret key of the static dummy credentials (AWS's documentation key).
pub const TEST_SECRET_ACCESS_KEY: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

/// moto's default account: where unknown credentials land.
pub const MOTO_DEFAULT_ACCOUNT_ID: &str = "123456789012";

/// Role session name used by [`assume_role`].
pub const ROLE_SESSION_NAME: &str = "integration-tests";

/// Shortest ExternalId [`assume_role`] accepts (the project's own rule; AWS
/// allows 2).
pub const MIN_EXTERNAL_ID_LEN: usize = 32;

/// Account ids that [`random_account_id`] never returns: moto's default
/// account and a commonly used placeholder.
const RESERVED_ACCOUNT_IDS: [&str; 2] = [MOTO_DEFAULT_ACCOUNT_ID, "111111111111"];

/// Upper bound for one SDK operation (all retries included) against moto, so
/// a wedged emulator fails the test instead of hanging it.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(30);

/// A random 12-digit AWS account id: first digit non-zero, never moto's
/// default account `123456789012` nor `111111111111`.
pub fn random_account_id() -> String {
    let mut rng = rand::rng();
    loop {
        let id = format!(
            "{}{:011}",
            rng.random_range(1..=9u8),
            rng.random_range(0..100_000_000_000u64)
        );
        if !RESERVED_ACCOUNT_IDS.contains(&id.as_str()) {
            return id;
        }
    }
}

/// A random ExternalId of 40 lowercase hex characters.
pub fn random_external_id() -> String {
    let mut rng = rand::rng();
    (0..40)
        .map(|_| char::from_digit(rng.random_range(0..16), 16).expect("digit below 16"))
        .collect()
}

/// An [`SdkConfig`] for the emulator at `endpoint_url`: region
/// [`REGION`], static dummy credentials, and an operation timeout.
pub async fn sdk_config(endpoint_url: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint_url)
        .region(Region::new(REGION))
        .credentials_provider(Credentials::from_keys(
            TEST_ACCESS_KEY_ID,
            TEST_SECRET_ACCESS_KEY,
            None,
        ))
        .timeout_config(
            TimeoutConfig::builder()
                .operation_timeout(OPERATION_TIMEOUT)
                .build(),
        )
        .load()
        .await
}

/// Assumes `arn:aws:iam::<account_id>:role/<role_name>` with `base` (which
/// also gives the endpoint) and returns a copy of `base` that uses the
/// temporary credentials, so its calls land in `account_id`.
///
/// Sends `external_id` (at least [`MIN_EXTERNAL_ID_LEN`] characters) and the
/// session name [`ROLE_SESSION_NAME`].
pub async fn assume_role(
    base: &SdkConfig,
    account_id: &str,
    role_name: &str,
    external_id: &str,
) -> anyhow::Result<SdkConfig> {
    if account_id.len() != 12 || !account_id.bytes().all(|b| b.is_ascii_digit()) {
        // moto would silently put us in its default account instead.
        bail!("account id must be 12 digits, got {account_id:?}");
    }
    if external_id.len() < MIN_EXTERNAL_ID_LEN {
        bail!(
            "ExternalId must have at least {MIN_EXTERNAL_ID_LEN} characters, got {}",
            external_id.len()
        );
    }
    let role_arn = format!("arn:aws:iam::{account_id}:role/{role_name}");
    let output = aws_sdk_sts::Client::new(base)
        .assume_role()
        .role_arn(&role_arn)
        .role_session_name(ROLE_SESSION_NAME)
        .external_id(external_id)
        .send()
        .await
        .with_context(|| format!("AssumeRole {role_arn}"))?;
    let creds = output
        .credentials()
        .with_context(|| format!("AssumeRole {role_arn} returned no credentials"))?;
    let expiry = SystemTime::try_from(*creds.expiration())
        .with_context(|| format!("AssumeRole {role_arn}: bad expiration"))?;
    let credentials = Credentials::new(
        creds.access_key_id(),
        creds.secret_access_key(),
        Some(creds.session_token().to_owned()),
        Some(expiry),
        "integration-tests-assume-role",
    );
    Ok(base
        .to_builder()
        .credentials_provider(SharedCredentialsProvider::new(credentials))
        .build())
}

/// A binary of this workspace (`agent`, `coordinator`), next to the directory
/// of the running test executable (`target/<profile>/`). Fails with the
/// command that builds it when it is missing or older than its crate's
/// sources: `sources` are workspace-relative directories that go into it
/// (`cargo test --workspace --all-targets` builds every binary).
pub fn workspace_binary(name: &str, sources: &[&str]) -> PathBuf {
    use std::path::Path;
    let exe = std::env::current_exe().expect("the test executable's path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test runs from target/<profile>/deps");
    let binary = profile_dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    let built = std::fs::metadata(&binary)
        .and_then(|m| m.modified())
        .unwrap_or_else(|e| {
            panic!(
                "{name} binary not found at {} ({e}): build it with `cargo build -p {name}` \
             (`cargo test --workspace --all-targets` builds it too)",
                binary.display()
            )
        });
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for dir in sources {
        if let Some((_, newer)) =
            newest_file(&workspace.join(dir)).filter(|(modified, _)| *modified > built)
        {
            panic!(
                "{} is older than {}: rebuild it with `cargo build -p {name}`",
                binary.display(),
                newer.display()
            );
        }
    }
    binary
}

fn newest_file(dir: &Path) -> Option<(SystemTime, PathBuf)> {
    let mut newest: Option<(SystemTime, PathBuf)> = None;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        // Other binaries of the crate (`src/bin/`) are not part of this one,
        // and hidden files (editor swap files, insta's pending snapshots
        // written while tests run) are not sources.
        let other_binaries = path.file_name().is_some_and(|n| n == "bin");
        let hidden = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'));
        let candidate = if other_binaries || hidden {
            None
        } else if path.is_dir() {
            newest_file(&path)
        } else {
            entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .map(|t| (t, path))
        };
        if let Some(c) = candidate
            && newest.as_ref().is_none_or(|n| c.0 > n.0)
        {
            newest = Some(c);
        }
    }
    newest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_account_ids_are_12_digits_without_leading_zero() {
        for _ in 0..1000 {
            let id = random_account_id();
            assert_eq!(id.len(), 12, "{id}");
            assert!(id.bytes().all(|b| b.is_ascii_digit()), "{id}");
            assert_ne!(id.as_bytes()[0], b'0', "{id}");
            assert!(!RESERVED_ACCOUNT_IDS.contains(&id.as_str()), "{id}");
        }
    }

    #[test]
    fn random_account_ids_differ() {
        let ids: std::collections::HashSet<_> = (0..100).map(|_| random_account_id()).collect();
        assert_eq!(ids.len(), 100);
    }

    #[test]
    fn random_external_ids_are_long_enough_hex() {
        let id = random_external_id();
        assert!(id.len() >= MIN_EXTERNAL_ID_LEN, "{id}");
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
        assert_ne!(id, random_external_id());
    }
}
