//! The sync engine: reads a connection's accounts, positions and transactions from its provider and stores
//! them idempotently, one account per transaction, so a sync that fails half-way leaves every account either
//! fully updated or untouched. One sync per connection runs at a time across every instance (a shared lock);
//! a scheduler syncs active connections periodically, backing off after failures.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use time::{Date, OffsetDateTime};

use crate::audit::{AuditAction, AuditEvent, AuditLog, AuditOutcome};
use crate::clock::Clock;
use crate::connector::{ConnectorError, DateRange};
use crate::context::{Actor, RequestContext};
use crate::finance::{ProviderAccount, ProviderPosition, ProviderTransaction, TransactionStatus};
use crate::ids::UserId;
use crate::ledger::{
    AccountId, AccountUpsert, BalanceSnapshot, Holding, HoldingId, SnapshotSource, Transaction, TransactionId, Upserted,
};
use crate::ports::{BoxError, SharedState, Store, StoreError, StoreTx};
use crate::providers::{Provider, ProviderError, ProviderId, ProviderService, ProviderStatus, connector_reason};

/// How far back a connection's first sync reaches.
pub const FIRST_SYNC_DAYS: i64 = 365;
/// Later syncs start this many days before the previous one, so pending transactions that posted since are
/// seen again.
pub const SYNC_OVERLAP_DAYS: i64 = 7;
/// The longest range a caller may ask for.
pub const MAX_SYNC_RANGE_DAYS: i64 = 3 * 365;
/// A pending transaction that reappears posted under a new id without a link is matched to a stored pending
/// one of the same amount (and symbol) dated at most this many days earlier.
const PENDING_MATCH_DAYS: i64 = 5;
/// A sync holds its lock at most this long, so a crashed instance cannot block a connection for ever.
const SYNC_LOCK_TTL: Duration = Duration::from_secs(15 * 60);

/// When syncs run on their own.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SyncSchedule {
    /// Time between successful syncs of one connection.
    pub interval: Duration,
    /// Up to this fraction of the interval is added per connection, so connections do not all sync at once.
    pub jitter: f64,
    /// The first retry after a failure; each further failure doubles it, up to `interval`.
    pub retry_after: Duration,
}

impl Default for SyncSchedule {
    fn default() -> Self {
        Self { interval: Duration::from_secs(6 * 3600), jitter: 0.1, retry_after: Duration::from_secs(5 * 60) }
    }
}

impl SyncSchedule {
    /// When a connection syncs next after a success at `now`: the interval plus the connection's own share of
    /// the jitter (derived from its id, so it is stable and spread evenly).
    pub fn next_after_success(&self, id: ProviderId, now: OffsetDateTime) -> OffsetDateTime {
        let digest = Sha256::digest(id.as_uuid().as_bytes());
        let share = f64::from(u16::from_be_bytes([digest[0], digest[1]])) / f64::from(u16::MAX);
        now + self.interval.mul_f64(1.0 + self.jitter.clamp(0.0, 1.0) * share)
    }

    /// When a connection retries after its `failures`-th failure in a row: exponential, capped at the interval.
    pub fn next_after_failure(&self, failures: i32, now: OffsetDateTime) -> OffsetDateTime {
        let doublings = u32::try_from(failures.saturating_sub(1)).unwrap_or(0).min(20);
        let delay = self.retry_after.saturating_mul(1 << doublings).min(self.interval);
        now + delay
    }
}

/// Why a sync was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The connection is not usable (pending, revoked, needing reconnection, or a file-import connection).
    #[error("not connected")]
    NotConnected,
    /// Another sync of this connection is running.
    #[error("a sync of this provider is already running")]
    InProgress,
    /// The requested range is invalid.
    #[error("invalid range: {0}")]
    InvalidRange(&'static str),
    /// The providers service refused (not found, provider call failed, shared state down, …).
    #[error(transparent)]
    Provider(#[from] ProviderError),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Counts of what a sync created and changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncCounts {
    /// Accounts created.
    pub accounts_created: u64,
    /// Accounts changed.
    pub accounts_updated: u64,
    /// Holdings created.
    pub holdings_created: u64,
    /// Holdings changed.
    pub holdings_updated: u64,
    /// Holdings no longer reported, now closed.
    pub holdings_closed: u64,
    /// Transactions created.
    pub transactions_created: u64,
    /// Transactions changed (including pending ones that posted).
    pub transactions_updated: u64,
    /// Transactions reported again exactly as stored.
    pub transactions_unchanged: u64,
    /// Balance snapshots recorded (one per account).
    pub balances_recorded: u64,
}

/// What a finished sync did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncResult {
    /// The counts.
    pub counts: SyncCounts,
    /// When it started.
    pub started_at: OffsetDateTime,
    /// When it finished.
    pub finished_at: OffsetDateTime,
}

