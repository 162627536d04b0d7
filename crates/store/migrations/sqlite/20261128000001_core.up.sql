-- Users and the installation-wide token settings. Ids are UUIDv7 stored as 16-byte BLOBs; times are UTC
-- RFC 3339 text written by the application.
CREATE TABLE users (
    id                 BLOB    NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    email              TEXT    NOT NULL,
    name               TEXT    NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    password_hash      TEXT    NOT NULL,
    role               TEXT    NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
    email_verified_at  TEXT,
    disabled_at        TEXT,
    token_version      INTEGER NOT NULL DEFAULT 1,
    failed_login_count INTEGER NOT NULL DEFAULT 0,
    locked_until       TEXT,
    created_at         TEXT    NOT NULL,
    updated_at         TEXT    NOT NULL,
    last_login_at      TEXT
) STRICT;

CREATE UNIQUE INDEX users_email_key ON users (email);

CREATE TABLE security_config (
    id                       INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    global_min_token_version INTEGER NOT NULL DEFAULT 1,
    last_rotation_at         TEXT,
    last_rotation_reason     TEXT,
    last_rotated_by          BLOB REFERENCES users (id) ON DELETE SET NULL
) STRICT;

INSERT INTO security_config (id) VALUES (1);
