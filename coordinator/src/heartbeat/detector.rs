//! The failure detector: a pure function from a tenant's heartbeat history
//! and what one round observed to its health state, with a reason in words.
//!
//! Liveness is measured from `last_alive`, the send time (our clock) of the
//! newest ping that was answered: the worker was certainly alive then. A
//! round happens every interval and collects the previous round's pong, so a
//! live worker's `last_alive` is about one interval old at each round:
//!
//! | silence (now − last_alive) | state       |
//! |----------------------------|-------------|
//! | ≤ 1.5 intervals            | Healthy (or Degraded by queue depths) |
//! | > 1.5 intervals            | Late: the last expected pong is missing |
//! | > `unreachable_after` − 0.5 intervals | Unreachable |
//!
//! Rounds come every interval, so silence is a whole number of intervals
//! plus jitter; each threshold sits half an interval before the round it
//! triggers at. A worker that dies is Unreachable at the
//! `unreachable_after`-th round after the last ping it answered: at most
//! `unreachable_after` intervals after its death. Access and deployment problems are
//! states of their own: `AccessDenied` (fail closed: we never reach around a
//! refused role) and `NotDeployed`. `docs/decisions/0004-heartbeat-failure-detector.md`
//! says why this is a fixed-threshold detector and not phi-accrual.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A tenant's heartbeat state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// Not pinged yet.
    Unknown,
    /// Pongs arrive in time.
    Healthy,
    /// Pongs arrive, but the job backlog or the dead-letter queue is above
    /// its threshold.
    Degraded,
    /// The last expected pong is missing.
    Late,
    /// No pong for `unreachable_after` intervals.
    Unreachable,
    /// The role or a queue refused us: the customer may have revoked access.
    AccessDenied,
    /// No worker stack, or its heartbeat queues are gone.
    NotDeployed,
}

impl Health {
    /// Every state, for metrics.
    pub const ALL: &'static [Health] = &[
        Health::Unknown,
        Health::Healthy,
        Health::Degraded,
        Health::Late,
        Health::Unreachable,
        Health::AccessDenied,
        Health::NotDeployed,
    ];

    /// The state's name as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Unknown => "unknown",
            Health::Healthy => "healthy",
            Health::Degraded => "degraded",
            Health::Late => "late",
            Health::Unreachable => "unreachable",
            Health::AccessDenied => "access_denied",
            Health::NotDeployed => "not_deployed",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Health> {
        Health::ALL.iter().copied().find(|h| h.as_str() == s)
    }

    /// Whether the worker answers (Healthy or Degraded).
    pub fn is_alive(self) -> bool {
        matches!(self, Health::Healthy | Health::Degraded)
    }
}

/// The detector's thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    /// Time between rounds.
    pub interval: Duration,
    /// Intervals of silence before Unreachable.
    pub unreachable_after: u32,
    /// Job backlog above which a live tenant is Degraded.
    pub degraded_job_backlog: u64,
    /// Dead-lettered jobs above which a live tenant is Degraded.
    pub degraded_dead_letters: u64,
}

/// Everything known of one tenant's heartbeats; persisted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TenantHealth {
    /// State.
    pub state: Health,
    /// Why, in words.
    pub reason: String,
    /// When the state last changed.
    pub since: DateTime<Utc>,
    /// Send time of the newest answered ping.
    pub last_alive: Option<DateTime<Utc>>,
    /// When the newest pong was received.
    pub last_pong_at: Option<DateTime<Utc>>,
    /// Round-trip time of the newest pong.
    pub last_rtt_ms: Option<u64>,
    /// Rounds in a row without the expected pong.
    pub consecutive_misses: u32,
    /// The newest error, if any.
    pub last_error: Option<String>,
    /// Jobs waiting, per the newest pong.
    pub job_queue_depth: Option<u64>,
    /// Dead-lettered jobs, per the newest pong.
    pub dead_letter_depth: Option<u64>,
    /// The worker that sent the newest pong.
    pub worker_id: Option<String>,
    /// Its agent version.
    pub agent_version: Option<String>,
}

impl TenantHealth {
    /// The state before any ping.
    pub fn unknown(now: DateTime<Utc>) -> Self {
        Self {
            state: Health::Unknown,
            reason: "not pinged yet".into(),
            since: now,
            last_alive: None,
            last_pong_at: None,
            last_rtt_ms: None,
            consecutive_misses: 0,
            last_error: None,
            job_queue_depth: None,
            dead_letter_depth: None,
            worker_id: None,
            agent_version: None,
        }
    }
}

/// A pong that answered one of our pings.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// When the answered ping was sent.
    pub ping_sent_at: DateTime<Utc>,
    /// When the pong was received.
    pub received_at: DateTime<Utc>,
    /// Jobs waiting.
    pub job_queue_depth: Option<u64>,
    /// Dead letters.
    pub dead_letter_depth: Option<u64>,
    /// Worker id.
    pub worker_id: String,
    /// Agent version.
    pub agent_version: String,
}

