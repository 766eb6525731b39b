//! The audit log's hash chain: each entry's hash covers the previous entry's
//! hash and the entry's canonical JSON, so editing, deleting or reordering a
//! row breaks every later link. Pure functions; the store persists entries.
//!
//! Details carry digests and identifiers, never secret values: callers pass
//! them through [`digest`] when the value itself is sensitive.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use stacks::ids::TenantId;

/// The `prev_hash` of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// An audit entry about to be appended.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewAuditEntry {
    /// Who: the caller's AWS identity ARN or an API token's subject.
    pub actor: String,
    /// The tenant concerned, if any.
    pub tenant: Option<TenantId>,
    /// What, e.g. `deploy.stack`.
    pub action: String,
    /// Facts about it: ids, digests, outcomes; never secret values.
    pub details: Value,
}

/// A stored audit entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEntry {
    /// Position in the chain, from 1.
    pub seq: u64,
    /// When it was appended.
    pub at: DateTime<Utc>,
    /// Who.
    pub actor: String,
    /// Which tenant.
    pub tenant: Option<TenantId>,
    /// What.
    pub action: String,
    /// Facts.
    pub details: Value,
    /// The previous entry's hash.
    pub prev_hash: String,
    /// This entry's hash.
    pub hash: String,
}

/// Timestamps as stored: RFC 3339, microseconds, `Z`.
pub fn timestamp(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// The hash of an entry with these fields after `prev_hash`.
pub fn entry_hash(
    prev_hash: &str,
    seq: u64,
    at: &DateTime<Utc>,
    actor: &str,
    tenant: Option<&TenantId>,
    action: &str,
    details: &Value,
) -> String {
    let body = json!({
        "seq": seq,
        "at": timestamp(at),
        "actor": actor,
        "tenant": tenant.map(TenantId::as_str),
        "action": action,
        "details": details,
    });
    let mut hasher = Sha256::new();
    hasher.update(prev_hash.as_bytes());
    hasher.update(b"\n");
    hasher.update(stacks::template::canonical_json(&body).as_bytes());
    hex(&hasher.finalize())
}

/// SHA-256 of a sensitive value, for audit details: proves which value was
/// set without revealing it.
pub fn digest(value: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(value)))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Where the chain first breaks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BrokenLink {
    /// The first entry that does not verify.
    pub seq: u64,
    /// Why.
    pub reason: String,
}

/// Checks the chain one entry at a time, in order from the start, so a
/// chain of any length is verified in pages without holding it in memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainVerifier {
    count: u64,
    head: String,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        Self::new()
    }
}

impl ChainVerifier {
    /// A verifier expecting entry 1 after [`GENESIS`].
    pub fn new() -> Self {
        Self {
            count: 0,
            head: GENESIS.to_owned(),
        }
    }

    /// Checks the next entry: its seq must follow the last one, its
    /// `prev_hash` must be the last hash and its hash must match its content.
    pub fn check(&mut self, e: &AuditEntry) -> Result<(), BrokenLink> {
        let expected_seq = self.count + 1;
        if e.seq != expected_seq {
            let reason = if e.seq > expected_seq {
                let missing = if e.seq == expected_seq + 1 {
                    format!("entry {expected_seq} is missing")
                } else {
                    format!("entries {expected_seq} to {} are missing", e.seq - 1)
                };
                format!("{missing} before it: deleted")
            } else {
                format!("expected entry {expected_seq} here: entries were reordered")
            };
            return Err(BrokenLink { seq: e.seq, reason });
        }
        if e.prev_hash != self.head {
            return Err(BrokenLink {
                seq: e.seq,
                reason: "its prev_hash does not match the previous entry's hash: \
                         it was moved, or the entry before it was changed"
                    .into(),
            });
        }
        let hash = entry_hash(
            &self.head,
            e.seq,
            &e.at,
            &e.actor,
            e.tenant.as_ref(),
            &e.action,
            &e.details,
        );
        if hash != e.hash {
            return Err(BrokenLink {
                seq: e.seq,
                reason: "its content does not match its hash: it was edited".into(),
            });
        }
        self.count = e.seq;
        self.head = e.hash.clone();
        Ok(())
    }

    /// How many entries verified so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The hash of the last verified entry ([`GENESIS`] before the first).
    pub fn head(&self) -> &str {
        &self.head
    }
}

/// Checks a run of entries, in order, from the start of the chain.
pub fn verify(entries: &[AuditEntry]) -> Result<u64, BrokenLink> {
    let mut verifier = ChainVerifier::new();
    for e in entries {
        verifier.check(e)?;
    }
    Ok(verifier.count())
}
