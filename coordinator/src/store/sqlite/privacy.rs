//! [`PrivacyStore`] on SQLite: configuration versions and secret writes,
//! each in one transaction with its audit entry.

use async_trait::async_trait;
use rusqlite::params;
use stacks::ids::TenantId;

use super::{SqliteStore, append_audit_in, json, parse, parse_time};
use crate::store::privacy::{
    NewPrivacyRecord, PrivacyChange, PrivacyRecord, PrivacyStore, SecretAction, SecretWrite,
};
use crate::store::{AuditEntry, NewAuditEntry, StoreError, audit};

const COLUMNS: &str =
    "tenant, version, config, digest, hosted_fallback, fallback_reason, change, actor, at";

fn record(row: &rusqlite::Row<'_>) -> rusqlite::Result<[Option<String>; 9]> {
    Ok([
        row.get(0)?,
        Some(row.get::<_, i64>(1)?.to_string()),
        row.get(2)?,
        row.get(3)?,
        Some(row.get::<_, i64>(4)?.to_string()),
        row.get(5)?,
        row.get(6)?,
        row.get(7)?,
        row.get(8)?,
    ])
}

fn decode(cols: [Option<String>; 9]) -> Result<PrivacyRecord, StoreError> {
    let [
        tenant,
        version,
        config,
        digest,
        fallback,
        reason,
        change,
        actor,
        at,
    ] = cols;
    let text = |c: Option<String>| c.ok_or_else(|| StoreError::Corrupt("NULL column".into()));
    let config = json(&text(config)?)?;
    Ok(PrivacyRecord {
        tenant: parse("tenant id", &text(tenant)?)?,
        version: parse("version", &text(version)?)?,
        config: serde_json::from_value(config)
            .map_err(|e| StoreError::Corrupt(format!("privacy configuration: {e}")))?,
        digest: text(digest)?,
        hosted_fallback: text(fallback)? != "0",
        fallback_reason: reason,
        change: match text(change)?.as_str() {
            "config" => PrivacyChange::Config,
            "fallback" => PrivacyChange::Fallback,
            other => return Err(StoreError::Corrupt(format!("privacy change {other:?}"))),
        },
        actor: text(actor)?,
        at: parse_time(&text(at)?)?,
    })
}

fn secret_action(text: &str) -> Result<SecretAction, StoreError> {
    Ok(match text {
        "put" => SecretAction::Put,
        "rotate" => SecretAction::Rotate,
        "delete" => SecretAction::Delete,
        other => return Err(StoreError::Corrupt(format!("secret action {other:?}"))),
    })
}

#[async_trait]
impl PrivacyStore for SqliteStore {
    async fn current_privacy(
        &self,
        tenant: &TenantId,
    ) -> Result<Option<PrivacyRecord>, StoreError> {
        Ok(self.privacy_history(tenant, 1).await?.into_iter().next())
    }

