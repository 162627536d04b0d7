DROP TRIGGER audit_log_follows_head;
