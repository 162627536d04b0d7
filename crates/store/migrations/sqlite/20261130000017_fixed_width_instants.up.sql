-- Every instant outside the audit log gets the fixed-width text the store now writes (`StoredInstant`,
-- crates/store/src/rows.rs), as migration 000015 did for audit times: `…:10.85Z` becomes `…:10.850000000Z` and
-- `…:10Z` becomes `…:10.000000000Z`. sqlx had written the fraction with its trailing zeros trimmed, and SQLite
-- compares the text, so within a second text order was not time order (`10.85Z` sorts after `10.857795Z`): a
-- token still passed `expires_at > now` for up to a second after it expired, and rows made within a second
-- listed out of order.
--
-- A value is rewritten only when it has the old form (`Z`-terminated RFC 3339 shorter than 30 characters): its
-- first 19 characters (`YYYY-MM-DDTHH:MM:SS`), then its fraction (after the `.`, if any) padded with zeros to
-- nine digits. The instant it names is the same.

UPDATE users SET
    email_verified_at = CASE WHEN length(email_verified_at) < 30 AND email_verified_at LIKE '____-__-__T__:__:__%Z'
        THEN substr(email_verified_at, 1, 19) || '.' || substr(substr(email_verified_at, 21, max(length(email_verified_at) - 21, 0)) || '000000000', 1, 9) || 'Z'
        ELSE email_verified_at END,
    disabled_at = CASE WHEN length(disabled_at) < 30 AND disabled_at LIKE '____-__-__T__:__:__%Z'
        THEN substr(disabled_at, 1, 19) || '.' || substr(substr(disabled_at, 21, max(length(disabled_at) - 21, 0)) || '000000000', 1, 9) || 'Z'
        ELSE disabled_at END,
    locked_until = CASE WHEN length(locked_until) < 30 AND locked_until LIKE '____-__-__T__:__:__%Z'
        THEN substr(locked_until, 1, 19) || '.' || substr(substr(locked_until, 21, max(length(locked_until) - 21, 0)) || '000000000', 1, 9) || 'Z'
        ELSE locked_until END,
    created_at = CASE WHEN length(created_at) < 30 AND created_at LIKE '____-__-__T__:__:__%Z'
        THEN substr(created_at, 1, 19) || '.' || substr(substr(created_at, 21, max(length(created_at) - 21, 0)) || '000000000', 1, 9) || 'Z'
        ELSE created_at END,
    updated_at = CASE WHEN length(updated_at) < 30 AND updated_at LIKE '____-__-__T__:__:__%Z'
        THEN substr(updated_at, 1, 19) || '.' || substr(substr(updated_at, 21, max(length(updated_at) - 21, 0)) || '000000000', 1, 9) || 'Z'
        ELSE updated_at END,
    last_login_at = CASE WHEN length(last_login_at) < 30 AND last_login_at LIKE '____-__-__T__:__:__%Z'
        THEN substr(last_login_at, 1, 19) || '.' || substr(substr(last_login_at, 21, max(length(last_login_at) - 21, 0)) || '000000000', 1, 9) || 'Z'
        ELSE last_login_at END;

UPDATE security_config SET
    last_rotation_at = CASE WHEN length(last_rotation_at) < 30 AND last_rotation_at LIKE '____-__-__T__:__:__%Z'
        THEN substr(last_rotation_at, 1, 19) || '.' || substr(substr(last_rotation_at, 21, max(length(last_rotation_at) - 21, 0)) || '000000000', 1, 9) || 'Z'
        ELSE last_rotation_at END,
    global_rotation_enforced_at = CASE WHEN length(global_rotation_enforced_at) < 30 AND global_rotation_enforced_at LIKE '____-__-__T__:__:__%Z'
        THEN substr(global_rotation_enforced_at, 1, 19) || '.' || substr(substr(global_rotation_enforced_at, 21, max(length(global_rotation_enforced_at) - 21, 0)) || '000000000', 1, 9) || 'Z'
        ELSE global_rotation_enforced_at END;

UPDATE sessions SET
    created_at = CASE WHEN length(created_at) < 30 AND created_at LIKE '____-__-__T__:__:__%Z'
        THEN substr(created_at, 1, 19) || '.' || substr(substr(created_at, 21, max(length(created_at) - 21, 0)) || '000000000', 1, 9) || 'Z'
        ELSE created_at END,
    last_activity_at = CASE WHEN length(last_activity_at) < 30 AND last_activity_at LIKE '____-__-__T__:__:__%Z'
        THEN substr(last_activity_at, 1, 19) || '.' || substr(substr(last_activity_at, 21, max(length(last_activity_at) - 21, 0)) || '000000000', 1, 9) || 'Z'
        ELSE last_activity_at END,
    expires_at = CASE WHEN length(expires_at) < 30 AND expires_at LIKE '____-__-__T__:__:__%Z'
        THEN substr(expires_at, 1, 19) || '.' || substr(substr(expires_at, 21, max(length(expires_at) - 21, 0)) || '000000000', 1, 9) || 'Z'
        ELSE expires_at END,
    revoked_at = CASE WHEN length(revoked_at) < 30 AND revoked_at LIKE '____-__-__T__:__:__%Z'
        THEN substr(revoked_at, 1, 19) || '.' || substr(substr(revoked_at, 21, max(length(revoked_at) - 21, 0)) || '000000000', 1, 9) || 'Z'
        ELSE revoked_at END;

