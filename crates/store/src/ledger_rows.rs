//! Financial-data row shapes, the money column type, and their conversion into domain values (see
//! [`crate::rows`]).

use std::str::FromStr;

use dashtam_domain::UserId;
use dashtam_domain::finance::{AccountType, AssetType, TransactionStatus, TransactionSubtype, TransactionType};
use dashtam_domain::ledger::{Account, AccountId, BalanceSnapshot, Holding, HoldingId, SnapshotSource, Transaction};
use dashtam_domain::money::Currency;
use dashtam_domain::ports::StoreError;
use dashtam_domain::providers::ProviderId;
use rust_decimal::Decimal;
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::{Decode, Encode, Postgres, Sqlite, Type};
use time::{Date, OffsetDateTime};
use uuid::Uuid;

/// A money or quantity column. SQLite keeps it as exact decimal text (`Decimal`'s own `Display`, which keeps
/// the scale), PostgreSQL as `NUMERIC`; with this one type the SQL text is the same on both. Stored text that
/// is not a decimal fails to decode, which [`crate::errors::store_error`] reports as corrupt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DbDecimal(pub(crate) Decimal);

impl Type<Sqlite> for DbDecimal {
    fn type_info() -> sqlx::sqlite::SqliteTypeInfo {
        <String as Type<Sqlite>>::type_info()
    }

    fn compatible(ty: &sqlx::sqlite::SqliteTypeInfo) -> bool {
        <String as Type<Sqlite>>::compatible(ty)
    }
}

impl<'q> Encode<'q, Sqlite> for DbDecimal {
    fn encode_by_ref(&self, buf: &mut Vec<sqlx::sqlite::SqliteArgumentValue<'q>>) -> Result<IsNull, BoxDynError> {
        <String as Encode<'q, Sqlite>>::encode(self.0.to_string(), buf)
    }
}

impl<'r> Decode<'r, Sqlite> for DbDecimal {
    fn decode(value: sqlx::sqlite::SqliteValueRef<'r>) -> Result<Self, BoxDynError> {
        let text = <&str as Decode<'r, Sqlite>>::decode(value)?;
        Decimal::from_str(text).map(DbDecimal).map_err(|error| format!("not a decimal: {error}").into())
    }
}

impl Type<Postgres> for DbDecimal {
    fn type_info() -> sqlx::postgres::PgTypeInfo {
        <Decimal as Type<Postgres>>::type_info()
    }

    fn compatible(ty: &sqlx::postgres::PgTypeInfo) -> bool {
        <Decimal as Type<Postgres>>::compatible(ty)
    }
}

impl Encode<'_, Postgres> for DbDecimal {
    fn encode_by_ref(&self, buf: &mut sqlx::postgres::PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <Decimal as Encode<'_, Postgres>>::encode_by_ref(&self.0, buf)
    }
}

impl<'r> Decode<'r, Postgres> for DbDecimal {
    fn decode(value: sqlx::postgres::PgValueRef<'r>) -> Result<Self, BoxDynError> {
        <Decimal as Decode<'r, Postgres>>::decode(value).map(DbDecimal)
    }
}

