-- An audit entry is written with the COMMIT of its transaction, linked onto the chain head the process
-- remembers. The database refuses an entry that does not extend the head (another process wrote since), so a
-- stale head fails the statement before the COMMIT instead of forking the chain; the writer then reads the head
-- and links the entry again.
CREATE TRIGGER audit_log_follows_head BEFORE INSERT ON audit_log
WHEN NOT EXISTS (SELECT 1 FROM audit_chain WHERE id = 1 AND head_seq = NEW.seq - 1)
BEGIN
    SELECT RAISE(ABORT, 'audit entry does not follow the chain head');
END;
