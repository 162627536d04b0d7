//! Financial data: the SQL both backends share (see [`crate::queries`] for why one text serves both). Money
//! goes through [`DbDecimal`](crate::ledger_rows::DbDecimal), so it is the same statement whether the column
//! is TEXT (SQLite) or NUMERIC (PostgreSQL).
//!
//! Amount filters compare `CAST(amount AS NUMERIC)`: exact on PostgreSQL; on SQLite the cast yields an
//! integer or an IEEE double, so values beyond 15 significant digits compare approximately there (far past
//! any real transaction amount).

/// The `accounts` columns in [`AccountRow`](crate::ledger_rows::AccountRow) order.
macro_rules! account_columns {
    () => {
        "id, user_id, provider_id, provider_account_id, name, account_type, number_masked, currency, balance, \
         available_balance, is_active, last_synced_at, created_at, updated_at"
    };
}

/// The `holdings` columns in [`HoldingRow`](crate::ledger_rows::HoldingRow) order.
macro_rules! holding_columns {
    () => {
        "id, account_id, user_id, symbol, name, asset_type, quantity, average_cost, price, market_value, currency, \
         is_open, as_of"
    };
}

/// The `transactions` columns in [`TransactionRow`](crate::ledger_rows::TransactionRow) order (20 of them).
macro_rules! transaction_columns {
    () => {
        "id, account_id, user_id, provider_transaction_id, posted_on, posted_at, amount, currency, description, \
         payee, memo, transaction_type, subtype, status, symbol, quantity, unit_price, fees, created_at, updated_at"
    };
}

/// The `balance_snapshots` columns in [`SnapshotRow`](crate::ledger_rows::SnapshotRow) order, qualified by `s.`.
macro_rules! snapshot_columns {
    () => {
        "s.id, s.account_id, s.as_of, s.balance, s.available_balance, s.currency, s.source"
    };
}

/// Binds [`Bind`](crate::ledger_rows::Bind) values in order onto a `query_as`.
macro_rules! bind_all {
    ($query:expr, $binds:expr) => {{
        let mut query = $query;
        for value in $binds {
            query = match value {
                $crate::ledger_rows::Bind::Uuid(value) => query.bind(value),
                $crate::ledger_rows::Bind::Date(value) => query.bind(value),
                $crate::ledger_rows::Bind::Instant(value) => query.bind(value),
                $crate::ledger_rows::Bind::Decimal(value) => query.bind(value),
                $crate::ledger_rows::Bind::Text(value) => query.bind(value),
                $crate::ledger_rows::Bind::Int(value) => query.bind(value),
            };
        }
        query
    }};
}

