-- The store no longer advances the chain head before inserting an entry: it remembers the head it wrote last
-- and inserts only if that is still the head (one statement fewer inside every audited write). The trigger
-- therefore moves the head's sequence number too.
DROP TRIGGER audit_log_moves_head;

CREATE TRIGGER audit_log_moves_head AFTER INSERT ON audit_log
BEGIN
    UPDATE audit_chain SET head_seq = NEW.seq, head_hash = NEW.hash, head_seal = NEW.head_seal
    WHERE id = 1 AND head_seq = NEW.seq - 1;
END;
