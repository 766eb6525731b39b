//! [`SealedSecrets`] on SQLite: tables `hosted_data_keys` and
//! `hosted_secrets` (migration 0004). Only opaque bytes are stored; a
//! first data key and a version number are claimed with `INSERT ... ON
//! CONFLICT DO NOTHING`, so concurrent writers never overwrite each other.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};
use stacks::ids::TenantId;

use super::{SqliteStore, append_audit_in, now, parse, parse_time};
use crate::secrets::SecretName;
use crate::store::audit;
use crate::store::sealed::{SealedSecrets, SealedSummary, SealedVersion, WrappedDataKey};
use crate::store::{NewAuditEntry, StoreError};

type RawVersion = (String, String, i64, Vec<u8>, Vec<u8>, String);

fn version_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawVersion> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
    ))
}

fn sealed_version(raw: RawVersion) -> Result<SealedVersion, StoreError> {
    let (tenant, name, version, nonce, ciphertext, created_at) = raw;
    Ok(SealedVersion {
        tenant: parse("tenant", &tenant)?,
        name: parse("secret name", &name)?,
        version: u32::try_from(version)
            .map_err(|_| StoreError::Corrupt(format!("secret version {version}")))?,
        nonce,
        ciphertext,
        created_at: parse_time(&created_at)?,
    })
}

const VERSION_COLUMNS: &str = "tenant, name, version, nonce, ciphertext, created_at";

