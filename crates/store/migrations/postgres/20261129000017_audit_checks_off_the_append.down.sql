ALTER TABLE audit_log ADD CONSTRAINT audit_log_outcome_check CHECK (outcome IN ('success', 'failure', 'denied'));

DROP TRIGGER audit_chain_ids ON audit_chain;
DROP FUNCTION audit_chain_id_out_of_range();
ALTER TABLE audit_chain ADD CONSTRAINT audit_chain_id_check CHECK (id BETWEEN 1 AND 16);
