//! What a person watching a rollout on a terminal sees: a [`Board`] folded
//! from the rollout's transitions and its stack progress, and [`render`],
//! a pure function from the board and the current time to the text of the
//! live block (a line per wave with its counts, a line per tenant in flight
//! with its stack and elapsed time). Notable transitions (a wave starting,
//! a tenant failing, a gate, a halt) also become permanent lines, taken
//! with [`Board::take_log`] and printed above the block.
//!
//! Nothing here touches a terminal or the clock: the caller passes `now`,
//! draws, and decides when to redraw (`cli::rollout` does, with plain ANSI).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use chrono::{DateTime, Utc};
use stacks::StackKind;
use stacks::ids::{TenantId, WaveName};

use crate::apply::Progress;
use crate::manifest::Manifest;
use crate::store::RolloutEvent;

/// In-flight tenants shown one per line; the rest are counted.
pub const MAX_TENANT_LINES: usize = 12;

/// A wave as planned, with its policy.
#[derive(Debug, Clone)]
pub struct WavePlan {
    /// Name.
    pub name: WaveName,
    /// Its tenants, in order.
    pub tenants: Vec<TenantId>,
    /// Tenants at once.
    pub max_concurrent: usize,
    /// Failures tolerated.
    pub allowed_failures: usize,
    /// Bake time.
    pub bake: Duration,
    /// Whether the bake gates on health.
    pub health_gate: bool,
}

impl WavePlan {
    /// The waves of a manifest's rollout.
    pub fn of(manifest: &Manifest) -> Vec<WavePlan> {
        super::engine::waves(manifest)
            .into_iter()
            .map(|(name, tenants)| {
                let p = manifest.rollout.for_wave(&name);
                WavePlan {
                    max_concurrent: p.max_concurrent,
                    allowed_failures: p.failure_tolerance.allowed(tenants.len()),
                    bake: p.bake_time.get(),
                    health_gate: p.health_gate,
                    name,
                    tenants,
                }
            })
            .collect()
    }
}

/// Where a wave stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WaveState {
    Waiting,
    Deploying,
    Passed,
    GateFailed,
    Halted,
}

/// Where a tenant stands.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum TenantState {
    Pending,
    InFlight {
        since: DateTime<Utc>,
        /// The stack being deployed and how.
        stack: Option<(StackKind, &'static str)>,
        /// The stack's latest status, from its events.
        status: Option<String>,
    },
    Succeeded,
    Failed,
}

/// A rollout as far as the display knows it.
#[derive(Debug, Clone)]
pub struct Board {
    release: String,
    rollout: Option<i64>,
    since: DateTime<Utc>,
    waves: Vec<(WavePlan, WaveState)>,
    tenants: BTreeMap<TenantId, TenantState>,
    /// When each wave's last tenant outcome came (the bake starts then).
    last_outcome: BTreeMap<String, DateTime<Utc>>,
    verdict: Option<String>,
    log: Vec<String>,
}

/// `1m05s`, `12s`, `2h03m`.
pub fn duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

fn since(from: DateTime<Utc>, now: DateTime<Utc>) -> Duration {
    (now - from).to_std().unwrap_or_default()
}

/// The one-line form of a transition: the permanent lines of the live
/// display, and every line of the plain (not a terminal) output.
pub fn event_line(e: &RolloutEvent) -> String {
    let line = format!(
        "{} {:<17} {:<10} {:<14} {}",
        e.at.format("%H:%M:%S"),
        e.event.kind,
        e.event.wave.as_deref().unwrap_or(""),
        e.event.tenant.as_ref().map(|t| t.as_str()).unwrap_or(""),
        e.event.details["reason"].as_str().unwrap_or("")
    );
    line.trim_end().to_owned()
}

impl Board {
    /// A board for a rollout of `release` over `waves`, watched from `now`.
    pub fn new(release: impl Into<String>, waves: Vec<WavePlan>, now: DateTime<Utc>) -> Self {
        let tenants = waves
            .iter()
            .flat_map(|w| &w.tenants)
            .map(|t| (t.clone(), TenantState::Pending))
            .collect();
        Board {
            release: release.into(),
            rollout: None,
            since: now,
            waves: waves.into_iter().map(|w| (w, WaveState::Waiting)).collect(),
            tenants,
            last_outcome: BTreeMap::new(),
            verdict: None,
            log: Vec::new(),
        }
    }