    async fn privacy_history(
        &self,
        tenant: &TenantId,
        limit: usize,
    ) -> Result<Vec<PrivacyRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM privacy_configs WHERE tenant = ?1 ORDER BY version DESC LIMIT ?2"
        ))?;
        let rows = stmt
            .query_map(params![tenant.as_str(), limit as i64], record)?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter().map(decode).collect()
    }

    async fn append_privacy(
        &self,
        r: NewPrivacyRecord,
        expected: u64,
        audit: NewAuditEntry,
    ) -> Result<(PrivacyRecord, AuditEntry), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let current: i64 = tx.query_row(
            "SELECT COALESCE(MAX(version), 0) FROM privacy_configs WHERE tenant = ?1",
            [r.tenant.as_str()],
            |row| row.get(0),
        )?;
        if current as u64 != expected {
            return Err(StoreError::Conflict(format!(
                "tenant `{}`'s privacy configuration changed meanwhile (now version {current}, expected {expected}): read it again and retry",
                r.tenant
            )));
        }
        let entry = append_audit_in(&tx, audit)?;
        let version = current as u64 + 1;
        let digest = r.config.digest();
        let config = serde_json::to_value(&r.config).expect("configurations serialize");
        tx.execute(
            &format!("INSERT INTO privacy_configs ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"),
            params![
                r.tenant.as_str(),
                version as i64,
                stacks::template::canonical_json(&config),
                digest,
                r.hosted_fallback as i64,
                r.fallback_reason,
                r.change.as_str(),
                r.actor,
                audit::timestamp(&entry.at),
            ],
        )?;
        tx.commit()?;
        let record = PrivacyRecord {
            tenant: r.tenant,
            version,
            config: r.config,
            digest,
            hosted_fallback: r.hosted_fallback,
            fallback_reason: r.fallback_reason,
            change: r.change,
            actor: r.actor,
            at: entry.at,
        };
        Ok((record, entry))
    }

    async fn record_secret_write(
        &self,
        w: SecretWrite,
        audit: NewAuditEntry,
    ) -> Result<AuditEntry, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let entry = append_audit_in(&tx, audit)?;
        tx.execute(
            "INSERT INTO secret_writes (tenant, name, backend, version, digest, action, actor, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                w.tenant.as_str(),
                w.name.as_str(),
                w.backend.as_str(),
                w.version,
                w.digest,
                w.action.as_str(),
                w.actor,
                audit::timestamp(&entry.at),
            ],
        )?;
        tx.commit()?;
        Ok(entry)
    }

    async fn secret_writes(&self, tenant: &TenantId) -> Result<Vec<SecretWrite>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT name, backend, version, digest, action, actor, at FROM secret_writes w
             WHERE tenant = ?1 AND id = (SELECT MAX(id) FROM secret_writes WHERE tenant = w.tenant AND name = w.name)
             ORDER BY name",
        )?;
        let rows = stmt
            .query_map([tenant.as_str()], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, String>(6)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter()
            .map(|(name, backend, version, digest, action, actor, at)| {
                Ok(SecretWrite {
                    tenant: tenant.clone(),
                    name: parse("secret name", &name)?,
                    backend: serde_json::from_value(serde_json::Value::String(backend.clone()))
                        .map_err(|_| StoreError::Corrupt(format!("secret backend {backend:?}")))?,
                    version,
                    digest,
                    action: secret_action(&action)?,
                    actor,
                    at: parse_time(&at)?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::privacy::PrivacyConfig;
    use crate::store::Store;

    fn new(tenant: &str, config: serde_json::Value, fallback: bool) -> NewPrivacyRecord {
        NewPrivacyRecord {
            tenant: tenant.parse().unwrap(),
            config: serde_json::from_value(config).unwrap(),
            hosted_fallback: fallback,
            fallback_reason: fallback.then(|| "incident 42".to_owned()),
            change: PrivacyChange::Config,
            actor: "arn:aws:sts::1:assumed-role/sre/alice".into(),
        }
    }

    fn audit_for(tenant: &str) -> NewAuditEntry {
        NewAuditEntry {
            actor: "arn:aws:sts::1:assumed-role/sre/alice".into(),
            tenant: Some(tenant.parse().unwrap()),
            action: "tenant.privacy_changed".into(),
            details: json!({}),
        }
    }

    #[tokio::test]
    async fn versions_are_kept_and_the_latest_is_current() {
        let store = SqliteStore::in_memory().unwrap();
        let acme: TenantId = "acme".parse().unwrap();
        assert_eq!(store.current_privacy(&acme).await.unwrap(), None);
        let (first, entry) = store
            .append_privacy(new("acme", json!({}), false), 0, audit_for("acme"))
            .await
            .unwrap();
        assert_eq!(first.version, 1);
        assert_eq!(first.at, entry.at);
        let s3 = json!({"storage": {"mode": "customer_s3", "bucket": "acme-docs", "region": "eu-west-1"}});
        let (second, _) = store
            .append_privacy(new("acme", s3, true), 1, audit_for("acme"))
            .await
            .unwrap();
        assert_eq!(
            store.current_privacy(&acme).await.unwrap(),
            Some(second.clone())
        );
        assert!(second.hosted_fallback);
        assert_eq!(second.fallback_reason.as_deref(), Some("incident 42"));
        assert_ne!(first.digest, second.digest);
        let history = store.privacy_history(&acme, 10).await.unwrap();
        assert_eq!(
            history.iter().map(|r| r.version).collect::<Vec<_>>(),
            [2, 1]
        );
        assert_eq!(history[1].config, PrivacyConfig::default());
        // Other tenants are unaffected.
        assert_eq!(
            store
                .current_privacy(&"other".parse().unwrap())
                .await
                .unwrap(),
            None
        );
        // Every version has its audit entry.
        assert_eq!(store.audit_entries(0, 10).await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn a_stale_version_is_a_conflict_and_writes_nothing() {
        let store = SqliteStore::in_memory().unwrap();
        store
            .append_privacy(new("acme", json!({}), false), 0, audit_for("acme"))
            .await
            .unwrap();
        let err = store
            .append_privacy(new("acme", json!({}), false), 0, audit_for("acme"))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)), "{err}");
        assert!(err.to_string().contains("retry"), "{err}");
        assert_eq!(store.audit_entries(0, 10).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn secret_writes_keep_the_last_write_per_name() {
        let store = SqliteStore::in_memory().unwrap();
        let acme: TenantId = "acme".parse().unwrap();
        let write = |name: &str, action, version: Option<&str>| SecretWrite {
            tenant: acme.clone(),
            name: name.parse().unwrap(),
            backend: crate::secrets::BackendKind::Hosted,
            version: version.map(str::to_owned),
            digest: version.map(|v| format!("hmac-sha256:{v}")),
            action,
            actor: "alice".into(),
            at: chrono::Utc::now(),
        };
        for w in [
            write("llm-api-key", SecretAction::Put, Some("1")),
            write("llm-api-key", SecretAction::Rotate, Some("2")),
            write("s3-credentials", SecretAction::Put, Some("1")),
            write("s3-credentials", SecretAction::Delete, None),
        ] {
            store
                .record_secret_write(w, audit_for("acme"))
                .await
                .unwrap();
        }
        let last = store.secret_writes(&acme).await.unwrap();
        let summary: Vec<_> = last
            .iter()
            .map(|w| (w.name.as_str(), w.action, w.version.as_deref()))
            .collect();
        assert_eq!(
            summary,
            [
                ("llm-api-key", SecretAction::Rotate, Some("2")),
                ("s3-credentials", SecretAction::Delete, None)
            ]
        );
        assert!(
            store
                .secret_writes(&"other".parse().unwrap())
                .await
                .unwrap()
                .is_empty()
        );
    }
}
