-- Initial schema. Timestamps are RFC 3339 UTC text; JSON columns are text.
-- Written to be portable to PostgreSQL (no SQLite-only types or functions).

CREATE TABLE plans (
    generation      INTEGER PRIMARY KEY,
    parent          INTEGER REFERENCES plans (generation),
    created_at      TEXT    NOT NULL,
    actor           TEXT    NOT NULL,
    release         TEXT    NOT NULL,
    manifest_digest TEXT    NOT NULL,
    summary         TEXT    NOT NULL
);

CREATE TABLE deployments (
    id          INTEGER PRIMARY KEY,
    generation  INTEGER NOT NULL REFERENCES plans (generation),
    tenant      TEXT    NOT NULL,
    stack       TEXT    NOT NULL,
    action      TEXT    NOT NULL,
    token       TEXT    NOT NULL,
    started_at  TEXT    NOT NULL,
    finished_at TEXT,
    outcome     TEXT,
    status      TEXT,
    reason      TEXT
);
CREATE INDEX deployments_by_tenant ON deployments (tenant, id);

CREATE TABLE outputs (
    tenant        TEXT NOT NULL,
    stack         TEXT NOT NULL,
    release       TEXT NOT NULL,
    template_hash TEXT NOT NULL,
    outputs       TEXT NOT NULL,
    recorded_at   TEXT NOT NULL,
    PRIMARY KEY (tenant, stack)
);

CREATE TABLE stack_states (
    tenant        TEXT NOT NULL,
    stack         TEXT NOT NULL,
    status        TEXT,
    release       TEXT,
    template_hash TEXT,
    last_outcome  TEXT,
    last_reason   TEXT,
    updated_at    TEXT NOT NULL,
    PRIMARY KEY (tenant, stack)
);

CREATE TABLE audit (
    seq       INTEGER PRIMARY KEY,
    at        TEXT NOT NULL,
    actor     TEXT NOT NULL,
    tenant    TEXT,
    action    TEXT NOT NULL,
    details   TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL
);