/// Syncs connections.
#[derive(Debug)]
pub struct SyncService {
    store: Arc<dyn Store>,
    audit: Arc<AuditLog>,
    clock: Arc<dyn Clock>,
    shared_state: Arc<dyn SharedState>,
    providers: Arc<ProviderService>,
    schedule: SyncSchedule,
}

impl SyncService {
    /// A sync engine over these ports.
    pub fn new(
        store: Arc<dyn Store>,
        audit: Arc<AuditLog>,
        clock: Arc<dyn Clock>,
        shared_state: Arc<dyn SharedState>,
        providers: Arc<ProviderService>,
        schedule: SyncSchedule,
    ) -> Self {
        Self { store, audit, clock, shared_state, providers, schedule }
    }

    /// Syncs the caller's connection now, over `range` or (by default) since shortly before the last sync.
    pub async fn sync(
        &self,
        user_id: UserId,
        provider_id: ProviderId,
        range: Option<DateRange>,
        context: &RequestContext,
    ) -> Result<SyncResult, SyncError> {
        let provider = self.providers.get(user_id, provider_id).await?;
        if let Some(range) = range {
            if range.start > range.end {
                return Err(SyncError::InvalidRange("start_date is after end_date"));
            }
            if (range.end - range.start).whole_days() > MAX_SYNC_RANGE_DAYS {
                return Err(SyncError::InvalidRange("the range is longer than three years"));
            }
        }
        self.sync_provider(&provider, range, context).await
    }

    /// Syncs every connection that is due, one after another; returns how many were attempted. Called by the
    /// scheduler loop of every instance: the per-connection lock keeps two instances off one connection.
    pub async fn run_due(&self, limit: u32) -> Result<usize, SyncError> {
        let due = self.store.providers_due_for_sync(self.clock.now(), limit).await?;
        let context = RequestContext::empty(Actor::System);
        for provider in &due {
            match self.sync_provider(provider, None, &context).await {
                Ok(_) | Err(SyncError::InProgress) => {}
                Err(error) => tracing::info!(provider_id = %provider.id, %error, "scheduled sync failed"),
            }
        }
        Ok(due.len())
    }

    async fn sync_provider(
        &self,
        provider: &Provider,
        range: Option<DateRange>,
        context: &RequestContext,
    ) -> Result<SyncResult, SyncError> {
        if !provider.is_connected() || self.providers.connector(provider.provider_key).is_err() {
            return Err(SyncError::NotConnected);
        }
        let lock_name = format!("provider-sync:{}", provider.id);
        let token = self
            .shared_state
            .lock(&lock_name, SYNC_LOCK_TTL, Duration::ZERO)
            .await
            .map_err(shared_state_down)?
            .ok_or(SyncError::InProgress)?;
        let result = self.sync_locked(provider, range, context).await;
        if let Err(error) = self.shared_state.unlock(&lock_name, &token).await {
            tracing::warn!(provider_id = %provider.id, %error, "could not release a sync lock; it expires on its own");
        }
        result
    }

    async fn sync_locked(
        &self,
        provider: &Provider,
        range: Option<DateRange>,
        context: &RequestContext,
    ) -> Result<SyncResult, SyncError> {
        let started_at = self.clock.now();
        let range = range.unwrap_or_else(|| self.default_range(provider, started_at));
        let mut counts = SyncCounts::default();
        match self.fetch_and_store(provider, range, &mut counts, context).await {
            Ok(()) => {
                let finished_at = self.clock.now();
                let mut tx = self.store.begin().await?;
                let next = self.schedule.next_after_success(provider.id, finished_at);
                tx.record_sync_success(provider.id, finished_at, next).await?;
                let event = counts_detail(
                    AuditEvent::new(AuditAction::ProviderSynced, AuditOutcome::Success)
                        .user(provider.user_id)
                        .resource("provider", provider.id),
                    &counts,
                );
                self.audit.append(&mut tx, context, event).await?;
                tx.commit().await?;
                Ok(SyncResult { counts, started_at, finished_at })
            }
            Err(error) => {
                self.record_failure(provider, &error, &counts, context).await?;
                Err(error)
            }
        }
    }

