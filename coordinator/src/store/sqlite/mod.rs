//! The SQLite store: one file, WAL journal, migrations applied in order on
//! open. Queries are short and local, so they run inline under a mutex.

pub mod capabilities;
mod privacy;
mod probes;
mod rollout;
mod sealed;

use std::path::Path;
use std::str::FromStr;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Row, params};
use stacks::StackKind;
use stacks::ids::TenantId;

use super::audit::{self, AuditEntry, GENESIS, NewAuditEntry};
use super::{
    DeploymentRecord, DeploymentResult, HeartbeatChange, LeaseHeld, NewDeployment, NewPlan,
    NewRolloutEvent, PlanRecord, RolloutEvent, RolloutRecord, StackState, Store, StoreError,
    StoredOutputs,
};
use crate::heartbeat::detector::{Health, TenantHealth};

/// Migrations, in order. Never edit one that has shipped: add a new one.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../migrations/0001_initial.sql")),
    (2, include_str!("../migrations/0002_heartbeats.sql")),
    (3, include_str!("../migrations/0003_rollouts.sql")),
    (4, include_str!("../migrations/0004_hosted_secrets.sql")),
    (
        5,
        include_str!("../migrations/0005_applied_capabilities.sql"),
    ),
    (6, include_str!("../migrations/0006_rollout_fencing.sql")),
    (7, include_str!("../migrations/0007_privacy.sql")),
    (8, include_str!("../migrations/0008_probes.sql")),
];

/// A store in one SQLite file.
#[derive(Debug)]
pub struct SqliteStore {
    conn: Mutex<Connection>,
}

fn now() -> DateTime<Utc> {
    // Stored with microsecond precision; truncate so a value read back
    // equals the value written (the audit hash depends on it).
    parse_time(&audit::timestamp(&Utc::now())).expect("own timestamps parse")
}

fn parse_time(text: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::Corrupt(format!("timestamp {text:?}: {e}")))
}

fn parse<T: FromStr>(what: &str, text: &str) -> Result<T, StoreError>
where
    T::Err: std::fmt::Display,
{
    text.parse()
        .map_err(|e| StoreError::Corrupt(format!("{what} {text:?}: {e}")))
}

fn json(text: &str) -> Result<serde_json::Value, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("JSON column: {e}")))
}

impl SqliteStore {
    /// Stack states matching `filter` (a `WHERE`/`ORDER BY` tail).
    fn query_stack_states(
        &self,
        filter: &str,
        args: &[&dyn rusqlite::ToSql],
    ) -> Result<Vec<StackState>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT tenant, stack, status, release, template_hash, last_outcome, last_reason, updated_at
             FROM stack_states {filter}"
        ))?;
        type Raw = (
            String,
            String,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
            String,
        );
        let rows = stmt.query_map(args, |r| -> rusqlite::Result<Raw> {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
            ))
        })?;
        rows.map(|row| {
            let (
                tenant,
                stack,
                status,
                release,
                template_hash,
                last_outcome,
                last_reason,
                updated_at,
            ) = row?;
            Ok(StackState {
                tenant: parse("tenant", &tenant)?,
                stack: parse("stack", &stack)?,
                status,
                release,
                template_hash,
                last_outcome,
                last_reason,
                updated_at: parse_time(&updated_at)?,
            })
        })
        .collect()
    }

    /// Opens (creating if needed) the state file at `path` and migrates it.
    /// The directory must exist: a typo in `state` must not silently create
    /// a fresh, empty state somewhere else.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if !dir.is_dir() {
            return Err(StoreError::MissingDirectory(dir.display().to_string()));
        }
        let open_err = |source| StoreError::Open {
            path: path.display().to_string(),
            source,
        };
        let conn = Connection::open(path).map_err(open_err)?;
        Self::init(conn).map_err(open_err)
    }

    /// An in-memory store (tests, benchmarks).
    pub fn in_memory() -> Result<Self, StoreError> {
        let conn = Connection::open_in_memory()?;
        Ok(Self::init(conn)?)
    }

    fn init(mut conn: Connection) -> Result<Self, rusqlite::Error> {
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)",
        )?;
        let tx = conn.transaction()?;
        for (version, sql) in MIGRATIONS {
            let applied: Option<i64> = tx
                .query_row(
                    "SELECT version FROM schema_migrations WHERE version = ?1",
                    [version],
                    |r| r.get(0),
                )
                .optional()?;
            if applied.is_none() {
                tx.execute_batch(sql)?;
                tx.execute(
                    "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)",
                    params![version, audit::timestamp(&Utc::now())],
                )?;
            }
        }
        tx.commit()?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves SQLite consistent (each
        // statement is atomic); keep serving.
        self.conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

type RawPlan = (i64, Option<i64>, String, String, String, String, String);

fn plan_from_row(r: &Row<'_>) -> rusqlite::Result<RawPlan> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
    ))
}

