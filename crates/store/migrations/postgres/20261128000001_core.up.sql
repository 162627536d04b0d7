-- Users and the installation-wide token settings.
CREATE TABLE users (
    id                 UUID        NOT NULL PRIMARY KEY,
    email              TEXT        NOT NULL CONSTRAINT users_email_key UNIQUE,
    name               TEXT        NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    password_hash      TEXT        NOT NULL,
    role               TEXT        NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
    email_verified_at  TIMESTAMPTZ,
    disabled_at        TIMESTAMPTZ,
    token_version      BIGINT      NOT NULL DEFAULT 1,
    failed_login_count INTEGER     NOT NULL DEFAULT 0,
    locked_until       TIMESTAMPTZ,
    created_at         TIMESTAMPTZ NOT NULL,
    updated_at         TIMESTAMPTZ NOT NULL,
    last_login_at      TIMESTAMPTZ
);

CREATE TABLE security_config (
    id                       SMALLINT    NOT NULL PRIMARY KEY CHECK (id = 1),
    global_min_token_version BIGINT      NOT NULL DEFAULT 1,
    last_rotation_at         TIMESTAMPTZ,
    last_rotation_reason     TEXT,
    last_rotated_by          UUID REFERENCES users (id) ON DELETE SET NULL
);

INSERT INTO security_config (id) VALUES (1);