    fn default_range(&self, provider: &Provider, now: OffsetDateTime) -> DateRange {
        let today = now.date();
        let start = match provider.last_sync_at {
            Some(last) => last.date() - time::Duration::days(SYNC_OVERLAP_DAYS),
            None => today - time::Duration::days(FIRST_SYNC_DAYS),
        };
        DateRange { start: start.min(today), end: today }
    }

    async fn fetch_and_store(
        &self,
        provider: &Provider,
        range: DateRange,
        counts: &mut SyncCounts,
        context: &RequestContext,
    ) -> Result<(), SyncError> {
        let access = self.providers.access(provider, context).await?;
        let connector = self.providers.connector(provider.provider_key)?;
        let accounts = connector.accounts(access.auth()).await.map_err(provider_failed)?;
        for account in &accounts {
            let transactions = connector.transactions(access.auth(), account, range).await.map_err(provider_failed)?;
            let mut tx = self.store.begin_bulk().await?;
            self.store_account(&mut tx, provider, account, &transactions, range, counts).await?;
            tx.commit().await?;
        }
        Ok(())
    }

    /// Stores one account's report: the account, its positions (missing ones closed), its transactions
    /// (matched by provider id, pending ones posted in place) and a balance snapshot.
    async fn store_account(
        &self,
        tx: &mut Box<dyn StoreTx>,
        provider: &Provider,
        report: &ProviderAccount,
        transactions: &[ProviderTransaction],
        range: DateRange,
        counts: &mut SyncCounts,
    ) -> Result<(), SyncError> {
        let now = self.clock.now();
        let (account_id, upserted) = tx
            .upsert_account(&AccountUpsert {
                user_id: provider.user_id,
                provider_id: provider.id,
                provider_account_id: &report.provider_account_id,
                name: &report.name,
                account_type: report.account_type,
                number_masked: Some(report.number_masked.as_str()).filter(|masked| !masked.is_empty()),
                currency: report.currency,
                balance: report.balance,
                available_balance: report.available_balance,
                now,
            })
            .await?;
        match upserted {
            Upserted::Created => counts.accounts_created += 1,
            Upserted::Updated => counts.accounts_updated += 1,
            Upserted::Unchanged => {}
        }
        self.store_positions(tx, provider.user_id, account_id, &report.positions, now, counts).await?;
        let plan = plan_transactions(
            tx.account_transactions(account_id).await?,
            transactions,
            provider.user_id,
            account_id,
            range,
            now,
        );
        counts.transactions_created += plan.inserts.len() as u64;
        counts.transactions_updated += plan.updates.len() as u64;
        counts.transactions_unchanged += plan.unchanged;
        tx.insert_transactions(&plan.inserts).await?;
        for transaction in &plan.updates {
            tx.update_transaction(transaction).await?;
        }
        let snapshot = BalanceSnapshot {
            account_id,
            as_of: now,
            balance: report.balance,
            available_balance: report.available_balance,
            currency: report.currency,
            source: SnapshotSource::Sync,
        };
        tx.insert_balance_snapshot(provider.user_id, &snapshot).await?;
        counts.balances_recorded += 1;
        tx.mark_account_synced(account_id, now).await?;
        Ok(())
    }

    async fn store_positions(
        &self,
        tx: &mut Box<dyn StoreTx>,
        user_id: UserId,
        account_id: AccountId,
        positions: &[ProviderPosition],
        now: OffsetDateTime,
        counts: &mut SyncCounts,
    ) -> Result<(), SyncError> {
        let existing: HashMap<String, Holding> = tx
            .account_holdings(account_id)
            .await?
            .into_iter()
            .map(|holding| (holding.symbol.clone(), holding))
            .collect();
        let mut reported = HashSet::new();
        for position in positions {
            if !reported.insert(position.symbol.as_str()) {
                continue;
            }
            let stored = existing.get(&position.symbol);
            let holding = Holding {
                id: stored.map_or_else(HoldingId::generate, |stored| stored.id),
                account_id,
                user_id,
                symbol: position.symbol.clone(),
                name: position.name.clone(),
                asset_type: position.asset_type,
                quantity: position.quantity,
                average_cost: position.average_cost,
                price: position.price,
                market_value: position.market_value,
                currency: position.currency,
                is_open: true,
                as_of: now,
            };
            match stored {
                None => counts.holdings_created += 1,
                Some(stored) if same_position(stored, &holding) => continue,
                Some(_) => counts.holdings_updated += 1,
            }
            tx.put_holding(&holding, now).await?;
        }
        for holding in
            existing.values().filter(|holding| holding.is_open && !reported.contains(holding.symbol.as_str()))
        {
            let closed = Holding { is_open: false, as_of: now, ..holding.clone() };
            tx.put_holding(&closed, now).await?;
            counts.holdings_closed += 1;
        }
        Ok(())
    }

