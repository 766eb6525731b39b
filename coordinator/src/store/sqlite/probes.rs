//! [`ProbeStore`] on SQLite.

use async_trait::async_trait;
use rusqlite::params;
use stacks::ids::TenantId;

use super::{SqliteStore, parse, parse_time};
use crate::probes::{ProbeError, ProbeOutcome, ProbeStatus};
use crate::store::probes::{ProbeStore, StoredProbe};
use crate::store::{StoreError, audit};

type Row = (
    String,
    String,
    String,
    String,
    i64,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
);

fn decode(r: Row) -> Result<StoredProbe, StoreError> {
    let (tenant, probe, status, at, latency, code, message, remedy, detail, passed, digest) = r;
    let status = match status.as_str() {
        "passing" => ProbeStatus::Passing,
        "failing" => ProbeStatus::Failing,
        "not_applicable" => ProbeStatus::NotApplicable,
        other => return Err(StoreError::Corrupt(format!("probe status {other:?}"))),
    };
    let error = match (code, message, remedy) {
        (Some(code), Some(message), Some(remedy)) => Some(ProbeError {
            code,
            message,
            remedy,
        }),
        _ => None,
    };
    Ok(StoredProbe {
        outcome: ProbeOutcome {
            tenant: parse("tenant id", &tenant)?,
            probe: parse("probe", &probe)?,
            status,
            at: parse_time(&at)?,
            latency_ms: latency.max(0) as u64,
            error,
            detail,
        },
        last_passed_at: passed.as_deref().map(parse_time).transpose()?,
        config_digest: digest,
    })
}

#[async_trait]
impl ProbeStore for SqliteStore {
    async fn put_probe(
        &self,
        o: &ProbeOutcome,
        config_digest: &str,
    ) -> Result<StoredProbe, StoreError> {
        let at = audit::timestamp(&o.at);
        let passed = (o.status == ProbeStatus::Passing).then(|| at.clone());
        {
            let conn = self.conn();
            conn.execute(
                "INSERT INTO probe_results (tenant, probe, status, at, latency_ms, code, message, remedy, detail, last_passed_at, config_digest)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
                 ON CONFLICT (tenant, probe) DO UPDATE SET
                   status = excluded.status, at = excluded.at, latency_ms = excluded.latency_ms,
                   code = excluded.code, message = excluded.message, remedy = excluded.remedy,
                   detail = excluded.detail, config_digest = excluded.config_digest,
                   last_passed_at = COALESCE(excluded.last_passed_at, probe_results.last_passed_at)",
                params![
                    o.tenant.as_str(),
                    o.probe.as_str(),
                    o.status.as_str(),
                    at,
                    o.latency_ms as i64,
                    o.error.as_ref().map(|e| &e.code),
                    o.error.as_ref().map(|e| &e.message),
                    o.error.as_ref().map(|e| &e.remedy),
                    o.detail,
                    passed,
                    config_digest,
                ],
            )?;
        }
        let stored = self.probes(Some(&o.tenant)).await?;
        stored
            .into_iter()
            .find(|s| s.outcome.probe == o.probe)
            .ok_or_else(|| StoreError::Corrupt("probe result vanished".into()))
    }

    async fn probes(&self, tenant: Option<&TenantId>) -> Result<Vec<StoredProbe>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT tenant, probe, status, at, latency_ms, code, message, remedy, detail, last_passed_at, config_digest
             FROM probe_results WHERE ?1 IS NULL OR tenant = ?1 ORDER BY tenant, probe",
        )?;
        let rows = stmt
            .query_map([tenant.map(TenantId::as_str)], |r| {
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
            })?
            .collect::<Result<Vec<Row>, _>>()?;
        rows.into_iter().map(decode).collect()
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, Utc};

    use super::*;
    use crate::probes::ProbeName;

    fn outcome(status: ProbeStatus, minutes_ago: i64) -> ProbeOutcome {
        ProbeOutcome {
            tenant: "acme".parse().unwrap(),
            probe: ProbeName::Storage,
            status,
            at: Utc::now() - Duration::minutes(minutes_ago),
            latency_ms: 42,
            error: (status == ProbeStatus::Failing)
                .then(|| ProbeError::new("storage.bucket_missing", "no bucket", "create it")),
            detail: None,
        }
    }

    #[tokio::test]
    async fn the_latest_outcome_wins_and_the_last_pass_is_kept() {
        let store = SqliteStore::in_memory().unwrap();
        let pass = store
            .put_probe(&outcome(ProbeStatus::Passing, 10), "sha256:a")
            .await
            .unwrap();
        assert_eq!(pass.last_passed_at, Some(audit_time(&pass.outcome.at)));
        let fail = store
            .put_probe(&outcome(ProbeStatus::Failing, 1), "sha256:b")
            .await
            .unwrap();
        assert_eq!(fail.outcome.status, ProbeStatus::Failing);
        assert_eq!(
            fail.outcome.error.as_ref().unwrap().code,
            "storage.bucket_missing"
        );
        assert_eq!(fail.last_passed_at, pass.last_passed_at);
        assert_eq!(fail.config_digest, "sha256:b");
        assert_eq!(store.probes(None).await.unwrap().len(), 1);
        assert!(
            store
                .probes(Some(&"other".parse().unwrap()))
                .await
                .unwrap()
                .is_empty()
        );
    }

    fn audit_time(t: &chrono::DateTime<Utc>) -> chrono::DateTime<Utc> {
        parse_time(&audit::timestamp(t)).unwrap()
    }
}