/// Implements the ledger ports for one backend's store and transaction types (see `impl_store_ports`).
macro_rules! impl_ledger_ports {
    ($store:ty, $tx:ident, $db:ty) => {
        #[async_trait::async_trait]
        impl dashtam_domain::ledger::LedgerReads for $store {
            async fn accounts(
                &self,
                user_id: dashtam_domain::UserId,
                filter: &dashtam_domain::ledger::AccountFilter,
            ) -> Result<Vec<dashtam_domain::ledger::Account>, dashtam_domain::ports::StoreError> {
                let rows: Vec<$crate::ledger_rows::AccountRow> = sqlx::query_as(concat!(
                    "SELECT ",
                    $crate::ledger_queries::account_columns!(),
                    " FROM accounts WHERE user_id = $1 AND ($2 IS NULL OR provider_id = $2) \
                      AND ($3 IS NULL OR account_type = $3) ORDER BY created_at, id"
                ))
                .bind(user_id.as_uuid())
                .bind(filter.provider_id.map(|id| id.as_uuid()))
                .bind(filter.account_type.map(|kind| kind.as_str()))
                .fetch_all(&self.pool)
                .await
                .map_err($crate::errors::store_error)?;
                rows.into_iter().map(TryInto::try_into).collect()
            }

            async fn account(
                &self,
                user_id: dashtam_domain::UserId,
                id: dashtam_domain::ledger::AccountId,
            ) -> Result<Option<dashtam_domain::ledger::Account>, dashtam_domain::ports::StoreError> {
                let row: Option<$crate::ledger_rows::AccountRow> = sqlx::query_as(concat!(
                    "SELECT ",
                    $crate::ledger_queries::account_columns!(),
                    " FROM accounts WHERE user_id = $1 AND id = $2"
                ))
                .bind(user_id.as_uuid())
                .bind(id.as_uuid())
                .fetch_optional(&self.pool)
                .await
                .map_err($crate::errors::store_error)?;
                row.map(TryInto::try_into).transpose()
            }

            async fn holdings(
                &self,
                user_id: dashtam_domain::UserId,
                filter: &dashtam_domain::ledger::HoldingFilter,
            ) -> Result<Vec<dashtam_domain::ledger::Holding>, dashtam_domain::ports::StoreError> {
                let rows: Vec<$crate::ledger_rows::HoldingRow> = sqlx::query_as(concat!(
                    "SELECT ",
                    $crate::ledger_queries::holding_columns!(),
                    " FROM holdings WHERE user_id = $1 AND is_open = TRUE AND ($2 IS NULL OR account_id = $2) \
                      AND ($3 IS NULL OR asset_type = $3) ORDER BY symbol, account_id"
                ))
                .bind(user_id.as_uuid())
                .bind(filter.account_id.map(|id| id.as_uuid()))
                .bind(filter.asset_type.map(|kind| kind.as_str()))
                .fetch_all(&self.pool)
                .await
                .map_err($crate::errors::store_error)?;
                rows.into_iter().map(TryInto::try_into).collect()
            }

            async fn transactions(
                &self,
                query: &dashtam_domain::ledger::TransactionQuery,
            ) -> Result<Vec<dashtam_domain::ledger::Transaction>, dashtam_domain::ports::StoreError> {
                use $crate::ledger_rows::{Bind, Conditions, DbDecimal};
                // Only the filters asked for appear, so each statement shape gets its own plan over the cursor
                // indexes (user_id or account_id, posted_on DESC, id DESC).
                let mut conditions = Conditions::default();
                let user = conditions.bind(Bind::Uuid(query.user_id.as_uuid()));
                conditions.and(&format!("user_id = {user}"));
                if let Some(account_id) = query.account_id {
                    let account = conditions.bind(Bind::Uuid(account_id.as_uuid()));
                    conditions.and(&format!("account_id = {account}"));
                }
                if let Some(from) = query.from {
                    let from = conditions.bind(Bind::Date(from));
                    conditions.and(&format!("posted_on >= {from}"));
                }
                if let Some(to) = query.to {
                    let to = conditions.bind(Bind::Date(to));
                    conditions.and(&format!("posted_on <= {to}"));
                }
                if let Some(kind) = query.transaction_type {
                    let kind = conditions.bind(Bind::Text(kind.as_str().to_owned()));
                    conditions.and(&format!("transaction_type = {kind}"));
                }
                if let Some(min) = query.min_amount {
                    let min = conditions.bind(Bind::Decimal(DbDecimal(min)));
                    conditions.and(&format!("CAST(amount AS NUMERIC) >= CAST({min} AS NUMERIC)"));
                }
                if let Some(max) = query.max_amount {
                    let max = conditions.bind(Bind::Decimal(DbDecimal(max)));
                    conditions.and(&format!("CAST(amount AS NUMERIC) <= CAST({max} AS NUMERIC)"));
                }
                if let Some(text) = query.text.as_deref() {
                    let pattern = conditions.bind(Bind::Text($crate::ledger_rows::contains_pattern(text)));
                    conditions.and(&format!(
                        "(lower(description) LIKE {pattern} ESCAPE '\\' \
                          OR lower(COALESCE(payee, '')) LIKE {pattern} ESCAPE '\\')"
                    ));
                }
                if let Some((date, id)) = query.after {
                    // `(posted_on, id) < (date, id)`, spelled out; the extra `posted_on <= date` is the range
                    // the index seeks to, so a deep page costs as little as the first (no OFFSET scan).
                    let date = conditions.bind(Bind::Date(date));
                    let id = conditions.bind(Bind::Uuid(id.as_uuid()));
                    conditions.and(&format!(
                        "posted_on <= {date} AND (posted_on < {date} OR (posted_on = {date} AND id < {id}))"
                    ));
                }
                let limit = conditions.bind(Bind::Int(i64::from(query.limit)));
                let sql = format!(
                    "SELECT {} FROM transactions WHERE {} ORDER BY posted_on DESC, id DESC LIMIT {limit}",
                    $crate::ledger_queries::transaction_columns!(),
                    conditions.sql,
                );
                let rows: Vec<$crate::ledger_rows::TransactionRow> = $crate::ledger_queries::bind_all!(
                    sqlx::query_as::<$db, $crate::ledger_rows::TransactionRow>(&sql),
                    conditions.binds
                )
                .fetch_all(&self.pool)
                .await
                .map_err($crate::errors::store_error)?;
                rows.into_iter().map(TryInto::try_into).collect()
            }

            async fn transaction(
                &self,
                user_id: dashtam_domain::UserId,
                id: dashtam_domain::ledger::TransactionId,
            ) -> Result<Option<dashtam_domain::ledger::Transaction>, dashtam_domain::ports::StoreError> {
                let row: Option<$crate::ledger_rows::TransactionRow> = sqlx::query_as(concat!(
                    "SELECT ",
                    $crate::ledger_queries::transaction_columns!(),
                    " FROM transactions WHERE user_id = $1 AND id = $2"
                ))
                .bind(user_id.as_uuid())
                .bind(id.as_uuid())
                .fetch_optional(&self.pool)
                .await
                .map_err($crate::errors::store_error)?;
                row.map(TryInto::try_into).transpose()
            }

            async fn balance_snapshots(
                &self,
                user_id: dashtam_domain::UserId,
                account_id: Option<dashtam_domain::ledger::AccountId>,
                from: Option<time::OffsetDateTime>,
                to: Option<time::OffsetDateTime>,
            ) -> Result<Vec<dashtam_domain::ledger::BalanceSnapshot>, dashtam_domain::ports::StoreError> {
                use $crate::ledger_rows::{Bind, Conditions};
                let mut conditions = Conditions::default();
                let user = conditions.bind(Bind::Uuid(user_id.as_uuid()));
                conditions.and(&format!("s.user_id = {user}"));
                if let Some(account_id) = account_id {
                    let account = conditions.bind(Bind::Uuid(account_id.as_uuid()));
                    conditions.and(&format!("s.account_id = {account}"));
                }
                if let Some(from) = from {
                    let from = conditions.bind(Bind::Instant($crate::rows::utc(from)));
                    conditions.and(&format!("s.as_of >= {from}"));
                }
                if let Some(to) = to {
                    let to = conditions.bind(Bind::Instant($crate::rows::utc(to)));
                    conditions.and(&format!("s.as_of < {to}"));
                }
                let sql = format!(
                    "SELECT {} FROM balance_snapshots s WHERE {} ORDER BY s.as_of, s.id",
                    $crate::ledger_queries::snapshot_columns!(),
                    conditions.sql,
                );
                let rows: Vec<$crate::ledger_rows::SnapshotRow> = $crate::ledger_queries::bind_all!(
                    sqlx::query_as::<$db, $crate::ledger_rows::SnapshotRow>(&sql),
                    conditions.binds
                )
                .fetch_all(&self.pool)
                .await
                .map_err($crate::errors::store_error)?;
                rows.into_iter().map(TryInto::try_into).collect()
            }

            async fn latest_snapshots_before(
                &self,
                user_id: dashtam_domain::UserId,
                before: time::OffsetDateTime,
            ) -> Result<Vec<dashtam_domain::ledger::BalanceSnapshot>, dashtam_domain::ports::StoreError> {
                // One index probe per account (balance_snapshots_account), not a scan of the history.
                let rows: Vec<$crate::ledger_rows::SnapshotRow> = sqlx::query_as(concat!(
                    "SELECT ",
                    $crate::ledger_queries::snapshot_columns!(),
                    " FROM accounts a JOIN balance_snapshots s ON s.id = (\
                        SELECT latest.id FROM balance_snapshots latest \
                        WHERE latest.account_id = a.id AND latest.as_of < $2 \
                        ORDER BY latest.as_of DESC, latest.id DESC LIMIT 1) \
                     WHERE a.user_id = $1 ORDER BY a.created_at, a.id"
                ))
                .bind(user_id.as_uuid())
                .bind($crate::rows::utc(before))
                .fetch_all(&self.pool)
                .await
                .map_err($crate::errors::store_error)?;
                rows.into_iter().map(TryInto::try_into).collect()
            }
        }

        #[async_trait::async_trait]
        impl dashtam_domain::ledger::LedgerWrites for $tx {
            async fn upsert_account(
                &mut self,
                account: &dashtam_domain::ledger::AccountUpsert<'_>,
            ) -> Result<(dashtam_domain::ledger::AccountId, dashtam_domain::ledger::Upserted), dashtam_domain::ports::StoreError>
            {
                use $crate::ledger_rows::DbDecimal;
                let existing: Option<$crate::ledger_rows::AccountRow> = sqlx::query_as(concat!(
                    "SELECT ",
                    $crate::ledger_queries::account_columns!(),
                    " FROM accounts WHERE provider_id = $1 AND provider_account_id = $2"
                ))
                .bind(account.provider_id.as_uuid())
                .bind(account.provider_account_id)
                .fetch_optional(&mut *self.tx)
                .await
                .map_err($crate::errors::store_error)?;
                let now = $crate::rows::utc(account.now);
                let Some(existing) = existing else {
                    let id = dashtam_domain::ledger::AccountId::generate();
                    sqlx::query(concat!(
                        "INSERT INTO accounts (",
                        $crate::ledger_queries::account_columns!(),
                        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, TRUE, NULL, $11, $11)"
                    ))
                    .bind(id.as_uuid())
                    .bind(account.user_id.as_uuid())
                    .bind(account.provider_id.as_uuid())
                    .bind(account.provider_account_id)
                    .bind(account.name)
                    .bind(account.account_type.as_str())
                    .bind(account.number_masked)
                    .bind(account.currency.as_str())
                    .bind(DbDecimal(account.balance))
                    .bind(account.available_balance.map(DbDecimal))
                    .bind(now)
                    .execute(&mut *self.tx)
                    .await
                    .map_err($crate::errors::store_error)?;
                    return Ok((id, dashtam_domain::ledger::Upserted::Created));
                };
                let existing: dashtam_domain::ledger::Account = existing.try_into()?;
                // Scale counts as a change ("10.5" → "10.50"): what is stored is served as is.
                let same = |a: rust_decimal::Decimal, b: rust_decimal::Decimal| a == b && a.scale() == b.scale();
                let unchanged = existing.name == account.name
                    && existing.account_type == account.account_type
                    && existing.number_masked.as_deref() == account.number_masked
                    && existing.currency == account.currency
                    && same(existing.balance, account.balance)
                    && match (existing.available_balance, account.available_balance) {
                        (Some(a), Some(b)) => same(a, b),
                        (None, None) => true,
                        _ => false,
                    }
                    && existing.is_active;
                if unchanged {
                    return Ok((existing.id, dashtam_domain::ledger::Upserted::Unchanged));
                }
                sqlx::query(
                    "UPDATE accounts SET name = $2, account_type = $3, number_masked = $4, currency = $5, \
                       balance = $6, available_balance = $7, is_active = TRUE, updated_at = $8 WHERE id = $1",
                )
                .bind(existing.id.as_uuid())
                .bind(account.name)
                .bind(account.account_type.as_str())
                .bind(account.number_masked)
                .bind(account.currency.as_str())
                .bind(DbDecimal(account.balance))
                .bind(account.available_balance.map(DbDecimal))
                .bind(now)
                .execute(&mut *self.tx)
                .await
                .map_err($crate::errors::store_error)?;
                Ok((existing.id, dashtam_domain::ledger::Upserted::Updated))
            }

            async fn account_holdings(
                &mut self,
                account_id: dashtam_domain::ledger::AccountId,
            ) -> Result<Vec<dashtam_domain::ledger::Holding>, dashtam_domain::ports::StoreError> {
                let rows: Vec<$crate::ledger_rows::HoldingRow> = sqlx::query_as(concat!(
                    "SELECT ",
                    $crate::ledger_queries::holding_columns!(),
                    " FROM holdings WHERE account_id = $1 ORDER BY symbol"
                ))
                .bind(account_id.as_uuid())
                .fetch_all(&mut *self.tx)
                .await
                .map_err($crate::errors::store_error)?;
                rows.into_iter().map(TryInto::try_into).collect()
            }

            async fn put_holding(
                &mut self,
                holding: &dashtam_domain::ledger::Holding,
                now: time::OffsetDateTime,
            ) -> Result<(), dashtam_domain::ports::StoreError> {
                use $crate::ledger_rows::DbDecimal;
                sqlx::query(concat!(
                    "INSERT INTO holdings (",
                    $crate::ledger_queries::holding_columns!(),
                    ", created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14) \
                     ON CONFLICT (account_id, symbol) DO UPDATE SET name = excluded.name, \
                       asset_type = excluded.asset_type, quantity = excluded.quantity, \
                       average_cost = excluded.average_cost, price = excluded.price, \
                       market_value = excluded.market_value, currency = excluded.currency, \
                       is_open = excluded.is_open, as_of = excluded.as_of, updated_at = excluded.updated_at"
                ))
                .bind(holding.id.as_uuid())
                .bind(holding.account_id.as_uuid())
                .bind(holding.user_id.as_uuid())
                .bind(holding.symbol.as_str())
                .bind(holding.name.as_deref())
                .bind(holding.asset_type.as_str())
                .bind(DbDecimal(holding.quantity))
                .bind(holding.average_cost.map(DbDecimal))
                .bind(holding.price.map(DbDecimal))
                .bind(DbDecimal(holding.market_value))
                .bind(holding.currency.as_str())
                .bind(holding.is_open)
                .bind($crate::rows::utc(holding.as_of))
                .bind($crate::rows::utc(now))
                .execute(&mut *self.tx)
                .await
                .map_err($crate::errors::store_error)?;
                Ok(())
            }

            async fn account_transactions(
                &mut self,
                account_id: dashtam_domain::ledger::AccountId,
            ) -> Result<Vec<dashtam_domain::ledger::Transaction>, dashtam_domain::ports::StoreError> {
                let rows: Vec<$crate::ledger_rows::TransactionRow> = sqlx::query_as(concat!(
                    "SELECT ",
                    $crate::ledger_queries::transaction_columns!(),
                    " FROM transactions WHERE account_id = $1 ORDER BY posted_on, id"
                ))
                .bind(account_id.as_uuid())
                .fetch_all(&mut *self.tx)
                .await
                .map_err($crate::errors::store_error)?;
                rows.into_iter().map(TryInto::try_into).collect()
            }

            async fn account_transaction_ids(
                &mut self,
                account_id: dashtam_domain::ledger::AccountId,
            ) -> Result<Vec<String>, dashtam_domain::ports::StoreError> {
                sqlx::query_scalar("SELECT provider_transaction_id FROM transactions WHERE account_id = $1")
                    .bind(account_id.as_uuid())
                    .fetch_all(&mut *self.tx)
                    .await
                    .map_err($crate::errors::store_error)
            }

            async fn insert_transactions(
                &mut self,
                transactions: &[dashtam_domain::ledger::Transaction],
            ) -> Result<(), dashtam_domain::ports::StoreError> {
                use $crate::ledger_rows::DbDecimal;
                const COLUMNS: usize = 20;
                for batch in transactions.chunks(<$db as $crate::ledger_rows::InsertBatch>::TRANSACTION_ROWS) {
                    let mut sql = String::with_capacity(64 + batch.len() * COLUMNS * 7);
                    sql.push_str(concat!(
                        "INSERT INTO transactions (",
                        $crate::ledger_queries::transaction_columns!(),
                        ") VALUES "
                    ));
                    for row in 0..batch.len() {
                        if row > 0 {
                            sql.push_str(", ");
                        }
                        sql.push('(');
                        for column in 0..COLUMNS {
                            if column > 0 {
                                sql.push_str(", ");
                            }
                            <$db as $crate::ledger_rows::InsertBatch>::push_placeholder(
                                &mut sql,
                                row * COLUMNS + column + 1,
                            );
                        }
                        sql.push(')');
                    }
                    let mut query = sqlx::query::<$db>(&sql);
                    for transaction in batch {
                        query = query
                            .bind(transaction.id.as_uuid())
                            .bind(transaction.account_id.as_uuid())
                            .bind(transaction.user_id.as_uuid())
                            .bind(transaction.provider_transaction_id.as_str())
                            .bind(transaction.posted_on)
                            .bind(transaction.posted_at.map($crate::rows::utc))
                            .bind(DbDecimal(transaction.amount))
                            .bind(transaction.currency.as_str())
                            .bind(transaction.description.as_str())
                            .bind(transaction.payee.as_deref())
                            .bind(transaction.memo.as_deref())
                            .bind(transaction.transaction_type.as_str())
                            .bind(transaction.subtype.map(|subtype| subtype.as_str()))
                            .bind(transaction.status.as_str())
                            .bind(transaction.symbol.as_deref())
                            .bind(transaction.quantity.map(DbDecimal))
                            .bind(transaction.unit_price.map(DbDecimal))
                            .bind(transaction.fees.map(DbDecimal))
                            .bind($crate::rows::utc(transaction.created_at))
                            .bind($crate::rows::utc(transaction.updated_at));
                    }
                    query.execute(&mut *self.tx).await.map_err($crate::errors::store_error)?;
                }
                Ok(())
            }

            async fn update_transaction(
                &mut self,
                transaction: &dashtam_domain::ledger::Transaction,
            ) -> Result<(), dashtam_domain::ports::StoreError> {
                use $crate::ledger_rows::DbDecimal;
                sqlx::query(
                    "UPDATE transactions SET provider_transaction_id = $2, posted_on = $3, posted_at = $4, \
                       amount = $5, currency = $6, description = $7, payee = $8, memo = $9, \
                       transaction_type = $10, subtype = $11, status = $12, symbol = $13, quantity = $14, \
                       unit_price = $15, fees = $16, updated_at = $17 WHERE id = $1",
                )
                .bind(transaction.id.as_uuid())
                .bind(transaction.provider_transaction_id.as_str())
                .bind(transaction.posted_on)
                .bind(transaction.posted_at.map($crate::rows::utc))
                .bind(DbDecimal(transaction.amount))
                .bind(transaction.currency.as_str())
                .bind(transaction.description.as_str())
                .bind(transaction.payee.as_deref())
                .bind(transaction.memo.as_deref())
                .bind(transaction.transaction_type.as_str())
                .bind(transaction.subtype.map(|subtype| subtype.as_str()))
                .bind(transaction.status.as_str())
                .bind(transaction.symbol.as_deref())
                .bind(transaction.quantity.map(DbDecimal))
                .bind(transaction.unit_price.map(DbDecimal))
                .bind(transaction.fees.map(DbDecimal))
                .bind($crate::rows::utc(transaction.updated_at))
                .execute(&mut *self.tx)
                .await
                .map_err($crate::errors::store_error)?;
                Ok(())
            }

            async fn insert_balance_snapshot(
                &mut self,
                user_id: dashtam_domain::UserId,
                snapshot: &dashtam_domain::ledger::BalanceSnapshot,
            ) -> Result<(), dashtam_domain::ports::StoreError> {
                use $crate::ledger_rows::DbDecimal;
                sqlx::query(
                    "INSERT INTO balance_snapshots \
                       (id, account_id, user_id, as_of, balance, available_balance, currency, source) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(uuid::Uuid::now_v7())
                .bind(snapshot.account_id.as_uuid())
                .bind(user_id.as_uuid())
                .bind($crate::rows::utc(snapshot.as_of))
                .bind(DbDecimal(snapshot.balance))
                .bind(snapshot.available_balance.map(DbDecimal))
                .bind(snapshot.currency.as_str())
                .bind(snapshot.source.as_str())
                .execute(&mut *self.tx)
                .await
                .map_err($crate::errors::store_error)?;
                Ok(())
            }

            async fn mark_account_synced(
                &mut self,
                account_id: dashtam_domain::ledger::AccountId,
                now: time::OffsetDateTime,
            ) -> Result<(), dashtam_domain::ports::StoreError> {
                sqlx::query("UPDATE accounts SET last_synced_at = $2 WHERE id = $1")
                    .bind(account_id.as_uuid())
                    .bind($crate::rows::utc(now))
                    .execute(&mut *self.tx)
                    .await
                    .map_err($crate::errors::store_error)?;
                Ok(())
            }
        }
    };
}

pub(crate) use {account_columns, bind_all, holding_columns, impl_ledger_ports, snapshot_columns, transaction_columns};
