//! The hosted store on a real SQLite file: round trips, and every way a
//! stored record can be wrong (tampered, wrong master key, moved to
//! another tenant, name or version) is refused; the file never holds a
//! value in clear.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, params};
use stacks::ids::Region;

use super::*;
use crate::aws::fake::FakeCloud;
use crate::aws::{ClientScope, Connector as _};
use crate::secrets::key_wrapper::{FileKeyWrapper, KmsKeyWrapper, create_master_key_file};
use crate::store::sqlite::SqliteStore;

const PLANTED: &str = "planted-hosted-value-7c1f0e9a";

struct Fixture {
    _dir: tempfile::TempDir,
    db: PathBuf,
    key: PathBuf,
    sqlite: Arc<SqliteStore>,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("state.db");
        let key = dir.path().join("master.key");
        create_master_key_file(&key).unwrap();
        let sqlite = Arc::new(SqliteStore::open(&db).unwrap());
        Self {
            _dir: dir,
            db,
            key,
            sqlite,
        }
    }

    fn store_with(&self, key: &Path) -> HostedStore {
        HostedStore::new(
            self.sqlite.clone(),
            Arc::new(FileKeyWrapper::open(key).unwrap()),
        )
    }

    fn store(&self) -> HostedStore {
        self.store_with(&self.key)
    }

    /// A second connection to the file, as someone with the file would
    /// have.
    fn raw(&self) -> Connection {
        Connection::open(&self.db).unwrap()
    }
}

fn tenant(id: &str) -> TenantId {
    id.parse().unwrap()
}

fn name(n: &str) -> SecretName {
    n.parse().unwrap()
}

fn value(v: &str) -> SecretString {
    SecretString::from(v)
}

fn is_undecryptable(e: &SecretError) -> bool {
    matches!(e, SecretError::Undecryptable { .. })
}

#[tokio::test]
async fn put_get_rotate_delete_list() {
    let f = Fixture::new();
    let store = f.store();
    let (acme, key) = (tenant("acme"), name("llm-api-key"));
    let v1 = store.put(&acme, &key, &value("first")).await.unwrap();
    assert_eq!(v1.id, "1");
    assert_eq!(
        store.get(&acme, &key).await.unwrap().expose_secret(),
        "first"
    );
    let v2 = store.put(&acme, &key, &value("second")).await.unwrap();
    assert_eq!(v2.id, "2");
    assert_eq!(
        store.get(&acme, &key).await.unwrap().expose_secret(),
        "second"
    );
    // Rotation keeps the previous version readable.
    let old = store.get_version(&acme, &key, "1").await.unwrap();
    assert_eq!(old.expose_secret(), "first");
    assert!(matches!(
        store.get_version(&acme, &key, "9").await.unwrap_err(),
        SecretError::NotFound { .. }
    ));
    store.put(&acme, &name("other"), &value("x")).await.unwrap();
    store
        .put(&tenant("globex"), &key, &value("theirs"))
        .await
        .unwrap();

    let listed = store.list(&acme).await.unwrap();
    let summary: Vec<_> = listed
        .iter()
        .map(|m| (m.name.as_str(), m.current.id.as_str(), m.versions))
        .collect();
    assert_eq!(
        summary,
        [("llm-api-key", "2", Some(2)), ("other", "1", Some(1))]
    );
    assert_eq!(listed[0].current.created_at, v2.created_at);

    // A fresh store (another process) reads the same records.
    let again = f.store();
    assert_eq!(
        again.get(&acme, &key).await.unwrap().expose_secret(),
        "second"
    );
    assert_eq!(
        again
            .get(&tenant("globex"), &key)
            .await
            .unwrap()
            .expose_secret(),
        "theirs"
    );

    store.delete(&acme, &key).await.unwrap();
    let e = store.get(&acme, &key).await.unwrap_err();
    assert!(matches!(e, SecretError::NotFound { .. }), "{e}");
    let e = store.delete(&acme, &key).await.unwrap_err();
    assert!(matches!(e, SecretError::NotFound { .. }), "{e}");
    assert_eq!(store.list(&acme).await.unwrap().len(), 1);
    // The name can be used again.
    store.put(&acme, &key, &value("third")).await.unwrap();
    assert_eq!(
        store.get(&acme, &key).await.unwrap().expose_secret(),
        "third"
    );
}