UPDATE refresh_tokens SET
    created_at = CASE WHEN length(created_at) < 30 AND created_at LIKE '____-__-__T__:__:__%Z'
        THEN substr(created_at, 1, 19) || '.' || substr(substr(created_at, 21, max(length(created_at) - 21, 0)) || '000000000', 1, 9) || 'Z'
        ELSE created_at END,
    rotated_at = CASE WHEN length(rotated_at) < 30 AND rotated_at LIKE '____-__-__T__:__:__%Z'
        THEN substr(rotated_at, 1, 19) || '.' || substr(substr(rotated_at, 21, max(length(rotated_at) - 21, 0)) || '000000000', 1, 9) || 'Z'
        ELSE rotated_at END;

UPDATE one_time_tokens SET
    created_at = CASE WHEN length(created_at) < 30 AND created_at LIKE '____-__-__T__:__:__%Z'
        THEN substr(created_at, 1, 19) || '.' || substr(substr(created_at, 21, max(length(created_at) - 21, 0)) || '000000000', 1, 9) || 'Z'
        ELSE created_at END,
    expires_at = CASE WHEN length(expires_at) < 30 AND expires_at LIKE '____-__-__T__:__:__%Z'
        THEN substr(expires_at, 1, 19) || '.' || substr(substr(expires_at, 21, max(length(expires_at) - 21, 0)) || '000000000', 1, 9) || 'Z'
        ELSE expires_at END,
    used_at = CASE WHEN length(used_at) < 30 AND used_at LIKE '____-__-__T__:__:__%Z'
        THEN substr(used_at, 1, 19) || '.' || substr(substr(used_at, 21, max(length(used_at) - 21, 0)) || '000000000', 1, 9) || 'Z'
        ELSE used_at END;

UPDATE email_outbox SET
    created_at = CASE WHEN length(created_at) < 30 AND created_at LIKE '____-__-__T__:__:__%Z'
        THEN substr(created_at, 1, 19) || '.' || substr(substr(created_at, 21, max(length(created_at) - 21, 0)) || '000000000', 1, 9) || 'Z'
        ELSE created_at END,
    next_attempt_at = CASE WHEN length(next_attempt_at) < 30 AND next_attempt_at LIKE '____-__-__T__:__:__%Z'
        THEN substr(next_attempt_at, 1, 19) || '.' || substr(substr(next_attempt_at, 21, max(length(next_attempt_at) - 21, 0)) || '000000000', 1, 9) || 'Z'
        ELSE next_attempt_at END,
    sent_at = CASE WHEN length(sent_at) < 30 AND sent_at LIKE '____-__-__T__:__:__%Z'
        THEN substr(sent_at, 1, 19) || '.' || substr(substr(sent_at, 21, max(length(sent_at) - 21, 0)) || '000000000', 1, 9) || 'Z'
        ELSE sent_at END;

UPDATE rate_limit_violations SET
    occurred_at = CASE WHEN length(occurred_at) < 30 AND occurred_at LIKE '____-__-__T__:__:__%Z'
        THEN substr(occurred_at, 1, 19) || '.' || substr(substr(occurred_at, 21, max(length(occurred_at) - 21, 0)) || '000000000', 1, 9) || 'Z'
        ELSE occurred_at END;

UPDATE providers SET
    connected_at = CASE WHEN length(connected_at) < 30 AND connected_at LIKE '____-__-__T__:__:__%Z'
        THEN substr(connected_at, 1, 19) || '.' || substr(substr(connected_at, 21, max(length(connected_at) - 21, 0)) || '000000000', 1, 9) || 'Z'
        ELSE connected_at END,
    last_sync_at = CASE WHEN length(last_sync_at) < 30 AND last_sync_at LIKE '____-__-__T__:__:__%Z'
        THEN substr(last_sync_at, 1, 19) || '.' || substr(substr(last_sync_at, 21, max(length(last_sync_at) - 21, 0)) || '000000000', 1, 9) || 'Z'
        ELSE last_sync_at END,
    created_at = CASE WHEN length(created_at) < 30 AND created_at LIKE '____-__-__T__:__:__%Z'
        THEN substr(created_at, 1, 19) || '.' || substr(substr(created_at, 21, max(length(created_at) - 21, 0)) || '000000000', 1, 9) || 'Z'
        ELSE created_at END,
    updated_at = CASE WHEN length(updated_at) < 30 AND updated_at LIKE '____-__-__T__:__:__%Z'
        THEN substr(updated_at, 1, 19) || '.' || substr(substr(updated_at, 21, max(length(updated_at) - 21, 0)) || '000000000', 1, 9) || 'Z'
        ELSE updated_at END,
    next_sync_at = CASE WHEN length(next_sync_at) < 30 AND next_sync_at LIKE '____-__-__T__:__:__%Z'
        THEN substr(next_sync_at, 1, 19) || '.' || substr(substr(next_sync_at, 21, max(length(next_sync_at) - 21, 0)) || '000000000', 1, 9) || 'Z'
        ELSE next_sync_at END;

