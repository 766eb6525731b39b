//! Renders the three stacks a deployed tenant gets (bootstrap and storage in
//! their default shape, worker with the LLM key secret for every other
//! tenant) for N tenants, single-threaded, and prints the wall time, the time
//! per tenant and the peak resident set size (`VmHWM` from
//! `/proc/self/status`, Linux only).
//!
//! ```text
//! cargo run --release -p stacks --example render_fleet -- 1000
//! cargo run --release -p stacks --example render_fleet -- 1000 --keep
//! ```
//!
//! By default each tenant's stacks are dropped once rendered (what a
//! coordinator deploying tenant by tenant does); `--keep` holds all of them
//! until the end, so the peak RSS includes every rendered template.
//!
//! The timed part includes building each tenant's typed inputs (parsing the
//! ids and ARNs) and rendering, validating and hashing its three templates.
//! The first render also compiles the built-in release; that is timed
//! separately.

use std::time::Instant;

use stacks::builtin::bootstrap::{Bootstrap, BootstrapParameters, BootstrapShape};
use stacks::builtin::storage::{RetentionDays, Storage, StorageParameters, StorageShape};
use stacks::builtin::worker::{Worker, WorkerParameters, WorkerShape};
use stacks::ids::{AccountId, TenantId};
use stacks::{Release, RenderedStack, StackError};

/// Renders tenant number `n` (1-based): tenant `t0001`, account
/// `100000000001`, and so on; odd tenants bring their own LLM key.
fn render_tenant(release: &Release, n: u32) -> Result<[RenderedStack; 3], StackError> {
    let tenant: TenantId = format!("t{n:04}").parse().expect("valid tenant id");
    let account: AccountId = format!("{:012}", 100_000_000_000u64 + u64::from(n))
        .parse()
        .expect("valid account id");
    let bootstrap = BootstrapParameters {
        coordinator_principal_arn: "arn:aws:iam::111111111111:role/docproc-coordinator"
            .parse()
            .expect("valid role ARN"),
        external_id: format!("extid-{tenant}-0123456789abcdef0123456789")
            .parse()
            .expect("valid ExternalId"),
    };
    let storage = StorageParameters {
        tenant_id: tenant.clone(),
        retention_days: RetentionDays::new(30).expect("in range"),
    };
    let worker = WorkerParameters {
        tenant_id: tenant.clone(),
        kms_key_arn: format!(
            "arn:aws:kms:eu-west-1:{account}:key/0b7e3c1a-5d2f-4f5e-9c11-2f0d8e6a7b90"
        )
        .parse()
        .expect("valid KMS ARN"),
        bucket_arn: format!("arn:aws:s3:::docproc-storage-documentsbucket-{tenant}")
            .parse()
            .expect("valid bucket ARN"),
        permissions_boundary_arn: format!(
            "arn:aws:iam::{account}:policy/docproc-workload-boundary"
        )
        .parse()
        .expect("valid boundary ARN"),
        job_visibility_timeout_seconds: 300,
        max_receive_count: 5,
    };
    let worker_shape = WorkerShape {
        llm_key_secret: n % 2 == 1,
    };
    Ok([
        release.render::<Bootstrap>(&BootstrapShape::default(), &bootstrap)?,
        release.render::<Storage>(&StorageShape::default(), &storage)?,
        release.render::<Worker>(&worker_shape, &worker)?,
    ])
}

/// Peak resident set size in KiB, from `/proc/self/status`.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn main() {
    let usage = || -> ! {
        eprintln!(
            "usage: render_fleet [TENANTS] [--keep]  (TENANTS a positive number, default 1000)"
        );
        std::process::exit(2);
    };
    let mut tenants: u32 = 1000;
    let mut keep = false;
    for arg in std::env::args().skip(1) {
        if arg == "--keep" {
            keep = true;
        } else {
            match arg.parse() {
                Ok(n) if n >= 1 => tenants = n,
                _ => usage(),
            }
        }
    }

    let start = Instant::now();
    let release = Release::builtin();
    let compile = start.elapsed();

    let start = Instant::now();
    let mut stacks = 0usize;
    let mut template_bytes = 0usize;
    let mut kept: Vec<[RenderedStack; 3]> = Vec::new();
    for n in 1..=tenants {
        let rendered = match render_tenant(release, n) {
            Ok(rendered) => rendered,
            Err(e) => {
                eprintln!("tenant t{n:04}: {e}");
                std::process::exit(1);
            }
        };
        for stack in &rendered {
            stacks += 1;
            template_bytes += stack.template.canonical_json().len();
        }
        if keep {
            kept.push(rendered);
        }
    }
    let elapsed = start.elapsed();

    println!("release {} compiled in {:.2?}", release.version(), compile);
    println!(
        "rendered {stacks} stacks for {tenants} tenants in {:.2?} ({:.1} µs per tenant, {:.1} MiB of canonical JSON{})",
        elapsed,
        elapsed.as_secs_f64() * 1e6 / f64::from(tenants),
        template_bytes as f64 / (1024.0 * 1024.0),
        if keep {
            ", all kept"
        } else {
            ", each dropped after rendering"
        },
    );
    match peak_rss_kib() {
        Some(kib) => println!(
            "peak RSS (VmHWM): {kib} KiB ({:.1} MiB)",
            kib as f64 / 1024.0
        ),
        None => println!("peak RSS: unavailable (no /proc/self/status)"),
    }
    drop(kept);
}