#[tokio::test]
async fn every_version_has_its_own_nonce() {
    let f = Fixture::new();
    let store = f.store();
    for _ in 0..5 {
        store
            .put(&tenant("acme"), &name("k"), &value("same value"))
            .await
            .unwrap();
    }
    let nonces: std::collections::BTreeSet<Vec<u8>> = f
        .raw()
        .prepare("SELECT nonce FROM hosted_secrets")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(nonces.len(), 5);
}

#[tokio::test]
async fn a_tampered_ciphertext_is_rejected() {
    let f = Fixture::new();
    let store = f.store();
    let (acme, key) = (tenant("acme"), name("k"));
    store.put(&acme, &key, &value(PLANTED)).await.unwrap();
    let raw = f.raw();
    let mut ciphertext: Vec<u8> = raw
        .query_row("SELECT ciphertext FROM hosted_secrets", [], |r| r.get(0))
        .unwrap();
    ciphertext[0] ^= 0x01;
    raw.execute("UPDATE hosted_secrets SET ciphertext = ?1", [ciphertext])
        .unwrap();
    let e = store.get(&acme, &key).await.unwrap_err();
    assert!(is_undecryptable(&e), "{e}");
    assert!(e.to_string().contains("altered"), "{e}");
    assert!(!e.to_string().contains(PLANTED));

    // A tampered wrapped data key is refused too.
    store
        .put(&tenant("globex"), &key, &value("v"))
        .await
        .unwrap();
    let mut wrapped: Vec<u8> = raw
        .query_row(
            "SELECT wrapped FROM hosted_data_keys WHERE tenant = 'globex'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    *wrapped.last_mut().unwrap() ^= 0x80;
    raw.execute(
        "UPDATE hosted_data_keys SET wrapped = ?1 WHERE tenant = 'globex'",
        [wrapped],
    )
    .unwrap();
    let e = f.store().get(&tenant("globex"), &key).await.unwrap_err();
    assert!(is_undecryptable(&e), "{e}");
}

#[tokio::test]
async fn a_wrong_master_key_is_rejected() {
    let f = Fixture::new();
    let (acme, key) = (tenant("acme"), name("k"));
    f.store().put(&acme, &key, &value(PLANTED)).await.unwrap();
    let other = f.key.with_file_name("other.key");
    create_master_key_file(&other).unwrap();
    let wrong = f.store_with(&other);
    let e = wrong.get(&acme, &key).await.unwrap_err();
    assert!(is_undecryptable(&e), "{e}");
    assert!(e.to_string().contains("wrong master key"), "{e}");
    // Nor can it add versions under the tenant's existing data key.
    let e = wrong.put(&acme, &key, &value("x")).await.unwrap_err();
    assert!(is_undecryptable(&e), "{e}");
}

#[tokio::test]
async fn a_ciphertext_moved_to_another_row_is_rejected() {
    let f = Fixture::new();
    let store = f.store();
    let (acme, globex) = (tenant("acme"), tenant("globex"));
    store.put(&acme, &name("a"), &value(PLANTED)).await.unwrap();
    store.put(&acme, &name("b"), &value("b1")).await.unwrap();
    store.put(&acme, &name("b"), &value("b2")).await.unwrap();
    store
        .put(&globex, &name("a"), &value("theirs"))
        .await
        .unwrap();
    let raw = f.raw();
    let copy = |to_tenant: &str, to_name: &str, to_version: u32| {
        raw.execute(
            "UPDATE hosted_secrets
             SET (nonce, ciphertext) = (SELECT nonce, ciphertext FROM hosted_secrets
                                        WHERE tenant = 'acme' AND name = 'a' AND version = 1)
             WHERE tenant = ?1 AND name = ?2 AND version = ?3",
            params![to_tenant, to_name, to_version],
        )
        .unwrap();
    };
    // Same tenant, another name: same data key, other associated data.
    copy("acme", "b", 2);
    let e = store.get(&acme, &name("b")).await.unwrap_err();
    assert!(is_undecryptable(&e), "{e}");
    // Same name, another version.
    copy("acme", "b", 1);
    let e = store.get_version(&acme, &name("b"), "1").await.unwrap_err();
    assert!(is_undecryptable(&e), "{e}");
    // Another tenant.
    copy("globex", "a", 1);
    let e = store.get(&globex, &name("a")).await.unwrap_err();
    assert!(is_undecryptable(&e), "{e}");
    assert!(!e.to_string().contains(PLANTED));
    // The original still opens.
    assert_eq!(
        store.get(&acme, &name("a")).await.unwrap().expose_secret(),
        PLANTED
    );
}

/// Every file SQLite wrote (database, WAL, shared memory) and every
/// `Debug`, error and list output is free of the value.
#[tokio::test]
async fn the_planted_value_is_never_in_clear() {
    let f = Fixture::new();
    let store = f.store();
    let (acme, key) = (tenant("acme"), name("k"));
    store.put(&acme, &key, &value(PLANTED)).await.unwrap();
    store.put(&acme, &key, &value(PLANTED)).await.unwrap();
    let got = store.get(&acme, &key).await.unwrap();
    let mut outputs = vec![
        format!("{store:?}"),
        format!("{got:?}"),
        format!("{:?}", store.list(&acme).await.unwrap()),
        format!("{:?}", f.sqlite),
    ];
    let e = store.get(&acme, &name("missing")).await.unwrap_err();
    outputs.push(format!("{e} {e:?}"));
    for output in &outputs {
        assert!(!output.contains(PLANTED), "{output}");
    }
    drop(store);
    let dir = f.db.parent().unwrap();
    let mut checked = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(
            !bytes
                .windows(PLANTED.len())
                .any(|w| w == PLANTED.as_bytes()),
            "a file holds the value in clear"
        );
        checked += 1;
    }
    assert!(checked >= 2, "the database and its key file were checked");
}

