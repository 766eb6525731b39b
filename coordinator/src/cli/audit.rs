//! `coordinator audit verify` and `coordinator audit export`: check the audit
//! log's hash chain and write it out as JSON lines.
//!
//! Both read the chain in pages of [`PAGE`] entries, so a chain of any
//! length never sits in memory at once. Neither touches AWS, and neither
//! ever writes to the state file: verification must not be able to repair
//! (or hide) what it finds. See `docs/admin/audit.md`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use stacks::ids::TenantId;

use super::context::open_store;
use super::{Cli, CmdResult, Failure, OutputFormat, load_manifest};
use crate::manifest::duration::HumanDuration;
use crate::store::audit::{AuditEntry, BrokenLink, ChainVerifier, GENESIS, timestamp};
use crate::store::{Store, StoreError};

/// Entries read per query.
pub const PAGE: usize = 1000;

/// `audit` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum AuditCommand {
    /// Check the whole audit chain: every entry's hash must cover its
    /// content and the previous entry's hash.
    ///
    /// Prints the entry count and the head hash when the chain is intact
    /// (exit 0), or the first broken entry and why (exit 1). Removing
    /// entries from the end leaves a shorter chain that still verifies: keep
    /// the head hash printed here somewhere else and pass it back with
    /// --expect-head to detect that.
    Verify(VerifyArgs),
    /// Write audit entries as JSON lines (seq, at, actor, tenant, action,
    /// details, prev_hash, hash), oldest first.
    Export(ExportArgs),
}

/// Flags of `audit verify`.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// A head hash printed by an earlier verify: it must still be in the
    /// chain (entries appended since are fine), otherwise entries were
    /// removed from the end or the chain was rewritten.
    #[arg(long, value_name = "HASH")]
    pub expect_head: Option<String>,
}

/// Flags of `audit export`.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// Only entries at or after this time: RFC 3339
    /// (2026-01-31T00:00:00Z) or a duration before now (30m, 24h, 7d).
    #[arg(long, value_name = "TIME")]
    pub since: Option<Since>,
    /// Only entries about this tenant.
    #[arg(long, value_name = "ID")]
    pub tenant: Option<TenantId>,
    /// Write to this file (replaced atomically) instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub output_file: Option<PathBuf>,
}

/// The lower bound of `--since`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Since {
    /// A point in time.
    At(DateTime<Utc>),
    /// This long before now.
    Ago(std::time::Duration),
}

impl FromStr for Since {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if let Ok(at) = DateTime::parse_from_rfc3339(s) {
            return Ok(Since::At(at.with_timezone(&Utc)));
        }
        if let Some(days) = s.strip_suffix('d')
            && !days.is_empty()
            && days.len() <= 5
            && days.bytes().all(|b| b.is_ascii_digit())
        {
            let days: u64 = days.parse().map_err(|_| format!("{s:?}: bad day count"))?;
            return Ok(Since::Ago(std::time::Duration::from_secs(days * 86_400)));
        }
        s.parse::<HumanDuration>()
            .map(|d| Since::Ago(d.get()))
            .map_err(|_| {
                format!(
                    "{s:?} is neither an RFC 3339 time (2026-01-31T00:00:00Z) nor a duration (30m, 24h, 7d)"
                )
            })
    }
}

impl Since {
    /// The earliest time included, relative to `now`.
    pub fn resolve(self, now: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            Since::At(at) => at,
            Since::Ago(d) => {
                now - chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX / 2)
            }
        }
    }
}

pub async fn run(cli: &Cli, command: &AuditCommand) -> CmdResult {
    match command {
        AuditCommand::Verify(args) => verify(cli, args).await,
        AuditCommand::Export(args) => export(cli, args).await,
    }
}

/// What `audit verify` found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// No broken link and, when anchored, the anchor found.
    pub intact: bool,
    /// Entries that verified (all of them when intact).
    pub entries: u64,
    /// The last verified entry's hash ([`GENESIS`] for an empty chain).
    pub head: String,
    /// The first entry that does not verify.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broken: Option<BrokenLink>,
    /// Where `--expect-head` was found, when given and found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub anchor_seq: Option<u64>,
}

