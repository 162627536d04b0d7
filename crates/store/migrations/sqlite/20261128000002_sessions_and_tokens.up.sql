-- Sessions (one per logged-in device), their refresh tokens, and one-time tokens. Tokens are stored only as
-- 32-byte keyed digests, unique so a presented token is found with one index lookup.
CREATE TABLE sessions (
    id               BLOB NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    user_id          BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    user_agent       TEXT,
    ip_address       TEXT,
    created_at       TEXT NOT NULL,
    last_activity_at TEXT NOT NULL,
    expires_at       TEXT NOT NULL,
    revoked_at       TEXT,
    revoked_reason   TEXT
) STRICT;

CREATE INDEX sessions_user_id_idx ON sessions (user_id);

CREATE TABLE refresh_tokens (
    id          BLOB NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    session_id  BLOB NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    token_hash  BLOB NOT NULL CHECK (length(token_hash) = 32),
    created_at  TEXT NOT NULL,
    rotated_at  TEXT,
    replaced_by BLOB
) STRICT;

CREATE UNIQUE INDEX refresh_tokens_token_hash_key ON refresh_tokens (token_hash);
CREATE INDEX refresh_tokens_session_id_idx ON refresh_tokens (session_id);
-- At most one current (unrotated) token per session.
CREATE UNIQUE INDEX refresh_tokens_one_current_per_session ON refresh_tokens (session_id) WHERE rotated_at IS NULL;

CREATE TABLE one_time_tokens (
    id         BLOB NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    user_id    BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose    TEXT NOT NULL CHECK (purpose IN ('verify_email', 'reset_password')),
    token_hash BLOB NOT NULL CHECK (length(token_hash) = 32),
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at    TEXT
) STRICT;

CREATE UNIQUE INDEX one_time_tokens_token_hash_key ON one_time_tokens (token_hash);
CREATE INDEX one_time_tokens_user_purpose_idx ON one_time_tokens (user_id, purpose) WHERE used_at IS NULL;
