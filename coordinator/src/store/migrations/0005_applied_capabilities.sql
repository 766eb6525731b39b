-- Each tenant's capabilities as of the last manifest applied to it (deploy,
-- rollout start, serve start), so the next application can audit what
-- changed. Written in the same transaction as those audit entries.

CREATE TABLE applied_capabilities (
    tenant          TEXT PRIMARY KEY,
    capabilities    TEXT NOT NULL, -- JSON array of capability names, sorted
    manifest_digest TEXT NOT NULL,
    applied_at      TEXT NOT NULL
);