fn plan_record(raw: RawPlan) -> Result<PlanRecord, StoreError> {
    let (generation, parent, created_at, actor, release, manifest_digest, summary) = raw;
    Ok(PlanRecord {
        generation: generation as u64,
        parent: parent.map(|p| p as u64),
        created_at: parse_time(&created_at)?,
        actor,
        release,
        manifest_digest,
        summary: json(&summary)?,
    })
}

type RawDeployment = (
    i64,
    i64,
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

fn deployment_record(raw: RawDeployment) -> Result<DeploymentRecord, StoreError> {
    let (
        id,
        generation,
        tenant,
        stack,
        action,
        token,
        started_at,
        finished_at,
        outcome,
        status,
        reason,
    ) = raw;
    Ok(DeploymentRecord {
        id,
        generation: generation as u64,
        tenant: parse("tenant", &tenant)?,
        stack: parse("stack", &stack)?,
        action,
        token,
        started_at: parse_time(&started_at)?,
        finished_at: finished_at.as_deref().map(parse_time).transpose()?,
        outcome,
        status,
        reason,
    })
}

type RawAudit = (
    i64,
    String,
    String,
    Option<String>,
    String,
    String,
    String,
    String,
);

fn audit_entry(raw: RawAudit) -> Result<AuditEntry, StoreError> {
    let (seq, at, actor, tenant, action, details, prev_hash, hash) = raw;
    // Name the row: `audit verify` reports an unreadable row as tampered.
    let in_row = |e: StoreError| match e {
        StoreError::Corrupt(why) => StoreError::Corrupt(format!("audit entry {seq}: {why}")),
        other => other,
    };
    Ok(AuditEntry {
        seq: seq as u64,
        at: parse_time(&at).map_err(in_row)?,
        actor,
        tenant: tenant
            .as_deref()
            .map(|t| parse("tenant", t))
            .transpose()
            .map_err(in_row)?,
        action,
        details: json(&details).map_err(in_row)?,
        prev_hash,
        hash,
    })
}

type RawRollout = (i64, String, String, String, Option<String>, String, String);

fn rollout_from_row(r: &Row<'_>) -> rusqlite::Result<RawRollout> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
    ))
}

fn rollout_record(raw: RawRollout) -> Result<RolloutRecord, StoreError> {
    let (id, release, actor, state, reason, created_at, updated_at) = raw;
    Ok(RolloutRecord {
        id,
        release,
        actor,
        state,
        reason,
        created_at: parse_time(&created_at)?,
        updated_at: parse_time(&updated_at)?,
    })
}

/// Appends an audit entry inside `tx`: callers that change state append
/// the entry in the same transaction as the change.
pub(super) fn append_audit_in(
    tx: &rusqlite::Transaction<'_>,
    e: NewAuditEntry,
) -> Result<AuditEntry, rusqlite::Error> {
    let last: Option<(i64, String)> = tx
        .query_row(
            "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let (seq, prev_hash) = match last {
        Some((seq, hash)) => (seq as u64 + 1, hash),
        None => (1, GENESIS.to_owned()),
    };
    let at = now();
    let hash = audit::entry_hash(
        &prev_hash,
        seq,
        &at,
        &e.actor,
        e.tenant.as_ref(),
        &e.action,
        &e.details,
    );
    tx.execute(
        "INSERT INTO audit (seq, at, actor, tenant, action, details, prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
        seq as i64,
        audit::timestamp(&at),
        e.actor,
        e.tenant.as_ref().map(TenantId::as_str),
        e.action,
        stacks::template::canonical_json(&e.details),
        prev_hash,
        hash
        ],
    )?;
    Ok(AuditEntry {
        seq,
        at,
        actor: e.actor,
        tenant: e.tenant,
        action: e.action,
        details: e.details,
        prev_hash,
        hash,
    })
}

