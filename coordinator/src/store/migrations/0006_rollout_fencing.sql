-- Fencing the rollout lease: every grant of the lease to a new holder gets
-- a new epoch (the row id of its grant, never reused: grants are never
-- deleted), and the lease row carries the epoch of its current grant. A
-- runner writes each transition in the same transaction as a check that
-- the lease still has its holder and epoch, so a runner whose lease was
-- taken over cannot write. Independent of every other migration (it only
-- touches the tables of 0003), so it may be applied before or after them.

ALTER TABLE rollout_lease ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0;

CREATE TABLE rollout_lease_grants (
    epoch       INTEGER PRIMARY KEY,
    holder      TEXT NOT NULL,
    rollout     INTEGER,
    granted_at  TEXT NOT NULL
);
