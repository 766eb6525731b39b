//! Re-wrapping on a real SQLite file with two master key files: every
//! secret opens under the new key and not the old, ciphertexts unchanged,
//! each re-wrap audited, a second run changes nothing, keys under neither
//! wrapper are left alone, and a stale read never overwrites.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use secrecy::{ExposeSecret as _, SecretString};

use super::*;
use crate::secrets::hosted::HostedStore;
use crate::secrets::key_wrapper::{FileKeyWrapper, create_master_key_file};
use crate::secrets::{SecretName, SecretStore as _};
use crate::store::Store as _;
use crate::store::sqlite::SqliteStore;

struct Fixture {
    dir: tempfile::TempDir,
    sqlite: Arc<SqliteStore>,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let sqlite = Arc::new(SqliteStore::open(&dir.path().join("state.db")).unwrap());
        Self { dir, sqlite }
    }

    fn key(&self, name: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        if !path.exists() {
            create_master_key_file(&path).unwrap();
        }
        path
    }

    fn store(&self, key: &Path) -> HostedStore {
        HostedStore::new(self.sqlite.clone(), Arc::new(wrapper(key)))
    }
}

fn wrapper(key: &Path) -> FileKeyWrapper {
    FileKeyWrapper::open(key).unwrap()
}

fn t(id: &str) -> TenantId {
    id.parse().unwrap()
}

fn llm_key() -> SecretName {
    "llm-api-key".parse().unwrap()
}

async fn ciphertexts(sqlite: &SqliteStore, tenant: &TenantId) -> Vec<u8> {
    sqlite
        .latest_version(tenant, &llm_key())
        .await
        .unwrap()
        .unwrap()
        .ciphertext
}

#[tokio::test]
async fn every_key_moves_to_the_new_master_key_once_and_is_audited() {
    let f = Fixture::new();
    let (old_path, new_path) = (f.key("old.key"), f.key("new.key"));
    for (tenant, value) in [("acme", "acme-value"), ("globex", "globex-value")] {
        f.store(&old_path)
            .put(&t(tenant), &llm_key(), &SecretString::from(value))
            .await
            .unwrap();
    }
    let before = ciphertexts(&f.sqlite, &t("acme")).await;
    let (old, new) = (wrapper(&old_path), wrapper(&new_path));
    let tenants = [t("acme"), t("globex"), t("initech")];

    let planned = plan(f.sqlite.as_ref(), &tenants, &old, &new).await.unwrap();
    let states: Vec<&KeyState> = planned.iter().map(|p| &p.state).collect();
    assert_eq!(
        states,
        [&KeyState::ToRewrap, &KeyState::ToRewrap, &KeyState::NoKey]
    );
    let done = apply(f.sqlite.as_ref(), &planned, &old, &new, "arn:alice")
        .await
        .unwrap();
    assert_eq!(done, [t("acme"), t("globex")]);

    // The new key opens every secret; the old one opens none.
    for (tenant, value) in [("acme", "acme-value"), ("globex", "globex-value")] {
        let got = f
            .store(&new_path)
            .get(&t(tenant), &llm_key())
            .await
            .unwrap();
        assert_eq!(got.expose_secret(), value);
        assert!(
            f.store(&old_path)
                .get(&t(tenant), &llm_key())
                .await
                .is_err()
        );
    }
    // Only the key-encryption key changed.
    assert_eq!(ciphertexts(&f.sqlite, &t("acme")).await, before);
    // One audit entry per tenant, by the actor, naming both wrappers.
    let audit = f.sqlite.audit_entries(0, 100).await.unwrap();
    let rewraps: Vec<_> = audit
        .iter()
        .filter(|a| a.action == "secret.data_key_rewrapped")
        .collect();
    assert_eq!(rewraps.len(), 2);
    assert!(rewraps.iter().all(|a| a.actor == "arn:alice"));
    assert_eq!(rewraps[0].details["from"], old.id());
    assert_eq!(rewraps[0].details["to"], new.id());

    // Again: nothing to do.
    let again = plan(f.sqlite.as_ref(), &tenants, &old, &new).await.unwrap();
    assert_eq!(again[0].state, KeyState::Current);
    let done = apply(f.sqlite.as_ref(), &again, &old, &new, "arn:alice")
        .await
        .unwrap();
    assert!(done.is_empty());
}

#[tokio::test]
async fn a_key_under_neither_wrapper_is_left_alone() {
    let f = Fixture::new();
    let (third, old_path, new_path) = (f.key("third.key"), f.key("old.key"), f.key("new.key"));
    f.store(&third)
        .put(&t("acme"), &llm_key(), &SecretString::from("v"))
        .await
        .unwrap();
    let (old, new) = (wrapper(&old_path), wrapper(&new_path));
    let planned = plan(f.sqlite.as_ref(), &[t("acme")], &old, &new)
        .await
        .unwrap();
    assert_eq!(
        planned[0].state,
        KeyState::Unknown {
            wrapper: wrapper(&third).id()
        }
    );
    assert!(
        apply(f.sqlite.as_ref(), &planned, &old, &new, "a")
            .await
            .unwrap()
            .is_empty()
    );
    let got = f.store(&third).get(&t("acme"), &llm_key()).await.unwrap();
    assert_eq!(got.expose_secret(), "v");
}

#[tokio::test]
async fn a_stale_read_never_overwrites_and_writes_no_audit() {
    let f = Fixture::new();
    let (old_path, new_path) = (f.key("old.key"), f.key("new.key"));
    f.store(&old_path)
        .put(&t("acme"), &llm_key(), &SecretString::from("v"))
        .await
        .unwrap();
    let stored = f.sqlite.data_key(&t("acme")).await.unwrap().unwrap();
    let stale = WrappedDataKey {
        blob: vec![0; stored.blob.len()],
        ..stored.clone()
    };
    let replacement = WrappedDataKey {
        wrapper: wrapper(&new_path).id(),
        ..stored.clone()
    };
    let audit = NewAuditEntry {
        actor: "a".into(),
        tenant: Some(t("acme")),
        action: "secret.data_key_rewrapped".into(),
        details: serde_json::json!({}),
    };
    let replaced = f
        .sqlite
        .replace_data_key(&stale, &replacement, audit)
        .await
        .unwrap();
    assert!(!replaced);
    assert_eq!(f.sqlite.data_key(&t("acme")).await.unwrap(), Some(stored));
    assert!(f.sqlite.audit_entries(0, 10).await.unwrap().is_empty());
}
