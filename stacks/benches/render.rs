//! Rendering benchmarks: the three stacks a deployed tenant gets (bootstrap
//! and storage in their default shape, worker with the LLM key secret for
//! every other tenant), for a fleet of 1,000 tenants and one stack at a time.
//!
//! Rendering is handlebars (strict), JSON parsing, the template checks, the
//! hash and the comparison with the types: everything `Release::render` does.
//! Inputs (typed ids and parameters) are built once, outside the timed loop.
//!
//! Run with `cargo bench -p stacks`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use stacks::builtin::bootstrap::{Bootstrap, BootstrapParameters, BootstrapShape};
use stacks::builtin::storage::{RetentionDays, Storage, StorageParameters, StorageShape};
use stacks::builtin::worker::{Worker, WorkerParameters, WorkerShape};
use stacks::ids::{AccountId, TenantId};
use stacks::{Release, RenderedStack};

/// One tenant's inputs for its three stacks.
struct TenantInputs {
    bootstrap: BootstrapParameters,
    storage: StorageParameters,
    worker_shape: WorkerShape,
    worker: WorkerParameters,
}

/// Inputs for tenant number `n` (1-based): tenant `t0001`, account
/// `100000000001`, and so on; odd tenants bring their own LLM key.
fn tenant_inputs(n: u32) -> TenantInputs {
    let tenant: TenantId = format!("t{n:04}").parse().expect("valid tenant id");
    let account: AccountId = format!("{:012}", 100_000_000_000u64 + u64::from(n))
        .parse()
        .expect("valid account id");
    TenantInputs {
        bootstrap: BootstrapParameters {
            coordinator_principal_arn: "arn:aws:iam::111111111111:role/docproc-coordinator"
                .parse()
                .expect("valid role ARN"),
            external_id: format!("extid-{tenant}-0123456789abcdef0123456789")
                .parse()
                .expect("valid ExternalId"),
        },
        storage: StorageParameters {
            tenant_id: tenant.clone(),
            retention_days: RetentionDays::new(30).expect("in range"),
        },
        worker_shape: WorkerShape {
            llm_key_secret: n % 2 == 1,
        },
        worker: WorkerParameters {
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
        },
    }
}

/// Renders (and so validates and hashes) one tenant's three stacks.
fn render_tenant(release: &Release, t: &TenantInputs) -> [RenderedStack; 3] {
    [
        release
            .render::<Bootstrap>(&BootstrapShape::default(), &t.bootstrap)
            .expect("bootstrap renders"),
        release
            .render::<Storage>(&StorageShape::default(), &t.storage)
            .expect("storage renders"),
        release
            .render::<Worker>(&t.worker_shape, &t.worker)
            .expect("worker renders"),
    ]
}

fn fleet(c: &mut Criterion) {
    let release = Release::builtin();
    let tenants: Vec<TenantInputs> = (1..=1000).map(tenant_inputs).collect();
    let mut group = c.benchmark_group("fleet");
    // One iteration is a third of a second or so: ten flat samples of a
    // couple of iterations each keep the run short on a 2-core machine.
    group.sample_size(10);
    group.sampling_mode(SamplingMode::Flat);
    group.warm_up_time(Duration::from_secs(2));
    group.measurement_time(Duration::from_secs(6));
    group.bench_function("render_3_stacks_1000_tenants", |b| {
        b.iter(|| {
            for t in &tenants {
                black_box(render_tenant(release, black_box(t)));
            }
        })
    });
    group.finish();
}

fn single(c: &mut Criterion) {
    let release = Release::builtin();
    let t = tenant_inputs(1);
    let mut group = c.benchmark_group("single");
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    group.bench_function("bootstrap", |b| {
        b.iter(|| {
            release
                .render::<Bootstrap>(&BootstrapShape::default(), black_box(&t.bootstrap))
                .expect("bootstrap renders")
        })
    });
    group.bench_function("storage", |b| {
        b.iter(|| {
            release
                .render::<Storage>(&StorageShape::default(), black_box(&t.storage))
                .expect("storage renders")
        })
    });
    group.bench_function("worker", |b| {
        b.iter(|| {
            release
                .render::<Worker>(&WorkerShape::default(), black_box(&t.worker))
                .expect("worker renders")
        })
    });
    group.bench_function("worker_llm_key_secret", |b| {
        b.iter(|| {
            release
                .render::<Worker>(
                    &WorkerShape {
                        llm_key_secret: true,
                    },
                    black_box(&t.worker),
                )
                .expect("worker renders")
        })
    });
    group.finish();
}

criterion_group!(benches, fleet, single);
criterion_main!(benches);
