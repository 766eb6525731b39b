//! `bench-deploy [TENANTS] [--no-cli]`: how long deploying a fleet takes on
//! moto, with the coordinator and with a plain AWS CLI loop.
//!
//! ```sh
//! ./dev setup                      # moto and the AWS CLI (tools/requirements.txt)
//! cargo run --release -p integration-tests --bin bench-deploy -- 50
//! ```
//!
//! It starts its own moto server (log in `.build/bench-deploy/`), then
//! deploys the `storage` and `worker` stacks for TENANTS tenants (default
//! 50) three times, each time into fresh random accounts (odd tenants have
//! `byo_ai_keys`, so their worker has the LLM key secret):
//!
//! 1. the coordinator library (`Fleet`: observe, plan, record, apply) with
//!    concurrency 8, as `coordinator deploy --yes` does;
//! 2. the same with concurrency 1;
//! 3. a sequential bash loop of the AWS CLI (`.build/venv/bin/aws`), per
//!    tenant: `sts assume-role` (as the coordinator does, timed too), then for
//!    each stack `cloudformation create-stack` and `wait
//!    stack-create-complete`, and `describe-stacks` in between for the
//!    storage outputs the worker needs. Not `cloudformation deploy`: it
//!    creates new stacks through change sets, and moto gives such stacks no
//!    outputs, so the worker could not be fed; the coordinator also creates
//!    new stacks with `CreateStack`.
//!
//! Every run is checked afterwards (outside the timing) with independent SDK
//! clients: both stacks of every tenant `CREATE_COMPLETE` in its account,
//! outputs that parse. Wall times, per-tenant figures and the number of HTTP
//! requests moto served (counted from its log) are printed side by side.
//!
//! moto is one Python process (GIL-bound) on the same machine: this measures
//! the coordinator's own overhead plus moto's, not AWS, where a stack takes
//! tens of seconds to minutes and waiting dominates.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use aws_config::SdkConfig;
use coordinator::access;
use coordinator::aws::sdk::SdkConnector;
use coordinator::deploy::{DeployReport, Fleet};
use coordinator::desired::{JOB_VISIBILITY_TIMEOUT_SECONDS, MAX_RECEIVE_COUNT};
use coordinator::manifest;
use coordinator::manifest::model::DEFAULT_RETENTION_DAYS;
use coordinator::plan::PlanOptions;
use coordinator::store::sqlite::SqliteStore;
use coordinator::wait::WaitPolicy;
use integration_tests::moto::{self, MotoServer};
use integration_tests::{
    TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY, assume_role, random_account_id, random_external_id,
    sdk_config,
};
use stacks::builtin::bootstrap::{DEPLOY_ROLE_NAME, EXECUTION_ROLE_NAME, WORKLOAD_BOUNDARY_NAME};
use stacks::builtin::storage::{Storage, StorageShape};
use stacks::builtin::worker::{Worker, WorkerShape};
use stacks::{Release, Stack as _, StackKind};

const DEFAULT_TENANTS: usize = 50;
const REGION: &str = "us-east-1";

fn usage() -> String {
    format!(
        "usage: bench-deploy [TENANTS] [--no-cli]\n\
         Deploys storage + worker for TENANTS tenants (default {DEFAULT_TENANTS}) on a private \
         moto server: with the coordinator (concurrency 8 and 1) and with a sequential AWS CLI \
         loop (skipped with --no-cli)."
    )
}

#[derive(Debug)]
struct Args {
    tenants: usize,
    cli: bool,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        tenants: DEFAULT_TENANTS,
        cli: true,
    };
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--no-cli" => args.cli = false,
            "-h" | "--help" => {
                println!("{}", usage());
                std::process::exit(0);
            }
            n => {
                args.tenants = n
                    .parse()
                    .ok()
                    .filter(|n| (1..=999).contains(n))
                    .with_context(|| format!("TENANTS must be 1 to 999, got {n:?}\n{}", usage()))?;
            }
        }
    }
    Ok(args)
}

fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("integration-tests lives inside the workspace")
}

fn aws_cli() -> PathBuf {
    workspace_root().join(".build/venv/bin/aws")
}

