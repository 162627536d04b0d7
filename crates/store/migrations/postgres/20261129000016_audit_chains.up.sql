-- The log becomes several hash chains side by side. An audited transaction holds its chain's head row from its
-- append until it ends; with one chain, every audited transaction of every instance committed in turn (about
-- 1,300 a second on the benchmark machine, whatever the number of clients). Each instance hands its
-- transactions out over the chains (crates/store/src/postgres.rs), so they only wait for one another on one.
--
-- `seq` stays the order of the log and the cursor of its listing; it is now drawn from a sequence as an entry
-- is inserted, under its chain's lock, so it rises along every chain. `chain` and `chain_seq` are what the
-- hash covers: an entry's chain and its position there. The existing entries are chain 1, whose positions
-- are their sequence numbers, so their hashes and the seals of the head and checkpoint stand as written.
ALTER TABLE audit_log ADD COLUMN chain SMALLINT NOT NULL DEFAULT 1, ADD COLUMN chain_seq BIGINT;
ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only;
UPDATE audit_log SET chain_seq = seq;
ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only;
ALTER TABLE audit_log ALTER COLUMN chain DROP DEFAULT, ALTER COLUMN chain_seq SET NOT NULL;

CREATE SEQUENCE audit_log_seq OWNED BY audit_log.seq;
SELECT setval('audit_log_seq', greatest((SELECT max(seq) FROM audit_log), (SELECT head_seq FROM audit_chain), 0) + 1,
              false);
ALTER TABLE audit_log ALTER COLUMN seq SET DEFAULT nextval('audit_log_seq');

-- Each entry kept the head seal written with it for a trigger that migration 000015 dropped; nothing reads it.
ALTER TABLE audit_log DROP COLUMN head_seal;

-- Sixteen chains: more than an instance's connections by default (database.max_connections = 10).
ALTER TABLE audit_chain DROP CONSTRAINT audit_chain_id_check;
ALTER TABLE audit_chain ADD CONSTRAINT audit_chain_id_check CHECK (id BETWEEN 1 AND 16);
INSERT INTO audit_chain (id, head_seq, head_hash, checkpoint_seq, checkpoint_hash)
SELECT chain, 0, '0000000000000000000000000000000000000000000000000000000000000000',
       0, '0000000000000000000000000000000000000000000000000000000000000000'
FROM generate_series(2, 16) AS chain;

-- A purge may delete an entry only at or before its own chain's checkpoint.
CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Nested, not AND: OLD does not exist for TRUNCATE.
    IF TG_OP = 'DELETE' THEN
        IF OLD.chain_seq <= (SELECT checkpoint_seq FROM audit_chain WHERE id = OLD.chain) THEN
            RETURN OLD;
        END IF;
    END IF;
    RAISE EXCEPTION 'audit_log is append-only' USING ERRCODE = 'insufficient_privilege';
END;
$$;
