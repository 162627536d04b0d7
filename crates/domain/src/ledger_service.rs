//! Reading financial data: accounts with totals, holdings, transaction pages, balance history and the
//! net-worth series. Every read names the owner, so another user's ids simply find nothing.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use time::{Date, Duration, OffsetDateTime, Time, Weekday};

use crate::clock::Clock;
use crate::ids::UserId;
use crate::ledger::{
    Account, AccountFilter, AccountId, BalanceSnapshot, Holding, HoldingFilter, Transaction, TransactionId,
    TransactionQuery,
};
use crate::money::{Currency, Decimal};
use crate::ports::{Store, StoreError};

/// Assets, liabilities and net worth in one currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrencyTotals {
    /// The currency.
    pub currency: Currency,
    /// The sum of the balances of accounts that are not liabilities.
    pub assets: Decimal,
    /// The amount owed on liability accounts, as a positive number.
    pub liabilities: Decimal,
    /// Assets − liabilities.
    pub net: Decimal,
}

/// The totals per currency of `accounts`, ordered by currency code. A liability account's balance is signed
/// from the owner's side (owing 500 is −500), so it adds its negation to `liabilities`.
pub fn account_totals(accounts: &[Account]) -> Vec<CurrencyTotals> {
    let mut totals: BTreeMap<Currency, (Decimal, Decimal)> = BTreeMap::new();
    for account in accounts {
        let (assets, liabilities) = totals.entry(account.currency).or_default();
        if account.account_type.is_liability() {
            *liabilities -= account.balance;
        } else {
            *assets += account.balance;
        }
    }
    totals
        .into_iter()
        .map(|(currency, (assets, liabilities))| CurrencyTotals {
            currency,
            assets,
            liabilities,
            net: assets - liabilities,
        })
        .collect()
}

/// The value of holdings in one currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldingTotals {
    /// The currency.
    pub currency: Currency,
    /// The sum of market values.
    pub market_value: Decimal,
    /// The sum of the cost bases that are known.
    pub cost_basis: Decimal,
    /// Market value − cost basis over the holdings whose cost is known.
    pub unrealized_gain: Decimal,
}

/// The totals per currency of `holdings`, ordered by currency code.
pub fn holding_totals(holdings: &[Holding]) -> Vec<HoldingTotals> {
    let mut totals: BTreeMap<Currency, HoldingTotals> = BTreeMap::new();
    for holding in holdings {
        let total = totals.entry(holding.currency).or_insert_with(|| HoldingTotals {
            currency: holding.currency,
            market_value: Decimal::ZERO,
            cost_basis: Decimal::ZERO,
            unrealized_gain: Decimal::ZERO,
        });
        total.market_value += holding.market_value;
        if let (Some(basis), Some(gain)) = (holding.cost_basis(), holding.unrealized_gain()) {
            total.cost_basis += basis;
            total.unrealized_gain += gain;
        }
    }
    totals.into_values().collect()
}

/// A page of transactions and where the next one starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionPage {
    /// Newest first.
    pub items: Vec<Transaction>,
    /// The position after the last item, when more rows follow.
    pub next: Option<(Date, TransactionId)>,
}

/// How far apart the points of a net-worth series are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interval {
    /// One point per day.
    Day,
    /// One point per week, at its Sunday.
    Week,
    /// One point per month, at its last day.
    Month,
}

impl Interval {
    /// The interval named by `text` (`day`, `week`, `month`).
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "day" => Some(Self::Day),
            "week" => Some(Self::Week),
            "month" => Some(Self::Month),
            _ => None,
        }
    }
}

/// The dates a series has points at: the end of each period that overlaps `[from, to]`, where a week ends on
/// Sunday (ISO weeks) and a month on its last day; the last period is cut short at `to`, so the final point is
/// always `to` (the latest value), and the first period is the one containing `from`. Empty when `from > to`.
pub fn period_ends(from: Date, to: Date, interval: Interval) -> Vec<Date> {
    let mut points = Vec::new();
    let mut day = from;
    while day <= to {
        let end = match interval {
            Interval::Day => day,
            Interval::Week => day.checked_add(Duration::days(days_to_sunday(day.weekday()))).unwrap_or(Date::MAX),
            Interval::Month => last_day_of_month(day),
        };
        let point = end.min(to);
        points.push(point);
        match point.next_day() {
            Some(next) => day = next,
            None => break,
        }
    }
    points
}

