ALTER TABLE providers DROP COLUMN next_sync_at;
ALTER TABLE providers DROP COLUMN sync_failures;
DROP TABLE balance_snapshots;
DROP TABLE transactions;
DROP TABLE holdings;
DROP TABLE accounts;