fn currency(text: &str, corrupt: impl Fn(&str) -> StoreError) -> Result<Currency, StoreError> {
    Currency::parse(text).map_err(|_| corrupt("currency"))
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct AccountRow {
    id: Uuid,
    user_id: Uuid,
    provider_id: Uuid,
    provider_account_id: String,
    name: String,
    account_type: String,
    number_masked: Option<String>,
    currency: String,
    balance: DbDecimal,
    available_balance: Option<DbDecimal>,
    is_active: bool,
    last_synced_at: Option<OffsetDateTime>,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

impl TryFrom<AccountRow> for Account {
    type Error = StoreError;

    fn try_from(row: AccountRow) -> Result<Self, Self::Error> {
        let corrupt = |what: &str| StoreError::Corrupt(format!("account {}: {what}", row.id));
        Ok(Account {
            id: AccountId::from_uuid(row.id),
            user_id: UserId::from_uuid(row.user_id),
            provider_id: ProviderId::from_uuid(row.provider_id),
            provider_account_id: row.provider_account_id,
            name: row.name,
            account_type: AccountType::parse_lenient(&row.account_type),
            number_masked: row.number_masked,
            currency: currency(&row.currency, corrupt)?,
            balance: row.balance.0,
            available_balance: row.available_balance.map(|value| value.0),
            is_active: row.is_active,
            last_synced_at: row.last_synced_at,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct HoldingRow {
    id: Uuid,
    account_id: Uuid,
    user_id: Uuid,
    symbol: String,
    name: Option<String>,
    asset_type: String,
    quantity: DbDecimal,
    average_cost: Option<DbDecimal>,
    price: Option<DbDecimal>,
    market_value: DbDecimal,
    currency: String,
    is_open: bool,
    as_of: OffsetDateTime,
}

impl TryFrom<HoldingRow> for Holding {
    type Error = StoreError;

    fn try_from(row: HoldingRow) -> Result<Self, Self::Error> {
        let corrupt = |what: &str| StoreError::Corrupt(format!("holding {}: {what}", row.id));
        Ok(Holding {
            id: HoldingId::from_uuid(row.id),
            account_id: AccountId::from_uuid(row.account_id),
            user_id: UserId::from_uuid(row.user_id),
            symbol: row.symbol,
            name: row.name,
            asset_type: AssetType::parse_lenient(&row.asset_type),
            quantity: row.quantity.0,
            average_cost: row.average_cost.map(|value| value.0),
            price: row.price.map(|value| value.0),
            market_value: row.market_value.0,
            currency: currency(&row.currency, corrupt)?,
            is_open: row.is_open,
            as_of: row.as_of,
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct TransactionRow {
    id: Uuid,
    account_id: Uuid,
    user_id: Uuid,
    provider_transaction_id: String,
    posted_on: Date,
    posted_at: Option<OffsetDateTime>,
    amount: DbDecimal,
    currency: String,
    description: String,
    payee: Option<String>,
    memo: Option<String>,
    transaction_type: String,
    subtype: Option<String>,
    status: String,
    symbol: Option<String>,
    quantity: Option<DbDecimal>,
    unit_price: Option<DbDecimal>,
    fees: Option<DbDecimal>,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

impl TryFrom<TransactionRow> for Transaction {
    type Error = StoreError;

    fn try_from(row: TransactionRow) -> Result<Self, Self::Error> {
        let corrupt = |what: &str| StoreError::Corrupt(format!("transaction {}: {what}", row.id));
        Ok(Transaction {
            id: dashtam_domain::ledger::TransactionId::from_uuid(row.id),
            account_id: AccountId::from_uuid(row.account_id),
            user_id: UserId::from_uuid(row.user_id),
            provider_transaction_id: row.provider_transaction_id,
            posted_on: row.posted_on,
            posted_at: row.posted_at,
            amount: row.amount.0,
            currency: currency(&row.currency, corrupt)?,
            description: row.description,
            payee: row.payee,
            memo: row.memo,
            transaction_type: TransactionType::parse_lenient(&row.transaction_type),
            subtype: row.subtype.as_deref().map(TransactionSubtype::parse_lenient),
            status: TransactionStatus::parse(&row.status).ok_or_else(|| corrupt("status"))?,
            symbol: row.symbol,
            quantity: row.quantity.map(|value| value.0),
            unit_price: row.unit_price.map(|value| value.0),
            fees: row.fees.map(|value| value.0),
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct SnapshotRow {
    id: Uuid,
    account_id: Uuid,
    as_of: OffsetDateTime,
    balance: DbDecimal,
    available_balance: Option<DbDecimal>,
    currency: String,
    source: String,
}

impl TryFrom<SnapshotRow> for BalanceSnapshot {
    type Error = StoreError;

    fn try_from(row: SnapshotRow) -> Result<Self, Self::Error> {
        let corrupt = |what: &str| StoreError::Corrupt(format!("balance snapshot {}: {what}", row.id));
        Ok(BalanceSnapshot {
            account_id: AccountId::from_uuid(row.account_id),
            as_of: row.as_of,
            balance: row.balance.0,
            available_balance: row.available_balance.map(|value| value.0),
            currency: currency(&row.currency, corrupt)?,
            source: SnapshotSource::parse(&row.source).ok_or_else(|| corrupt("source"))?,
        })
    }
}

/// One value bound to a statement assembled at run time (filters present only when asked for, so each
/// statement the planner sees can use the indexes; a `$n IS NULL OR …` guard would hide them).
#[derive(Debug, Clone)]
pub(crate) enum Bind {
    Uuid(Uuid),
    Date(Date),
    Instant(crate::rows::StoredInstant),
    Decimal(DbDecimal),
    Text(String),
    Int(i64),
}

/// A `WHERE` clause built from optional filters, numbering its placeholders as it goes.
#[derive(Debug, Default)]
pub(crate) struct Conditions {
    pub(crate) sql: String,
    pub(crate) binds: Vec<Bind>,
}

impl Conditions {
    /// The placeholder for `value`, bound in order.
    pub(crate) fn bind(&mut self, value: Bind) -> String {
        self.binds.push(value);
        format!("${}", self.binds.len())
    }

    /// Adds `AND <condition>` (the first condition has no `AND`).
    pub(crate) fn and(&mut self, condition: &str) {
        if !self.sql.is_empty() {
            self.sql.push_str(" AND ");
        }
        self.sql.push_str(condition);
    }
}

/// `text` as a `LIKE … ESCAPE '\'` pattern that matches it anywhere, lower-cased (the column is lower-cased
/// too). SQLite's `lower()` folds ASCII only, so non-ASCII case differences match on PostgreSQL alone.
pub(crate) fn contains_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for character in text.to_lowercase().chars() {
        if matches!(character, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(character);
    }
    pattern.push('%');
    pattern
}

/// How a multi-row `INSERT` of transactions is written, per backend.
pub(crate) trait InsertBatch {
    /// How many rows one statement carries.
    const TRANSACTION_ROWS: usize;

    /// Appends the placeholder of the `index`-th (1-based) parameter.
    fn push_placeholder(sql: &mut String, index: usize);
}

impl InsertBatch for sqlx::Postgres {
    /// 500 × 20 columns = 10,000 binds, well under PostgreSQL's 65,535.
    const TRANSACTION_ROWS: usize = 500;

    fn push_placeholder(sql: &mut String, index: usize) {
        sql.push('$');
        sql.push_str(&index.to_string());
    }
}

impl InsertBatch for sqlx::Sqlite {
    /// 100 × 20 columns = 2,000 binds, well under SQLite's 32,766.
    const TRANSACTION_ROWS: usize = 100;

    /// Anonymous `?`, not `$n`: SQLite resolves a named parameter by walking its list of names
    /// (`sqlite3_bind_parameter_name`), which made binding quadratic in the parameter count — 500-row `$n`
    /// statements made a 100,000-row import take 27 s. Anonymous parameters are bound by position.
    fn push_placeholder(sql: &mut String, _index: usize) {
        sql.push('?');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(contains_pattern("Café 50%_off\\"), "%café 50\\%\\_off\\\\%");
    }
}
