//! The age file store on real files: round trips, a wrong identity refused
//! with a clear error, atomic 0600 writes, concurrent writers serialised,
//! and the value never in clear on disk or in messages.

use std::os::unix::fs::PermissionsExt as _;

use age::x25519::Identity;

use super::*;

const PLANTED: &str = "planted-age-value-d3adb33f";

struct Fixture {
    dir: tempfile::TempDir,
    file: PathBuf,
    identity: PathBuf,
    recipient: String,
}

fn write_identity(path: &Path, identity: &Identity) {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .unwrap();
    writeln!(f, "# created: for a test").unwrap();
    writeln!(f, "{}", identity.to_string().expose_secret()).unwrap();
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let identity = Identity::generate();
        let path = dir.path().join("identity.txt");
        write_identity(&path, &identity);
        Self {
            file: dir.path().join("secrets.age"),
            identity: path,
            recipient: identity.to_public().to_string(),
            dir,
        }
    }

    fn store(&self) -> AgeFileStore {
        AgeFileStore::open(
            &self.file,
            &self.identity,
            std::slice::from_ref(&self.recipient),
        )
        .unwrap()
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

#[tokio::test]
async fn put_get_rotate_delete_list() {
    let f = Fixture::new();
    let store = f.store();
    let (acme, key) = (tenant("acme"), name("llm-api-key"));
    assert!(store.list(&acme).await.unwrap().is_empty());
    let e = store.get(&acme, &key).await.unwrap_err();
    assert!(matches!(e, SecretError::NotFound { .. }), "{e}");

    assert_eq!(store.put(&acme, &key, &value("one")).await.unwrap().id, "1");
    let v2 = store.put(&acme, &key, &value("two")).await.unwrap();
    assert_eq!(v2.id, "2");
    assert_eq!(store.get(&acme, &key).await.unwrap().expose_secret(), "two");
    assert_eq!(
        store
            .get_version(&acme, &key, "1")
            .await
            .unwrap()
            .expose_secret(),
        "one"
    );
    store
        .put(&tenant("globex"), &key, &value("theirs"))
        .await
        .unwrap();
    store.put(&acme, &name("other"), &value("x")).await.unwrap();

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

    store.delete(&acme, &key).await.unwrap();
    let e = store.delete(&acme, &key).await.unwrap_err();
    assert!(matches!(e, SecretError::NotFound { .. }), "{e}");
    assert_eq!(
        store
            .get(&tenant("globex"), &key)
            .await
            .unwrap()
            .expose_secret(),
        "theirs"
    );

    // Written 0600, with no temporary file left behind.
    let mode = std::fs::metadata(&f.file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let leftovers: Vec<_> = std::fs::read_dir(f.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[tokio::test]
async fn a_wrong_identity_is_rejected_clearly() {
    let f = Fixture::new();
    f.store()
        .put(&tenant("acme"), &name("k"), &value(PLANTED))
        .await
        .unwrap();
    // Another identity, which the file was not encrypted to.
    let other = Identity::generate();
    let other_path = f.dir.path().join("other-identity.txt");
    write_identity(&other_path, &other);
    let wrong = AgeFileStore::open(&f.file, &other_path, &[other.to_public().to_string()]).unwrap();
    let e = wrong.get(&tenant("acme"), &name("k")).await.unwrap_err();
    assert!(matches!(e, SecretError::Config { .. }), "{e}");
    assert!(e.to_string().contains("cannot decrypt it"), "{e}");
    assert!(e.to_string().contains("other-identity.txt"), "{e}");
    // Writes are refused too: nothing is lost by re-encrypting blindly.
    let e = wrong
        .put(&tenant("acme"), &name("k"), &value("x"))
        .await
        .unwrap_err();
    assert!(matches!(e, SecretError::Config { .. }), "{e}");
    assert_eq!(
        f.store()
            .get(&tenant("acme"), &name("k"))
            .await
            .unwrap()
            .expose_secret(),
        PLANTED
    );
}

#[test]
fn misconfigurations_are_refused_on_open() {
    let f = Fixture::new();
    // The identity is not among the recipients.
    let stranger = Identity::generate().to_public().to_string();
    let e = AgeFileStore::open(&f.file, &f.identity, &[stranger]).unwrap_err();
    assert!(e.to_string().contains("not one of the recipients"), "{e}");
    assert!(e.to_string().contains(&f.recipient), "{e}");
    let e = AgeFileStore::open(&f.file, &f.identity, &["age1nope".into()]).unwrap_err();
    assert!(e.to_string().contains("not an age x25519 recipient"), "{e}");
    let e = AgeFileStore::open(&f.file, &f.identity, &[]).unwrap_err();
    assert!(e.to_string().contains("no recipients"), "{e}");
    // An identity file others can read.
    std::fs::set_permissions(&f.identity, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e =
        AgeFileStore::open(&f.file, &f.identity, std::slice::from_ref(&f.recipient)).unwrap_err();
    assert!(e.to_string().contains("chmod 600"), "{e}");
    // An identity file with garbage: the message does not quote the line.
    let bad = f.dir.path().join("bad.txt");
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&bad)
        .unwrap();
    writeln!(file, "AGE-SECRET-KEY-1NOTREALLYAKEY{PLANTED}").unwrap();
    let e = AgeFileStore::open(&f.file, &bad, std::slice::from_ref(&f.recipient)).unwrap_err();
    assert!(e.to_string().contains("line 1"), "{e}");
    assert!(!e.to_string().contains(PLANTED), "{e}");
}

#[tokio::test]
async fn concurrent_writers_lose_nothing() {
    let f = Fixture::new();
    let acme = tenant("acme");
    let mut tasks = Vec::new();
    for i in 0..8 {
        // Separate stores: only the lock file serialises them.
        let store = f.store();
        let acme = acme.clone();
        tasks.push(tokio::spawn(async move {
            store
                .put(&acme, &name(&format!("k{i}")), &value("v"))
                .await
                .unwrap();
            store
                .put(&acme, &name("shared"), &value("v"))
                .await
                .unwrap();
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let listed = f.store().list(&acme).await.unwrap();
    assert_eq!(listed.len(), 9);
    let shared = listed.iter().find(|m| m.name.as_str() == "shared").unwrap();
    assert_eq!(
        (shared.current.id.as_str(), shared.versions),
        ("8", Some(8))
    );
}

#[tokio::test]
async fn the_planted_value_is_never_in_clear() {
    let f = Fixture::new();
    let store = f.store();
    let (acme, key) = (tenant("acme"), name("k"));
    store.put(&acme, &key, &value(PLANTED)).await.unwrap();
    store.put(&acme, &key, &value(PLANTED)).await.unwrap();
    let got = store.get(&acme, &key).await.unwrap();
    let e = store.get(&acme, &name("missing")).await.unwrap_err();
    for output in [
        format!("{store:?}"),
        format!("{got:?}"),
        format!("{:?}", store.list(&acme).await.unwrap()),
        format!("{e} {e:?}"),
    ] {
        assert!(!output.contains(PLANTED), "{output}");
    }
    for entry in std::fs::read_dir(f.dir.path()).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        assert!(
            !bytes
                .windows(PLANTED.len())
                .any(|w| w == PLANTED.as_bytes()),
            "{} holds the value in clear",
            path.display()
        );
    }
}
