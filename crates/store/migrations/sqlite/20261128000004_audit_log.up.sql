-- The audit log: append-only, hash-chained entries. No foreign keys: deleting a user or provider never
-- deletes (or edits) what was recorded about them.
CREATE TABLE audit_log (
    seq           INTEGER NOT NULL PRIMARY KEY,
    id            BLOB    NOT NULL UNIQUE,
    occurred_at   TEXT    NOT NULL,
    action        TEXT    NOT NULL,
    outcome       TEXT    NOT NULL CHECK (outcome IN ('success', 'failure', 'denied')),
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

CREATE INDEX audit_log_user_seq ON audit_log (user_id, seq);
CREATE INDEX audit_log_action_seq ON audit_log (action, seq);
CREATE INDEX audit_log_request_id ON audit_log (request_id);
CREATE INDEX audit_log_occurred_at ON audit_log (occurred_at);

-- The chain's head (newest entry) and checkpoint (newest purged entry), each sealed with a keyed MAC.
CREATE TABLE audit_chain (
    id              INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    head_seq        INTEGER NOT NULL,
    head_hash       TEXT    NOT NULL,
    head_seal       TEXT,
    checkpoint_seq  INTEGER NOT NULL,
    checkpoint_hash TEXT    NOT NULL,
    checkpoint_seal TEXT
);

INSERT INTO audit_chain (id, head_seq, head_hash, checkpoint_seq, checkpoint_hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000',
        0, '0000000000000000000000000000000000000000000000000000000000000000');

-- Entries are never edited; only a purge may delete, and only entries at or before the checkpoint.
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;

CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
WHEN OLD.seq > (SELECT checkpoint_seq FROM audit_chain WHERE id = 1)
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;
