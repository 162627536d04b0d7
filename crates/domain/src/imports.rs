//! Statement imports: a parsed OFX/QFX/CSV file stored all-or-nothing in one transaction with its audit entry.
//!
//! A transaction's identity is its `FITID` when the file has one; otherwise a fingerprint of account, date,
//! amount and payee (or description) plus its ordinal among identical rows of the same file, so importing a
//! file again creates nothing while two genuine identical purchases on one day are both kept.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use time::{OffsetDateTime, Time};

use crate::audit::{AuditAction, AuditEvent, AuditLog, AuditOutcome};
use crate::clock::Clock;
use crate::context::RequestContext;
use crate::finance::TransactionStatus;
use crate::ids::UserId;
use crate::ledger::{
    Account, AccountFilter, AccountId, AccountUpsert, BalanceSnapshot, Holding, HoldingId, SnapshotSource, Transaction,
    TransactionId, Upserted,
};
use crate::ports::{Store, StoreError, StoreTx};
use crate::providers::{
    Alias, NewProvider, Provider, ProviderId, ProviderKey, ProviderListQuery, ProviderSort, ProviderStatus,
};
use crate::statement::{Statement, StatementAccount, StatementTransaction};

pub use crate::ids::ImportId;

/// Transactions written per call while importing.
const INSERT_CHUNK: usize = 2_000;

/// The alias of the connection that holds a user's imported accounts.
const IMPORTS_ALIAS: &str = "Statement imports";

/// A statement file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportFormat {
    /// OFX 1.x or 2.x.
    Ofx,
    /// Quicken's OFX.
    Qfx,
    /// Comma- (or otherwise) separated values.
    Csv,
}

impl ImportFormat {
    /// The stored and served text.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ofx => "ofx",
            Self::Qfx => "qfx",
            Self::Csv => "csv",
        }
    }

    /// The format named by `text`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "ofx" => Some(Self::Ofx),
            "qfx" => Some(Self::Qfx),
            "csv" => Some(Self::Csv),
            _ => None,
        }
    }
}

/// A finished import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportRecord {
    /// Its id.
    pub id: ImportId,
    /// Whose.
    pub user_id: UserId,
    /// The uploaded file's name.
    pub file_name: String,
    /// Its format.
    pub format: ImportFormat,
    /// Accounts created.
    pub accounts_created: u64,
    /// Accounts changed.
    pub accounts_updated: u64,
    /// Transactions created.
    pub transactions_created: u64,
    /// Transactions already stored (from an earlier import, or repeated within the file).
    pub transactions_duplicate: u64,
    /// Holdings created.
    pub holdings_created: u64,
    /// Holdings changed.
    pub holdings_updated: u64,
    /// Quirks the parser read past, and duplicates within the file.
    pub warnings: Vec<String>,
    /// When.
    pub created_at: OffsetDateTime,
}

/// Storing and listing import records.
#[async_trait]
pub trait ImportReads: Send + Sync {
    /// The user's imports, newest first.
    async fn imports(&self, user_id: UserId, limit: u32) -> Result<Vec<ImportRecord>, StoreError>;
}

/// Recording an import, inside its transaction.
#[async_trait]
pub trait ImportWrites: Send {
    /// Records a finished import.
    async fn insert_import(&mut self, record: &ImportRecord) -> Result<(), StoreError>;
}

/// Why an import was refused. Nothing is stored in any case.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The named account is not the caller's.
    #[error("account not found")]
    AccountNotFound,
    /// A file without account details (a CSV) needs an `account_id` to import into.
    #[error("this file does not say which account it is for; name one with account_id")]
    AccountRequired,
    /// The file holds no accounts.
    #[error("the file holds no statement")]
    Empty,
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Imports statements.
#[derive(Debug)]
pub struct ImportService {
    store: Arc<dyn Store>,
    audit: Arc<AuditLog>,
    clock: Arc<dyn Clock>,
}

/// One import to run.
#[derive(Debug)]
pub struct ImportRequest {
    /// Whose.
    pub user_id: UserId,
    /// The file's name.
    pub file_name: String,
    /// Its format.
    pub format: ImportFormat,
    /// The account to import into (required for files without account details).
    pub account_id: Option<AccountId>,
    /// The parsed file.
    pub statement: Statement,
}

impl ImportService {
    /// An import service over these ports.
    pub fn new(store: Arc<dyn Store>, audit: Arc<AuditLog>, clock: Arc<dyn Clock>) -> Self {
        Self { store, audit, clock }
    }