fn days_to_sunday(weekday: Weekday) -> i64 {
    i64::from(6 - weekday.number_days_from_monday())
}

fn last_day_of_month(day: Date) -> Date {
    let days = day.month().length(day.year());
    day.replace_day(days).unwrap_or(day)
}

/// The first instant after `day` ends (UTC midnight of the next day).
fn end_of(day: Date) -> OffsetDateTime {
    day.next_day().map_or(OffsetDateTime::new_utc(Date::MAX, Time::MAX), |next| next.midnight().assume_utc())
}

/// A point of a net-worth series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetWorthPoint {
    /// The day the value is for (its end).
    pub date: Date,
    /// The sum of every account's last known signed balance on or before the end of that day.
    pub net_worth: Decimal,
}

/// The series of one currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetWorthSeries {
    /// The currency.
    pub currency: Currency,
    /// From the accounts' current balances.
    pub current: CurrencyTotals,
    /// One point per period, oldest first.
    pub series: Vec<NetWorthPoint>,
}

/// Net worth at each of `points` (ascending) per currency. `carried` holds each account's last snapshot before
/// the first period; `snapshots` those after, in any order. An account counts with its last known balance
/// until a newer snapshot replaces it (carried forward over gaps); a liability's balance is already negative.
pub fn net_worth_series(
    carried: &[BalanceSnapshot],
    snapshots: &[BalanceSnapshot],
    points: &[Date],
) -> BTreeMap<Currency, Vec<NetWorthPoint>> {
    fn remember(latest: &mut HashMap<AccountId, (OffsetDateTime, Currency, Decimal)>, snapshot: &BalanceSnapshot) {
        let newer = latest.get(&snapshot.account_id).is_none_or(|(as_of, _, _)| *as_of <= snapshot.as_of);
        if newer {
            latest.insert(snapshot.account_id, (snapshot.as_of, snapshot.currency, snapshot.balance));
        }
    }
    let mut latest = HashMap::new();
    for snapshot in carried {
        remember(&mut latest, snapshot);
    }
    let mut ordered: Vec<&BalanceSnapshot> = snapshots.iter().collect();
    ordered.sort_by_key(|snapshot| snapshot.as_of);
    let currencies: BTreeSet<Currency> = carried.iter().chain(snapshots).map(|snapshot| snapshot.currency).collect();
    let mut series: BTreeMap<Currency, Vec<NetWorthPoint>> =
        currencies.into_iter().map(|currency| (currency, Vec::with_capacity(points.len()))).collect();
    let mut next = ordered.into_iter().peekable();
    for &date in points {
        let cutoff = end_of(date);
        while let Some(snapshot) = next.next_if(|snapshot| snapshot.as_of < cutoff) {
            remember(&mut latest, snapshot);
        }
        let mut sums: BTreeMap<Currency, Decimal> = BTreeMap::new();
        for (_, currency, balance) in latest.values() {
            *sums.entry(*currency).or_default() += *balance;
        }
        for (currency, points) in &mut series {
            points.push(NetWorthPoint { date, net_worth: sums.get(currency).copied().unwrap_or_default() });
        }
    }
    series
}

/// Reads a user's financial data.
#[derive(Debug)]
pub struct LedgerService {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
}

/// Snapshot times are widened by this much in the query and then compared exactly here: SQLite compares
/// RFC 3339 text, where a fraction of a second sorts before a whole second ("…:00.5Z" < "…:00Z").
const QUERY_SLACK: Duration = Duration::seconds(1);

/// `instant` moved `QUERY_SLACK` earlier, but never before year 0000: both stores must be able to write a
/// query bound, and SQLite writes timestamps as RFC 3339 text with a four-digit year.
fn widened_back(instant: OffsetDateTime) -> OffsetDateTime {
    let first = OffsetDateTime::new_utc(time::macros::date!(0000 - 01 - 01), Time::MIDNIGHT);
    instant.checked_sub(QUERY_SLACK).filter(|earlier| *earlier >= first).unwrap_or(first.max(instant))
}