/// What one round saw of a tenant.
#[derive(Debug, Clone, PartialEq)]
pub enum Observation {
    /// The round ran; these pongs answered our pings (possibly none). `error`
    /// is a non-fatal problem met on the way (a failed send, a timeout).
    Round {
        /// Answers, any order.
        answers: Vec<Answer>,
        /// A problem short of refusal.
        error: Option<String>,
        /// Whether a ping from an earlier round was outstanding (so a pong
        /// was expected this round).
        expected: bool,
    },
    /// The role or a queue refused us.
    AccessDenied(String),
    /// No worker stack or no heartbeat queues.
    NotDeployed(String),
}

fn ago(from: DateTime<Utc>, now: DateTime<Utc>) -> String {
    format!("{} ago", span(now - from))
}

/// A duration for people: `0.6s`, `42s`, `5m`, `3h`.
fn span(d: chrono::Duration) -> String {
    let ms = d.num_milliseconds().max(0);
    match ms {
        0..=9_999 => format!("{:.1}s", ms as f64 / 1000.0),
        10_000..=119_999 => format!("{}s", ms / 1000),
        120_000..=7_199_999 => format!("{}m", ms / 60_000),
        _ => format!("{}h", ms / 3_600_000),
    }
}

/// The next state of a tenant.
pub fn next(
    prev: &TenantHealth,
    observation: Observation,
    now: DateTime<Utc>,
    t: &Thresholds,
) -> TenantHealth {
    let mut h = prev.clone();
    let (state, reason) = match observation {
        Observation::AccessDenied(error) => {
            h.last_error = Some(error.clone());
            (
                Health::AccessDenied,
                format!("access refused (the customer may have revoked it); fail closed: {error}"),
            )
        }
        Observation::NotDeployed(why) => {
            h.last_error = Some(why.clone());
            (Health::NotDeployed, why)
        }
        // Nothing was expected and nothing came (the first round after a
        // start): the stored state stands.
        Observation::Round {
            answers,
            error,
            expected: false,
        } if answers.is_empty() => {
            if let Some(e) = error {
                h.last_error = Some(e);
            }
            return h;
        }
        Observation::Round {
            answers,
            error,
            expected,
        } => {
            if let Some(newest) = answers.iter().max_by_key(|a| a.ping_sent_at) {
                if h.last_alive.is_none_or(|seen| newest.ping_sent_at > seen) {
                    h.last_alive = Some(newest.ping_sent_at);
                }
                let latest_received = answers.iter().map(|a| a.received_at).max().unwrap_or(now);
                h.last_pong_at = Some(latest_received);
                h.last_rtt_ms = Some(
                    (newest.received_at - newest.ping_sent_at)
                        .num_milliseconds()
                        .max(0) as u64,
                );
                h.job_queue_depth = newest.job_queue_depth;
                h.dead_letter_depth = newest.dead_letter_depth;
                h.worker_id = Some(newest.worker_id.clone());
                h.agent_version = Some(newest.agent_version.clone());
            }
            if let Some(e) = &error {
                h.last_error = Some(e.clone());
            }
            let interval = chrono::Duration::from_std(t.interval).unwrap_or_default();
            let silence = h.last_alive.map(|seen| now - seen);
            let late_after = interval + interval / 2;
            // Rounds come every interval, so silence is a whole number of
            // intervals plus processing jitter; the thresholds sit half an
            // interval before the round they are meant to trigger at.
            let unreachable_after = interval * t.unreachable_after as i32 - interval / 2;
            let answered = !answers.is_empty();
            if answered || !expected {
                h.consecutive_misses = 0;
            } else {
                h.consecutive_misses += 1;
            }
            match silence {
                Some(s) if s >= unreachable_after => (
                    Health::Unreachable,
                    format!(
                        "no pong for {} ({} intervals); last alive {}",
                        span(s),
                        t.unreachable_after,
                        ago(now - s, now)
                    ),
                ),
                Some(s) if s > late_after => (
                    Health::Late,
                    format!(
                        "the expected pong is missing; last alive {}",
                        ago(now - s, now)
                    ),
                ),
                Some(_) => {
                    let jobs = h.job_queue_depth.unwrap_or(0);
                    let dead = h.dead_letter_depth.unwrap_or(0);
                    if jobs > t.degraded_job_backlog {
                        (
                            Health::Degraded,
                            format!("{jobs} jobs waiting (threshold {})", t.degraded_job_backlog),
                        )
                    } else if dead > t.degraded_dead_letters {
                        (
                            Health::Degraded,
                            format!(
                                "{dead} jobs in the dead-letter queue (threshold {})",
                                t.degraded_dead_letters
                            ),
                        )
                    } else {
                        (
                            Health::Healthy,
                            format!("pong in {}ms", h.last_rtt_ms.unwrap_or(0)),
                        )
                    }
                }
                // Never answered: Late after the first unanswered round,
                // Unreachable after `unreachable_after` of them.
                None if h.consecutive_misses >= t.unreachable_after => (
                    Health::Unreachable,
                    format!("no pong ever received ({} rounds)", h.consecutive_misses),
                ),
                None if h.consecutive_misses > 0 => (
                    Health::Late,
                    format!(
                        "no pong yet ({} round(s) without one)",
                        h.consecutive_misses
                    ),
                ),
                None => (Health::Unknown, "waiting for the first pong".into()),
            }
        }
    };
    if state != prev.state {
        h.since = now;
    }
    if state.is_alive() {
        h.last_error = None;
    }
    h.state = state;
    h.reason = reason;
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Thresholds = Thresholds {
        interval: Duration::from_secs(30),
        unreachable_after: 3,
        degraded_job_backlog: 100,
        degraded_dead_letters: 0,
    };

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    fn answer(sent: i64) -> Answer {
        Answer {
            ping_sent_at: at(sent),
            received_at: at(sent + 1),
            job_queue_depth: Some(0),
            dead_letter_depth: Some(0),
            worker_id: "w".into(),
            agent_version: "1".into(),
        }
    }

    fn round(answers: Vec<Answer>) -> Observation {
        Observation::Round {
            answers,
            error: None,
            expected: true,
        }
    }

    #[test]
    fn a_dead_worker_goes_late_then_unreachable_within_the_threshold() {
        let mut h = TenantHealth::unknown(at(0));
        h = next(
            &h,
            Observation::Round {
                answers: vec![],
                error: None,
                expected: false,
            },
            at(0),
            &T,
        );
        assert_eq!(h.state, Health::Unknown);
        // Rounds every 30 s collect the previous round's pong.
        for k in 1..=3 {
            h = next(&h, round(vec![answer((k - 1) * 30)]), at(k * 30), &T);
            assert_eq!(h.state, Health::Healthy, "{h:?}");
        }
        // The worker dies right after answering the ping sent at 60.
        h = next(&h, round(vec![]), at(120), &T);
        assert_eq!(h.state, Health::Late);
        assert_eq!(h.consecutive_misses, 1);
        h = next(&h, round(vec![]), at(150), &T);
        assert_eq!(
            h.state,
            Health::Unreachable,
            "silence 90s = 3 intervals: {h:?}"
        );
        assert!(h.reason.contains("no pong for 90s"), "{}", h.reason);
        assert_eq!(span(chrono::Duration::milliseconds(600)), "0.6s");
        assert_eq!(h.since, at(150));
        // It comes back.
        h = next(&h, round(vec![answer(150)]), at(180), &T);
        assert_eq!(h.state, Health::Healthy);
        assert_eq!(h.consecutive_misses, 0);
    }

    #[test]
    fn late_pongs_still_prove_life() {
        let h = next(
            &TenantHealth::unknown(at(0)),
            round(vec![answer(0)]),
            at(30),
            &T,
        );
        let h = next(&h, round(vec![]), at(60), &T);
        assert_eq!(h.state, Health::Late);
        // The ping of 30 answered late, collected with the ping of 60's.
        let h = next(&h, round(vec![answer(30), answer(60)]), at(90), &T);
        assert_eq!(h.state, Health::Healthy);
        assert_eq!(h.last_alive, Some(at(60)));
    }

    #[test]
    fn never_answered_becomes_unreachable_by_count() {
        let mut h = TenantHealth::unknown(at(0));
        let states: Vec<Health> = (1..=3)
            .map(|k| {
                h = next(&h, round(vec![]), at(k * 30), &T);
                h.state
            })
            .collect();
        assert_eq!(states, [Health::Late, Health::Late, Health::Unreachable]);
    }

    #[test]
    fn queue_depths_degrade_a_live_tenant() {
        let mut a = answer(0);
        a.job_queue_depth = Some(101);
        let h = next(&TenantHealth::unknown(at(0)), round(vec![a]), at(30), &T);
        assert_eq!(h.state, Health::Degraded);
        assert!(h.reason.contains("101 jobs waiting"));
        let mut a = answer(30);
        a.dead_letter_depth = Some(1);
        let h = next(&h, round(vec![a]), at(60), &T);
        assert_eq!(h.state, Health::Degraded);
        assert!(h.reason.contains("dead-letter"));
    }

    #[test]
    fn access_denied_and_not_deployed_are_their_own_states() {
        let h = next(
            &TenantHealth::unknown(at(0)),
            round(vec![answer(0)]),
            at(30),
            &T,
        );
        let denied = next(
            &h,
            Observation::AccessDenied("AssumeRole denied".into()),
            at(60),
            &T,
        );
        assert_eq!(denied.state, Health::AccessDenied);
        assert!(denied.reason.contains("fail closed"));
        assert_eq!(denied.last_alive, Some(at(0)), "history is kept");
        let gone = next(
            &denied,
            Observation::NotDeployed("request queue does not exist".into()),
            at(90),
            &T,
        );
        assert_eq!(gone.state, Health::NotDeployed);
        assert_eq!(
            gone.last_error.as_deref(),
            Some("request queue does not exist")
        );
    }
}