    /// The user's imports, newest first.
    pub async fn list(&self, user_id: UserId) -> Result<Vec<ImportRecord>, ImportError> {
        Ok(self.store.imports(user_id, 500).await?)
    }

    /// Audits a file that could not be imported (it failed to parse, or was refused); it is not listed.
    pub async fn record_failure(
        &self,
        user_id: UserId,
        file_name: &str,
        reason: &str,
        context: &RequestContext,
    ) -> Result<(), ImportError> {
        let event = AuditEvent::new(AuditAction::StatementImported, AuditOutcome::Failure)
            .user(user_id)
            .detail("file_name", truncate(file_name, 255))
            .detail("reason", truncate(reason, 300));
        self.audit.record(context, event).await?;
        Ok(())
    }

    /// Stores a parsed statement: every account, transaction, position and balance of it, the import record and
    /// its audit entry, in one transaction.
    pub async fn import(&self, request: ImportRequest, context: &RequestContext) -> Result<ImportRecord, ImportError> {
        let ImportRequest { user_id, file_name, format, account_id, statement } = request;
        if statement.accounts.is_empty() {
            return Err(ImportError::Empty);
        }
        let target = match account_id {
            Some(id) => Some(self.store.account(user_id, id).await?.ok_or(ImportError::AccountNotFound)?),
            None => None,
        };
        if target.is_none() && statement.accounts.iter().any(|account| account.account_id.is_empty()) {
            return Err(ImportError::AccountRequired);
        }
        let now = self.clock.now();
        let mut tx = self.store.begin_bulk().await?;
        let provider_id = match &target {
            Some(account) => account.provider_id,
            None => self.imports_connection(&mut tx, user_id, now).await?,
        };
        let mut record = ImportRecord {
            id: ImportId::generate(),
            user_id,
            file_name: truncate(&file_name, 255),
            format,
            accounts_created: 0,
            accounts_updated: 0,
            transactions_created: 0,
            transactions_duplicate: 0,
            holdings_created: 0,
            holdings_updated: 0,
            warnings: statement.warnings.clone(),
            created_at: now,
        };
        // Read once: a file may hold several accounts, each matched against what the connection already has.
        let existing = match &target {
            Some(_) => Vec::new(),
            None => {
                self.store
                    .accounts(user_id, &AccountFilter { provider_id: Some(provider_id), ..Default::default() })
                    .await?
            }
        };
        for account in &statement.accounts {
            let account_id = match &target {
                Some(target) => {
                    tx.upsert_account(&AccountUpsert {
                        user_id,
                        provider_id,
                        provider_account_id: &target.provider_account_id,
                        name: &target.name,
                        account_type: target.account_type,
                        number_masked: target.number_masked.as_deref(),
                        currency: target.currency,
                        balance: account.balance.map_or(target.balance, |balance| balance.amount),
                        available_balance: account
                            .available_balance
                            .map(|balance| balance.amount)
                            .or(target.available_balance),
                        now,
                    })
                    .await?;
                    target.id
                }
                None => {
                    let (id, upserted) =
                        self.upsert_statement_account(&mut tx, user_id, provider_id, &existing, account, now).await?;
                    match upserted {
                        Upserted::Created => record.accounts_created += 1,
                        Upserted::Updated => record.accounts_updated += 1,
                        Upserted::Unchanged => {}
                    }
                    id
                }
            };
            self.store_transactions(&mut tx, user_id, account_id, account, now, &mut record).await?;
            self.store_positions(&mut tx, user_id, account_id, account, now, &mut record).await?;
            if let Some(balance) = account.balance {
                let snapshot = BalanceSnapshot {
                    account_id,
                    as_of: balance.as_of.with_time(Time::MIDNIGHT).assume_utc(),
                    balance: balance.amount,
                    available_balance: account.available_balance.map(|available| available.amount),
                    currency: account.currency,
                    source: SnapshotSource::Import,
                };
                tx.insert_balance_snapshot(user_id, &snapshot).await?;
            }
        }
        tx.insert_import(&record).await?;
        let event = AuditEvent::new(AuditAction::StatementImported, AuditOutcome::Success)
            .user(user_id)
            .resource("import", record.id)
            .detail("file_name", record.file_name.clone())
            .detail("format", format.as_str())
            .detail("accounts_created", record.accounts_created)
            .detail("transactions_created", record.transactions_created)
            .detail("transactions_duplicate", record.transactions_duplicate);
        self.audit.append(&mut tx, context, event).await?;
        tx.commit().await?;
        Ok(record)
    }

