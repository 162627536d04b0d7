-- The lookup columns are indexed on `audit_log` itself again, in the table as migration 000014 left it.
ALTER TABLE audit_chain DROP COLUMN lookup_seq;
DROP TABLE audit_log_lookup;

CREATE TABLE audit_log_rebuilt (
    seq           INTEGER NOT NULL PRIMARY KEY,
    id            BLOB    NOT NULL,
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

INSERT INTO audit_log_rebuilt
SELECT seq, id, occurred_at, action, outcome, user_id, actor, resource_type, resource_id, request_id, session_id,
       method, route, path, ip_address, user_agent, trace_id, details, hash
FROM audit_log;

-- Its indexes and triggers go with it.
DROP TABLE audit_log;
ALTER TABLE audit_log_rebuilt RENAME TO audit_log;

CREATE INDEX audit_log_user_seq ON audit_log (user_id, seq);
CREATE INDEX audit_log_action_seq ON audit_log (action, seq);
CREATE INDEX audit_log_request_id ON audit_log (request_id);
CREATE INDEX audit_log_occurred_at ON audit_log (occurred_at);

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;

CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
WHEN OLD.seq > (SELECT checkpoint_seq FROM audit_chain WHERE id = 1)
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;
