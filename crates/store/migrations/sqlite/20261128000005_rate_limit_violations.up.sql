-- Requests refused by a rate limit, kept for abuse review. Written in batches off the request path.
CREATE TABLE rate_limit_violations (
    id          BLOB NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    occurred_at TEXT NOT NULL,
    rule        TEXT NOT NULL,
    route       TEXT NOT NULL,
    scope       TEXT NOT NULL,
    identifier  TEXT NOT NULL,
    ip_address  TEXT
) STRICT;

-- Review looks at recent violations, overall or by address.
CREATE INDEX rate_limit_violations_occurred_at_idx ON rate_limit_violations (occurred_at);
CREATE INDEX rate_limit_violations_ip_address_idx ON rate_limit_violations (ip_address, occurred_at);