/// Verifies the whole chain in `store`, page by page, optionally requiring
/// the entry whose hash is `anchor` to be in it.
pub async fn verify_chain(
    store: &dyn Store,
    anchor: Option<&str>,
) -> Result<VerifyReport, StoreError> {
    let mut verifier = ChainVerifier::new();
    let mut anchor_seq = None;
    let mut broken = None;
    // After an unreadable page, read one entry at a time to name the row.
    let mut page_size = PAGE;
    'pages: loop {
        let after = verifier.count();
        let page = match store.audit_entries(after, page_size).await {
            Ok(page) => page,
            Err(StoreError::Corrupt(_)) if page_size > 1 => {
                page_size = 1;
                continue;
            }
            Err(StoreError::Corrupt(why)) => {
                broken = Some(BrokenLink {
                    seq: after + 1,
                    reason: format!("it cannot be read back ({why}): it was edited"),
                });
                break;
            }
            Err(e) => return Err(e),
        };
        let last_page = page.len() < page_size;
        for entry in &page {
            if let Err(link) = verifier.check(entry) {
                broken = Some(link);
                break 'pages;
            }
            if anchor == Some(entry.hash.as_str()) {
                anchor_seq = Some(entry.seq);
            }
        }
        if last_page {
            break;
        }
    }
    if broken.is_none()
        && let Some(hash) = anchor
        && anchor_seq.is_none()
    {
        broken = Some(BrokenLink {
            seq: verifier.count() + 1,
            reason: format!(
                "the expected head {hash} is not in the chain, which ends at entry {}: \
                 entries were removed from the end, or the chain was rewritten",
                verifier.count()
            ),
        });
    }
    Ok(VerifyReport {
        intact: broken.is_none(),
        entries: verifier.count(),
        head: verifier.head().to_owned(),
        broken,
        anchor_seq,
    })
}

