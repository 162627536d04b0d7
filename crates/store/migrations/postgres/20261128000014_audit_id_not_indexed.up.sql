-- `id` was declared UNIQUE, which kept an index that no query reads: entries are looked up by sequence number,
-- user, action, request id or time. Ids are UUIDv7, unique by construction, and the chain hash covers them, so
-- `dashtam audit verify` still catches an id changed or an entry copied in. One index fewer to update with
-- every audit entry (the SQLite schema drops it too).
ALTER TABLE audit_log DROP CONSTRAINT audit_log_id_key;
