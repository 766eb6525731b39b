-- Rollouts: one row per `coordinator rollout start`, the log of every
-- transition (written before it is acted on), and the single lease that
-- keeps two coordinators from driving rollouts at once.

CREATE TABLE rollouts (
    id          INTEGER PRIMARY KEY,
    release     TEXT NOT NULL,
    actor       TEXT NOT NULL,
    state       TEXT NOT NULL,
    reason      TEXT,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

CREATE TABLE rollout_events (
    id       INTEGER PRIMARY KEY,
    rollout  INTEGER NOT NULL REFERENCES rollouts (id),
    at       TEXT NOT NULL,
    kind     TEXT NOT NULL,
    wave     TEXT,
    tenant   TEXT,
    details  TEXT NOT NULL
);
CREATE INDEX rollout_events_by_rollout ON rollout_events (rollout, id);

CREATE TABLE rollout_lease (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    holder      TEXT NOT NULL,
    rollout     INTEGER,
    expires_at  TEXT NOT NULL
);