    /// Names the rollout once known.
    pub fn set_rollout(&mut self, id: i64) {
        self.rollout = Some(id);
    }

    /// Permanent lines since the last call, oldest first.
    pub fn take_log(&mut self) -> Vec<String> {
        std::mem::take(&mut self.log)
    }

    fn wave_mut(&mut self, name: Option<&str>) -> Option<&mut (WavePlan, WaveState)> {
        let name = name?;
        self.waves.iter_mut().find(|(w, _)| w.name.as_str() == name)
    }

    /// Folds a recorded transition in.
    pub fn apply_event(&mut self, e: &RolloutEvent) {
        let kind = e.event.kind.as_str();
        let wave = e.event.wave.as_deref();
        let tenant = e.event.tenant.as_ref();
        let notable = !matches!(kind, "tenant_started" | "tenant_succeeded");
        if notable {
            self.log.push(event_line(e));
        }
        match kind {
            "wave_started" => {
                if let Some(w) = self.wave_mut(wave) {
                    w.1 = WaveState::Deploying;
                }
            }
            "tenant_started" => {
                if let Some(t) = tenant {
                    self.tenants.insert(
                        t.clone(),
                        TenantState::InFlight {
                            since: e.at,
                            stack: None,
                            status: None,
                        },
                    );
                }
            }
            "tenant_succeeded" | "tenant_failed" => {
                if let Some(t) = tenant {
                    let state = if kind == "tenant_succeeded" {
                        TenantState::Succeeded
                    } else {
                        TenantState::Failed
                    };
                    self.tenants.insert(t.clone(), state);
                }
                if let Some(w) = wave {
                    self.last_outcome.insert(w.to_owned(), e.at);
                }
            }
            "gate_passed" => {
                if let Some(w) = self.wave_mut(wave) {
                    w.1 = WaveState::Passed;
                }
            }
            "gate_failed" => {
                if let Some(w) = self.wave_mut(wave) {
                    w.1 = WaveState::GateFailed;
                }
            }
            "halted" => {
                let current = self
                    .waves
                    .iter_mut()
                    .find(|(_, s)| *s == WaveState::Deploying);
                if let Some(w) = current {
                    w.1 = WaveState::Halted;
                }
                self.verdict = Some("halted".into());
            }
            "resumed" => {
                // The engine's view: failed and unfinished tenants are
                // deployed again; a failed gate is baked again.
                for s in self.tenants.values_mut() {
                    if matches!(s, TenantState::Failed | TenantState::InFlight { .. }) {
                        *s = TenantState::Pending;
                    }
                }
                for (_, s) in &mut self.waves {
                    if matches!(s, WaveState::Halted | WaveState::GateFailed) {
                        *s = WaveState::Deploying;
                    }
                }
                self.verdict = None;
                self.since = e.at;
            }
            "completed" => self.verdict = Some("succeeded".into()),
            _ => {}
        }
    }

    /// Folds stack progress in.
    pub fn apply_progress(&mut self, p: &Progress<'_>) {
        match p {
            Progress::Started {
                tenant,
                stack: kind,
                action,
            } => {
                if let Some(TenantState::InFlight { stack, status, .. }) =
                    self.tenants.get_mut(*tenant)
                {
                    *stack = Some((*kind, *action));
                    *status = None;
                }
            }
            Progress::Event {
                tenant,
                stack: kind,
                event,
            } => {
                if event.logical_id != kind.stack_name() {
                    return;
                }
                if let Some(TenantState::InFlight { stack, status, .. }) =
                    self.tenants.get_mut(*tenant)
                    && stack.is_some_and(|(s, _)| s == *kind)
                {
                    *status = Some(event.status.clone());
                }
            }
        }
    }
}

/// Per-state counts of a wave's tenants.
#[derive(Default)]
struct Counts {
    succeeded: usize,
    failed: usize,
    in_flight: usize,
    pending: usize,
}