#[async_trait]
impl Store for SqliteStore {
    async fn record_plan(&self, plan: NewPlan) -> Result<PlanRecord, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let parent: Option<i64> =
            tx.query_row("SELECT MAX(generation) FROM plans", [], |r| r.get(0))?;
        let generation = parent.unwrap_or(0) + 1;
        let created_at = now();
        tx.execute(
            "INSERT INTO plans (generation, parent, created_at, actor, release, manifest_digest, summary)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                generation,
                parent,
                audit::timestamp(&created_at),
                plan.actor,
                plan.release,
                plan.manifest_digest,
                plan.summary.to_string()
            ],
        )?;
        tx.commit()?;
        Ok(PlanRecord {
            generation: generation as u64,
            parent: parent.map(|p| p as u64),
            created_at,
            actor: plan.actor,
            release: plan.release,
            manifest_digest: plan.manifest_digest,
            summary: plan.summary,
        })
    }

    async fn latest_plan(&self) -> Result<Option<PlanRecord>, StoreError> {
        let raw = self
            .conn()
            .query_row(
                "SELECT generation, parent, created_at, actor, release, manifest_digest, summary
                 FROM plans ORDER BY generation DESC LIMIT 1",
                [],
                plan_from_row,
            )
            .optional()?;
        raw.map(plan_record).transpose()
    }

    async fn start_deployment(&self, d: NewDeployment) -> Result<i64, StoreError> {
        let conn = self.conn();
        conn.execute(
            "INSERT INTO deployments (generation, tenant, stack, action, token, started_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                d.generation as i64,
                d.tenant.as_str(),
                d.stack.as_str(),
                d.action,
                d.token,
                audit::timestamp(&now())
            ],
        )?;
        Ok(conn.last_insert_rowid())
    }

    async fn finish_deployment(&self, id: i64, result: DeploymentResult) -> Result<(), StoreError> {
        let changed = self.conn().execute(
            "UPDATE deployments SET finished_at = ?2, outcome = ?3, status = ?4, reason = ?5 WHERE id = ?1",
            params![id, audit::timestamp(&now()), result.outcome, result.status, result.reason],
        )?;
        if changed != 1 {
            return Err(StoreError::Corrupt(format!(
                "deployment {id} does not exist"
            )));
        }
        Ok(())
    }

    async fn deployments(
        &self,
        tenant: Option<&TenantId>,
        limit: usize,
    ) -> Result<Vec<DeploymentRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT id, generation, tenant, stack, action, token, started_at, finished_at, outcome, status, reason
             FROM deployments WHERE (?1 IS NULL OR tenant = ?1) ORDER BY id DESC LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![tenant.map(TenantId::as_str), limit as i64], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
                r.get(8)?,
                r.get(9)?,
                r.get(10)?,
            ))
        })?;
        rows.map(|r| deployment_record(r?)).collect()
    }

    async fn tenant_generation(&self, tenant: &TenantId) -> Result<Option<u64>, StoreError> {
        let g: Option<i64> = self.conn().query_row(
            "SELECT MAX(generation) FROM deployments WHERE tenant = ?1",
            [tenant.as_str()],
            |r| r.get(0),
        )?;
        Ok(g.map(|g| g as u64))
    }

    async fn put_outputs(&self, o: StoredOutputs) -> Result<(), StoreError> {
        let outputs =
            serde_json::to_string(&o.outputs).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.conn().execute(
            "INSERT INTO outputs (tenant, stack, release, template_hash, outputs, recorded_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (tenant, stack) DO UPDATE SET release = excluded.release,
               template_hash = excluded.template_hash, outputs = excluded.outputs, recorded_at = excluded.recorded_at",
            params![
                o.tenant.as_str(),
                o.stack.as_str(),
                o.release,
                o.template_hash,
                outputs,
                audit::timestamp(&o.recorded_at)
            ],
        )?;
        Ok(())
    }

    async fn outputs(
        &self,
        tenant: &TenantId,
        stack: StackKind,
    ) -> Result<Option<StoredOutputs>, StoreError> {
        let raw: Option<(String, String, String, String)> = self
            .conn()
            .query_row(
                "SELECT release, template_hash, outputs, recorded_at FROM outputs WHERE tenant = ?1 AND stack = ?2",
                params![tenant.as_str(), stack.as_str()],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()?;
        raw.map(|(release, template_hash, outputs, recorded_at)| {
            Ok(StoredOutputs {
                tenant: tenant.clone(),
                stack,
                release,
                template_hash,
                outputs: serde_json::from_str(&outputs)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                recorded_at: parse_time(&recorded_at)?,
            })
        })
        .transpose()
    }

    async fn put_stack_state(&self, s: StackState) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO stack_states (tenant, stack, status, release, template_hash, last_outcome, last_reason, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT (tenant, stack) DO UPDATE SET status = excluded.status, release = excluded.release,
               template_hash = excluded.template_hash, last_outcome = excluded.last_outcome,
               last_reason = excluded.last_reason, updated_at = excluded.updated_at",
            params![
                s.tenant.as_str(),
                s.stack.as_str(),
                s.status,
                s.release,
                s.template_hash,
                s.last_outcome,
                s.last_reason,
                audit::timestamp(&s.updated_at)
            ],
        )?;
        Ok(())
    }

    async fn stack_states(&self) -> Result<Vec<StackState>, StoreError> {
        self.query_stack_states("ORDER BY tenant, stack", params![])
    }

    async fn stack_state(
        &self,
        tenant: &TenantId,
        stack: StackKind,
    ) -> Result<Option<StackState>, StoreError> {
        Ok(self
            .query_stack_states(
                "WHERE tenant = ?1 AND stack = ?2",
                params![tenant.as_str(), stack.as_str()],
            )?
            .pop())
    }

    async fn append_audit(&self, e: NewAuditEntry) -> Result<AuditEntry, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let entry = append_audit_in(&tx, e)?;
        tx.commit()?;
        Ok(entry)
    }

    async fn audit_entries(&self, after: u64, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT seq, at, actor, tenant, action, details, prev_hash, hash FROM audit WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![after as i64, limit as i64], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
            ))
        })?;
        rows.map(|r| audit_entry(r?)).collect()
    }

    async fn put_heartbeat(
        &self,
        tenant: &TenantId,
        health: &TenantHealth,
    ) -> Result<(), StoreError> {
        let record =
            serde_json::to_string(health).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let previous: Option<String> = tx
            .query_row(
                "SELECT state FROM heartbeats WHERE tenant = ?1",
                [tenant.as_str()],
                |r| r.get(0),
            )
            .optional()?;
        tx.execute(
            "INSERT INTO heartbeats (tenant, state, record, updated_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (tenant) DO UPDATE SET state = excluded.state, record = excluded.record,
               updated_at = excluded.updated_at",
            params![
                tenant.as_str(),
                health.state.as_str(),
                record,
                audit::timestamp(&now())
            ],
        )?;
        if previous.as_deref() != Some(health.state.as_str()) {
            tx.execute(
                "INSERT INTO heartbeat_history (tenant, at, state, reason) VALUES (?1, ?2, ?3, ?4)",
                params![
                    tenant.as_str(),
                    audit::timestamp(&health.since),
                    health.state.as_str(),
                    health.reason
                ],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    async fn heartbeats(&self) -> Result<Vec<(TenantId, TenantHealth)>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT tenant, record FROM heartbeats ORDER BY tenant")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        rows.map(|row| {
            let (tenant, record) = row?;
            let health = serde_json::from_str(&record)
                .map_err(|e| StoreError::Corrupt(format!("heartbeat record: {e}")))?;
            Ok((parse("tenant", &tenant)?, health))
        })
        .collect()
    }

    async fn heartbeat_history(
        &self,
        tenant: &TenantId,
        limit: usize,
    ) -> Result<Vec<HeartbeatChange>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT at, state, reason FROM heartbeat_history WHERE tenant = ?1 ORDER BY id DESC LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![tenant.as_str(), limit as i64], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?;
        rows.map(|row| {
            let (at, state, reason) = row?;
            Ok(HeartbeatChange {
                at: parse_time(&at)?,
                state: Health::parse(&state)
                    .ok_or_else(|| StoreError::Corrupt(format!("heartbeat state {state:?}")))?,
                reason,
            })
        })
        .collect()
    }

    async fn create_rollout(
        &self,
        release: &str,
        actor: &str,
    ) -> Result<RolloutRecord, StoreError> {
        let at = audit::timestamp(&now());
        let id = {
            let conn = self.conn();
            conn.execute(
                "INSERT INTO rollouts (release, actor, state, created_at, updated_at) VALUES (?1, ?2, 'running', ?3, ?3)",
                params![release, actor, at],
            )?;
            conn.last_insert_rowid()
        };
        self.rollout(id)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("rollout {id} vanished")))
    }

    async fn rollout(&self, id: i64) -> Result<Option<RolloutRecord>, StoreError> {
        let raw = self
            .conn()
            .query_row(
                "SELECT id, release, actor, state, reason, created_at, updated_at FROM rollouts WHERE id = ?1",
                [id],
                rollout_from_row,
            )
            .optional()?;
        raw.map(rollout_record).transpose()
    }

    async fn latest_rollout(&self) -> Result<Option<RolloutRecord>, StoreError> {
        let raw = self
            .conn()
            .query_row(
                "SELECT id, release, actor, state, reason, created_at, updated_at FROM rollouts ORDER BY id DESC LIMIT 1",
                [],
                rollout_from_row,
            )
            .optional()?;
        raw.map(rollout_record).transpose()
    }

    async fn set_rollout_state(
        &self,
        id: i64,
        state: &str,
        reason: Option<&str>,
    ) -> Result<(), StoreError> {
        let changed = self.conn().execute(
            "UPDATE rollouts SET state = ?2, reason = ?3, updated_at = ?4 WHERE id = ?1",
            params![id, state, reason, audit::timestamp(&now())],
        )?;
        if changed == 0 {
            return Err(StoreError::Corrupt(format!("no rollout {id}")));
        }
        Ok(())
    }

    async fn append_rollout_event(
        &self,
        rollout: i64,
        event: NewRolloutEvent,
    ) -> Result<RolloutEvent, StoreError> {
        let at = now();
        let conn = self.conn();
        conn.execute(
            "INSERT INTO rollout_events (rollout, at, kind, wave, tenant, details) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                rollout,
                audit::timestamp(&at),
                event.kind,
                event.wave,
                event.tenant.as_ref().map(TenantId::as_str),
                event.details.to_string()
            ],
        )?;
        Ok(RolloutEvent {
            id: conn.last_insert_rowid(),
            at,
            event,
        })
    }

    async fn rollout_events(&self, rollout: i64) -> Result<Vec<RolloutEvent>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT id, at, kind, wave, tenant, details FROM rollout_events WHERE rollout = ?1 ORDER BY id",
        )?;
        let rows = stmt.query_map([rollout], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, Option<String>>(4)?,
                r.get::<_, String>(5)?,
            ))
        })?;
        rows.map(|r| {
            let (id, at, kind, wave, tenant, details) = r?;
            Ok(RolloutEvent {
                id,
                at: parse_time(&at)?,
                event: NewRolloutEvent {
                    kind,
                    wave,
                    tenant: tenant.map(|t| parse("tenant", &t)).transpose()?,
                    details: json(&details)?,
                },
            })
        })
        .collect()
    }

    async fn acquire_rollout_lease(
        &self,
        holder: &str,
        rollout: i64,
        ttl: std::time::Duration,
    ) -> Result<Result<(), LeaseHeld>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let current: Option<(String, Option<i64>, String)> = tx
            .query_row(
                "SELECT holder, rollout, expires_at FROM rollout_lease WHERE id = 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let now = now();
        if let Some((other, other_rollout, expires)) = current {
            let expires_at = parse_time(&expires)?;
            if other != holder && expires_at > now {
                return Ok(Err(LeaseHeld {
                    holder: other,
                    rollout: other_rollout,
                    expires_at,
                }));
            }
        }
        let ttl = chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX);
        let expires = now
            .checked_add_signed(ttl)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        tx.execute(
            "INSERT INTO rollout_lease (id, holder, rollout, expires_at) VALUES (1, ?1, ?2, ?3)
             ON CONFLICT (id) DO UPDATE SET holder = excluded.holder, rollout = excluded.rollout, expires_at = excluded.expires_at",
            params![holder, rollout, audit::timestamp(&expires)],
        )?;
        tx.commit()?;
        Ok(Ok(()))
    }

    async fn release_rollout_lease(&self, holder: &str) -> Result<(), StoreError> {
        self.conn().execute(
            "DELETE FROM rollout_lease WHERE id = 1 AND holder = ?1",
            [holder],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
