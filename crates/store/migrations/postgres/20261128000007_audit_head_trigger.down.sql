DROP TRIGGER audit_log_moves_head ON audit_log;
DROP FUNCTION audit_log_moves_head();
ALTER TABLE audit_log DROP COLUMN head_seal;