    /// Persists a failure on the connection (it must survive the failed sync), schedules the retry, audits it,
    /// and marks the connection as needing reconnection when the provider no longer accepts it.
    async fn record_failure(
        &self,
        provider: &Provider,
        error: &SyncError,
        counts: &SyncCounts,
        context: &RequestContext,
    ) -> Result<(), SyncError> {
        let reason = failure_reason(error);
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        let failures = tx.record_sync_failure(provider.id, reason, now).await?;
        tx.schedule_sync(provider.id, self.schedule.next_after_failure(failures, now)).await?;
        let event = counts_detail(
            AuditEvent::new(AuditAction::ProviderSynced, AuditOutcome::Failure)
                .user(provider.user_id)
                .resource("provider", provider.id)
                .detail("reason", reason)
                .detail("consecutive_failures", failures),
            counts,
        );
        self.audit.append(&mut tx, context, event).await?;
        tx.commit().await?;
        if let SyncError::Provider(ProviderError::Provider(connector_error)) = error
            && connector_error.needs_reconnection()
        {
            // A refresh failure has already marked the connection; this covers a data call refused with 401/403.
            let current = self.providers.get(provider.user_id, provider.id).await?;
            if current.is_connected() {
                self.providers.mark_needs_reconnection(&current, ProviderStatus::Expired, reason, context).await?;
            }
        }
        Ok(())
    }
}

/// What to do with one account's reported transactions.
#[derive(Debug, Default)]
struct TransactionPlan {
    inserts: Vec<Transaction>,
    updates: Vec<Transaction>,
    unchanged: u64,
}

/// Matches a report against what is stored: by provider id; else a posted transaction that names the pending
/// one it replaces; else (the documented fallback) a stored pending transaction of the same amount and symbol,
/// dated up to [`PENDING_MATCH_DAYS`] earlier, that this report no longer lists.
fn plan_transactions(
    stored: Vec<Transaction>,
    reported: &[ProviderTransaction],
    user_id: UserId,
    account_id: AccountId,
    range: DateRange,
    now: OffsetDateTime,
) -> TransactionPlan {
    let reported_ids: HashSet<&str> = reported.iter().map(|report| report.provider_transaction_id.as_str()).collect();
    let mut by_id: HashMap<String, Transaction> =
        stored.into_iter().map(|transaction| (transaction.provider_transaction_id.clone(), transaction)).collect();
    let mut orphaned_pending: Vec<String> = by_id
        .values()
        .filter(|transaction| {
            transaction.status == TransactionStatus::Pending
                && !reported_ids.contains(transaction.provider_transaction_id.as_str())
                && in_range(transaction.posted_on, range)
        })
        .map(|transaction| transaction.provider_transaction_id.clone())
        .collect();
    orphaned_pending.sort();
    let mut plan = TransactionPlan::default();
    let mut seen = HashSet::new();
    for report in reported {
        if !seen.insert(report.provider_transaction_id.as_str()) {
            continue;
        }
        let matched = by_id.remove(&report.provider_transaction_id).or_else(|| {
            let pending_id = report
                .pending_transaction_id
                .as_ref()
                .filter(|id| orphaned_pending.contains(id))
                .cloned()
                .or_else(|| fallback_pending_match(&by_id, &orphaned_pending, report))?;
            orphaned_pending.retain(|id| *id != pending_id);
            by_id.remove(&pending_id)
        });
        match matched {
            Some(existing) => {
                let updated =
                    transaction_from_report(report, existing.id, user_id, account_id, existing.created_at, now);
                if same_transaction(&existing, &updated) {
                    plan.unchanged += 1;
                } else {
                    plan.updates.push(updated);
                }
            }
            None => plan.inserts.push(transaction_from_report(
                report,
                TransactionId::generate(),
                user_id,
                account_id,
                now,
                now,
            )),
        }
    }
    plan
}

