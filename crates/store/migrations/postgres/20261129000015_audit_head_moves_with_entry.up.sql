-- The statement that appends an entry now moves the chain head itself, in a data-modifying CTE that also checks
-- the head is still the point the entry was linked after (crates/store/src/postgres.rs, `APPEND_AFTER_HEAD`).
-- An instance remembers the head it committed last, so an audited transaction usually appends with that one
-- statement, where it took two before (claiming the head with `UPDATE … RETURNING`, then inserting) and this
-- trigger's PL/pgSQL moved the head a second time.
DROP TRIGGER audit_log_moves_head ON audit_log;
DROP FUNCTION audit_log_moves_head();
