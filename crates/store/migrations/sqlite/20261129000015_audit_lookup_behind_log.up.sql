-- The admin query's lookup columns get a table of their own, `audit_log_lookup`, which follows the log in bulk
-- instead of with every COMMIT. Each of the four indexes on `audit_log` cost an audited COMMIT one more B-tree
-- page written to the WAL, and with one client every refresh commits alone: the indexes were half of what
-- auditing cost a refresh (docs/benchmarks.md). Now a COMMIT with audit entries writes the newest `audit_log`
-- page and the chain head; once `AUDIT_LOOKUP_LAG` entries (crates/store/src/sqlite.rs) are past
-- `audit_chain.lookup_seq`, the next audited batch copies them into the lookup table in its transaction,
-- so the lookup's pages are written once per few hundred entries. Queries read the lookup table through its
-- indexes up to `lookup_seq` and scan the short tail of `audit_log` after it (crates/store/src/rows.rs,
-- `audit_query_sql`).
--
-- The lookup table only serves queries: `dashtam audit verify` reads `audit_log` alone, whose rows and chain
-- are what is tamper-evident.
--
-- The table is rebuilt (SQLite cannot drop or change a CHECK in place) with the same rows, its indexes left
-- out and the outcome check spelled as comparisons: `IN` with three or more values builds a temporary B-tree
-- of them for every row inserted. `occurred_at` is rewritten with a fixed-width fraction on the way (the
-- chain hash covers the instant, not its text).
CREATE TABLE audit_log_rebuilt (
    seq           INTEGER NOT NULL PRIMARY KEY,
    id            BLOB    NOT NULL,
    occurred_at   TEXT    NOT NULL,
    action        TEXT    NOT NULL,
    outcome       TEXT    NOT NULL CHECK (outcome = 'success' OR outcome = 'failure' OR outcome = 'denied'),
    user_id       BLOB,
    actor         TEXT    NOT NULL,
    resource_type TEXT,
    resource_id   TEXT,
    request_id    TEXT,
    session_id    BLOB,
    method        TEXT,
    route         TEXT,
    path          TEXT,
    ip_address    TEXT,
    user_agent    TEXT,
    trace_id      TEXT,
    details       TEXT    NOT NULL,
    hash          TEXT    NOT NULL
);

INSERT INTO audit_log_rebuilt
SELECT seq, id,
       -- All nine fractional digits, as the store now writes them (`AuditInstant`): `…:10.85Z` and `…:10Z`
       -- become `…:10.850000000Z` and `…:10.000000000Z`, so that text order is time order.
       CASE WHEN instr(occurred_at, '.') > 0
            THEN substr(occurred_at, 1, instr(occurred_at, '.'))
                 || substr(substr(occurred_at, instr(occurred_at, '.') + 1, length(occurred_at) - instr(occurred_at, '.') - 1)
                           || '000000000', 1, 9) || 'Z'
            ELSE substr(occurred_at, 1, length(occurred_at) - 1) || '.000000000Z'
       END,
       action, outcome, user_id, actor, resource_type, resource_id, request_id, session_id,
       method, route, path, ip_address, user_agent, trace_id, details, hash
FROM audit_log;

-- Its indexes and triggers go with it.
DROP TABLE audit_log;
ALTER TABLE audit_log_rebuilt RENAME TO audit_log;

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;

CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
WHEN OLD.seq > (SELECT checkpoint_seq FROM audit_chain WHERE id = 1)
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;

CREATE TABLE audit_log_lookup (
    seq         INTEGER NOT NULL PRIMARY KEY,
    occurred_at TEXT    NOT NULL,
    action      TEXT    NOT NULL,
    user_id     BLOB,
    request_id  TEXT
);

INSERT INTO audit_log_lookup (seq, occurred_at, action, user_id, request_id)
SELECT seq, occurred_at, action, user_id, request_id FROM audit_log;

CREATE INDEX audit_log_lookup_user_seq ON audit_log_lookup (user_id, seq);
CREATE INDEX audit_log_lookup_action_seq ON audit_log_lookup (action, seq);
CREATE INDEX audit_log_lookup_request_id ON audit_log_lookup (request_id);
CREATE INDEX audit_log_lookup_occurred_at ON audit_log_lookup (occurred_at);

-- The newest entry copied into `audit_log_lookup`.
ALTER TABLE audit_chain ADD COLUMN lookup_seq INTEGER NOT NULL DEFAULT 0;
UPDATE audit_chain SET lookup_seq = (SELECT coalesce(max(seq), 0) FROM audit_log) WHERE id = 1;