fn fallback_pending_match(
    stored: &HashMap<String, Transaction>,
    orphaned_pending: &[String],
    report: &ProviderTransaction,
) -> Option<String> {
    if report.status != TransactionStatus::Posted {
        return None;
    }
    orphaned_pending
        .iter()
        .filter_map(|id| stored.get(id))
        .find(|pending| {
            let days = (report.posted_on - pending.posted_on).whole_days();
            pending.amount == report.amount
                && pending.symbol == report.symbol
                && (0..=PENDING_MATCH_DAYS).contains(&days)
        })
        .map(|pending| pending.provider_transaction_id.clone())
}

fn in_range(date: Date, range: DateRange) -> bool {
    range.start <= date && date <= range.end
}

fn transaction_from_report(
    report: &ProviderTransaction,
    id: TransactionId,
    user_id: UserId,
    account_id: AccountId,
    created_at: OffsetDateTime,
    now: OffsetDateTime,
) -> Transaction {
    Transaction {
        id,
        account_id,
        user_id,
        provider_transaction_id: report.provider_transaction_id.clone(),
        posted_on: report.posted_on,
        posted_at: report.posted_at,
        amount: report.amount,
        currency: report.currency,
        description: report.description.clone(),
        payee: report.payee.clone(),
        memo: report.memo.clone(),
        transaction_type: report.transaction_type,
        subtype: report.subtype,
        status: report.status,
        symbol: report.symbol.clone(),
        quantity: report.quantity,
        unit_price: report.unit_price,
        fees: report.fees,
        created_at,
        updated_at: now,
    }
}

/// Equal in everything a provider reports (ids and bookkeeping times aside). Decimals compare by value, so a
/// provider writing `10.5` one day and `10.50` the next changes nothing.
fn same_transaction(stored: &Transaction, reported: &Transaction) -> bool {
    stored.provider_transaction_id == reported.provider_transaction_id
        && stored.posted_on == reported.posted_on
        && stored.posted_at == reported.posted_at
        && stored.amount == reported.amount
        && stored.currency == reported.currency
        && stored.description == reported.description
        && stored.payee == reported.payee
        && stored.memo == reported.memo
        && stored.transaction_type == reported.transaction_type
        && stored.subtype == reported.subtype
        && stored.status == reported.status
        && stored.symbol == reported.symbol
        && stored.quantity == reported.quantity
        && stored.unit_price == reported.unit_price
        && stored.fees == reported.fees
}

fn same_position(stored: &Holding, reported: &Holding) -> bool {
    stored.is_open
        && stored.name == reported.name
        && stored.asset_type == reported.asset_type
        && stored.quantity == reported.quantity
        && stored.average_cost == reported.average_cost
        && stored.price == reported.price
        && stored.market_value == reported.market_value
        && stored.currency == reported.currency
}

fn counts_detail(event: AuditEvent, counts: &SyncCounts) -> AuditEvent {
    event
        .detail("accounts_created", counts.accounts_created)
        .detail("accounts_updated", counts.accounts_updated)
        .detail("holdings_created", counts.holdings_created)
        .detail("holdings_updated", counts.holdings_updated)
        .detail("holdings_closed", counts.holdings_closed)
        .detail("transactions_created", counts.transactions_created)
        .detail("transactions_updated", counts.transactions_updated)
        .detail("transactions_unchanged", counts.transactions_unchanged)
        .detail("balances_recorded", counts.balances_recorded)
}

/// A short, secret-free reason, stored as the connection's `last_sync_error` and audited.
fn failure_reason(error: &SyncError) -> &'static str {
    match error {
        SyncError::Provider(ProviderError::Provider(error)) => connector_reason(error),
        SyncError::Provider(ProviderError::NotConnected) | SyncError::NotConnected => "not_connected",
        SyncError::Provider(ProviderError::SharedStateUnavailable(_)) => "shared_state_unavailable",
        SyncError::Provider(ProviderError::RefreshBusy) => "refresh_busy",
        SyncError::Provider(_) => "provider_setup",
        SyncError::Store(_) => "storage",
        SyncError::InProgress => "in_progress",
        SyncError::InvalidRange(_) => "invalid_range",
    }
}

fn provider_failed(error: ConnectorError) -> SyncError {
    SyncError::Provider(ProviderError::Provider(error))
}

