-- What a session's device is (parsed from its user agent and address at login), and the global token version
-- it was started under, so a global rotation can end it once its grace period has passed.
ALTER TABLE sessions ADD COLUMN browser TEXT;
ALTER TABLE sessions ADD COLUMN os TEXT;
ALTER TABLE sessions ADD COLUMN device_type TEXT;
ALTER TABLE sessions ADD COLUMN device_info TEXT;
ALTER TABLE sessions ADD COLUMN location TEXT;
ALTER TABLE sessions ADD COLUMN global_token_version INTEGER NOT NULL DEFAULT 1;

-- When the last global rotation takes effect (its time plus its grace period).
ALTER TABLE security_config ADD COLUMN global_rotation_enforced_at TEXT;