UPDATE provider_credentials SET
    access_expires_at = CASE WHEN length(access_expires_at) < 30 AND access_expires_at LIKE '____-__-__T__:__:__%Z'
        THEN substr(access_expires_at, 1, 19) || '.' || substr(substr(access_expires_at, 21, max(length(access_expires_at) - 21, 0)) || '000000000', 1, 9) || 'Z'
        ELSE access_expires_at END,
    connected_at = CASE WHEN length(connected_at) < 30 AND connected_at LIKE '____-__-__T__:__:__%Z'
        THEN substr(connected_at, 1, 19) || '.' || substr(substr(connected_at, 21, max(length(connected_at) - 21, 0)) || '000000000', 1, 9) || 'Z'
        ELSE connected_at END,
    updated_at = CASE WHEN length(updated_at) < 30 AND updated_at LIKE '____-__-__T__:__:__%Z'
        THEN substr(updated_at, 1, 19) || '.' || substr(substr(updated_at, 21, max(length(updated_at) - 21, 0)) || '000000000', 1, 9) || 'Z'
        ELSE updated_at END;

UPDATE accounts SET
    last_synced_at = CASE WHEN length(last_synced_at) < 30 AND last_synced_at LIKE '____-__-__T__:__:__%Z'
        THEN substr(last_synced_at, 1, 19) || '.' || substr(substr(last_synced_at, 21, max(length(last_synced_at) - 21, 0)) || '000000000', 1, 9) || 'Z'
        ELSE last_synced_at END,
    created_at = CASE WHEN length(created_at) < 30 AND created_at LIKE '____-__-__T__:__:__%Z'
        THEN substr(created_at, 1, 19) || '.' || substr(substr(created_at, 21, max(length(created_at) - 21, 0)) || '000000000', 1, 9) || 'Z'
        ELSE created_at END,
    updated_at = CASE WHEN length(updated_at) < 30 AND updated_at LIKE '____-__-__T__:__:__%Z'
        THEN substr(updated_at, 1, 19) || '.' || substr(substr(updated_at, 21, max(length(updated_at) - 21, 0)) || '000000000', 1, 9) || 'Z'
        ELSE updated_at END;

UPDATE holdings SET
    as_of = CASE WHEN length(as_of) < 30 AND as_of LIKE '____-__-__T__:__:__%Z'
        THEN substr(as_of, 1, 19) || '.' || substr(substr(as_of, 21, max(length(as_of) - 21, 0)) || '000000000', 1, 9) || 'Z'
        ELSE as_of END,
    created_at = CASE WHEN length(created_at) < 30 AND created_at LIKE '____-__-__T__:__:__%Z'
        THEN substr(created_at, 1, 19) || '.' || substr(substr(created_at, 21, max(length(created_at) - 21, 0)) || '000000000', 1, 9) || 'Z'
        ELSE created_at END,
    updated_at = CASE WHEN length(updated_at) < 30 AND updated_at LIKE '____-__-__T__:__:__%Z'
        THEN substr(updated_at, 1, 19) || '.' || substr(substr(updated_at, 21, max(length(updated_at) - 21, 0)) || '000000000', 1, 9) || 'Z'
        ELSE updated_at END;

UPDATE transactions SET
    posted_at = CASE WHEN length(posted_at) < 30 AND posted_at LIKE '____-__-__T__:__:__%Z'
        THEN substr(posted_at, 1, 19) || '.' || substr(substr(posted_at, 21, max(length(posted_at) - 21, 0)) || '000000000', 1, 9) || 'Z'
        ELSE posted_at END,
    created_at = CASE WHEN length(created_at) < 30 AND created_at LIKE '____-__-__T__:__:__%Z'
        THEN substr(created_at, 1, 19) || '.' || substr(substr(created_at, 21, max(length(created_at) - 21, 0)) || '000000000', 1, 9) || 'Z'
        ELSE created_at END,
    updated_at = CASE WHEN length(updated_at) < 30 AND updated_at LIKE '____-__-__T__:__:__%Z'
        THEN substr(updated_at, 1, 19) || '.' || substr(substr(updated_at, 21, max(length(updated_at) - 21, 0)) || '000000000', 1, 9) || 'Z'
        ELSE updated_at END;

UPDATE balance_snapshots SET
    as_of = CASE WHEN length(as_of) < 30 AND as_of LIKE '____-__-__T__:__:__%Z'
        THEN substr(as_of, 1, 19) || '.' || substr(substr(as_of, 21, max(length(as_of) - 21, 0)) || '000000000', 1, 9) || 'Z'
        ELSE as_of END;

UPDATE imports SET
    created_at = CASE WHEN length(created_at) < 30 AND created_at LIKE '____-__-__T__:__:__%Z'
        THEN substr(created_at, 1, 19) || '.' || substr(substr(created_at, 21, max(length(created_at) - 21, 0)) || '000000000', 1, 9) || 'Z'
        ELSE created_at END;