    /// The user's `file_import` connection that holds imported accounts, created (active) on first use.
    async fn imports_connection(
        &self,
        tx: &mut Box<dyn StoreTx>,
        user_id: UserId,
        now: OffsetDateTime,
    ) -> Result<ProviderId, ImportError> {
        let query = ProviderListQuery {
            user_id,
            status: None,
            provider_key: Some(ProviderKey::FileImport),
            sort: ProviderSort::CreatedAt,
            descending: false,
            offset: 0,
            limit: 1,
        };
        if let Some(existing) = self.store.providers(&query).await?.items.first() {
            return Ok(existing.id);
        }
        let id = ProviderId::generate();
        // A user may already use the default alias for something else; the id keeps this one unique.
        let alias = Alias::parse(IMPORTS_ALIAS).map_err(|_| StoreError::Corrupt("imports alias".into()))?;
        let new = NewProvider { id, user_id, provider_key: ProviderKey::FileImport, alias, created_at: now };
        let created: Result<Provider, StoreError> = tx.insert_provider(&new).await;
        match created {
            Ok(_) => {}
            Err(StoreError::Conflict(_)) => {
                let alias = Alias::parse(&format!("{IMPORTS_ALIAS} {}", &id.to_string()[..8]))
                    .map_err(|_| StoreError::Corrupt("imports alias".into()))?;
                tx.insert_provider(&NewProvider { alias, ..new }).await?;
            }
            Err(other) => return Err(other.into()),
        }
        tx.set_provider_status(id, ProviderStatus::Active, true, now).await?;
        Ok(id)
    }

    async fn upsert_statement_account(
        &self,
        tx: &mut Box<dyn StoreTx>,
        user_id: UserId,
        provider_id: ProviderId,
        existing: &[Account],
        account: &StatementAccount,
        now: OffsetDateTime,
    ) -> Result<(AccountId, Upserted), ImportError> {
        let institution = account.institution.as_deref().unwrap_or("unknown");
        // The account number is never stored in full: the key is a digest of it, the display its last four.
        let key = format!("ofx:{}", &hex(&Sha256::digest(format!("{institution}\u{0}{}", account.account_id)))[..32]);
        let last_four: String =
            account.account_id.chars().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect();
        let masked = format!("••••{last_four}");
        let name = format!("{institution} {} ••••{last_four}", account.account_type.as_str().replace('_', " "));
        let balance = account.balance.map(|balance| balance.amount);
        let previous = existing.iter().find(|stored| stored.provider_account_id == key);
        let upsert = AccountUpsert {
            user_id,
            provider_id,
            provider_account_id: &key,
            name: previous.map_or(name.as_str(), |stored| stored.name.as_str()),
            account_type: account.account_type,
            number_masked: Some(&masked),
            currency: account.currency,
            balance: balance.or(previous.map(|stored| stored.balance)).unwrap_or_default(),
            available_balance: account.available_balance.map(|available| available.amount),
            now,
        };
        Ok(tx.upsert_account(&upsert).await?)
    }

    async fn store_transactions(
        &self,
        tx: &mut Box<dyn StoreTx>,
        user_id: UserId,
        account_id: AccountId,
        account: &StatementAccount,
        now: OffsetDateTime,
        record: &mut ImportRecord,
    ) -> Result<(), ImportError> {
        let stored: HashSet<String> = tx.account_transaction_ids(account_id).await?.into_iter().collect();
        let identities = identities(account_id, &account.transactions);
        let mut in_file = HashSet::new();
        // Written in chunks, so a 100,000-line file never holds a second full copy of itself in memory.
        let mut inserts = Vec::with_capacity(INSERT_CHUNK);
        for (line, identity) in account.transactions.iter().zip(identities) {
            if !in_file.insert(identity.clone()) {
                record.transactions_duplicate += 1;
                record.warnings.push(format!("line {}: FITID repeated in this file; imported once", line.line));
                continue;
            }
            if stored.contains(&identity) {
                record.transactions_duplicate += 1;
                continue;
            }
            inserts.push(Transaction {
                id: TransactionId::generate(),
                account_id,
                user_id,
                provider_transaction_id: identity,
                posted_on: line.posted_on,
                posted_at: line.posted_at,
                amount: line.amount,
                currency: account.currency,
                description: line.description.clone(),
                payee: line.payee.clone(),
                memo: line.memo.clone(),
                transaction_type: line.transaction_type,
                subtype: line.subtype,
                status: TransactionStatus::Posted,
                symbol: line.symbol.clone(),
                quantity: line.quantity,
                unit_price: line.unit_price,
                fees: line.fees,
                created_at: now,
                updated_at: now,
            });
            if inserts.len() == INSERT_CHUNK {
                record.transactions_created += inserts.len() as u64;
                tx.insert_transactions(&inserts).await?;
                inserts.clear();
            }
        }
        record.transactions_created += inserts.len() as u64;
        tx.insert_transactions(&inserts).await?;
        Ok(())
    }

