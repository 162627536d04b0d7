-- Outgoing email, queued in the transaction of the change that causes it and delivered by a worker.
CREATE TABLE email_outbox (
    id              UUID        NOT NULL PRIMARY KEY,
    recipient       TEXT        NOT NULL,
    subject         TEXT        NOT NULL,
    text_body       TEXT        NOT NULL,
    html_body       TEXT        NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    attempts        INTEGER     NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ,
    sent_at         TIMESTAMPTZ,
    last_error      TEXT
);

-- Undelivered, still-to-try messages in due order.
CREATE INDEX email_outbox_due_idx ON email_outbox (next_attempt_at) WHERE sent_at IS NULL AND next_attempt_at IS NOT NULL;
