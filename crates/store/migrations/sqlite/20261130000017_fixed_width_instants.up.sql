-- Every instant outside the audit log gets the fixed-width text the store now writes (`StoredInstant`,
-- crates/store/src/rows.rs), as migration 000015 did for audit times: `…:10.85Z` becomes `…:10.850000000Z` and
-- `…:10Z` becomes `…:10.000000000Z`. sqlx had written the fraction with its trailing zeros trimmed, and SQLite
-- compares the text, so within a second text order was not time order (`10.85Z` sorts after `10.857795Z`): a
-- token still passed `expires_at > now` for up to a second after it expired, and rows made within a second
-- listed out of order.
--
-- Only values in the old form (`Z`-terminated RFC 3339 shorter than 30 characters) change. Each distinct one is
-- converted once, into `fixed_width`: its first 19 characters (`YYYY-MM-DDTHH:MM:SS`), then its fraction (after
-- the `.`, if any) padded with zeros to nine digits. The instant it names is the same. Every column then takes
-- its value's converted form, if it has one.

CREATE TEMP TABLE fixed_width (trimmed TEXT NOT NULL PRIMARY KEY, fixed TEXT NOT NULL);

INSERT INTO fixed_width (trimmed, fixed)
SELECT value, substr(value, 1, 19) || '.' || substr(substr(value, 21, max(length(value) - 21, 0)) || '000000000', 1, 9) || 'Z'
FROM (
    SELECT email_verified_at AS value FROM users
    UNION
    SELECT disabled_at FROM users
    UNION
    SELECT locked_until FROM users
    UNION
    SELECT created_at FROM users
    UNION
    SELECT updated_at FROM users
    UNION
    SELECT last_login_at FROM users
    UNION
    SELECT last_rotation_at FROM security_config
    UNION
    SELECT global_rotation_enforced_at FROM security_config
    UNION
    SELECT created_at FROM sessions
    UNION
    SELECT last_activity_at FROM sessions
    UNION
    SELECT expires_at FROM sessions
    UNION
    SELECT revoked_at FROM sessions
    UNION
    SELECT created_at FROM refresh_tokens
    UNION
    SELECT rotated_at FROM refresh_tokens
    UNION
    SELECT created_at FROM one_time_tokens
    UNION
    SELECT expires_at FROM one_time_tokens
    UNION
    SELECT used_at FROM one_time_tokens
    UNION
    SELECT created_at FROM email_outbox
    UNION
    SELECT next_attempt_at FROM email_outbox
    UNION
    SELECT sent_at FROM email_outbox
    UNION
    SELECT occurred_at FROM rate_limit_violations
    UNION
    SELECT connected_at FROM providers
    UNION
    SELECT last_sync_at FROM providers
    UNION
    SELECT created_at FROM providers
    UNION
    SELECT updated_at FROM providers
    UNION
    SELECT next_sync_at FROM providers
    UNION
    SELECT access_expires_at FROM provider_credentials
    UNION
    SELECT connected_at FROM provider_credentials
    UNION
    SELECT updated_at FROM provider_credentials
    UNION
    SELECT last_synced_at FROM accounts
    UNION
    SELECT created_at FROM accounts
    UNION
    SELECT updated_at FROM accounts
    UNION
    SELECT as_of FROM holdings
    UNION
    SELECT created_at FROM holdings
    UNION
    SELECT updated_at FROM holdings
    UNION
    SELECT posted_at FROM transactions
    UNION
    SELECT created_at FROM transactions
    UNION
    SELECT updated_at FROM transactions
    UNION
    SELECT as_of FROM balance_snapshots
    UNION
    SELECT created_at FROM imports
)
WHERE length(value) < 30 AND value LIKE '____-__-__T__:__:__%Z';

UPDATE users SET
    email_verified_at = coalesce((SELECT fixed FROM fixed_width WHERE trimmed = email_verified_at), email_verified_at),
    disabled_at = coalesce((SELECT fixed FROM fixed_width WHERE trimmed = disabled_at), disabled_at),
    locked_until = coalesce((SELECT fixed FROM fixed_width WHERE trimmed = locked_until), locked_until),
    created_at = coalesce((SELECT fixed FROM fixed_width WHERE trimmed = created_at), created_at),
    updated_at = coalesce((SELECT fixed FROM fixed_width WHERE trimmed = updated_at), updated_at),
    last_login_at = coalesce((SELECT fixed FROM fixed_width WHERE trimmed = last_login_at), last_login_at);

