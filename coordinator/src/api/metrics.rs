//! `/metrics` in the Prometheus text exposition format (0.0.4).
//!
//! Series and their label cardinality (bounded, documented in
//! docs/admin/status-service.md):
//! - `docproc_tenants{state}`: gauge, one series per heartbeat state (7);
//! - `docproc_heartbeat_rtt_seconds`: histogram of pong round trips;
//! - `docproc_heartbeat_pings_sent_total`, `..._pongs_received_total`,
//!   `..._pongs_unmatched_total`, `..._malformed_total`, `..._errors_total`;
//! - `docproc_deployments_total{outcome}`: deployments by outcome (6);
//! - `docproc_tenant_last_heartbeat_timestamp_seconds{tenant}`: one series
//!   per monitored tenant (bounded by the fleet size in deploy.toml);
//! - `docproc_probes{probe,status}`: gauge, tenants by their latest probe
//!   outcome (4 probes x 3 statuses);
//! - `docproc_probe_last_pass_timestamp_seconds{tenant,probe}`: when each
//!   customer-managed dependency last passed (tenants x 4, bounded by the
//!   fleet size).

use std::fmt::Write as _;
use std::sync::Mutex;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{ApiError, AppState};
use crate::heartbeat::detector::Health;
use crate::manifest::raw::TokenRole;
use crate::probes::{ProbeName, ProbeStatus};

/// Bucket upper bounds of the round-trip histogram, in seconds.
pub const RTT_BUCKETS: &[f64] = &[0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// A cumulative histogram.
#[derive(Debug, Default)]
pub struct Histogram {
    inner: Mutex<(Vec<u64>, u64, f64)>,
}

impl Histogram {
    /// Records observations in seconds.
    pub fn observe_all(&self, values: impl IntoIterator<Item = f64>) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if g.0.is_empty() {
            g.0 = vec![0; RTT_BUCKETS.len()];
        }
        for v in values {
            for (i, bound) in RTT_BUCKETS.iter().enumerate() {
                if v <= *bound {
                    g.0[i] += 1;
                }
            }
            g.1 += 1;
            g.2 += v;
        }
    }

    /// Writes the histogram in the exposition format.
    pub fn render(&self, name: &str, help: &str, out: &mut String) {
        let g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} histogram");
        for (i, bound) in RTT_BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{bound}\"}} {}",
                g.0.get(i).copied().unwrap_or(0)
            );
        }
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", g.1);
        let _ = writeln!(out, "{name}_sum {}", g.2);
        let _ = writeln!(out, "{name}_count {}", g.1);
    }
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The exposition text.
pub async fn render(state: &AppState) -> Result<String, ApiError> {
    let snapshot = state.monitor.snapshot();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP docproc_tenants Monitored tenants by heartbeat state."
    );
    let _ = writeln!(out, "# TYPE docproc_tenants gauge");
    for h in Health::ALL {
        let n = snapshot.iter().filter(|s| s.health.state == *h).count();
        let _ = writeln!(out, "docproc_tenants{{state=\"{}\"}} {n}", h.as_str());
    }
    state.monitor.rtt.render(
        "docproc_heartbeat_rtt_seconds",
        "Round-trip time from ping to received pong.",
        &mut out,
    );
    let c = state.monitor.counters.values();
    for (name, help, value) in [
        (
            "docproc_heartbeat_pings_sent_total",
            "Pings sent.",
            c.pings_sent,
        ),
        (
            "docproc_heartbeat_pongs_received_total",
            "Pongs that answered a ping.",
            c.pongs_received,
        ),
        (
            "docproc_heartbeat_pongs_unmatched_total",
            "Pongs for unknown or duplicate nonces.",
            c.pongs_unmatched,
        ),
        (
            "docproc_heartbeat_malformed_total",
            "Undecodable replies, deleted.",
            c.malformed,
        ),
        (
            "docproc_heartbeat_errors_total",
            "Failed SQS or STS calls while heartbeating.",
            c.errors,
        ),
    ] {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} counter");
        let _ = writeln!(out, "{name} {value}");
    }
    let deployments = state
        .store
        .deployments(None, usize::MAX >> 1)
        .await
        .map_err(super::internal)?;
    let _ = writeln!(
        out,
        "# HELP docproc_deployments_total Stack deployments by outcome."
    );
    let _ = writeln!(out, "# TYPE docproc_deployments_total counter");
    for outcome in [
        "succeeded",
        "no_change",
        "failed",
        "rolled_back",
        "needs_recovery",
        "timed_out",
    ] {
        let n = deployments
            .iter()
            .filter(|d| d.outcome.as_deref() == Some(outcome))
            .count();
        let _ = writeln!(
            out,
            "docproc_deployments_total{{outcome=\"{outcome}\"}} {n}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP docproc_tenant_last_heartbeat_timestamp_seconds When each tenant's last pong arrived (Unix time)."
    );
    let _ = writeln!(
        out,
        "# TYPE docproc_tenant_last_heartbeat_timestamp_seconds gauge"
    );
    for s in &snapshot {
        if let Some(seen) = s.health.last_pong_at {
            let _ = writeln!(
                out,
                "docproc_tenant_last_heartbeat_timestamp_seconds{{tenant=\"{}\"}} {}",
                escape(s.tenant.as_str()),
                seen.timestamp_millis() as f64 / 1000.0
            );
        }
    }
    let probes = state.store.probes(None).await.map_err(super::internal)?;
    let _ = writeln!(
        out,
        "# HELP docproc_probes Tenants by their latest probe outcome."
    );
    let _ = writeln!(out, "# TYPE docproc_probes gauge");
    for probe in ProbeName::ALL {
        for status in [
            ProbeStatus::Passing,
            ProbeStatus::Failing,
            ProbeStatus::NotApplicable,
        ] {
            let n = probes
                .iter()
                .filter(|p| p.outcome.probe == *probe && p.outcome.status == status)
                .count();
            let _ = writeln!(
                out,
                "docproc_probes{{probe=\"{}\",status=\"{}\"}} {n}",
                probe.as_str(),
                status.as_str()
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP docproc_probe_last_pass_timestamp_seconds When each tenant's probe last passed (Unix time)."
    );
    let _ = writeln!(
        out,
        "# TYPE docproc_probe_last_pass_timestamp_seconds gauge"
    );
    for p in &probes {
        if let Some(at) = p.last_passed_at {
            let _ = writeln!(
                out,
                "docproc_probe_last_pass_timestamp_seconds{{tenant=\"{}\",probe=\"{}\"}} {}",
                escape(p.outcome.tenant.as_str()),
                p.outcome.probe.as_str(),
                at.timestamp_millis() as f64 / 1000.0
            );
        }
    }
    Ok(out)
}

/// `GET /metrics` (viewer token).
pub async fn handler(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    state.tokens.check(&headers, TokenRole::Viewer)?;
    let text = render(&state).await?;
    Ok((
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response())
}