/// One tenant of a benchmark fleet.
#[derive(Debug, Clone)]
struct BenchTenant {
    id: String,
    account: String,
    external_id: String,
    byo_ai_keys: bool,
}

/// `n` tenants and a vendor account, all in fresh distinct accounts.
fn fresh_fleet(n: usize) -> (String, Vec<BenchTenant>) {
    let mut seen = std::collections::BTreeSet::new();
    let mut accounts = std::iter::repeat_with(random_account_id).filter(|a| seen.insert(a.clone()));
    let vendor = accounts.next().expect("endless");
    let tenants = (1..=n)
        .map(|i| BenchTenant {
            id: format!("t{i:03}"),
            account: accounts.next().expect("endless"),
            external_id: random_external_id(),
            byo_ai_keys: i % 2 == 1,
        })
        .collect();
    (vendor, tenants)
}

fn manifest_text(vendor: &str, tenants: &[BenchTenant]) -> String {
    let mut text = format!(
        "[coordinator]\naccount_id = \"{vendor}\"\nregion = \"{REGION}\"\nstate = \"coordinator.db\"\n\n\
         [release]\nversion = \"{}\"\n\n[rollout]\nwaves = [\"general\"]\n",
        stacks::RELEASE_VERSION
    );
    for t in tenants {
        let capabilities = if t.byo_ai_keys {
            r#"["dedicated_aws", "byo_ai_keys"]"#
        } else {
            r#"["dedicated_aws"]"#
        };
        let _ = write!(
            text,
            "\n[[tenants]]\nid = \"{}\"\naccount_id = \"{}\"\nregion = \"{REGION}\"\n\
             external_id = \"{}\"\nwave = \"general\"\ncapabilities = {capabilities}\n",
            t.id, t.account, t.external_id
        );
    }
    text
}

/// Lines moto has logged so far that record an HTTP request.
fn requests_served(server: &MotoServer) -> usize {
    std::fs::read_to_string(server.log_path())
        .map(|log| log.lines().filter(|l| l.contains(" HTTP/1.1\" ")).count())
        .unwrap_or(0)
}

/// CPU time (user + system) from `/proc/<pid>/stat`: the process's own, or
/// that of its children it has waited for. The kernel reports it in
/// USER_HZ ticks, which are 1/100 s on Linux.
fn cpu_time(pid: &str, children: bool) -> Duration {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return Duration::ZERO;
    };
    // Fields after "(comm)": state is index 0, utime 11, stime 12, cutime
    // 13, cstime 14.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return Duration::ZERO;
    };
    let fields: Vec<u64> = rest
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let (user, system) = if children { (12, 13) } else { (10, 11) };
    let ticks = fields.get(user).unwrap_or(&0) + fields.get(system).unwrap_or(&0);
    Duration::from_millis(ticks * 10)
}

/// CPU time of the moto server so far.
fn moto_cpu(server: &MotoServer) -> Duration {
    cpu_time(&server.pid().to_string(), false)
}

