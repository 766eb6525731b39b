//! Plans for people: a diff-like summary per tenant.
//!
//! ```text
//! acme (222222222222, eu-west-1, wave canary)
//!   + storage  create
//!   ~ worker   update: 1 change
//!       ~ Modify JobQueue (AWS::SQS::Queue), replacement False
//! ```

use std::fmt::Write as _;

use super::{Action, PlanDraft, PlanItem};
use crate::desired::ParameterValue;
use crate::manifest::Manifest;

fn symbol(action: &Action) -> char {
    match action {
        Action::Create => '+',
        Action::Update { .. } => '~',
        Action::NoChange => '=',
        Action::Blocked { .. } => '!',
    }
}

fn item_line(item: &PlanItem, out: &mut String) {
    let head = format!("  {} {:<8}", symbol(&item.action), item.stack.as_str());
    match &item.action {
        Action::Create => {
            let pending: Vec<&str> = item
                .parameters
                .iter()
                .filter_map(|p| match &p.value {
                    ParameterValue::FromOutput { source } => Some(source.output),
                    ParameterValue::Known { .. } => None,
                })
                .collect();
            let note = if pending.is_empty() {
                String::new()
            } else {
                format!(" ({} from storage outputs)", pending.join(", "))
            };
            let _ = writeln!(out, "{head} create{note}");
        }
        Action::Update { changes } => {
            let _ = writeln!(out, "{head} update: {} resource change(s)", changes.len());
            for c in changes {
                let sign = match c.action.as_str() {
                    "Add" => '+',
                    "Remove" => '-',
                    _ => '~',
                };
                let replacement = c
                    .replacement
                    .as_deref()
                    .map(|r| format!(", replacement {r}"))
                    .unwrap_or_default();
                let _ = writeln!(
                    out,
                    "      {sign} {} {} ({}{replacement})",
                    c.action, c.logical_id, c.resource_type
                );
            }
        }
        Action::NoChange => {
            let _ = writeln!(out, "{head} no change");
        }
        Action::Blocked { reason } => {
            let _ = writeln!(out, "{head} blocked: {reason}");
        }
    }
}

/// The plan as text. `header` is the first line (generation and release).
pub fn human(plan: &PlanDraft, manifest: &Manifest, header: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{header}");
    for tp in &plan.tenants {
        let tenant = manifest.tenant(&tp.tenant);
        let context = tenant
            .map(|t| format!(" ({}, {}, wave {})", t.account_id, t.region, t.wave))
            .unwrap_or_default();
        if tp.hosted {
            let _ = writeln!(
                out,
                "{}{context}: hosted default, nothing to deploy",
                tp.tenant
            );
            continue;
        }
        let _ = writeln!(out, "{}{context}", tp.tenant);
        if let Some(reason) = &tp.unreachable {
            let _ = writeln!(out, "  ! unreachable: {reason}");
        }
        for item in &tp.items {
            item_line(item, &mut out);
        }
    }
    let counts = plan.counts();
    let n = |k: &str| counts.get(k).copied().unwrap_or(0);
    let _ = writeln!(
        out,
        "Plan: {} to create, {} to update, {} unchanged, {} blocked.",
        n("create"),
        n("update"),
        n("no_change"),
        n("blocked")
    );
    out
}
