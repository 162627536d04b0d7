ALTER TABLE audit_log DROP COLUMN chain_seq;
ALTER TABLE audit_log DROP COLUMN chain;
