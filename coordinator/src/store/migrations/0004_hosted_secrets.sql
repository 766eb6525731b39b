-- The hosted secret store: envelope encryption in this database.
--
-- One data key per tenant, wrapped by a key-encryption key (KMS or a local
-- master key file; `wrapper` says which), and every version of every
-- secret sealed with that data key under AES-256-GCM (a fresh 96-bit nonce
-- per version; tenant, name and version are the associated data, so a row
-- copied elsewhere does not open). No plaintext value or unwrapped key is
-- ever written here. Rotation adds a version; old versions are kept until
-- the secret is deleted.

CREATE TABLE hosted_data_keys (
    tenant      TEXT PRIMARY KEY,
    wrapper     TEXT NOT NULL,
    wrapped     BLOB NOT NULL,
    created_at  TEXT NOT NULL
);

CREATE TABLE hosted_secrets (
    tenant      TEXT NOT NULL,
    name        TEXT NOT NULL,
    version     INTEGER NOT NULL CHECK (version >= 1),
    nonce       BLOB NOT NULL CHECK (length(nonce) = 12),
    ciphertext  BLOB NOT NULL,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (tenant, name, version)
);
