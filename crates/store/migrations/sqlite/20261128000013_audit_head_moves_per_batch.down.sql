DROP TRIGGER audit_chain_head_moves_on;
ALTER TABLE audit_log ADD COLUMN head_seal TEXT;

CREATE TRIGGER audit_log_moves_head AFTER INSERT ON audit_log
BEGIN
    UPDATE audit_chain SET head_seq = NEW.seq, head_hash = NEW.hash, head_seal = NEW.head_seal
    WHERE id = 1 AND head_seq = NEW.seq - 1;
END;

CREATE TRIGGER audit_log_follows_head BEFORE INSERT ON audit_log
WHEN NOT EXISTS (SELECT 1 FROM audit_chain WHERE id = 1 AND head_seq = NEW.seq - 1)
BEGIN
    SELECT RAISE(ABORT, 'audit entry does not follow the chain head');
END;
