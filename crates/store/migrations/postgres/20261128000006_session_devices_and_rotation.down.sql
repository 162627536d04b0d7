ALTER TABLE security_config DROP COLUMN global_rotation_enforced_at;
ALTER TABLE sessions DROP COLUMN global_token_version;
ALTER TABLE sessions DROP COLUMN location;
ALTER TABLE sessions DROP COLUMN device_info;
ALTER TABLE sessions DROP COLUMN device_type;
ALTER TABLE sessions DROP COLUMN os;
ALTER TABLE sessions DROP COLUMN browser;
