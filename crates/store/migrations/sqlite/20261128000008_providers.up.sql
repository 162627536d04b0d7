-- Provider connections and their encrypted credentials. Deleting a connection deletes its credentials (and,
-- later, its financial data) by cascade; audit entries reference nothing and are never touched.
CREATE TABLE providers (
    id               BLOB    NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    user_id          BLOB    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    provider_key     TEXT    NOT NULL CHECK (provider_key IN ('schwab', 'alpaca', 'sandbox', 'file_import')),
    alias            TEXT    NOT NULL CHECK (length(alias) BETWEEN 1 AND 100),
    status           TEXT    NOT NULL DEFAULT 'pending'
                             CHECK (status IN ('pending', 'active', 'expired', 'revoked', 'error')),
    connected_at     TEXT,
    last_sync_at     TEXT,
    last_sync_error  TEXT,
    refresh_failures INTEGER NOT NULL DEFAULT 0,
    created_at       TEXT    NOT NULL,
    updated_at       TEXT    NOT NULL
) STRICT;

-- An alias is unique per user regardless of case.
CREATE UNIQUE INDEX providers_user_alias_key ON providers (user_id, lower(alias));
CREATE INDEX providers_user_created ON providers (user_id, created_at);

CREATE TABLE provider_credentials (
    provider_id       BLOB    NOT NULL PRIMARY KEY REFERENCES providers (id) ON DELETE CASCADE,
    kind              TEXT    NOT NULL CHECK (kind IN ('oauth2', 'api_key')),
    -- version ‖ key id ‖ nonce ‖ AES-256-GCM ciphertext, bound to this row's provider id.
    secret            BLOB    NOT NULL,
    access_expires_at TEXT,
    has_refresh_token INTEGER NOT NULL CHECK (has_refresh_token IN (0, 1)),
    scope             TEXT,
    connected_at      TEXT    NOT NULL,
    updated_at        TEXT    NOT NULL
) STRICT;
