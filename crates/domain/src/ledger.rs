//! The stored financial data: accounts, holdings, transactions and balance snapshots, with the storage ports
//! that read and write them. Every read names the owner: ownership is part of every query.

use async_trait::async_trait;
use time::{Date, OffsetDateTime};

use crate::finance::{AccountType, AssetType, TransactionStatus, TransactionSubtype, TransactionType};
use crate::ids::UserId;
use crate::money::{Currency, Decimal};
use crate::ports::StoreError;
use crate::providers::ProviderId;

pub use crate::ids::{AccountId, HoldingId, TransactionId};

/// An account as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Its id.
    pub id: AccountId,
    /// Its owner.
    pub user_id: UserId,
    /// The connection it came from.
    pub provider_id: ProviderId,
    /// The provider's (or the statement file's) stable identifier.
    pub provider_account_id: String,
    /// A name for people.
    pub name: String,
    /// Its kind.
    pub account_type: AccountType,
    /// The last characters of its number, masked.
    pub number_masked: Option<String>,
    /// Its currency.
    pub currency: Currency,
    /// Signed from the owner's side: negative when money is owed.
    pub balance: Decimal,
    /// Money available, when known.
    pub available_balance: Option<Decimal>,
    /// Whether the provider still reports it.
    pub is_active: bool,
    /// When a sync last updated it.
    pub last_synced_at: Option<OffsetDateTime>,
    /// When it was first stored.
    pub created_at: OffsetDateTime,
    /// When it last changed.
    pub updated_at: OffsetDateTime,
}

/// A position as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holding {
    /// Its id.
    pub id: HoldingId,
    /// The account holding it.
    pub account_id: AccountId,
    /// Its owner.
    pub user_id: UserId,
    /// The ticker or identifier.
    pub symbol: String,
    /// The security's name.
    pub name: Option<String>,
    /// Its kind.
    pub asset_type: AssetType,
    /// Units held.
    pub quantity: Decimal,
    /// Average cost per unit.
    pub average_cost: Option<Decimal>,
    /// Latest price per unit.
    pub price: Option<Decimal>,
    /// Market value.
    pub market_value: Decimal,
    /// The currency of the amounts.
    pub currency: Currency,
    /// `false` once a sync no longer reports it.
    pub is_open: bool,
    /// When the values were reported.
    pub as_of: OffsetDateTime,
}

impl Holding {
    /// Quantity × average cost, when the cost is known.
    pub fn cost_basis(&self) -> Option<Decimal> {
        self.average_cost.map(|cost| (cost * self.quantity).round_dp(2))
    }

    /// Market value − cost basis, when the cost is known.
    pub fn unrealized_gain(&self) -> Option<Decimal> {
        self.cost_basis().map(|basis| self.market_value - basis)
    }

    /// The gain as a percentage of the cost basis, when both are known and the basis is not zero.
    pub fn unrealized_gain_pct(&self) -> Option<Decimal> {
        let basis = self.cost_basis().filter(|basis| !basis.is_zero())?;
        let gain = self.unrealized_gain()?;
        gain.checked_div(basis.abs()).map(|ratio| (ratio * Decimal::ONE_HUNDRED).round_dp(2))
    }
}

/// A transaction as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    /// Its id.
    pub id: TransactionId,
    /// Its account.
    pub account_id: AccountId,
    /// Its owner.
    pub user_id: UserId,
    /// The provider's id (or the import's fingerprint).
    pub provider_transaction_id: String,
    /// The posting date.
    pub posted_on: Date,
    /// The moment, when known.
    pub posted_at: Option<OffsetDateTime>,
    /// Signed: money in is positive.
    pub amount: Decimal,
    /// The currency.
    pub currency: Currency,
    /// Description.
    pub description: String,
    /// Payee.
    pub payee: Option<String>,
    /// Memo.
    pub memo: Option<String>,
    /// Broad kind.
    pub transaction_type: TransactionType,
    /// Finer kind.
    pub subtype: Option<TransactionSubtype>,
    /// Pending or posted.
    pub status: TransactionStatus,
    /// Security, for trades and income.
    pub symbol: Option<String>,
    /// Units, for trades.
    pub quantity: Option<Decimal>,
    /// Price per unit, for trades.
    pub unit_price: Option<Decimal>,
    /// Fees, for trades.
    pub fees: Option<Decimal>,
    /// When it was first stored.
    pub created_at: OffsetDateTime,
    /// When it last changed.
    pub updated_at: OffsetDateTime,
}

/// Where a balance snapshot came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotSource {
    /// A provider sync.
    Sync,
    /// A statement import.
    Import,
}

impl SnapshotSource {
    /// The stored and served text.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sync => "sync",
            Self::Import => "import",
        }
    }

    /// The source named by `text`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "sync" => Some(Self::Sync),
            "import" => Some(Self::Import),
            _ => None,
        }
    }
}

/// An account's balance at a moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BalanceSnapshot {
    /// Its account.
    pub account_id: AccountId,
    /// When.
    pub as_of: OffsetDateTime,
    /// Signed balance.
    pub balance: Decimal,
    /// Available balance, when known.
    pub available_balance: Option<Decimal>,
    /// The currency.
    pub currency: Currency,
    /// Where it came from.
    pub source: SnapshotSource,
}