UPDATE security_config SET
    last_rotation_at = coalesce((SELECT fixed FROM fixed_width WHERE trimmed = last_rotation_at), last_rotation_at),
    global_rotation_enforced_at = coalesce((SELECT fixed FROM fixed_width WHERE trimmed = global_rotation_enforced_at), global_rotation_enforced_at);

UPDATE sessions SET
    created_at = coalesce((SELECT fixed FROM fixed_width WHERE trimmed = created_at), created_at),
    last_activity_at = coalesce((SELECT fixed FROM fixed_width WHERE trimmed = last_activity_at), last_activity_at),
    expires_at = coalesce((SELECT fixed FROM fixed_width WHERE trimmed = expires_at), expires_at),
    revoked_at = coalesce((SELECT fixed FROM fixed_width WHERE trimmed = revoked_at), revoked_at);

UPDATE refresh_tokens SET
    created_at = coalesce((SELECT fixed FROM fixed_width WHERE trimmed = created_at), created_at),
    rotated_at = coalesce((SELECT fixed FROM fixed_width WHERE trimmed = rotated_at), rotated_at);

UPDATE one_time_tokens SET
    created_at = coalesce((SELECT fixed FROM fixed_width WHERE trimmed = created_at), created_at),
    expires_at = coalesce((SELECT fixed FROM fixed_width WHERE trimmed = expires_at), expires_at),
    used_at = coalesce((SELECT fixed FROM fixed_width WHERE trimmed = used_at), used_at);

UPDATE email_outbox SET
    created_at = coalesce((SELECT fixed FROM fixed_width WHERE trimmed = created_at), created_at),
    next_attempt_at = coalesce((SELECT fixed FROM fixed_width WHERE trimmed = next_attempt_at), next_attempt_at),
    sent_at = coalesce((SELECT fixed FROM fixed_width WHERE trimmed = sent_at), sent_at);

UPDATE rate_limit_violations SET
    occurred_at = coalesce((SELECT fixed FROM fixed_width WHERE trimmed = occurred_at), occurred_at);

UPDATE providers SET
    connected_at = coalesce((SELECT fixed FROM fixed_width WHERE trimmed = connected_at), connected_at),
    last_sync_at = coalesce((SELECT fixed FROM fixed_width WHERE trimmed = last_sync_at), last_sync_at),
    created_at = coalesce((SELECT fixed FROM fixed_width WHERE trimmed = created_at), created_at),
    updated_at = coalesce((SELECT fixed FROM fixed_width WHERE trimmed = updated_at), updated_at),
    next_sync_at = coalesce((SELECT fixed FROM fixed_width WHERE trimmed = next_sync_at), next_sync_at);

UPDATE provider_credentials SET
    access_expires_at = coalesce((SELECT fixed FROM fixed_width WHERE trimmed = access_expires_at), access_expires_at),
    connected_at = coalesce((SELECT fixed FROM fixed_width WHERE trimmed = connected_at), connected_at),
    updated_at = coalesce((SELECT fixed FROM fixed_width WHERE trimmed = updated_at), updated_at);

UPDATE accounts SET
    last_synced_at = coalesce((SELECT fixed FROM fixed_width WHERE trimmed = last_synced_at), last_synced_at),
    created_at = coalesce((SELECT fixed FROM fixed_width WHERE trimmed = created_at), created_at),
    updated_at = coalesce((SELECT fixed FROM fixed_width WHERE trimmed = updated_at), updated_at);

UPDATE holdings SET
    as_of = coalesce((SELECT fixed FROM fixed_width WHERE trimmed = as_of), as_of),
    created_at = coalesce((SELECT fixed FROM fixed_width WHERE trimmed = created_at), created_at),
    updated_at = coalesce((SELECT fixed FROM fixed_width WHERE trimmed = updated_at), updated_at);

UPDATE transactions SET
    posted_at = coalesce((SELECT fixed FROM fixed_width WHERE trimmed = posted_at), posted_at),
    created_at = coalesce((SELECT fixed FROM fixed_width WHERE trimmed = created_at), created_at),
    updated_at = coalesce((SELECT fixed FROM fixed_width WHERE trimmed = updated_at), updated_at);

UPDATE balance_snapshots SET
    as_of = coalesce((SELECT fixed FROM fixed_width WHERE trimmed = as_of), as_of);

UPDATE imports SET
    created_at = coalesce((SELECT fixed FROM fixed_width WHERE trimmed = created_at), created_at);

DROP TABLE fixed_width;