fn is_hash(s: &str) -> bool {
    s.len() == GENESIS.len() && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

async fn verify(cli: &Cli, args: &VerifyArgs) -> CmdResult {
    if let Some(h) = &args.expect_head
        && !is_hash(h)
    {
        return Err(Failure::bad_input(format!(
            "--expect-head {h:?} is not a head hash: 64 lowercase hex digits, as printed by `coordinator audit verify`"
        )));
    }
    let manifest = load_manifest(cli)?.manifest;
    let store = open_store(&manifest)?;
    let report = verify_chain(store.as_ref(), args.expect_head.as_deref())
        .await
        .map_err(|e| Failure::Failed(anyhow::Error::new(e).context("reading the audit log")))?;
    match cli.output {
        OutputFormat::Json => println!("{}", json!(report)),
        OutputFormat::Human => print!("{}", human(&report)),
    }
    match &report.broken {
        None => Ok(()),
        Some(link) => Err(Failure::Failed(anyhow::anyhow!(
            "the audit chain is broken at entry {}: {}",
            link.seq,
            link.reason
        ))),
    }
}

fn human(r: &VerifyReport) -> String {
    match &r.broken {
        None => {
            let anchored = r
                .anchor_seq
                .map(|s| {
                    format!("\nThe expected head is entry {s}: nothing before it was removed.")
                })
                .unwrap_or_default();
            format!(
                "Audit chain intact: {} entries, head {}{anchored}\n\
                 Keep the head hash outside this machine and pass it back with \
                 `coordinator audit verify --expect-head <hash>`: a hash chain alone \
                 cannot show that entries were removed from its end.\n",
                r.entries, r.head
            )
        }
        Some(link) => format!(
            "Audit chain BROKEN at entry {}: {}\n{} entries before it verify (their head {}).\n",
            link.seq, link.reason, r.entries, r.head
        ),
    }
}

/// One exported line: the stored fields, `at` exactly as hashed.
pub fn export_line(e: &AuditEntry) -> String {
    json!({
        "seq": e.seq,
        "at": timestamp(&e.at),
        "actor": e.actor,
        "tenant": e.tenant,
        "action": e.action,
        "details": e.details,
        "prev_hash": e.prev_hash,
        "hash": e.hash,
    })
    .to_string()
}

/// Entries kept by `--since` and `--tenant`.
#[derive(Debug, Clone, Default)]
pub struct ExportFilter {
    /// At or after.
    pub since: Option<DateTime<Utc>>,
    /// About this tenant.
    pub tenant: Option<TenantId>,
}

impl ExportFilter {
    /// Whether `e` is exported.
    pub fn keeps(&self, e: &AuditEntry) -> bool {
        self.since.is_none_or(|s| e.at >= s)
            && self
                .tenant
                .as_ref()
                .is_none_or(|t| e.tenant.as_ref() == Some(t))
    }
}

/// Writes the entries `filter` keeps to `out`, one JSON line each, reading
/// page by page; returns how many were written.
pub async fn export_to(
    store: &dyn Store,
    filter: &ExportFilter,
    out: &mut dyn Write,
) -> anyhow::Result<u64> {
    let mut after = 0;
    let mut written = 0;
    loop {
        let page = store.audit_entries(after, PAGE).await?;
        for e in page.iter().filter(|e| filter.keeps(e)) {
            writeln!(out, "{}", export_line(e))?;
            written += 1;
        }
        match page.last() {
            Some(last) if page.len() == PAGE => after = last.seq,
            _ => break,
        }
    }
    out.flush()?;
    Ok(written)
}

async fn export(cli: &Cli, args: &ExportArgs) -> CmdResult {
    let manifest = load_manifest(cli)?.manifest;
    if let Some(path) = &args.output_file {
        let dir = parent_dir(path);
        if !dir.is_dir() {
            return Err(Failure::bad_input(format!(
                "--output-file {}: the directory {} does not exist",
                path.display(),
                dir.display()
            )));
        }
    }
    let store = open_store(&manifest)?;
    let filter = ExportFilter {
        since: args.since.map(|s| s.resolve(Utc::now())),
        tenant: args.tenant.clone(),
    };
    let written = match &args.output_file {
        None => {
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            export_to(store.as_ref(), &filter, &mut out).await
        }
        Some(path) => write_atomically(path, store.as_ref(), &filter).await,
    }
    .map_err(|e| Failure::Failed(e.context("exporting the audit log")))?;
    if let Some(path) = &args.output_file {
        match cli.output {
            OutputFormat::Json => println!(
                "{}",
                json!({ "exported": written, "output_file": path.display().to_string() })
            ),
            OutputFormat::Human => {
                println!("Exported {written} audit entries to {}", path.display())
            }
        }
    }
    Ok(())
}

fn parent_dir(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Writes into a temporary file beside `path`, syncs it and renames it over
/// `path`, so a reader never sees a partial export; the temporary file is
/// removed on failure.
async fn write_atomically(
    path: &Path,
    store: &dyn Store,
    filter: &ExportFilter,
) -> anyhow::Result<u64> {
    use anyhow::Context as _;
    let name = path
        .file_name()
        .with_context(|| format!("{} names no file", path.display()))?;
    let tmp = parent_dir(path).join(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = async {
        let file = std::fs::File::create(&tmp)
            .with_context(|| format!("cannot create {}", tmp.display()))?;
        let mut out = std::io::BufWriter::new(file);
        let written = export_to(store, filter, &mut out).await?;
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
            .with_context(|| format!("cannot move the export to {}", path.display()))?;
        Ok(written)
    }
    .await;
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_reads_times_and_durations() {
        let now: DateTime<Utc> = "2026-02-01T12:00:00Z".parse().unwrap();
        let at = |s: &str| s.parse::<Since>().unwrap().resolve(now);
        assert_eq!(
            at("2026-01-31T00:00:00Z"),
            "2026-01-31T00:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert_eq!(
            at("2026-01-31T02:00:00+02:00"),
            "2026-01-31T00:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert_eq!(
            at("24h"),
            "2026-01-31T12:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert_eq!(
            at("30m"),
            "2026-02-01T11:30:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert_eq!(
            at("7d"),
            "2026-01-25T12:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        for bad in ["", "d", "yesterday", "24", "2026-01-31", "1.5h"] {
            assert!(bad.parse::<Since>().is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn head_hashes_are_64_lowercase_hex_digits() {
        assert!(is_hash(GENESIS));
        assert!(!is_hash(&GENESIS[1..]));
        assert!(!is_hash(&GENESIS.replace('0', "A")));
    }
}
