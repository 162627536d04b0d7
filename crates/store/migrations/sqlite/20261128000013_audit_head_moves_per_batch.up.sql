-- A batch of write transactions appends its members' audit entries with its COMMIT; it now moves the chain
-- head once for all of them, in a statement before the entries (crates/store/src/sqlite.rs,
-- `audit_entries_and_commit`), instead of two trigger programs per entry checking and moving it: those were a
-- third of what appending an entry cost. The entries no longer carry a head seal of their own, only the head.
--
-- That statement moves the head only from where the batch linked its first entry; from anywhere else (another
-- process appended since) it sets NULL, which this trigger refuses, so the query stops before the entries and
-- the COMMIT, and the writer reads the head and links its entries again.
DROP TRIGGER audit_log_follows_head;
DROP TRIGGER audit_log_moves_head;
ALTER TABLE audit_log DROP COLUMN head_seal;

CREATE TRIGGER audit_chain_head_moves_on BEFORE UPDATE OF head_seq ON audit_chain
WHEN NEW.head_seq IS NULL
BEGIN
    SELECT RAISE(ABORT, 'audit entries do not follow the chain head');
END;
