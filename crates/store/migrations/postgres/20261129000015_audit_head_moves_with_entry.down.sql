-- Appending an entry moves the sealed chain head again through the trigger of migration 000007.
CREATE FUNCTION audit_log_moves_head() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE audit_chain SET head_hash = NEW.hash, head_seal = NEW.head_seal WHERE id = 1 AND head_seq = NEW.seq;
    RETURN NULL;
END;
$$;

CREATE TRIGGER audit_log_moves_head AFTER INSERT ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_moves_head();
