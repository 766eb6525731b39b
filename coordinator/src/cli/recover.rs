//! `coordinator recover`: the operator's tool for stacks that need one.

use serde_json::json;
use stacks::ids::TenantId;
use stacks::{Release, StackKind};

use super::context::{ConnectorOverride, context, plan_recorded};
use super::render::select_tenants;
use super::{Cli, CmdResult, Failure, OutputFormat};
use crate::access;
use crate::apply::recover::{RecoverError, RecoverRequest, recover};
use crate::plan::{PlanOptions, execution_role};
use crate::store::NewAuditEntry;
use crate::wait::WaitPolicy;

/// Flags of `recover`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The tenant.
    #[arg(long, value_name = "ID")]
    pub tenant: TenantId,
    /// The stack: storage or worker.
    #[arg(long, value_name = "NAME")]
    pub stack: StackKind,
    /// A resource ContinueUpdateRollback may skip (repeatable); see the
    /// runbook before using it.
    #[arg(long = "skip-resource", value_name = "LOGICAL_ID")]
    pub skip_resources: Vec<String>,
    /// Confirm destructive steps (deleting a stack whose create failed), and
    /// recreate it afterwards.
    #[arg(long)]
    pub yes: bool,
}

pub async fn run(cli: &Cli, args: &Args, connector: ConnectorOverride) -> CmdResult {
    if args.stack == StackKind::Bootstrap {
        return Err(Failure::bad_input(
            "the bootstrap stack belongs to the customer; the coordinator never changes it",
        ));
    }
    let ctx = context(cli, Some(&args.tenant), connector).await?;
    let tenant = select_tenants(&ctx.manifest, Some(&args.tenant))?[0].clone();
    if !tenant.deployed_stacks().contains(&args.stack) {
        return Err(Failure::bad_input(format!(
            "tenant `{}` does not get the {} stack (no dedicated_aws capability)",
            tenant.id, args.stack
        )));
    }
    let access = access::connect(ctx.connector.as_ref(), &ctx.operator, &tenant)
        .await
        .map_err(|e| Failure::Failed(e.into()))?;
    let role = execution_role(&tenant);
    let token = format!(
        "docproc-recover-{}-{:08x}",
        args.stack,
        rand::random::<u32>()
    );
    let request = RecoverRequest {
        stack: args.stack,
        skip_resources: &args.skip_resources,
        execution_role: &role,
        confirmed: args.yes,
        token: &token,
        wait: WaitPolicy::STACK,
    };
    let recovery = match recover(access.cloudformation.as_ref(), &request).await {
        Ok(r) => r,
        Err(RecoverError::NeedsConfirmation(why)) => return Err(Failure::bad_input(why)),
        Err(e) => return Err(Failure::Failed(e.into())),
    };
    let _ = ctx
        .store
        .append_audit(NewAuditEntry {
            actor: ctx.operator.actor().to_owned(),
            tenant: Some(tenant.id.clone()),
            action: "recover.stack".into(),
            details: json!({
                "stack": args.stack,
                "action": recovery.action,
                "before": recovery.before,
                "after": recovery.after,
                "recovered": recovery.recovered,
                "skipped_resources": args.skip_resources,
            }),
        })
        .await;
    let observed = access
        .cloudformation
        .describe_stack(args.stack.stack_name())
        .await;
    match observed {
        Ok(d) => {
            if let Err(e) = crate::deploy::refresh_stack_state(
                ctx.store.as_ref(),
                &tenant.id,
                args.stack,
                d.as_ref(),
            )
            .await
            {
                tracing::warn!(error = %e, "could not record the recovered stack state");
            }
            let mut state =
                crate::deploy::previous_state(ctx.store.as_ref(), &tenant.id, args.stack)
                    .await
                    .ok()
                    .flatten();
            if let Some(state) = state.as_mut() {
                state.last_outcome = Some(format!("recovered:{}", recovery.action));
                state.last_reason = (!recovery.recovered).then(|| recovery.message.clone());
                let _ = ctx.store.put_stack_state(state.clone()).await;
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not read the stack after recovery"),
    }
    // A deleted failed create is recreated by a normal deploy of that tenant.
    let mut redeploy = None;
    if recovery.action == "delete"
        && recovery.recovered
        && recovery
            .before
            .as_ref()
            .is_some_and(|s| s.as_str() != "DELETE_FAILED")
    {
        let release = Release::builtin();
        let fleet = ctx.fleet(release, Some(1));
        let (planned, plan) =
            plan_recorded(&fleet, Some(&tenant.id), PlanOptions::default()).await?;
        let progress = crate::deploy::print_progress();
        redeploy = Some(fleet.apply(&plan, &planned, progress.as_ref()).await);
    }
    match cli.output {
        OutputFormat::Json => println!("{}", json!({ "recovery": recovery, "redeploy": redeploy })),
        OutputFormat::Human => {
            println!("{}", recovery.message);
            if let Some(report) = &redeploy {
                print!("{}", super::deploy::summary(report));
            }
        }
    }
    let redeploy_ok = redeploy.as_ref().is_none_or(|r| r.failed().is_empty());
    if recovery.recovered && redeploy_ok {
        Ok(())
    } else {
        Err(Failure::Failed(anyhow::anyhow!(
            "{} of tenant `{}` is not recovered",
            args.stack,
            tenant.id
        )))
    }
}