fn counts(board: &Board, wave: &WavePlan) -> Counts {
    let mut c = Counts::default();
    for t in &wave.tenants {
        match board.tenants.get(t) {
            Some(TenantState::Succeeded) => c.succeeded += 1,
            Some(TenantState::Failed) => c.failed += 1,
            Some(TenantState::InFlight { .. }) => c.in_flight += 1,
            Some(TenantState::Pending) | None => c.pending += 1,
        }
    }
    c
}

fn wave_line(board: &Board, wave: &WavePlan, state: WaveState, now: DateTime<Utc>) -> String {
    let c = counts(board, wave);
    let total = wave.tenants.len();
    let done = c.succeeded + c.failed;
    let mut detail = format!("{done}/{total} done");
    let mut parts = Vec::new();
    if c.succeeded > 0 {
        parts.push(format!("{} succeeded", c.succeeded));
    }
    if c.failed > 0 {
        parts.push(format!("{} failed", c.failed));
    }
    if !parts.is_empty() {
        let _ = write!(detail, ": {}", parts.join(", "));
    }
    let mut rest = Vec::new();
    if c.in_flight > 0 {
        rest.push(format!("{} in flight", c.in_flight));
    }
    if c.pending > 0 && state != WaveState::Waiting {
        rest.push(format!("{} pending", c.pending));
    }
    let over = c.failed > wave.allowed_failures;
    let label = match state {
        WaveState::Waiting => "waiting",
        WaveState::Passed => "passed",
        WaveState::GateFailed => "gate failed",
        WaveState::Halted => "halted",
        WaveState::Deploying if over => "halting",
        WaveState::Deploying if done == total && !wave.bake.is_zero() => "baking",
        WaveState::Deploying => "deploying",
    };
    if label == "halting" {
        rest.push(format!(
            "over the tolerance of {}: no new tenant starts",
            wave.allowed_failures
        ));
    }
    if label == "baking" {
        let baked = board
            .last_outcome
            .get(wave.name.as_str())
            .map(|t| since(*t, now).min(wave.bake))
            .unwrap_or_default();
        rest.push(format!(
            "bake {} of {}{}",
            duration(baked),
            duration(wave.bake),
            if wave.health_gate {
                ", health gate on"
            } else {
                ""
            }
        ));
    }
    if label == "waiting" {
        rest.push(format!("max {} at once", wave.max_concurrent));
    }
    if !rest.is_empty() {
        let _ = write!(detail, "; {}", rest.join(", "));
    }
    format!("  {:<10} {:<11} {detail}", wave.name.as_str(), label)
}

/// The live block for `board` at `now`: a header, a line per wave, a line
/// per tenant in flight (oldest first, at most [`MAX_TENANT_LINES`]). Every
/// line ends with a newline.
pub fn render(board: &Board, now: DateTime<Utc>) -> String {
    let mut out = String::new();
    let id = board
        .rollout
        .map(|id| format!("Rollout {id}"))
        .unwrap_or_else(|| "Rollout".into());
    let state = board.verdict.as_deref().unwrap_or("running");
    let _ = writeln!(
        out,
        "{id} of release {}: {state}, {}",
        board.release,
        duration(since(board.since, now))
    );
    for (wave, state) in &board.waves {
        let _ = writeln!(out, "{}", wave_line(board, wave, *state, now));
    }
    let mut flying: Vec<(&DateTime<Utc>, &TenantId, &TenantState)> = board
        .tenants
        .iter()
        .filter_map(|(t, s)| match s {
            TenantState::InFlight { since, .. } => Some((since, t, s)),
            _ => None,
        })
        .collect();
    flying.sort();
    for (started, t, state) in flying.iter().take(MAX_TENANT_LINES) {
        let TenantState::InFlight { stack, status, .. } = state else {
            continue;
        };
        let (stack, action) = match stack {
            Some((s, a)) => (s.to_string(), *a),
            None => ("-".to_owned(), "-"),
        };
        let _ = writeln!(
            out,
            "    {:<14} {:<8} {:<7} {:<28} {:>6}",
            t.as_str(),
            stack,
            action,
            status.as_deref().unwrap_or("starting"),
            duration(since(**started, now))
        );
    }
    if flying.len() > MAX_TENANT_LINES {
        let _ = writeln!(
            out,
            "    ... and {} more in flight",
            flying.len() - MAX_TENANT_LINES
        );
    }
    out
}

#[cfg(test)]
#[path = "display/tests.rs"]
mod tests;
