-- Entries name the hash chain they are on and their position on it (PostgreSQL writes several chains side by
-- side; see that backend's migration 000016). SQLite's writers are serialised, so it keeps one chain, chain 1,
-- on which an entry's position is its sequence number: both columns are computed, not stored, and an INSERT
-- writes neither.
ALTER TABLE audit_log ADD COLUMN chain INTEGER GENERATED ALWAYS AS (1) VIRTUAL;
ALTER TABLE audit_log ADD COLUMN chain_seq INTEGER GENERATED ALWAYS AS (seq) VIRTUAL;