#[tokio::test]
async fn kms_wrapped_data_keys_are_bound_to_their_tenant() {
    let cloud = FakeCloud::new();
    let account = cloud.operator_identity().account;
    let key_arn = cloud.create_kms_key(&account, Region::UsEast1, Some("alias/docproc-secrets"));
    let scope = ClientScope::Operator {
        region: Region::UsEast1,
    };
    let wrapper = Arc::new(KmsKeyWrapper::new(
        cloud.kms(&scope),
        "alias/docproc-secrets",
    ));
    let f = Fixture::new();
    let store = HostedStore::new(f.sqlite.clone(), wrapper.clone());
    let (acme, globex, key) = (tenant("acme"), tenant("globex"), name("k"));
    store.put(&acme, &key, &value("a1")).await.unwrap();
    store.put(&acme, &key, &value("a2")).await.unwrap();
    store.put(&globex, &key, &value("g1")).await.unwrap();
    assert_eq!(store.get(&acme, &key).await.unwrap().expose_secret(), "a2");
    assert!(store.location().contains("alias/docproc-secrets"));

    // One Encrypt per tenant, and a fresh store decrypts each key once.
    let count = |op: &str| cloud.calls().iter().filter(|c| c.operation == op).count();
    assert_eq!(count("Encrypt"), 2);
    let fresh = HostedStore::new(f.sqlite.clone(), wrapper.clone());
    fresh.get(&acme, &key).await.unwrap();
    fresh.get_version(&acme, &key, "1").await.unwrap();
    assert_eq!(count("Decrypt"), 1);

    // acme's wrapped data key given to globex: KMS refuses the context.
    let raw = f.raw();
    raw.execute(
        "UPDATE hosted_data_keys SET wrapped = (SELECT wrapped FROM hosted_data_keys WHERE tenant = 'acme')
         WHERE tenant = 'globex'",
        [],
    )
    .unwrap();
    let e = HostedStore::new(f.sqlite.clone(), wrapper)
        .get(&globex, &key)
        .await
        .unwrap_err();
    assert!(is_undecryptable(&e), "{e}");

    // Another KMS key cannot unwrap.
    let other = cloud.create_kms_key(&account, Region::UsEast1, None);
    assert_ne!(other, key_arn);
    let e = HostedStore::new(
        f.sqlite.clone(),
        Arc::new(KmsKeyWrapper::new(cloud.kms(&scope), other)),
    )
    .get(&acme, &key)
    .await
    .unwrap_err();
    assert!(is_undecryptable(&e), "{e}");
}
