-- Heartbeat state per tenant (the detector's whole record as JSON), and the
-- history of state changes.

CREATE TABLE heartbeats (
    tenant     TEXT PRIMARY KEY,
    state      TEXT NOT NULL,
    record     TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE heartbeat_history (
    id     INTEGER PRIMARY KEY,
    tenant TEXT NOT NULL,
    at     TEXT NOT NULL,
    state  TEXT NOT NULL,
    reason TEXT NOT NULL
);
CREATE INDEX heartbeat_history_by_tenant ON heartbeat_history (tenant, id);
