ALTER TABLE audit_log ADD CONSTRAINT audit_log_id_key UNIQUE (id);