fn shared_state_down(error: BoxError) -> SyncError {
    SyncError::Provider(ProviderError::SharedStateUnavailable(error))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finance::{TransactionSubtype, TransactionType};
    use crate::money::{Currency, Decimal};
    use time::macros::{date, datetime};

    fn report(id: &str, on: Date, amount: i64, status: TransactionStatus) -> ProviderTransaction {
        ProviderTransaction {
            provider_transaction_id: id.to_owned(),
            pending_transaction_id: None,
            posted_on: on,
            posted_at: None,
            amount: Decimal::new(amount, 2),
            currency: Currency::USD,
            description: "CARD PURCHASE".to_owned(),
            payee: None,
            memo: None,
            transaction_type: TransactionType::Spending,
            subtype: Some(TransactionSubtype::Purchase),
            status,
            symbol: None,
            quantity: None,
            unit_price: None,
            fees: None,
        }
    }

    const RANGE: DateRange = DateRange { start: date!(2026 - 11 - 01), end: date!(2026 - 11 - 30) };
    const NOW: OffsetDateTime = datetime!(2026-11-28 12:00 UTC);

    fn stored_from(reports: &[ProviderTransaction], user: UserId, account: AccountId) -> Vec<Transaction> {
        plan_transactions(Vec::new(), reports, user, account, RANGE, NOW).inserts
    }

    #[test]
    fn a_second_identical_report_changes_nothing() {
        let (user, account) = (UserId::generate(), AccountId::generate());
        let reports = [report("a", date!(2026 - 11 - 20), -1250, TransactionStatus::Posted)];
        let stored = stored_from(&reports, user, account);
        let plan = plan_transactions(stored, &reports, user, account, RANGE, NOW);
        assert_eq!((plan.inserts.len(), plan.updates.len(), plan.unchanged), (0, 0, 1));
    }

    #[test]
    fn a_pending_transaction_posts_in_place_by_id_by_link_or_by_the_fallback() {
        let (user, account) = (UserId::generate(), AccountId::generate());
        let pending = [
            report("same-id", date!(2026 - 11 - 26), -500, TransactionStatus::Pending),
            report("linked-p", date!(2026 - 11 - 26), -700, TransactionStatus::Pending),
            report("loose-p", date!(2026 - 11 - 25), -900, TransactionStatus::Pending),
        ];
        let stored = stored_from(&pending, user, account);
        let original_ids: Vec<TransactionId> = stored.iter().map(|transaction| transaction.id).collect();
        let mut linked = report("linked", date!(2026 - 11 - 27), -700, TransactionStatus::Posted);
        linked.pending_transaction_id = Some("linked-p".to_owned());
        let posted = [
            report("same-id", date!(2026 - 11 - 27), -500, TransactionStatus::Posted),
            linked,
            report("loose", date!(2026 - 11 - 27), -900, TransactionStatus::Posted),
        ];
        let plan = plan_transactions(stored, &posted, user, account, RANGE, NOW);
        assert!(plan.inserts.is_empty(), "{:?}", plan.inserts);
        assert_eq!(plan.updates.len(), 3);
        let mut updated_ids: Vec<TransactionId> = plan.updates.iter().map(|transaction| transaction.id).collect();
        updated_ids.sort();
        let mut original_ids = original_ids;
        original_ids.sort();
        assert_eq!(updated_ids, original_ids, "updated in place, ids kept");
        assert!(plan.updates.iter().all(|transaction| transaction.status == TransactionStatus::Posted));
    }

    #[test]
    fn two_identical_purchases_with_different_ids_are_both_kept() {
        let (user, account) = (UserId::generate(), AccountId::generate());
        let reports = [
            report("x1", date!(2026 - 11 - 20), -300, TransactionStatus::Posted),
            report("x2", date!(2026 - 11 - 20), -300, TransactionStatus::Posted),
            report("x1", date!(2026 - 11 - 20), -300, TransactionStatus::Posted),
        ];
        let plan = plan_transactions(Vec::new(), &reports, user, account, RANGE, NOW);
        assert_eq!(plan.inserts.len(), 2, "a repeated id within one report is stored once");
    }

    #[test]
    fn retries_back_off_exponentially_up_to_the_interval_and_successes_spread_by_id() {
        let schedule = SyncSchedule::default();
        let now = NOW;
        assert_eq!(schedule.next_after_failure(1, now), now + Duration::from_secs(300));
        assert_eq!(schedule.next_after_failure(3, now), now + Duration::from_secs(1200));
        assert_eq!(schedule.next_after_failure(30, now), now + schedule.interval);
        let id = ProviderId::generate();
        let next = schedule.next_after_success(id, now);
        assert!(next >= now + schedule.interval && next <= now + schedule.interval.mul_f64(1.1));
        assert_eq!(schedule.next_after_success(id, now), next, "stable per connection");
    }
}
