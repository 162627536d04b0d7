-- Finished statement imports, listed by GET /api/v1/imports. A failed import is audited, not recorded here.
CREATE TABLE imports (
    id                     BLOB    NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    user_id                BLOB    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    file_name              TEXT    NOT NULL,
    format                 TEXT    NOT NULL CHECK (format IN ('ofx', 'qfx', 'csv')),
    accounts_created       INTEGER NOT NULL,
    accounts_updated       INTEGER NOT NULL,
    transactions_created   INTEGER NOT NULL,
    transactions_duplicate INTEGER NOT NULL,
    holdings_created       INTEGER NOT NULL,
    holdings_updated       INTEGER NOT NULL,
    -- A JSON array of strings.
    warnings               TEXT    NOT NULL,
    created_at             TEXT    NOT NULL
) STRICT;
CREATE INDEX imports_user ON imports (user_id, created_at);
