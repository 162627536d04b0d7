-- Back to one chain, which is only possible while every entry is on chain 1: the hashes of any other entry
-- cover a chain this schema cannot hold. Chain 1's entries get their positions back as sequence numbers, which
-- its hashes cover (in two steps, as the primary key is checked row by row).
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM audit_chain WHERE id <> 1 AND (head_seq <> 0 OR checkpoint_seq <> 0)) THEN
        RAISE EXCEPTION 'the audit log has entries on chains other than chain 1; it cannot go back to one chain';
    END IF;
END;
$$;
ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only;
UPDATE audit_log SET seq = -chain_seq;
UPDATE audit_log SET seq = -seq;
ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only;

CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
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

DELETE FROM audit_chain WHERE id <> 1;
ALTER TABLE audit_chain DROP CONSTRAINT audit_chain_id_check;
ALTER TABLE audit_chain ADD CONSTRAINT audit_chain_id_check CHECK (id = 1);

ALTER TABLE audit_log ALTER COLUMN seq DROP DEFAULT;
DROP SEQUENCE audit_log_seq;
ALTER TABLE audit_log DROP COLUMN chain_seq, DROP COLUMN chain;
-- The seals entries kept with them are gone; the head's own seal is in audit_chain.
ALTER TABLE audit_log ADD COLUMN head_seal TEXT;
