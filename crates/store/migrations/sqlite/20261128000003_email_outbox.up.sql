-- Outgoing email, queued in the transaction of the change that causes it and delivered by a worker.
CREATE TABLE email_outbox (
    id              BLOB    NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    recipient       TEXT    NOT NULL,
    subject         TEXT    NOT NULL,
    text_body       TEXT    NOT NULL,
    html_body       TEXT    NOT NULL,
    created_at      TEXT    NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT,
    sent_at         TEXT,
    last_error      TEXT
) STRICT;

-- Undelivered, still-to-try messages in due order.
CREATE INDEX email_outbox_due_idx ON email_outbox (next_attempt_at) WHERE sent_at IS NULL AND next_attempt_at IS NOT NULL;
