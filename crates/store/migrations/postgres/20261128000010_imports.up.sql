-- Finished statement imports, listed by GET /api/v1/imports. A failed import is audited, not recorded here.
CREATE TABLE imports (
    id                     UUID        NOT NULL PRIMARY KEY,
    user_id                UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    file_name              TEXT        NOT NULL,
    format                 TEXT        NOT NULL CHECK (format IN ('ofx', 'qfx', 'csv')),
    accounts_created       BIGINT      NOT NULL,
    accounts_updated       BIGINT      NOT NULL,
    transactions_created   BIGINT      NOT NULL,
    transactions_duplicate BIGINT      NOT NULL,
    holdings_created       BIGINT      NOT NULL,
    holdings_updated       BIGINT      NOT NULL,
    -- A JSON array of strings.
    warnings               TEXT        NOT NULL,
    created_at             TIMESTAMPTZ NOT NULL
);
CREATE INDEX imports_user ON imports (user_id, created_at);
