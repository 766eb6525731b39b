//! `coordinator audit verify` and `audit export`, end to end through the
//! binary: a chain built through the store, then tampered with directly in
//! the SQLite file (edit, delete, reorder, truncate) the way an attacker with
//! file access would.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use coordinator::store::audit::{self, GENESIS};
use coordinator::store::sqlite::SqliteStore;
use coordinator::store::{NewAuditEntry, Store};
use serde_json::{Value, json};
use support::{TempManifest, manifest_text, standard_tenants};

const ALICE: &str = "arn:aws:sts::111111111111:assumed-role/docproc-coordinator/alice";

/// A manifest and its state file, with a chain of `n` entries appended
/// through the store: tenants alternate acme, globex, none.
struct Chain {
    manifest: TempManifest,
}

impl Chain {
    fn new(n: u64) -> Self {
        let manifest = TempManifest::new(&manifest_text(&standard_tenants(), "coordinator.db"));
        let chain = Self { manifest };
        chain.append(1, n);
        chain
    }

    fn db(&self) -> PathBuf {
        self.manifest.dir.path().join("coordinator.db")
    }

    /// Appends entries numbered `from..from + n` through the store.
    fn append(&self, from: u64, n: u64) {
        let store = SqliteStore::open(&self.db()).expect("open store");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            for i in from..from + n {
                let tenant = match i % 3 {
                    0 => None,
                    1 => Some("acme".parse().unwrap()),
                    _ => Some("globex".parse().unwrap()),
                };
                store
                    .append_audit(NewAuditEntry {
                        actor: ALICE.into(),
                        tenant,
                        action: "deploy.stack".into(),
                        details: json!({"n": i, "template_digest": audit::digest(&i.to_be_bytes())}),
                    })
                    .await
                    .expect("append");
            }
        });
    }

    /// Runs SQL on the state file behind the coordinator's back.
    fn tamper(&self, sql: &str) {
        let conn = rusqlite::Connection::open(self.db()).unwrap();
        conn.execute_batch(sql).unwrap();
    }

    fn run(&self, args: &[&str]) -> Run {
        let mut argv = vec!["--manifest", self.manifest.path.to_str().unwrap()];
        argv.extend_from_slice(args);
        Run::of(
            Command::new(env!("CARGO_BIN_EXE_coordinator"))
                .args(&argv)
                .output()
                .expect("the binary runs"),
        )
    }

    /// `audit verify --output json` (plus `extra`): exit code and report.
    fn verify(&self, extra: &[&str]) -> (i32, Value) {
        let mut args = vec!["audit", "verify", "--output", "json"];
        args.extend_from_slice(extra);
        let run = self.run(&args);
        let report = serde_json::from_str(&run.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}\n{}", run.stdout, run.stderr));
        (run.code, report)
    }

    fn export(&self, extra: &[&str]) -> Vec<Value> {
        let mut args = vec!["audit", "export"];
        args.extend_from_slice(extra);
        let run = self.run(&args);
        assert_eq!(run.code, 0, "{}", run.stderr);
        lines(&run.stdout)
    }
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn of(o: Output) -> Self {
        Self {
            code: o.status.code().expect("exited"),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

fn lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Asserts that verify fails (exit 1) naming `seq`, with `why` in the reason.
fn assert_broken_at(chain: &Chain, seq: u64, why: &str) {
    let (code, report) = chain.verify(&[]);
    assert_eq!(code, 1, "{report}");
    assert_eq!(report["intact"], false, "{report}");
    assert_eq!(report["broken"]["seq"], seq, "{report}");
    let reason = report["broken"]["reason"].as_str().unwrap();
    assert!(reason.contains(why), "{why:?} not in {reason:?}");
    assert!(report["entries"].as_u64().unwrap() < seq, "{report}");
    // People see the row too, and the error line says so.
    let human = chain.run(&["audit", "verify"]);
    assert_eq!(human.code, 1);
    assert!(
        human.stdout.contains(&format!("BROKEN at entry {seq}")),
        "{}",
        human.stdout
    );
    assert!(
        human
            .stderr
            .contains(&format!("audit chain is broken at entry {seq}")),
        "{}",
        human.stderr
    );
}

#[test]
fn an_intact_chain_verifies_with_its_count_and_head() {
    let chain = Chain::new(5);
    let (code, report) = chain.verify(&[]);
    assert_eq!(code, 0, "{report}");
    let exported = chain.export(&[]);
    assert_eq!(
        report,
        json!({"intact": true, "entries": 5, "head": exported[4]["hash"]})
    );
    let human = chain.run(&["audit", "verify"]);
    assert_eq!(human.code, 0, "{}", human.stderr);
    assert!(
        human.stdout.contains("intact: 5 entries"),
        "{}",
        human.stdout
    );
    assert!(human.stdout.contains("--expect-head"), "{}", human.stdout);
}

#[test]
fn an_empty_chain_verifies_with_the_genesis_head() {
    let chain = Chain::new(0);
    let (code, report) = chain.verify(&[]);
    assert_eq!(code, 0);
    assert_eq!(
        report,
        json!({"intact": true, "entries": 0, "head": GENESIS})
    );
}

#[test]
fn editing_a_rows_details_names_the_row() {
    let chain = Chain::new(5);
    chain.tamper(
        r#"UPDATE audit SET details = '{"n":3,"template_digest":"sha256:00"}' WHERE seq = 3"#,
    );
    assert_broken_at(&chain, 3, "edited");
}

#[test]
fn editing_details_into_something_unreadable_names_the_row() {
    let chain = Chain::new(5);
    chain.tamper("UPDATE audit SET details = 'not json' WHERE seq = 4");
    assert_broken_at(&chain, 4, "audit entry 4");
}

#[test]
fn editing_a_rows_actor_names_the_row() {
    let chain = Chain::new(5);
    chain.tamper(
        "UPDATE audit SET actor = 'arn:aws:sts::111111111111:assumed-role/x/mallory' WHERE seq = 2",
    );
    assert_broken_at(&chain, 2, "edited");
}

#[test]
fn editing_a_rows_time_or_tenant_names_the_row() {
    let chain = Chain::new(5);
    chain.tamper("UPDATE audit SET at = '2020-01-01T00:00:00.000000Z' WHERE seq = 5");
    assert_broken_at(&chain, 5, "edited");
    let chain = Chain::new(5);
    chain.tamper("UPDATE audit SET tenant = 'initech' WHERE seq = 1");
    assert_broken_at(&chain, 1, "edited");
}

#[test]
fn an_edit_with_a_recomputed_hash_breaks_the_next_link() {
    let chain = Chain::new(5);
    // The attacker edits row 2 and recomputes its hash (the hash is not
    // keyed): row 2 verifies, but row 3 no longer follows it.
    let row2 = chain.export(&[]).remove(1);
    let mallory = "arn:aws:sts::111111111111:assumed-role/x/mallory";
    let at = chrono::DateTime::parse_from_rfc3339(row2["at"].as_str().unwrap())
        .unwrap()
        .with_timezone(&chrono::Utc);
    let forged = audit::entry_hash(
        row2["prev_hash"].as_str().unwrap(),
        2,
        &at,
        mallory,
        Some(&"globex".parse().unwrap()),
        "deploy.stack",
        &row2["details"],
    );
    chain.tamper(&format!(
        "UPDATE audit SET actor = '{mallory}', hash = '{forged}' WHERE seq = 2"
    ));
    assert_broken_at(&chain, 3, "prev_hash");
}

#[test]
fn deleting_a_middle_row_names_the_row_after_the_gap() {
    let chain = Chain::new(5);
    chain.tamper("DELETE FROM audit WHERE seq = 3");
    assert_broken_at(&chain, 4, "entry 3 is missing");
}

#[test]
fn swapping_two_rows_names_the_first_moved_row() {
    let chain = Chain::new(5);
    // Exchange every column but seq between rows 2 and 3.
    chain.tamper(
        "UPDATE audit SET seq = -2 WHERE seq = 2;
         UPDATE audit SET seq = 2 WHERE seq = 3;
         UPDATE audit SET seq = 3 WHERE seq = -2;",
    );
    assert_broken_at(&chain, 2, "prev_hash");
}

#[test]
fn tail_truncation_needs_the_anchor() {
    let chain = Chain::new(6);
    let (_, before) = chain.verify(&[]);
    let head = before["head"].as_str().unwrap().to_owned();

    // Appending later is fine: the anchor is found where it was.
    chain.append(7, 2);
    let (code, report) = chain.verify(&["--expect-head", &head]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["entries"], 8);
    assert_eq!(report["anchor_seq"], 6);

    // Cut the end off: the shorter chain is still a valid chain...
    chain.tamper("DELETE FROM audit WHERE seq >= 5");
    let (code, report) = chain.verify(&[]);
    assert_eq!(code, 0, "a hash chain alone cannot see this: {report}");
    assert_eq!(report["entries"], 4);

    // ...but not the one the operator anchored.
    let (code, report) = chain.verify(&["--expect-head", &head]);
    assert_eq!(code, 1, "{report}");
    assert_eq!(report["broken"]["seq"], 5, "{report}");
    let reason = report["broken"]["reason"].as_str().unwrap();
    assert!(reason.contains(&head), "{reason}");
    assert!(reason.contains("removed from the end"), "{reason}");
}

#[test]
fn a_malformed_anchor_is_bad_input() {
    let chain = Chain::new(1);
    let run = chain.run(&["audit", "verify", "--expect-head", "abc"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("--expect-head"), "{}", run.stderr);
}

#[test]
fn verification_pages_through_long_chains() {
    // More than two pages of 1000.
    let chain = Chain::new(2_345);
    let (code, report) = chain.verify(&[]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["entries"], 2_345);
    chain.tamper("UPDATE audit SET action = 'deploy.nothing' WHERE seq = 2001");
    let (code, report) = chain.verify(&[]);
    assert_eq!(code, 1);
    assert_eq!(report["broken"]["seq"], 2001, "{report}");
}

#[test]
fn export_writes_every_field_as_json_lines_that_verify_offline() {
    let chain = Chain::new(4);
    let entries = chain.export(&[]);
    assert_eq!(entries.len(), 4);
    let mut prev = GENESIS.to_owned();
    for (i, e) in entries.iter().enumerate() {
        let keys: Vec<&str> = e.as_object().unwrap().keys().map(String::as_str).collect();
        let mut keys = keys;
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "action",
                "actor",
                "at",
                "details",
                "hash",
                "prev_hash",
                "seq",
                "tenant"
            ]
        );
        assert_eq!(e["seq"], i as u64 + 1);
        assert_eq!(e["actor"], ALICE);
        assert_eq!(e["prev_hash"], prev.as_str());
        // Anyone holding the export can recompute every hash.
        let at = chrono::DateTime::parse_from_rfc3339(e["at"].as_str().unwrap())
            .unwrap()
            .with_timezone(&chrono::Utc);
        let tenant: Option<stacks::ids::TenantId> =
            e["tenant"].as_str().map(|t| t.parse().unwrap());
        let hash = audit::entry_hash(
            &prev,
            e["seq"].as_u64().unwrap(),
            &at,
            e["actor"].as_str().unwrap(),
            tenant.as_ref(),
            e["action"].as_str().unwrap(),
            &e["details"],
        );
        assert_eq!(e["hash"], hash.as_str());
        prev = hash;
    }
}

#[test]
fn export_filters_by_tenant_and_time() {
    let chain = Chain::new(6);
    std::thread::sleep(std::time::Duration::from_millis(20));
    let cut = chrono::Utc::now();
    std::thread::sleep(std::time::Duration::from_millis(20));
    chain.append(7, 3);

    let seqs = |es: &[Value]| {
        es.iter()
            .map(|e| e["seq"].as_u64().unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(seqs(&chain.export(&[])), (1..=9).collect::<Vec<_>>());
    assert_eq!(seqs(&chain.export(&["--tenant", "acme"])), [1, 4, 7]);
    assert_eq!(seqs(&chain.export(&["--tenant", "globex"])), [2, 5, 8]);
    assert!(chain.export(&["--tenant", "initech"]).is_empty());

    let cut = cut.to_rfc3339();
    assert_eq!(seqs(&chain.export(&["--since", &cut])), [7, 8, 9]);
    assert_eq!(
        seqs(&chain.export(&["--since", &cut, "--tenant", "globex"])),
        [8]
    );
    assert_eq!(seqs(&chain.export(&["--since", "1h"])).len(), 9);
    assert!(
        chain
            .export(&["--since", "2999-01-01T00:00:00Z"])
            .is_empty()
    );

    let bad = chain.run(&["audit", "export", "--since", "yesterday"]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
}

#[test]
fn export_to_a_file_replaces_it_whole() {
    let chain = Chain::new(3);
    let out = chain.manifest.dir.path().join("audit.jsonl");
    std::fs::write(&out, "old contents\n").unwrap();
    let run = chain.run(&["audit", "export", "--output-file", out.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("Exported 3 audit entries"),
        "{}",
        run.stdout
    );
    let written = std::fs::read_to_string(&out).unwrap();
    assert_eq!(lines(&written), chain.export(&[]));
    // No temporary file is left beside it.
    let leftovers: Vec<PathBuf> = std::fs::read_dir(chain.manifest.dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| file_name(p).ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    let missing = chain.manifest.dir.path().join("nowhere/audit.jsonl");
    let run = chain.run(&[
        "audit",
        "export",
        "--output-file",
        missing.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(!missing.exists());
}

fn file_name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}