    async fn store_positions(
        &self,
        tx: &mut Box<dyn StoreTx>,
        user_id: UserId,
        account_id: AccountId,
        account: &StatementAccount,
        now: OffsetDateTime,
        record: &mut ImportRecord,
    ) -> Result<(), ImportError> {
        if account.positions.is_empty() {
            return Ok(());
        }
        let existing: HashMap<String, Holding> = tx
            .account_holdings(account_id)
            .await?
            .into_iter()
            .map(|holding| (holding.symbol.clone(), holding))
            .collect();
        for position in &account.positions {
            let stored = existing.get(&position.symbol);
            let holding = Holding {
                id: stored.map_or_else(HoldingId::generate, |stored| stored.id),
                account_id,
                user_id,
                symbol: position.symbol.clone(),
                name: position.name.clone(),
                asset_type: position.asset_type,
                quantity: position.quantity,
                average_cost: stored.and_then(|stored| stored.average_cost),
                price: position.unit_price,
                market_value: position.market_value,
                currency: account.currency,
                is_open: true,
                as_of: position.as_of.with_time(Time::MIDNIGHT).assume_utc(),
            };
            match stored {
                None => record.holdings_created += 1,
                Some(stored)
                    if stored.is_open
                        && stored.quantity == holding.quantity
                        && stored.price == holding.price
                        && stored.market_value == holding.market_value =>
                {
                    continue;
                }
                Some(_) => record.holdings_updated += 1,
            }
            tx.put_holding(&holding, now).await?;
        }
        Ok(())
    }
}

/// Each line's identity: `fitid:<FITID>`, or `fp:<digest>:<n>` where the digest covers account, date, amount and
/// payee/description and `n` counts identical rows of this file in order, so twins stay apart.
fn identities(account_id: AccountId, transactions: &[StatementTransaction]) -> Vec<String> {
    let mut ordinals: HashMap<String, u32> = HashMap::new();
    transactions
        .iter()
        .map(|line| match line.fitid.as_deref().map(str::trim).filter(|fitid| !fitid.is_empty()) {
            Some(fitid) => format!("fitid:{}", truncate(fitid, 255)),
            None => {
                let who = line.payee.as_deref().unwrap_or(&line.description).trim().to_lowercase();
                let material =
                    format!("{}\u{0}{}\u{0}{}\u{0}{who}", account_id, line.posted_on, line.amount.normalize());
                let digest = hex(&Sha256::digest(material.as_bytes()))[..24].to_owned();
                let ordinal = ordinals.entry(digest.clone()).or_insert(0);
                *ordinal += 1;
                format!("fp:{digest}:{ordinal}")
            }
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn truncate(text: &str, max_chars: usize) -> String {
    text.chars().take(max_chars).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finance::TransactionType;
    use crate::money::Decimal;
    use time::macros::date;

    fn line(fitid: Option<&str>, amount: i64, payee: &str, line: usize) -> StatementTransaction {
        StatementTransaction {
            fitid: fitid.map(str::to_owned),
            posted_on: date!(2026 - 11 - 20),
            posted_at: None,
            amount: Decimal::new(amount, 2),
            description: "POS".to_owned(),
            payee: Some(payee.to_owned()),
            memo: None,
            transaction_type: TransactionType::Spending,
            subtype: None,
            symbol: None,
            quantity: None,
            unit_price: None,
            fees: None,
            line,
        }
    }

    #[test]
    fn twins_get_ordinals_and_fitids_win() {
        let account = AccountId::generate();
        let lines = [
            line(None, -450, "Coffee", 1),
            line(None, -450, "coffee ", 2),
            line(Some("F1"), -450, "Coffee", 3),
            line(None, -451, "Coffee", 4),
        ];
        let ids = identities(account, &lines);
        assert_eq!(ids[0].rsplit(':').next(), Some("1"));
        assert_eq!(ids[1].rsplit(':').next(), Some("2"));
        assert_eq!(ids[0][..ids[0].len() - 2], ids[1][..ids[1].len() - 2], "same fingerprint, another ordinal");
        assert_eq!(ids[2], "fitid:F1");
        assert!(ids[3].ends_with(":1") && ids[3] != ids[0]);
        // The same file again yields the same identities; another account, different ones.
        assert_eq!(identities(account, &lines), ids);
        assert_ne!(identities(AccountId::generate(), &lines)[0], ids[0]);
    }
}
