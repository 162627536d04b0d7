-- The statement that appends an audit entry no longer evaluates a CHECK constraint. PostgreSQL prepares a
-- table's CHECK expressions again in every statement that writes to it (read back from their stored text,
-- simplified and compiled: `ExecRelCheck`), and the append wrote to two tables with one each: together about
-- 11 µs of PostgreSQL's CPU per audited refresh, an eighth of what auditing cost it (docs/benchmarks.md).
--
-- `audit_chain`'s rows are the sixteen chains migration 000016 made; `CHECK (id BETWEEN 1 AND 16)` was
-- evaluated on every move of a head. The bound is kept by a trigger on INSERT instead, which the moves (UPDATEs
-- that never change `id`) do not fire. A BEFORE UPDATE trigger would not do: PostgreSQL locks and reads the row
-- for any such trigger before looking at which columns it is for.
--
-- `audit_log.outcome`'s CHECK goes: the store writes the column from the Rust enum `AuditOutcome` only, reading
-- an entry refuses any other value as corrupt, and the entry's hash covers it. SQLite keeps its CHECK, which it
-- compiles into the INSERT once and evaluates as two comparisons.
ALTER TABLE audit_chain DROP CONSTRAINT audit_chain_id_check;

CREATE FUNCTION audit_chain_id_out_of_range() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit chain % does not exist: chains are 1 to 16', NEW.id USING ERRCODE = 'check_violation';
END;
$$;

CREATE TRIGGER audit_chain_ids BEFORE INSERT ON audit_chain
FOR EACH ROW WHEN (NEW.id NOT BETWEEN 1 AND 16) EXECUTE FUNCTION audit_chain_id_out_of_range();

ALTER TABLE audit_log DROP CONSTRAINT audit_log_outcome_check;
