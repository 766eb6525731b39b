-- The latest outcome of each probe per tenant. `config_digest` names the
-- privacy configuration that was probed: a pass for an older configuration
-- never validates a newer one. `last_passed_at` survives failures, so the
-- admin surface can say when the dependency last worked.
CREATE TABLE probe_results (
    tenant          TEXT NOT NULL,
    probe           TEXT NOT NULL,
    status          TEXT NOT NULL,
    at              TEXT NOT NULL,
    latency_ms      INTEGER NOT NULL,
    code            TEXT,
    message         TEXT,
    remedy          TEXT,
    detail          TEXT,
    last_passed_at  TEXT,
    config_digest   TEXT NOT NULL,
    PRIMARY KEY (tenant, probe)
);