/// Which accounts to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountFilter {
    /// Only from this connection.
    pub provider_id: Option<ProviderId>,
    /// Only of this kind.
    pub account_type: Option<AccountType>,
}

/// Which open holdings to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HoldingFilter {
    /// Only in this account.
    pub account_id: Option<AccountId>,
    /// Only of this kind.
    pub asset_type: Option<AssetType>,
}

/// A page of transactions, newest first (by posting date, then id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionQuery {
    /// Whose.
    pub user_id: UserId,
    /// Only in this account.
    pub account_id: Option<AccountId>,
    /// Posted on or after.
    pub from: Option<Date>,
    /// Posted on or before.
    pub to: Option<Date>,
    /// Only of this kind.
    pub transaction_type: Option<TransactionType>,
    /// Amount at least (signed).
    pub min_amount: Option<Decimal>,
    /// Amount at most (signed).
    pub max_amount: Option<Decimal>,
    /// Text contained in the description or payee (case-insensitive).
    pub text: Option<String>,
    /// Strictly after this position in the order (the previous page's last row).
    pub after: Option<(Date, TransactionId)>,
    /// Rows to return.
    pub limit: u32,
}

/// Reading financial data. Every method names the owner.
#[async_trait]
pub trait LedgerReads: Send + Sync {
    /// The user's accounts matching `filter`, oldest first.
    async fn accounts(&self, user_id: UserId, filter: &AccountFilter) -> Result<Vec<Account>, StoreError>;

    /// The user's account with this id.
    async fn account(&self, user_id: UserId, id: AccountId) -> Result<Option<Account>, StoreError>;

    /// The user's open holdings matching `filter`.
    async fn holdings(&self, user_id: UserId, filter: &HoldingFilter) -> Result<Vec<Holding>, StoreError>;

    /// A page of the user's transactions.
    async fn transactions(&self, query: &TransactionQuery) -> Result<Vec<Transaction>, StoreError>;

    /// The user's transaction with this id.
    async fn transaction(&self, user_id: UserId, id: TransactionId) -> Result<Option<Transaction>, StoreError>;

    /// The user's balance snapshots (of one account, or all) with `as_of` in `[from, to)`, oldest first;
    /// `None` bounds are open.
    async fn balance_snapshots(
        &self,
        user_id: UserId,
        account_id: Option<AccountId>,
        from: Option<OffsetDateTime>,
        to: Option<OffsetDateTime>,
    ) -> Result<Vec<BalanceSnapshot>, StoreError>;

    /// Each of the user's accounts' newest snapshot before `before` (the balance carried into a series).
    async fn latest_snapshots_before(
        &self,
        user_id: UserId,
        before: OffsetDateTime,
    ) -> Result<Vec<BalanceSnapshot>, StoreError>;
}

/// An account to create or update from a provider's report (matched by connection and provider account id).
#[derive(Debug, Clone)]
pub struct AccountUpsert<'a> {
    /// Owner.
    pub user_id: UserId,
    /// Connection.
    pub provider_id: ProviderId,
    /// The provider's id for it.
    pub provider_account_id: &'a str,
    /// Name.
    pub name: &'a str,
    /// Kind.
    pub account_type: AccountType,
    /// Masked number.
    pub number_masked: Option<&'a str>,
    /// Currency.
    pub currency: Currency,
    /// Balance.
    pub balance: Decimal,
    /// Available balance.
    pub available_balance: Option<Decimal>,
    /// Now.
    pub now: OffsetDateTime,
}

/// Whether an upsert created a row, changed one, or found it identical.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upserted {
    /// A new row.
    Created,
    /// An existing row changed.
    Updated,
    /// An existing row was already identical.
    Unchanged,
}

/// Writing financial data, inside a transaction.
#[async_trait]
pub trait LedgerWrites: Send {
    /// Creates or updates an account; returns its id and what happened.
    async fn upsert_account(&mut self, account: &AccountUpsert<'_>) -> Result<(AccountId, Upserted), StoreError>;

    /// The account's holdings, open or closed.
    async fn account_holdings(&mut self, account_id: AccountId) -> Result<Vec<Holding>, StoreError>;

    /// Creates or replaces a holding (matched by account and symbol).
    async fn put_holding(&mut self, holding: &Holding, now: OffsetDateTime) -> Result<(), StoreError>;

    /// The account's transactions by provider id (for matching a sync's report against what is stored).
    async fn account_transactions(&mut self, account_id: AccountId) -> Result<Vec<Transaction>, StoreError>;

    /// The provider ids of the account's transactions (for telling new lines from known ones cheaply).
    async fn account_transaction_ids(&mut self, account_id: AccountId) -> Result<Vec<String>, StoreError>;

    /// Stores new transactions.
    async fn insert_transactions(&mut self, transactions: &[Transaction]) -> Result<(), StoreError>;

    /// Replaces a stored transaction's fields (matched by id).
    async fn update_transaction(&mut self, transaction: &Transaction) -> Result<(), StoreError>;

    /// Records a balance snapshot.
    async fn insert_balance_snapshot(&mut self, user_id: UserId, snapshot: &BalanceSnapshot) -> Result<(), StoreError>;

    /// Stamps the account as synced now.
    async fn mark_account_synced(&mut self, account_id: AccountId, now: OffsetDateTime) -> Result<(), StoreError>;
}