/// What one run measured.
#[derive(Debug)]
struct Measured {
    label: String,
    tenants: usize,
    total: Duration,
    /// Time of each phase, in order, when the run has phases.
    phases: Vec<(&'static str, Duration)>,
    /// Per-tenant times (apply of both stacks, or one loop iteration).
    per_tenant: Vec<Duration>,
    requests: usize,
    /// CPU time of the client side: this process for the coordinator, the
    /// bash loop and its `aws` processes for the CLI.
    client_cpu: Duration,
    /// CPU time of the moto server.
    moto_cpu: Duration,
}

impl Measured {
    fn per_tenant_of_total(&self) -> Duration {
        self.total / self.tenants as u32
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[rank]
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

/// Deploys a fresh fleet of `n` tenants with the coordinator library.
async fn coordinator_run(
    server: &MotoServer,
    base: &SdkConfig,
    work: &Path,
    n: usize,
    concurrency: usize,
) -> anyhow::Result<(Measured, Vec<BenchTenant>)> {
    let (vendor, tenants) = fresh_fleet(n);
    let dir = work.join(format!("coordinator-c{concurrency}"));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("deploy.toml");
    std::fs::write(&path, manifest_text(&vendor, &tenants))?;
    // The coordinator runs under its own role in the vendor account.
    let vendor_config = assume_role(base, &vendor, "docproc-coordinator", &random_external_id())
        .await
        .context("AssumeRole into the vendor account")?;

    let requests_before = requests_served(server);
    let cpu_before = (cpu_time("self", false), moto_cpu(server));
    let started = Instant::now();
    let manifest = manifest::load(&path)
        .map_err(|e| anyhow::anyhow!("{e}:\n{}", e.report.render()))?
        .manifest;
    let store = SqliteStore::open(&manifest.coordinator.state_path)?;
    let connector = SdkConnector::from_config(vendor_config);
    let operator = access::operator(&connector).await?;
    let fleet = Fleet {
        connector: &connector,
        store: &store,
        manifest: &manifest,
        release: Release::builtin(),
        operator: &operator,
        concurrency,
        stack_wait: WaitPolicy::STACK,
        change_set_wait: WaitPolicy::CHANGE_SET,
    };
    let setup = started.elapsed();
    let planned = fleet.observe_and_plan(None, PlanOptions::default()).await?;
    let plan_done = started.elapsed();
    let plan = fleet.record(planned.draft.clone()).await?;
    let record_done = started.elapsed();
    let report = fleet.apply(&plan, &planned, &|_| {}).await;
    let total = started.elapsed();
    let client_cpu = cpu_time("self", false).saturating_sub(cpu_before.0);
    let moto_cpu = moto_cpu(server).saturating_sub(cpu_before.1);
    let requests = requests_served(server) - requests_before;

    check_report(&report, n)?;
    let per_tenant = report
        .tenants
        .iter()
        .map(|t| Duration::from_millis(t.items.iter().filter_map(|i| i.duration_ms).sum::<u64>()))
        .collect();
    Ok((
        Measured {
            label: format!("coordinator (library Fleet), concurrency {concurrency}"),
            tenants: n,
            total,
            phases: vec![
                ("set-up (manifest, state, GetCallerIdentity)", setup),
                ("observe + plan", plan_done - setup),
                ("record the plan", record_done - plan_done),
                ("apply", total - record_done),
            ],
            per_tenant,
            requests,
            client_cpu,
            moto_cpu,
        },
        tenants,
    ))
}

fn check_report(report: &DeployReport, n: usize) -> anyhow::Result<()> {
    ensure!(
        report.tenants.len() == n,
        "the report has {} tenants, not {n}",
        report.tenants.len()
    );
    let failed: Vec<String> = report
        .failed()
        .iter()
        .map(|t| {
            let why: Vec<String> = t.items.iter().map(|i| i.describe()).collect();
            format!("{}: {}", t.tenant, why.join("; "))
        })
        .collect();
    ensure!(
        failed.is_empty(),
        "tenants failed:\n  {}",
        failed.join("\n  ")
    );
    for t in &report.tenants {
        let actions: Vec<&str> = t.items.iter().map(|i| i.action).collect();
        ensure!(
            actions == ["create", "create"],
            "{}: planned {actions:?}, expected two creates",
            t.tenant
        );
    }
    Ok(())
}

/// The bash loop: one tenant after the other, every call a fresh `aws`
/// process, as an operator would script it.
const CLI_LOOP: &str = r#"#!/usr/bin/env bash
# Deploys docproc-storage and docproc-worker into each tenant's account, one
# tenant after the other, with the AWS CLI. Arguments: endpoint, work dir,
# aws program. Reads "<tenant> <account> <byo 0|1> <external id>" lines from
# DIR/tenants.txt; appends "<tenant> <start> <end>" to DIR/timings.txt.
set -euo pipefail
endpoint="$1"
dir="$2"
aws="$3"
base_key="$AWS_ACCESS_KEY_ID"
base_secret="$AWS_SECRET_ACCESS_KEY"
while read -r tenant account byo external_id; do
    start="$EPOCHREALTIME"
    creds="$(AWS_ACCESS_KEY_ID="$base_key" AWS_SECRET_ACCESS_KEY="$base_secret" \
        "$aws" sts assume-role --endpoint-url "$endpoint" \
        --role-arn "arn:aws:iam::${account}:role/@DEPLOY_ROLE@" \
        --role-session-name docproc-bench --external-id "$external_id" \
        --query 'Credentials.[AccessKeyId,SecretAccessKey,SessionToken]' --output text)"
    read -r key secret token <<<"$creds"
    export AWS_ACCESS_KEY_ID="$key" AWS_SECRET_ACCESS_KEY="$secret" AWS_SESSION_TOKEN="$token"
    role="arn:aws:iam::${account}:role/@EXECUTION_ROLE@"
    tags=("Key=docproc:tenant,Value=$tenant" "Key=docproc:release,Value=@RELEASE@")

    "$aws" cloudformation create-stack --endpoint-url "$endpoint" \
        --stack-name docproc-storage --template-body "file://$dir/storage.template.json" \
        --parameters "ParameterKey=TenantId,ParameterValue=$tenant" \
                     "ParameterKey=RetentionDays,ParameterValue=@RETENTION_DAYS@" \
        --capabilities CAPABILITY_IAM CAPABILITY_NAMED_IAM \
        --role-arn "$role" --tags "${tags[@]}" >/dev/null
    "$aws" cloudformation wait stack-create-complete --endpoint-url "$endpoint" \
        --stack-name docproc-storage
    outputs="$("$aws" cloudformation describe-stacks --endpoint-url "$endpoint" \
        --stack-name docproc-storage \
        --query "Stacks[0].[Outputs[?OutputKey=='KmsKeyArn'].OutputValue|[0],Outputs[?OutputKey=='BucketArn'].OutputValue|[0]]" \
        --output text)"
    read -r kms_key_arn bucket_arn <<<"$outputs"

    worker_template="$dir/worker.template.json"
    if [ "$byo" = 1 ]; then
        worker_template="$dir/worker-llm-key.template.json"
    fi
    "$aws" cloudformation create-stack --endpoint-url "$endpoint" \
        --stack-name docproc-worker --template-body "file://$worker_template" \
        --parameters "ParameterKey=TenantId,ParameterValue=$tenant" \
                     "ParameterKey=KmsKeyArn,ParameterValue=$kms_key_arn" \
                     "ParameterKey=BucketArn,ParameterValue=$bucket_arn" \
                     "ParameterKey=PermissionsBoundaryArn,ParameterValue=arn:aws:iam::${account}:policy/@BOUNDARY@" \
                     "ParameterKey=JobVisibilityTimeoutSeconds,ParameterValue=@VISIBILITY@" \
                     "ParameterKey=MaxReceiveCount,ParameterValue=@MAX_RECEIVE@" \
        --capabilities CAPABILITY_IAM CAPABILITY_NAMED_IAM \
        --role-arn "$role" --tags "${tags[@]}" >/dev/null
    "$aws" cloudformation wait stack-create-complete --endpoint-url "$endpoint" \
        --stack-name docproc-worker

    unset AWS_SESSION_TOKEN
    echo "$tenant $start $EPOCHREALTIME" >>"$dir/timings.txt"
done <"$dir/tenants.txt"
"#;

/// Deploys a fresh fleet of `n` tenants with the AWS CLI loop.
async fn cli_run(
    server: &MotoServer,
    work: &Path,
    n: usize,
) -> anyhow::Result<(Measured, Vec<BenchTenant>)> {
    let aws = aws_cli();
    if !aws.is_file() {
        bail!(
            "the AWS CLI is not at {}: run `./dev setup` (it installs tools/requirements.txt), \
             or pass --no-cli",
            aws.display()
        );
    }
    let (_, tenants) = fresh_fleet(n);
    let dir = work.join("aws-cli");
    std::fs::create_dir_all(&dir)?;
    let release = Release::builtin();
    let templates = [
        (
            "storage.template.json",
            release.render_template::<Storage>(&StorageShape::default())?,
        ),
        (
            "worker.template.json",
            release.render_template::<Worker>(&WorkerShape {
                llm_key_secret: false,
            })?,
        ),
        (
            "worker-llm-key.template.json",
            release.render_template::<Worker>(&WorkerShape {
                llm_key_secret: true,
            })?,
        ),
    ];
    for (name, template) in &templates {
        std::fs::write(dir.join(name), template.canonical_json())?;
    }
    let mut list = String::new();
    for t in &tenants {
        let _ = writeln!(
            list,
            "{} {} {} {}",
            t.id,
            t.account,
            u8::from(t.byo_ai_keys),
            t.external_id
        );
    }
    std::fs::write(dir.join("tenants.txt"), list)?;
    let script = CLI_LOOP
        .replace("@DEPLOY_ROLE@", DEPLOY_ROLE_NAME)
        .replace("@EXECUTION_ROLE@", EXECUTION_ROLE_NAME)
        .replace("@BOUNDARY@", WORKLOAD_BOUNDARY_NAME)
        .replace("@RELEASE@", stacks::RELEASE_VERSION)
        .replace("@RETENTION_DAYS@", &DEFAULT_RETENTION_DAYS.to_string())
        .replace("@VISIBILITY@", &JOB_VISIBILITY_TIMEOUT_SECONDS.to_string())
        .replace("@MAX_RECEIVE@", &MAX_RECEIVE_COUNT.to_string());
    let script_path = dir.join("deploy-loop.sh");
    std::fs::write(&script_path, script)?;
    let no_file = dir.join("no-such-aws-config");

    let requests_before = requests_served(server);
    let cpu_before = (cpu_time("self", true), moto_cpu(server));
    let started = Instant::now();
    let output = tokio::process::Command::new("bash")
        .arg(&script_path)
        .arg(server.endpoint())
        .arg(&dir)
        .arg(&aws)
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_ENDPOINT_URL")
        .env("AWS_ACCESS_KEY_ID", TEST_ACCESS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", TEST_SECRET_ACCESS_KEY)
        .env("AWS_DEFAULT_REGION", REGION)
        .env("AWS_REGION", REGION)
        .env("AWS_CONFIG_FILE", &no_file)
        .env("AWS_SHARED_CREDENTIALS_FILE", &no_file)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .kill_on_drop(true)
        .output()
        .await
        .context("run bash")?;
    let total = started.elapsed();
    // bash has been waited for, and it waited for every `aws` it ran.
    let client_cpu = cpu_time("self", true).saturating_sub(cpu_before.0);
    let moto_cpu = moto_cpu(server).saturating_sub(cpu_before.1);
    let requests = requests_served(server) - requests_before;
    ensure!(
        output.status.success(),
        "the AWS CLI loop failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );

    let timings = std::fs::read_to_string(dir.join("timings.txt"))?;
    let per_tenant: Vec<Duration> = timings
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (start, end): (f64, f64) = match fields.as_slice() {
                [_, start, end] => (start.parse()?, end.parse()?),
                _ => bail!("bad timing line {line:?}"),
            };
            Ok(Duration::from_secs_f64((end - start).max(0.0)))
        })
        .collect::<anyhow::Result<_>>()?;
    ensure!(
        per_tenant.len() == n,
        "the loop timed {} tenants, not {n}",
        per_tenant.len()
    );
    Ok((
        Measured {
            label: "AWS CLI, sequential bash loop".to_owned(),
            tenants: n,
            total,
            phases: vec![],
            per_tenant,
            requests,
            client_cpu,
            moto_cpu,
        },
        tenants,
    ))
}

/// Checks with independent SDK clients that every tenant has both stacks,
/// `CREATE_COMPLETE`, in its own account, with outputs that parse.
async fn verify(base: &SdkConfig, tenants: &[BenchTenant]) -> anyhow::Result<()> {
    for t in tenants {
        let config = assume_role(base, &t.account, "bench-verifier", &random_external_id())
            .await?
            .to_builder()
            .region(aws_config::Region::new(REGION))
            .build();
        let cfn = aws_sdk_cloudformation::Client::new(&config);
        for kind in [StackKind::Storage, StackKind::Worker] {
            let name = kind.stack_name();
            let out = cfn
                .describe_stacks()
                .stack_name(name)
                .send()
                .await
                .with_context(|| format!("{}: DescribeStacks {name}", t.id))?;
            let stack = out
                .stacks()
                .first()
                .with_context(|| format!("{}: no {name}", t.id))?;
            ensure!(
                stack.stack_status()
                    == Some(&aws_sdk_cloudformation::types::StackStatus::CreateComplete),
                "{}: {name} is {:?}",
                t.id,
                stack.stack_status()
            );
            let pairs = stack
                .outputs()
                .iter()
                .filter_map(|o| Some((o.output_key()?, o.output_value()?)));
            match kind {
                StackKind::Storage => Storage::parse_outputs(pairs).map(drop),
                _ => Worker::parse_outputs(pairs).map(drop),
            }
            .with_context(|| format!("{}: outputs of {name}", t.id))?;
        }
    }
    Ok(())
}

fn print_results(results: &[Measured]) {
    let header = [
        "wall",
        "wall/tenant",
        "tenant p50",
        "tenant max",
        "requests",
        "client CPU",
        "moto CPU",
    ];
    println!();
    println!(
        "{:<44} {:>9} {:>11} {:>10} {:>10} {:>12} {:>10} {:>9}",
        "", header[0], header[1], header[2], header[3], header[4], header[5], header[6]
    );
    for m in results {
        let mut sorted = m.per_tenant.clone();
        sorted.sort();
        let requests = format!(
            "{} ({:.0}/t)",
            m.requests,
            m.requests as f64 / m.tenants as f64
        );
        println!(
            "{:<44} {:>9} {:>11} {:>10} {:>10} {:>12} {:>10} {:>9}",
            m.label,
            secs(m.total),
            ms(m.per_tenant_of_total()),
            ms(percentile(&sorted, 0.5)),
            ms(percentile(&sorted, 1.0)),
            requests,
            secs(m.client_cpu),
            secs(m.moto_cpu),
        );
    }
    for m in results.iter().filter(|m| !m.phases.is_empty()) {
        println!();
        println!("{}:", m.label);
        for (phase, d) in &m.phases {
            println!("  {phase:<46} {:>10}", secs(*d));
        }
    }
    println!();
    println!(
        "\"tenant\" times: the coordinator's are apply only (both stacks, from the report's \
         per-stack durations; tenants overlap at concurrency > 1); the loop's are one iteration \
         (assume-role, two create-stack + wait, describe-stacks). CPU is user + system at 10 ms \
         resolution; the client's is this process for the coordinator, and bash with its aws \
         processes for the CLI."
    );
}

async fn run(args: Args, server: &MotoServer) -> anyhow::Result<()> {
    println!(
        "bench-deploy: {} tenants x 2 stacks (storage, worker) on moto at {} (pid {}, started in {}, log {})",
        args.tenants,
        server.endpoint(),
        server.pid(),
        ms(server.startup_time()),
        server.log_path().display()
    );
    let base = sdk_config(server.endpoint()).await;
    let work = tempfile::Builder::new()
        .prefix("bench-deploy-")
        .tempdir_in(workspace_root().join(".build"))
        .context("work directory in .build")?;
    let mut results = Vec::new();

    // Warm-up, not measured: the first requests of a process (moto's
    // imports, the SDK's connection set-up) are slower.
    let (_, warm) = coordinator_run(server, &base, work.path(), 2, 2).await?;
    verify(&base, &warm).await?;

    for concurrency in [8, 1] {
        println!("coordinator, concurrency {concurrency} ...");
        let (measured, tenants) =
            coordinator_run(server, &base, work.path(), args.tenants, concurrency).await?;
        verify(&base, &tenants).await?;
        println!("  {} (verified)", secs(measured.total));
        results.push(measured);
    }
    if args.cli {
        println!("AWS CLI loop ...");
        let (measured, tenants) = cli_run(server, work.path(), args.tenants).await?;
        verify(&base, &tenants).await?;
        println!("  {} (verified)", secs(measured.total));
        results.push(measured);
    }
    print_results(&results);
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let log_dir = workspace_root().join(".build/bench-deploy");
    let server = moto::shared(&log_dir);
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(args, server))
}
