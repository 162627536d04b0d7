-- The audit log: append-only, hash-chained entries. No foreign keys: deleting a user or provider never
-- deletes (or edits) what was recorded about them.
CREATE TABLE audit_log (
    seq           BIGINT      NOT NULL PRIMARY KEY,
    id            UUID        NOT NULL UNIQUE,
    occurred_at   TIMESTAMPTZ NOT NULL,
    action        TEXT        NOT NULL,
    outcome       TEXT        NOT NULL CHECK (outcome IN ('success', 'failure', 'denied')),
    user_id       UUID,
    actor         TEXT        NOT NULL,
    resource_type TEXT,
    resource_id   TEXT,
    request_id    TEXT,
    session_id    UUID,
    method        TEXT,
    route         TEXT,
    path          TEXT,
    ip_address    TEXT,
    user_agent    TEXT,
    trace_id      TEXT,
    -- TEXT, not JSONB: the exact text that was hashed must read back unchanged.
    details       TEXT        NOT NULL,
    hash          TEXT        NOT NULL
);

CREATE INDEX audit_log_user_seq ON audit_log (user_id, seq);
CREATE INDEX audit_log_action_seq ON audit_log (action, seq);
CREATE INDEX audit_log_request_id ON audit_log (request_id);
CREATE INDEX audit_log_occurred_at ON audit_log (occurred_at);

-- The chain's head (newest entry) and checkpoint (newest purged entry), each sealed with a keyed MAC.
CREATE TABLE audit_chain (
    id              SMALLINT NOT NULL PRIMARY KEY CHECK (id = 1),
    head_seq        BIGINT   NOT NULL,
    head_hash       TEXT     NOT NULL,
    head_seal       TEXT,
    checkpoint_seq  BIGINT   NOT NULL,
    checkpoint_hash TEXT     NOT NULL,
    checkpoint_seal TEXT
);

INSERT INTO audit_chain (id, head_seq, head_hash, checkpoint_seq, checkpoint_hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000',
        0, '0000000000000000000000000000000000000000000000000000000000000000');

-- Entries are never edited; only a purge may delete, and only entries at or before the checkpoint.
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Nested, not AND: OLD does not exist for TRUNCATE.
    IF TG_OP = 'DELETE' THEN
        IF OLD.seq <= (SELECT checkpoint_seq FROM audit_chain WHERE id = 1) THEN
            RETURN OLD;
        END IF;
    END IF;
    RAISE EXCEPTION 'audit_log is append-only' USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();

CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
