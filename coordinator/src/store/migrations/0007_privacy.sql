-- Tenant privacy configuration: every version kept (the history is the
-- record of who changed what), the current one is the highest version.
-- Holds references (bucket names, secret names), never secret values.
CREATE TABLE privacy_configs (
    tenant           TEXT NOT NULL,
    version          INTEGER NOT NULL,
    config           TEXT NOT NULL,
    digest           TEXT NOT NULL,
    hosted_fallback  INTEGER NOT NULL,
    fallback_reason  TEXT,
    change           TEXT NOT NULL,
    actor            TEXT NOT NULL,
    at               TEXT NOT NULL,
    PRIMARY KEY (tenant, version)
);

-- Who wrote which version of a tenant's secret, and its keyed digest: what
-- `coordinator secret list` shows. The value itself is only in the secret
-- store.
CREATE TABLE secret_writes (
    id       INTEGER PRIMARY KEY,
    tenant   TEXT NOT NULL,
    name     TEXT NOT NULL,
    backend  TEXT NOT NULL,
    version  TEXT,
    digest   TEXT,
    action   TEXT NOT NULL,
    actor    TEXT NOT NULL,
    at       TEXT NOT NULL
);
CREATE INDEX secret_writes_by_name ON secret_writes (tenant, name, id);