#[async_trait]
impl SealedSecrets for SqliteStore {
    async fn data_key(&self, tenant: &TenantId) -> Result<Option<WrappedDataKey>, StoreError> {
        let row: Option<(String, Vec<u8>, String)> = self
            .conn()
            .query_row(
                "SELECT wrapper, wrapped, created_at FROM hosted_data_keys WHERE tenant = ?1",
                [tenant.as_str()],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        row.map(|(wrapper, blob, created_at)| {
            Ok(WrappedDataKey {
                tenant: tenant.clone(),
                wrapper,
                blob,
                created_at: parse_time(&created_at)?,
            })
        })
        .transpose()
    }

    async fn insert_data_key(&self, key: &WrappedDataKey) -> Result<WrappedDataKey, StoreError> {
        self.conn().execute(
            "INSERT INTO hosted_data_keys (tenant, wrapper, wrapped, created_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (tenant) DO NOTHING",
            params![
                key.tenant.as_str(),
                key.wrapper,
                key.blob,
                audit::timestamp(&now())
            ],
        )?;
        self.data_key(&key.tenant)
            .await?
            .ok_or_else(|| StoreError::Corrupt("a data key vanished after insert".into()))
    }

    async fn replace_data_key(
        &self,
        old: &WrappedDataKey,
        new: &WrappedDataKey,
        audit: NewAuditEntry,
    ) -> Result<bool, StoreError> {
        if old.tenant != new.tenant {
            return Err(StoreError::Corrupt(
                "a data key can only be replaced by the same tenant's".into(),
            ));
        }
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let changed = tx.execute(
            "UPDATE hosted_data_keys SET wrapper = ?2, wrapped = ?3, created_at = ?4
             WHERE tenant = ?1 AND wrapper = ?5 AND wrapped = ?6",
            params![
                new.tenant.as_str(),
                new.wrapper,
                new.blob,
                audit::timestamp(&now()),
                old.wrapper,
                old.blob
            ],
        )?;
        if changed != 1 {
            return Ok(false);
        }
        append_audit_in(&tx, audit)?;
        tx.commit()?;
        Ok(true)
    }

    async fn latest_version(
        &self,
        tenant: &TenantId,
        name: &SecretName,
    ) -> Result<Option<SealedVersion>, StoreError> {
        let raw = self
            .conn()
            .query_row(
                &format!(
                    "SELECT {VERSION_COLUMNS} FROM hosted_secrets WHERE tenant = ?1 AND name = ?2
                     ORDER BY version DESC LIMIT 1"
                ),
                params![tenant.as_str(), name.as_str()],
                version_from_row,
            )
            .optional()?;
        raw.map(sealed_version).transpose()
    }

    async fn sealed_version(
        &self,
        tenant: &TenantId,
        name: &SecretName,
        version: u32,
    ) -> Result<Option<SealedVersion>, StoreError> {
        let raw = self
            .conn()
            .query_row(
                &format!(
                    "SELECT {VERSION_COLUMNS} FROM hosted_secrets
                     WHERE tenant = ?1 AND name = ?2 AND version = ?3"
                ),
                params![tenant.as_str(), name.as_str(), version],
                version_from_row,
            )
            .optional()?;
        raw.map(sealed_version).transpose()
    }

    async fn insert_version(
        &self,
        sealed: &SealedVersion,
    ) -> Result<Option<SealedVersion>, StoreError> {
        let created_at = now();
        let inserted = self.conn().execute(
            &format!(
                "INSERT INTO hosted_secrets ({VERSION_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (tenant, name, version) DO NOTHING"
            ),
            params![
                sealed.tenant.as_str(),
                sealed.name.as_str(),
                sealed.version,
                sealed.nonce,
                sealed.ciphertext,
                audit::timestamp(&created_at)
            ],
        )?;
        Ok((inserted == 1).then(|| SealedVersion {
            created_at,
            ..sealed.clone()
        }))
    }

    async fn delete_secret(&self, tenant: &TenantId, name: &SecretName) -> Result<u32, StoreError> {
        let deleted = self.conn().execute(
            "DELETE FROM hosted_secrets WHERE tenant = ?1 AND name = ?2",
            params![tenant.as_str(), name.as_str()],
        )?;
        Ok(u32::try_from(deleted).unwrap_or(u32::MAX))
    }

    async fn sealed_summaries(&self, tenant: &TenantId) -> Result<Vec<SealedSummary>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT s.name, s.version, c.n, s.created_at
             FROM hosted_secrets s
             JOIN (SELECT name, MAX(version) AS latest, COUNT(*) AS n
                   FROM hosted_secrets WHERE tenant = ?1 GROUP BY name) c
               ON s.name = c.name AND s.version = c.latest
             WHERE s.tenant = ?1
             ORDER BY s.name",
        )?;
        let rows = stmt
            .query_map([tenant.as_str()], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, String>(3)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter()
            .map(|(name, latest, n, created_at)| {
                Ok(SealedSummary {
                    name: parse("secret name", &name)?,
                    latest: u32::try_from(latest)
                        .map_err(|_| StoreError::Corrupt(format!("secret version {latest}")))?,
                    versions: u32::try_from(n).unwrap_or(u32::MAX),
                    created_at: parse_time(&created_at)?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(id: &str) -> TenantId {
        id.parse().unwrap()
    }

    fn version(t: &str, name: &str, v: u32) -> SealedVersion {
        SealedVersion {
            tenant: tenant(t),
            name: name.parse().unwrap(),
            version: v,
            nonce: vec![v as u8; 12],
            ciphertext: vec![1, 2, 3],
            created_at: chrono::DateTime::UNIX_EPOCH,
        }
    }

    #[tokio::test]
    async fn first_data_key_wins_and_versions_are_claimed_once() {
        let store = SqliteStore::in_memory().unwrap();
        let acme = tenant("acme");
        assert!(store.data_key(&acme).await.unwrap().is_none());
        let first = WrappedDataKey {
            tenant: acme.clone(),
            wrapper: "file:aa".into(),
            blob: vec![1],
            created_at: chrono::DateTime::UNIX_EPOCH,
        };
        let second = WrappedDataKey {
            blob: vec![2],
            ..first.clone()
        };
        assert_eq!(store.insert_data_key(&first).await.unwrap().blob, [1]);
        assert_eq!(store.insert_data_key(&second).await.unwrap().blob, [1]);

        let k: SecretName = "k".parse().unwrap();
        assert!(
            store
                .insert_version(&version("acme", "k", 1))
                .await
                .unwrap()
                .is_some()
        );
        assert!(
            store
                .insert_version(&version("acme", "k", 1))
                .await
                .unwrap()
                .is_none()
        );
        store
            .insert_version(&version("acme", "k", 2))
            .await
            .unwrap();
        store
            .insert_version(&version("acme", "j", 1))
            .await
            .unwrap();
        store
            .insert_version(&version("bravo", "k", 1))
            .await
            .unwrap();
        assert_eq!(
            store
                .latest_version(&acme, &k)
                .await
                .unwrap()
                .unwrap()
                .version,
            2
        );
        assert_eq!(
            store
                .sealed_version(&acme, &k, 1)
                .await
                .unwrap()
                .unwrap()
                .nonce,
            [1; 12]
        );
        let summaries = store.sealed_summaries(&acme).await.unwrap();
        let names: Vec<_> = summaries
            .iter()
            .map(|s| (s.name.as_str(), s.latest, s.versions))
            .collect();
        assert_eq!(names, [("j", 1, 1), ("k", 2, 2)]);
        assert_eq!(store.delete_secret(&acme, &k).await.unwrap(), 2);
        assert!(store.latest_version(&acme, &k).await.unwrap().is_none());
        assert_eq!(
            store
                .sealed_summaries(&tenant("bravo"))
                .await
                .unwrap()
                .len(),
            1
        );
    }
}