/// `instant` moved `QUERY_SLACK` later, but never past the end of year 9999 (see [`widened_back`]).
fn widened_forward(instant: OffsetDateTime) -> OffsetDateTime {
    let last = OffsetDateTime::new_utc(Date::MAX, Time::MAX);
    instant.checked_add(QUERY_SLACK).filter(|later| *later <= last).unwrap_or(last.min(instant))
}

impl LedgerService {
    /// The service over `store`.
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        Self { store, clock }
    }

    /// The user's accounts matching `filter`, oldest first, with their totals per currency.
    pub async fn accounts(
        &self,
        user_id: UserId,
        filter: &AccountFilter,
    ) -> Result<(Vec<Account>, Vec<CurrencyTotals>), StoreError> {
        let accounts = self.store.accounts(user_id, filter).await?;
        let totals = account_totals(&accounts);
        Ok((accounts, totals))
    }

    /// The user's account, `None` when it is not theirs.
    pub async fn account(&self, user_id: UserId, id: AccountId) -> Result<Option<Account>, StoreError> {
        self.store.account(user_id, id).await
    }

    /// The open holdings of the user's account, `None` when the account is not theirs.
    pub async fn account_holdings(&self, user_id: UserId, id: AccountId) -> Result<Option<Vec<Holding>>, StoreError> {
        if self.store.account(user_id, id).await?.is_none() {
            return Ok(None);
        }
        let filter = HoldingFilter { account_id: Some(id), asset_type: None };
        self.store.holdings(user_id, &filter).await.map(Some)
    }

    /// The user's open holdings matching `filter`, with totals per currency.
    pub async fn holdings(
        &self,
        user_id: UserId,
        filter: &HoldingFilter,
    ) -> Result<(Vec<Holding>, Vec<HoldingTotals>), StoreError> {
        let holdings = self.store.holdings(user_id, filter).await?;
        let totals = holding_totals(&holdings);
        Ok((holdings, totals))
    }

    /// A page of the user's transactions; `next` is set only when at least one more row follows.
    pub async fn transactions(&self, query: &TransactionQuery) -> Result<TransactionPage, StoreError> {
        // One row more than asked tells whether another page exists, so the last page has no cursor.
        let probe = TransactionQuery { limit: query.limit.saturating_add(1), ..query.clone() };
        let mut items = self.store.transactions(&probe).await?;
        let more = items.len() > query.limit as usize;
        items.truncate(query.limit as usize);
        let next = if more { items.last().map(|last| (last.posted_on, last.id)) } else { None };
        Ok(TransactionPage { items, next })
    }

    /// The user's transaction, `None` when it is not theirs.
    pub async fn transaction(&self, user_id: UserId, id: TransactionId) -> Result<Option<Transaction>, StoreError> {
        self.store.transaction(user_id, id).await
    }

    /// The account's balance snapshots with `from <= as_of <= to`, oldest first; `None` when the account is
    /// not the user's.
    pub async fn balances(
        &self,
        user_id: UserId,
        id: AccountId,
        from: Option<OffsetDateTime>,
        to: Option<OffsetDateTime>,
    ) -> Result<Option<Vec<BalanceSnapshot>>, StoreError> {
        if self.store.account(user_id, id).await?.is_none() {
            return Ok(None);
        }
        let mut snapshots =
            self.store.balance_snapshots(user_id, Some(id), from.map(widened_back), to.map(widened_forward)).await?;
        snapshots.retain(|snapshot| {
            from.is_none_or(|from| snapshot.as_of >= from) && to.is_none_or(|to| snapshot.as_of <= to)
        });
        snapshots.sort_by_key(|snapshot| snapshot.as_of);
        Ok(Some(snapshots))
    }

    /// Net worth per currency over `[from, to]` (see [`period_ends`] and [`net_worth_series`]), with the
    /// current totals from the accounts' balances. Every currency of an account or a snapshot gets an item.
    pub async fn net_worth(
        &self,
        user_id: UserId,
        from: Date,
        to: Date,
        interval: Interval,
    ) -> Result<Vec<NetWorthSeries>, StoreError> {
        let start = from.midnight().assume_utc();
        let end = end_of(to);
        let accounts = self.store.accounts(user_id, &AccountFilter::default()).await?;
        let mut carried = self.store.latest_snapshots_before(user_id, widened_back(start)).await?;
        let mut snapshots =
            self.store.balance_snapshots(user_id, None, Some(widened_back(start)), Some(widened_forward(end))).await?;
        // What the slack let in before the start is carried in; what it let in after the end is dropped.
        snapshots.retain(|snapshot| snapshot.as_of < end);
        let (before, during): (Vec<_>, Vec<_>) = snapshots.into_iter().partition(|snapshot| snapshot.as_of < start);
        carried.extend(before);
        let points = period_ends(from, to, interval);
        let mut series = net_worth_series(&carried, &during, &points);
        let totals = account_totals(&accounts);
        for total in &totals {
            series.entry(total.currency).or_insert_with(|| {
                points.iter().map(|&date| NetWorthPoint { date, net_worth: Decimal::ZERO }).collect()
            });
        }
        Ok(series
            .into_iter()
            .map(|(currency, series)| NetWorthSeries {
                currency,
                current: totals.iter().find(|total| total.currency == currency).cloned().unwrap_or(CurrencyTotals {
                    currency,
                    assets: Decimal::ZERO,
                    liabilities: Decimal::ZERO,
                    net: Decimal::ZERO,
                }),
                series,
            })
            .collect())
    }

    /// Today in UTC (the default end of a series).
    pub fn today(&self) -> Date {
        self.clock.now().date()
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use time::macros::{date, datetime};

    use super::*;
    use crate::finance::AccountType;
    use crate::ledger::SnapshotSource;
    use crate::providers::ProviderId;

    fn dec(text: &str) -> Decimal {
        Decimal::from_str(text).expect("decimal")
    }

    fn eur() -> Currency {
        Currency::parse("EUR").expect("currency")
    }

    fn snapshot(account_id: AccountId, as_of: OffsetDateTime, balance: &str, currency: Currency) -> BalanceSnapshot {
        BalanceSnapshot {
            account_id,
            as_of,
            balance: dec(balance),
            available_balance: None,
            currency,
            source: SnapshotSource::Sync,
        }
    }

    fn values(series: &[NetWorthPoint]) -> Vec<String> {
        series.iter().map(|point| point.net_worth.to_string()).collect()
    }

    #[test]
    fn periods_end_on_sundays_and_month_ends_and_stop_at_to() {
        // 2026-01-01 is a Thursday.
        assert_eq!(
            period_ends(date!(2026 - 01 - 01), date!(2026 - 01 - 03), Interval::Day),
            [date!(2026 - 01 - 01), date!(2026 - 01 - 02), date!(2026 - 01 - 03)]
        );
        assert_eq!(
            period_ends(date!(2026 - 01 - 01), date!(2026 - 01 - 14), Interval::Week),
            [date!(2026 - 01 - 04), date!(2026 - 01 - 11), date!(2026 - 01 - 14)]
        );
        assert_eq!(
            period_ends(date!(2026 - 01 - 04), date!(2026 - 01 - 11), Interval::Week),
            [date!(2026 - 01 - 04), date!(2026 - 01 - 11)]
        );
        assert_eq!(
            period_ends(date!(2024 - 01 - 15), date!(2024 - 03 - 10), Interval::Month),
            [date!(2024 - 01 - 31), date!(2024 - 02 - 29), date!(2024 - 03 - 10)]
        );
        assert!(period_ends(date!(2026 - 01 - 02), date!(2026 - 01 - 01), Interval::Day).is_empty());
        assert_eq!(period_ends(date!(2024 - 01 - 01), date!(2025 - 12 - 31), Interval::Day).len(), 731);
    }

    #[test]
    fn balances_carry_forward_across_gaps_and_accounts_add_up() {
        let (checking, card) = (AccountId::generate(), AccountId::generate());
        let carried = [snapshot(checking, datetime!(2025-12-30 09:00 UTC), "100.00", Currency::USD)];
        let during = [
            // Out of order on purpose; the card is a liability, so its balance is negative.
            snapshot(checking, datetime!(2026-01-03 23:59:59.999999 UTC), "150.00", Currency::USD),
            snapshot(card, datetime!(2026-01-02 12:00 UTC), "-40.50", Currency::USD),
            snapshot(checking, datetime!(2026-01-02 08:00 UTC), "120.00", Currency::USD),
            snapshot(checking, datetime!(2026-01-02 18:00 UTC), "110.00", Currency::USD),
            snapshot(card, datetime!(2026-01-04 00:00 UTC), "0", Currency::USD),
        ];
        let points = period_ends(date!(2026 - 01 - 01), date!(2026 - 01 - 05), Interval::Day);
        let series = net_worth_series(&carried, &during, &points);
        assert_eq!(series.len(), 1);
        let usd = &series[&Currency::USD];
        assert_eq!(usd.iter().map(|point| point.date).collect::<Vec<_>>(), points);
        // Day 1: carried 100; day 2: last of the day 110 − 40.50; day 3: 150 − 40.50; days 4–5: 150 + 0.
        assert_eq!(values(usd), ["100.00", "69.50", "109.50", "150.00", "150.00"]);
    }

    #[test]
    fn each_currency_has_its_own_series_and_unknown_is_zero() {
        let (usd_account, eur_account) = (AccountId::generate(), AccountId::generate());
        let during = [
            snapshot(usd_account, datetime!(2026-01-01 10:00 UTC), "10", Currency::USD),
            snapshot(eur_account, datetime!(2026-01-03 10:00 UTC), "-7.25", eur()),
        ];
        let points = period_ends(date!(2026 - 01 - 01), date!(2026 - 01 - 31), Interval::Week);
        let series = net_worth_series(&[], &during, &points);
        assert_eq!(series.keys().copied().collect::<Vec<_>>(), [eur(), Currency::USD]);
        assert_eq!(values(&series[&Currency::USD]), ["10", "10", "10", "10", "10"]);
        assert_eq!(values(&series[&eur()]), ["-7.25", "-7.25", "-7.25", "-7.25", "-7.25"]);
        let before_any = net_worth_series(&[], &during, &[date!(2025 - 12 - 31)]);
        assert_eq!(values(&before_any[&Currency::USD]), ["0"]);
    }

    #[test]
    fn a_point_takes_the_last_snapshot_before_the_end_of_its_day() {
        let account = AccountId::generate();
        let during = [
            snapshot(account, datetime!(2026-01-31 23:00 UTC), "5", Currency::USD),
            snapshot(account, datetime!(2026-02-01 00:00 UTC), "6", Currency::USD),
        ];
        let points = period_ends(date!(2026 - 01 - 01), date!(2026 - 02 - 15), Interval::Month);
        assert_eq!(values(&net_worth_series(&[], &during, &points)[&Currency::USD]), ["5", "6"]);
    }

    fn account(account_type: AccountType, balance: &str, currency: Currency) -> Account {
        let now = datetime!(2026-01-01 00:00 UTC);
        Account {
            id: AccountId::generate(),
            user_id: UserId::generate(),
            provider_id: ProviderId::generate(),
            provider_account_id: "x".to_owned(),
            name: "x".to_owned(),
            account_type,
            number_masked: None,
            currency,
            balance: dec(balance),
            available_balance: None,
            is_active: true,
            last_synced_at: None,
            created_at: now,
            updated_at: now,
        }
    }

    #[test]
    fn totals_count_liabilities_as_the_positive_amount_owed() {
        let totals = account_totals(&[
            account(AccountType::Checking, "1000.00", Currency::USD),
            account(AccountType::Brokerage, "2500.50", Currency::USD),
            account(AccountType::CreditCard, "-500.00", Currency::USD),
            account(AccountType::Mortgage, "-100000", eur()),
        ]);
        assert_eq!(
            totals,
            [
                CurrencyTotals {
                    currency: eur(),
                    assets: Decimal::ZERO,
                    liabilities: dec("100000"),
                    net: dec("-100000")
                },
                CurrencyTotals {
                    currency: Currency::USD,
                    assets: dec("3500.50"),
                    liabilities: dec("500.00"),
                    net: dec("3000.50")
                },
            ]
        );
    }
}
