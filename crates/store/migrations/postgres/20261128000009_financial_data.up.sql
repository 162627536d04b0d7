-- Financial data: accounts, holdings, transactions and balance snapshots. Money is NUMERIC (exact). Every row
-- carries its owner so every query can filter on it; deleting a provider deletes its data by cascade (audit
-- entries are untouched).
CREATE TABLE accounts (
    id                  UUID        NOT NULL PRIMARY KEY,
    user_id             UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    provider_id         UUID        NOT NULL REFERENCES providers (id) ON DELETE CASCADE,
    provider_account_id TEXT        NOT NULL,
    name                TEXT        NOT NULL,
    account_type        TEXT        NOT NULL,
    number_masked       TEXT,
    currency            TEXT        NOT NULL CHECK (char_length(currency) = 3),
    balance             NUMERIC     NOT NULL,
    available_balance   NUMERIC,
    is_active           BOOLEAN     NOT NULL DEFAULT TRUE,
    last_synced_at      TIMESTAMPTZ,
    created_at          TIMESTAMPTZ NOT NULL,
    updated_at          TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX accounts_provider_key ON accounts (provider_id, provider_account_id);
CREATE INDEX accounts_user ON accounts (user_id, created_at);

CREATE TABLE holdings (
    id           UUID        NOT NULL PRIMARY KEY,
    account_id   UUID        NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    user_id      UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    symbol       TEXT        NOT NULL,
    name         TEXT,
    asset_type   TEXT        NOT NULL,
    quantity     NUMERIC     NOT NULL,
    average_cost NUMERIC,
    price        NUMERIC,
    market_value NUMERIC     NOT NULL,
    currency     TEXT        NOT NULL CHECK (char_length(currency) = 3),
    -- A position missing from a sync is closed, not deleted.
    is_open      BOOLEAN     NOT NULL DEFAULT TRUE,
    as_of        TIMESTAMPTZ NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX holdings_account_symbol ON holdings (account_id, symbol);
CREATE INDEX holdings_user ON holdings (user_id, is_open);

CREATE TABLE transactions (
    id                      UUID        NOT NULL PRIMARY KEY,
    account_id              UUID        NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    user_id                 UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    provider_transaction_id TEXT        NOT NULL,
    posted_on               DATE        NOT NULL,
    posted_at               TIMESTAMPTZ,
    amount                  NUMERIC     NOT NULL,
    currency                TEXT        NOT NULL CHECK (char_length(currency) = 3),
    description             TEXT        NOT NULL,
    payee                   TEXT,
    memo                    TEXT,
    transaction_type        TEXT        NOT NULL,
    subtype                 TEXT,
    status                  TEXT        NOT NULL CHECK (status IN ('pending', 'posted')),
    symbol                  TEXT,
    quantity                NUMERIC,
    unit_price              NUMERIC,
    fees                    NUMERIC,
    created_at              TIMESTAMPTZ NOT NULL,
    updated_at              TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX transactions_account_provider_id ON transactions (account_id, provider_transaction_id);
-- Keyset pagination, newest first: (posted_on, id) for a user, and within an account.
CREATE INDEX transactions_user_cursor ON transactions (user_id, posted_on DESC, id DESC);
CREATE INDEX transactions_account_cursor ON transactions (account_id, posted_on DESC, id DESC);

CREATE TABLE balance_snapshots (
    id                UUID        NOT NULL PRIMARY KEY,
    account_id        UUID        NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    user_id           UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    as_of             TIMESTAMPTZ NOT NULL,
    balance           NUMERIC     NOT NULL,
    available_balance NUMERIC,
    currency          TEXT        NOT NULL CHECK (char_length(currency) = 3),
    source            TEXT        NOT NULL CHECK (source IN ('sync', 'import'))
);
CREATE INDEX balance_snapshots_account ON balance_snapshots (account_id, as_of);
CREATE INDEX balance_snapshots_user ON balance_snapshots (user_id, as_of);

-- The sync scheduler's bookkeeping.
ALTER TABLE providers ADD COLUMN sync_failures INTEGER NOT NULL DEFAULT 0;
ALTER TABLE providers ADD COLUMN next_sync_at TIMESTAMPTZ;
