DROP TRIGGER audit_log_moves_head;

CREATE TRIGGER audit_log_moves_head AFTER INSERT ON audit_log
BEGIN
    UPDATE audit_chain SET head_hash = NEW.hash, head_seal = NEW.head_seal WHERE id = 1 AND head_seq = NEW.seq;
END;
