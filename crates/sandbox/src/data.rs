//! The sandbox customer's money: accounts, prices and a day-by-day activity history.
//!
//! Everything here is a pure function of (customer seed, date, trades per day): the history starts on
//! [`OPENING_DATE`] and is replayed up to "today" on every call, so a given day always answers the same, a later
//! day extends the same history (an activity keeps its id and merely turns from pending to posted), and
//! positions and cash are by construction the sum of the history. Prices are closed-form in the date (a trend,
//! a slow wave and a little daily noise), so valuing a position on any day costs nothing.
//!
//! Quantities move only through `TRADE` activities; cash moves by every activity's `net` amount.

use rust_decimal::{Decimal, RoundingStrategy, prelude::ToPrimitive};
use sha2::{Digest, Sha256};
use time::{Date, Duration, Month, OffsetDateTime, PrimitiveDateTime, Time, Weekday, macros::date};

use crate::rng::{KeyedRng, mix};

/// The day every sandbox customer opened their accounts; the history is replayed from here.
pub(crate) const OPENING_DATE: Date = date!(2020 - 01 - 02);

/// Activity ids count days from here, so an id says when it happened and never changes.
const ID_EPOCH: Date = date!(2000 - 01 - 01);

/// The most trades per account per calendar day the generator accepts (keeps activity ids unique per day).
pub(crate) const MAX_TRADES_PER_DAY: f64 = 1000.0;

/// What kind of instrument a security is, in Schwab's vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AssetClass {
    Equity,
    Etf,
    MutualFund,
    MoneyMarket,
}

impl AssetClass {
    /// Schwab's `instrument.assetType`.
    pub(crate) fn asset_type(self) -> &'static str {
        match self {
            Self::Equity => "EQUITY",
            Self::Etf => "COLLECTIVE_INVESTMENT",
            Self::MutualFund => "MUTUAL_FUND",
            Self::MoneyMarket => "CASH_EQUIVALENT",
        }
    }

    /// Schwab's `instrument.type`.
    pub(crate) fn instrument_type(self) -> &'static str {
        match self {
            Self::Equity => "COMMON_STOCK",
            Self::Etf => "EXCHANGE_TRADED_FUND",
            Self::MutualFund => "NO_LOAD_TAXABLE",
            Self::MoneyMarket => "MONEY_MARKET_FUND",
        }
    }

    /// Decimal places a quantity of this class is traded in (stocks whole, funds fractional).
    fn quantity_places(self) -> u32 {
        match self {
            Self::Equity | Self::Etf => 0,
            Self::MutualFund => 3,
            Self::MoneyMarket => 2,
        }
    }

    /// Exchange-traded sells pay the SEC's transaction fee; fund redemptions do not.
    fn pays_sec_fee(self) -> bool {
        matches!(self, Self::Equity | Self::Etf)
    }
}

/// One security a sandbox account can hold.
#[derive(Debug)]
pub(crate) struct Security {
    pub(crate) symbol: &'static str,
    pub(crate) cusip: &'static str,
    pub(crate) description: &'static str,
    pub(crate) class: AssetClass,
    pub(crate) instrument_id: i64,
    /// Price on the opening date, before the customer's jitter.
    opening_price: f64,
    /// Annual drift of the log price.
    growth: f64,
    /// Daily noise of the log price.
    volatility: f64,
    /// Annual dividend yield; paid quarterly (annually, in December, for mutual funds).
    dividend_yield: f64,
    /// First month (1–3) of the quarterly dividend schedule.
    dividend_month: u8,
}

#[allow(clippy::too_many_arguments)] // One row of the securities table below, positional for legibility.
const fn security(
    symbol: &'static str,
    cusip: &'static str,
    description: &'static str,
    class: AssetClass,
    instrument_id: i64,
    opening_price: f64,
    growth: f64,
    volatility: f64,
    dividend_yield: f64,
    dividend_month: u8,
) -> Security {
    Security {
        symbol,
        cusip,
        description,
        class,
        instrument_id,
        opening_price,
        growth,
        volatility,
        dividend_yield,
        dividend_month,
    }
}

use AssetClass::{Equity, Etf, MoneyMarket, MutualFund};

static TAXABLE_SECURITIES: [Security; 7] = [
    security("AAPL", "037833100", "APPLE INC", Equity, 1_973_757_747, 75.0, 0.18, 0.012, 0.005, 2),
    security("MSFT", "594918104", "MICROSOFT CORP", Equity, 1_240_385_372, 160.0, 0.17, 0.011, 0.008, 3),
    security("JNJ", "478160104", "JOHNSON & JOHNSON", Equity, 1_102_644_913, 145.0, 0.02, 0.008, 0.030, 3),
    security("VTI", "922908769", "VANGUARD TOTAL STOCK MARKET ETF", Etf, 1_398_410_204, 165.0, 0.10, 0.007, 0.014, 3),
    security("SCHD", "808524797", "SCHWAB US DIVIDEND EQUITY ETF", Etf, 1_486_329_120, 58.0, 0.06, 0.006, 0.034, 3),
    security(
        "SWTSX",
        "808509855",
        "SCHWAB TOTAL STOCK MARKET INDEX",
        MutualFund,
        1_055_237_761,
        55.0,
        0.10,
        0.007,
        0.012,
        3,
    ),
    security(
        "SWVXX",
        "808515605",
        "SCHWAB VALUE ADVANTAGE MONEY INV",
        MoneyMarket,
        1_010_004_411,
        1.0,
        0.0,
        0.0,
        0.0,
        1,
    ),
];

static RETIREMENT_SECURITIES: [Security; 5] = [
    security("VOO", "922908363", "VANGUARD S&P 500 ETF", Etf, 1_398_409_977, 300.0, 0.11, 0.007, 0.013, 3),
    security("BND", "921937835", "VANGUARD TOTAL BOND MARKET ETF", Etf, 1_398_411_029, 84.0, -0.01, 0.003, 0.034, 1),
    security("KO", "191216100", "COCA-COLA CO", Equity, 1_037_110_553, 55.0, 0.03, 0.008, 0.031, 1),
    security("SWPPX", "808509855", "SCHWAB S&P 500 INDEX", MutualFund, 1_055_237_835, 50.0, 0.11, 0.007, 0.013, 3),
    security("SNSXX", "808515878", "SCHWAB US TREASURY MONEY INV", MoneyMarket, 1_010_004_436, 1.0, 0.0, 0.0, 0.0, 1),
];

/// Money-market funds pay this annual yield, monthly.
const MONEY_MARKET_YIELD: f64 = 0.045;
/// Uninvested cash earns this annual rate, credited monthly.
const CASH_INTEREST_RATE: f64 = 0.0045;
/// The SEC's fee per dollar sold (US$27.80 per million).
const SEC_FEE_PER_MILLION: i64 = 2780;

/// One of a customer's two accounts.
#[derive(Debug, Clone)]
pub(crate) struct Account {
    /// The plain 8-digit account number.
    pub(crate) number: String,
    /// Schwab's `hashValue`: the account's id in every call.
    pub(crate) hash: String,
    /// `MARGIN` for the taxable account, `CASH` for the retirement one.
    pub(crate) schwab_type: &'static str,
    /// `userPreference`'s account type.
    pub(crate) preference_type: &'static str,
    pub(crate) nickname: &'static str,
    pub(crate) securities: &'static [Security],
}

impl Account {
    /// Margin accounts report buying power and availableFunds; cash accounts report what may be withdrawn.
    pub(crate) fn is_margin(&self) -> bool {
        self.schwab_type == "MARGIN"
    }
}

/// A sandbox customer: two accounts and the amounts of their habits, all derived from a name.
#[derive(Debug, Clone)]
pub(crate) struct Customer {
    seed: u64,
    pub(crate) accounts: [Account; 2],
    opening_deposit: Decimal,
    rollover: Decimal,
    monthly_deposit: Decimal,
    quarterly_contribution: Decimal,
}

impl Customer {
    /// The customer called `name` (the authorization's `customer` parameter, `default` when absent).
    pub(crate) fn new(name: &str) -> Self {
        let digest = Sha256::digest(format!("dashtam-sandbox customer {name}").as_bytes());
        let mut seed_bytes = [0_u8; 8];
        seed_bytes.copy_from_slice(&digest[..8]);
        let seed = u64::from_be_bytes(seed_bytes);
        let mut rng = KeyedRng::new(&[seed, 0xC057_0E11]);

        let taxable_number = 10_000_000 + rng.below(90_000_000);
        let mut retirement_number = 10_000_000 + rng.below(90_000_000);
        if retirement_number == taxable_number {
            retirement_number = 10_000_000 + (retirement_number - 10_000_000 + 1) % 90_000_000;
        }
        let roth = rng.chance(0.5);
        let hash = |number: u64| {
            let digest = Sha256::digest(format!("dashtam-sandbox account {seed} {number}").as_bytes());
            digest.iter().map(|byte| format!("{byte:02X}")).collect::<String>()
        };
        let accounts = [
            Account {
                number: taxable_number.to_string(),
                hash: hash(taxable_number),
                schwab_type: "MARGIN",
                preference_type: "BROKERAGE",
                nickname: "Individual",
                securities: &TAXABLE_SECURITIES,
            },
            Account {
                number: retirement_number.to_string(),
                hash: hash(retirement_number),
                schwab_type: "CASH",
                preference_type: "IRA",
                nickname: if roth { "Roth IRA" } else { "Traditional IRA" },
                securities: &RETIREMENT_SECURITIES,
            },
        ];
        Self {
            seed,
            accounts,
            opening_deposit: Decimal::from(20_000 + 1_000 * rng.below(60)),
            rollover: Decimal::from(15_000 + 1_000 * rng.below(45)),
            monthly_deposit: Decimal::from(500 + 50 * rng.below(40)),
            quarterly_contribution: Decimal::from(500 + 100 * rng.below(10)),
        }
    }

    /// The account whose `hashValue` is `hash`, with its index.
    pub(crate) fn account_by_hash(&self, hash: &str) -> Option<usize> {
        self.accounts.iter().position(|account| account.hash == hash)
    }

    /// The closing price of `security` on `day`: 4 places (2 for mutual fund NAVs, exactly 1 for money markets).
    pub(crate) fn price(&self, security: &Security, day: Date) -> Decimal {
        if security.class == AssetClass::MoneyMarket {
            return Decimal::ONE;
        }
        let key = symbol_key(security.symbol);
        let mut shape = KeyedRng::new(&[self.seed, key, 0x5A4E]);
        let jitter = shape.between(0.85, 1.15);
        let phase = shape.between(0.0, std::f64::consts::TAU);
        let period = shape.between(150.0, 420.0);
        let years = f64::from(i32::try_from((day - OPENING_DATE).whole_days()).unwrap_or(0)) / 365.25;
        let wave = 0.08 * ((std::f64::consts::TAU * years * 365.25 / period + phase).sin() - phase.sin());
        let noise = security.volatility * KeyedRng::new(&[self.seed, key, day_number(day)]).normal();
        let price = security.opening_price * jitter * (security.growth * years + wave + noise).exp();
        let places = if security.class == AssetClass::MutualFund { 2 } else { 4 };
        to_decimal(price, places).max(Decimal::new(1, 2))
    }
}

/// A position's state: quantity and total cost (average-cost basis, commissions included).
#[derive(Debug, Clone, Default)]
pub(crate) struct Holding {
    pub(crate) quantity: Decimal,
    pub(crate) cost: Decimal,
    /// Quantity at the end of the day before "today".
    pub(crate) previous_quantity: Decimal,
    /// What was spent buying it "today".
    pub(crate) bought_today: Decimal,
}

/// An account's cash and holdings at the end of "today" (pending activity included).
#[derive(Debug, Clone)]
pub(crate) struct AccountState {
    pub(crate) cash: Decimal,
    /// Cash at the end of the day before "today".
    pub(crate) previous_cash: Decimal,
    /// One per security of the account, in the account's order.
    pub(crate) holdings: Vec<Holding>,
}

/// A trade's details.
#[derive(Debug, Clone)]
pub(crate) struct Trade {
    pub(crate) security: &'static Security,
    /// Signed from the owner's side: positive bought, negative sold.
    pub(crate) quantity: Decimal,
    pub(crate) price: Decimal,
    /// Quantity × price in cents, always positive.
    pub(crate) principal: Decimal,
    pub(crate) commission: Decimal,
    pub(crate) sec_fee: Decimal,
    pub(crate) order_id: i64,
    pub(crate) position_id: i64,
    pub(crate) settlement: Date,
}

/// What an activity was.
#[derive(Debug, Clone)]
pub(crate) enum ActivityKind {
    Trade(Trade),
    /// A dividend paid by a held security.
    Dividend {
        security: &'static Security,
        description: &'static str,
    },
    /// Interest credited on cash.
    Interest,
    /// Cash in or out of the account from outside (ACH, rollover).
    Transfer {
        schwab_type: &'static str,
        description: &'static str,
    },
    /// Cash moved between the customer's own accounts.
    Journal {
        description: &'static str,
    },
    /// A fee charged by the broker.
    Fee {
        description: &'static str,
    },
}

/// One entry of an account's history.
#[derive(Debug, Clone)]
pub(crate) struct Activity {
    pub(crate) id: i64,
    /// Index into [`Customer::accounts`].
    pub(crate) account: usize,
    pub(crate) time: OffsetDateTime,
    /// Signed from the owner's side, in cents.
    pub(crate) net: Decimal,
    pub(crate) kind: ActivityKind,
}

impl Activity {
    /// Schwab's transaction `type`.
    pub(crate) fn schwab_type(&self) -> &'static str {
        match &self.kind {
            ActivityKind::Trade(_) => "TRADE",
            ActivityKind::Dividend { .. } | ActivityKind::Interest => "DIVIDEND_OR_INTEREST",
            ActivityKind::Transfer { schwab_type, .. } => schwab_type,
            ActivityKind::Journal { .. } | ActivityKind::Fee { .. } => "JOURNAL",
        }
    }
}

/// The state of both accounts at the end of "today".
#[derive(Debug, Clone)]
pub(crate) struct Ledger {
    pub(crate) accounts: [AccountState; 2],
}

/// Replays the customer's history from the opening date through `today`, handing every activity to `sink` in
/// chronological order, and returns the resulting state. `trades_per_day` is the average number of trades per
/// account per calendar day (trading happens on weekdays).
pub(crate) fn simulate(
    customer: &Customer,
    trades_per_day: f64,
    today: Date,
    mut sink: impl FnMut(&Activity),
) -> Ledger {
    let mut replay = Replay {
        customer,
        trades_per_weekday: trades_per_day.clamp(0.0, MAX_TRADES_PER_DAY) * 7.0 / 5.0,
        today,
        states: std::array::from_fn(|index| AccountState {
            cash: Decimal::ZERO,
            previous_cash: Decimal::ZERO,
            holdings: vec![Holding::default(); customer.accounts[index].securities.len()],
        }),
        sequence: [0; 2],
        sink: &mut sink,
    };
    let mut day = OPENING_DATE;
    while day <= today {
        replay.day(day);
        match day.next_day() {
            Some(next) => day = next,
            None => break,
        }
    }
    Ledger { accounts: replay.states }
}

/// Purposes of the per-day generators, so that one kind of activity never shifts another's randomness.
const PURPOSE_TRADES: u64 = 1;
const PURPOSE_FEE: u64 = 2;
const PURPOSE_WITHDRAWAL: u64 = 3;
const PURPOSE_OPENING: u64 = 4;

struct Replay<'a, F> {
    customer: &'a Customer,
    trades_per_weekday: f64,
    today: Date,
    states: [AccountState; 2],
    /// Activities so far on the current day, per account (the low digits of the activity id).
    sequence: [i64; 2],
    sink: &'a mut F,
}

impl<F: FnMut(&Activity)> Replay<'_, F> {
    fn day(&mut self, day: Date) {
        if day == self.today {
            for state in &mut self.states {
                state.previous_cash = state.cash;
                for holding in &mut state.holdings {
                    holding.previous_quantity = holding.quantity;
                }
            }
        }
        self.sequence = [0; 2];
        if day == OPENING_DATE {
            self.open_accounts(day);
        }
        if is_weekday(day) {
            self.monthly_income(day);
            self.dividends(day);
            self.deposits_and_journals(day);
            self.fees(day);
            self.withdrawal(day);
            for account in 0..2 {
                self.trades(account, day);
            }
        }
    }

    /// Funds both accounts and buys a little of everything, so every kind of position exists from day one.
    fn open_accounts(&mut self, day: Date) {
        let deposit = self.customer.opening_deposit;
        self.record(
            0,
            day,
            at(12, 0, 0),
            deposit,
            ActivityKind::Transfer { schwab_type: "ACH_RECEIPT", description: "ACH DEPOSIT" },
        );
        let rollover = self.customer.rollover;
        self.record(
            1,
            day,
            at(12, 0, 0),
            rollover,
            ActivityKind::Transfer { schwab_type: "CASH_RECEIPT", description: "ROLLOVER CONTRIBUTION" },
        );
        for account in 0..2 {
            let securities = self.customer.accounts[account].securities;
            let invest = self.states[account].cash * Decimal::new(95, 2);
            let mut rng = KeyedRng::new(&[self.customer.seed, account as u64, day_number(day), PURPOSE_OPENING]);
            for (index, security) in securities.iter().enumerate() {
                let share = if security.class == AssetClass::MoneyMarket {
                    Decimal::new(10, 2)
                } else {
                    Decimal::new(85, 2) / Decimal::from(securities.len() - 1)
                };
                let budget = (invest * share).round_dp(2);
                let seconds = 14 * 3600 + 1800 + 60 * index as u32 + rng.below(60) as u32;
                self.buy(account, index, day, seconds_of_day(seconds), budget, Decimal::ZERO);
            }
        }
    }

    /// Interest on cash and money-market dividends, on the first weekday of the month.
    fn monthly_income(&mut self, day: Date) {
        if day != first_weekday_from(day.year(), day.month(), 1) {
            return;
        }
        for account in 0..2 {
            let cash = self.states[account].cash;
            let interest = to_decimal(cash.to_f64().unwrap_or(0.0) * CASH_INTEREST_RATE / 12.0, 2);
            if interest >= Decimal::new(1, 2) {
                self.record(account, day, at(9, 0, 0), interest, ActivityKind::Interest);
            }
            let securities = self.customer.accounts[account].securities;
            for (index, security) in securities.iter().enumerate() {
                if security.class != AssetClass::MoneyMarket {
                    continue;
                }
                let quantity = self.states[account].holdings[index].quantity.to_f64().unwrap_or(0.0);
                let dividend = to_decimal(quantity * MONEY_MARKET_YIELD / 12.0, 2);
                if dividend >= Decimal::new(1, 2) {
                    let kind = ActivityKind::Dividend { security, description: "MONEY MARKET DIVIDEND" };
                    self.record(account, day, at(9, 30, 0), dividend, kind);
                }
            }
        }
    }

    /// Quarterly dividends (annual for mutual funds) on the first weekday from the 15th.
    fn dividends(&mut self, day: Date) {
        if day != first_weekday_from(day.year(), day.month(), 15) {
            return;
        }
        let month = u8::from(day.month());
        for account in 0..2 {
            let securities = self.customer.accounts[account].securities;
            for (index, security) in securities.iter().enumerate() {
                let pays = match security.class {
                    AssetClass::MoneyMarket => false,
                    AssetClass::MutualFund => month == 12,
                    AssetClass::Equity | AssetClass::Etf => month % 3 == security.dividend_month % 3,
                };
                let quantity = self.states[account].holdings[index].quantity;
                if !pays || security.dividend_yield <= 0.0 || quantity <= Decimal::ZERO {
                    continue;
                }
                let periods = if security.class == AssetClass::MutualFund { 1.0 } else { 4.0 };
                let price = self.customer.price(security, day).to_f64().unwrap_or(0.0);
                let per_share = to_decimal(price * security.dividend_yield / periods, 4);
                let amount = (quantity * per_share).round_dp(2);
                if amount < Decimal::new(1, 2) {
                    continue;
                }
                let description = match security.class {
                    AssetClass::Equity => "QUALIFIED DIVIDEND",
                    _ => "ORDINARY DIVIDEND",
                };
                let time = at(11, index as u8, 0);
                self.record(account, day, time, amount, ActivityKind::Dividend { security, description });
            }
        }
    }

    /// The monthly ACH deposit into the taxable account, and quarterly journals from it into the IRA.
    fn deposits_and_journals(&mut self, day: Date) {
        if day == first_weekday_from(day.year(), day.month(), 3) {
            let amount = self.customer.monthly_deposit;
            self.record(
                0,
                day,
                at(12, 0, 0),
                amount,
                ActivityKind::Transfer { schwab_type: "ACH_RECEIPT", description: "ACH DEPOSIT" },
            );
        }
        let quarter_start = matches!(day.month(), Month::January | Month::April | Month::July | Month::October);
        if quarter_start && day == first_weekday_from(day.year(), day.month(), 10) {
            let amount = self.customer.quarterly_contribution;
            if self.states[0].cash >= amount {
                let out = ActivityKind::Journal { description: "JOURNAL TO IRA CONTRIBUTION" };
                self.record(0, day, at(13, 0, 0), -amount, out);
                let into = ActivityKind::Journal { description: "JOURNAL FROM BROKERAGE IRA CONTRIBUTION" };
                self.record(1, day, at(13, 0, 0), amount, into);
            }
        }
    }

    /// Now and then a month brings a small fee, on the first weekday from the 20th.
    fn fees(&mut self, day: Date) {
        if day != first_weekday_from(day.year(), day.month(), 20) {
            return;
        }
        for account in 0..2 {
            let mut rng = KeyedRng::new(&[self.customer.seed, account as u64, day_number(day), PURPOSE_FEE]);
            if !rng.chance(0.3) {
                continue;
            }
            let (description, amount) = match rng.below(3) {
                0 => ("PAPER STATEMENT FEE", Decimal::new(200, 2)),
                1 => ("ADR MGMT FEE", Decimal::new(25 + rng.below(400) as i64, 2)),
                _ => ("SERVICE FEE", Decimal::new(500 + 500 * rng.below(4) as i64, 2)),
            };
            if self.states[account].cash >= amount {
                self.record(account, day, at(13, 30, 0), -amount, ActivityKind::Fee { description });
            }
        }
    }

    /// The taxable account sends some cash out roughly every couple of months.
    fn withdrawal(&mut self, day: Date) {
        let mut rng = KeyedRng::new(&[self.customer.seed, 0, day_number(day), PURPOSE_WITHDRAWAL]);
        if !rng.chance(1.0 / 45.0) {
            return;
        }
        let amount = Decimal::from(200 + 10 * rng.below(180));
        if self.states[0].cash >= amount + Decimal::from(500) {
            self.record(
                0,
                day,
                at(14, 0, 0),
                -amount,
                ActivityKind::Transfer { schwab_type: "ACH_DISBURSEMENT", description: "ACH WITHDRAWAL" },
            );
        }
    }

    /// The day's trades in one account: buys while cash allows, otherwise sells of part of a holding.
    fn trades(&mut self, account: usize, day: Date) {
        let mut rng = KeyedRng::new(&[self.customer.seed, account as u64, day_number(day), PURPOSE_TRADES]);
        let whole = self.trades_per_weekday.floor();
        let count = whole as u64 + u64::from(rng.chance(self.trades_per_weekday - whole));
        // Market hours, 14:30–21:00 UTC; times are drawn then sorted so ids follow the clock.
        let mut seconds: Vec<u32> = (0..count).map(|_| 14 * 3600 + 1800 + rng.below(6 * 3600 + 1800) as u32).collect();
        seconds.sort_unstable();
        let securities = self.customer.accounts[account].securities;
        for second in seconds {
            let time = seconds_of_day(second);
            let index = rng.below(securities.len() as u64) as usize;
            let security = &securities[index];
            let held = self.states[account].holdings[index].quantity;
            let wants_sell = held > Decimal::ZERO && rng.chance(0.4);
            let budget = Decimal::from(500 + 10 * rng.below(450));
            let broker_assisted = security.class.pays_sec_fee() && rng.chance(0.05);
            let commission = if broker_assisted { Decimal::from(25) } else { Decimal::ZERO };
            let fraction = rng.between(0.1, 0.6);
            if wants_sell || !self.buy(account, index, day, time, budget, commission) {
                self.sell(account, index, day, time, fraction, commission);
            }
        }
    }

    /// Buys about `budget` worth of a security if the cash is there; says whether it did.
    fn buy(
        &mut self,
        account: usize,
        index: usize,
        day: Date,
        time: Time,
        budget: Decimal,
        commission: Decimal,
    ) -> bool {
        let security = &self.customer.accounts[account].securities[index];
        let price = self.customer.price(security, day);
        let quantity =
            (budget / price).round_dp_with_strategy(security.class.quantity_places(), RoundingStrategy::ToZero);
        if quantity <= Decimal::ZERO {
            return false;
        }
        let principal = (quantity * price).round_dp(2);
        let total = principal + commission;
        if self.states[account].cash < total {
            return false;
        }
        let holding = &mut self.states[account].holdings[index];
        holding.quantity += quantity;
        holding.cost += total;
        if day == self.today {
            holding.bought_today += total;
        }
        let trade = self.trade(account, security, day, quantity, price, principal, commission, Decimal::ZERO);
        self.record(account, day, time, -total, ActivityKind::Trade(trade));
        true
    }

    /// Sells `fraction` of a holding (at least one unit), if there is any.
    fn sell(&mut self, account: usize, index: usize, day: Date, time: Time, fraction: f64, commission: Decimal) {
        let security = &self.customer.accounts[account].securities[index];
        let holding = &self.states[account].holdings[index];
        let held = holding.quantity;
        if held <= Decimal::ZERO {
            return;
        }
        let places = security.class.quantity_places();
        let unit = Decimal::new(1, places);
        let wanted = (held * to_decimal(fraction, 4)).round_dp_with_strategy(places, RoundingStrategy::ToZero);
        let quantity = wanted.max(unit).min(held);
        let price = self.customer.price(security, day);
        let principal = (quantity * price).round_dp(2);
        let sec_fee = if security.class.pays_sec_fee() {
            (principal * Decimal::new(SEC_FEE_PER_MILLION, 2) / Decimal::from(1_000_000))
                .round_dp_with_strategy(2, RoundingStrategy::AwayFromZero)
                .max(Decimal::new(1, 2))
        } else {
            Decimal::ZERO
        };
        let cost_sold = if quantity == held { holding.cost } else { (holding.cost * quantity / held).round_dp(2) };
        let holding = &mut self.states[account].holdings[index];
        holding.quantity -= quantity;
        holding.cost -= cost_sold;
        let net = principal - commission - sec_fee;
        let trade = self.trade(account, security, day, -quantity, price, principal, commission, sec_fee);
        self.record(account, day, time, net, ActivityKind::Trade(trade));
    }

    #[allow(clippy::too_many_arguments)] // A trade simply has this many parts.
    fn trade(
        &self,
        account: usize,
        security: &'static Security,
        day: Date,
        quantity: Decimal,
        price: Decimal,
        principal: Decimal,
        commission: Decimal,
        sec_fee: Decimal,
    ) -> Trade {
        let id = self.next_id(account, day);
        let settlement = if security.class == AssetClass::MoneyMarket { day } else { next_weekday(day) };
        let position_key = mix(self.customer.seed ^ symbol_key(security.symbol) ^ account as u64);
        Trade {
            security,
            quantity,
            price,
            principal,
            commission,
            sec_fee,
            order_id: 1_000_000_000 + (mix(id as u64) % 9_000_000_000) as i64,
            position_id: 1_000_000_000 + (position_key % 9_000_000_000) as i64,
            settlement,
        }
    }

    /// The id the next activity of `account` on `day` gets: account, day and sequence, so it never changes.
    fn next_id(&self, account: usize, day: Date) -> i64 {
        let prefix = ((self.customer.seed % 400) * 2 + account as u64) as i64;
        let day_index = (day - ID_EPOCH).whole_days();
        10_000_000_000_000 + prefix * 10_000_000_000 + day_index * 100_000 + self.sequence[account]
    }

    fn record(&mut self, account: usize, day: Date, time: Time, net: Decimal, kind: ActivityKind) {
        let activity = Activity {
            id: self.next_id(account, day),
            account,
            time: PrimitiveDateTime::new(day, time).assume_utc(),
            net,
            kind,
        };
        self.sequence[account] += 1;
        self.states[account].cash += net;
        (self.sink)(&activity);
    }
}

/// A day's number for seeding (its Julian day; any injective map would do).
fn day_number(day: Date) -> u64 {
    u64::try_from(day.to_julian_day()).unwrap_or_default()
}

fn symbol_key(symbol: &str) -> u64 {
    symbol.bytes().fold(0xD1CE_u64, |acc, byte| mix(acc ^ u64::from(byte)))
}

fn is_weekday(day: Date) -> bool {
    !matches!(day.weekday(), Weekday::Saturday | Weekday::Sunday)
}

fn next_weekday(day: Date) -> Date {
    let mut next = day + Duration::days(1);
    while !is_weekday(next) {
        next += Duration::days(1);
    }
    next
}

/// The first weekday on or after `day_of_month` in the given month.
fn first_weekday_from(year: i32, month: Month, day_of_month: u8) -> Date {
    let Ok(start) = Date::from_calendar_date(year, month, day_of_month) else {
        return OPENING_DATE;
    };
    if is_weekday(start) { start } else { next_weekday(start) }
}

fn at(hour: u8, minute: u8, second: u8) -> Time {
    Time::from_hms(hour, minute.min(59), second).unwrap_or(Time::MIDNIGHT)
}

fn seconds_of_day(seconds: u32) -> Time {
    let seconds = seconds.min(86_399);
    at((seconds / 3600) as u8, (seconds / 60 % 60) as u8, (seconds % 60) as u8)
}

/// A float rounded to `places` decimals; only used where the float is a model's output, never for money sums.
fn to_decimal(value: f64, places: u32) -> Decimal {
    let scale = 10_f64.powi(places as i32);
    Decimal::new((value * scale).round() as i64, places)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn customers_differ_and_repeat() {
        let a = Customer::new("default");
        let b = Customer::new("default");
        let c = Customer::new("alice");
        assert_eq!(a.accounts[0].hash, b.accounts[0].hash);
        assert_ne!(a.accounts[0].hash, c.accounts[0].hash);
        for account in &a.accounts {
            assert_eq!(account.number.len(), 8);
            assert_eq!(account.hash.len(), 64);
            assert!(account.hash.chars().all(|c| c.is_ascii_digit() || c.is_ascii_uppercase()));
        }
        assert_ne!(a.accounts[0].number, a.accounts[1].number);
    }

    #[test]
    fn holdings_are_the_sum_of_trades_and_cash_the_sum_of_nets() {
        let customer = Customer::new("default");
        let mut quantities = [vec![Decimal::ZERO; 7], vec![Decimal::ZERO; 5]];
        let mut cash = [Decimal::ZERO; 2];
        let ledger = simulate(&customer, 2.0, date!(2025 - 10 - 03), |activity| {
            cash[activity.account] += activity.net;
            if let ActivityKind::Trade(trade) = &activity.kind {
                let securities = customer.accounts[activity.account].securities;
                let index = securities.iter().position(|s| s.symbol == trade.security.symbol).unwrap_or(usize::MAX);
                quantities[activity.account][index] += trade.quantity;
            }
        });
        for account in 0..2 {
            assert_eq!(ledger.accounts[account].cash, cash[account]);
            assert!(ledger.accounts[account].cash >= Decimal::ZERO);
            for (holding, quantity) in ledger.accounts[account].holdings.iter().zip(&quantities[account]) {
                assert_eq!(holding.quantity, *quantity);
                assert!(holding.quantity > Decimal::ZERO, "every position survives");
            }
        }
    }

    #[test]
    fn ids_are_unique_and_chronological() {
        let customer = Customer::new("default");
        let mut last = [(OffsetDateTime::UNIX_EPOCH, 0_i64); 2];
        simulate(&customer, 5.0, date!(2021 - 06 - 30), |activity| {
            let (time, id) = last[activity.account];
            assert!(activity.time >= time && activity.id > id, "{activity:?}");
            last[activity.account] = (activity.time, activity.id);
        });
    }

    #[test]
    fn prices_move_a_little() {
        let customer = Customer::new("default");
        let security = &TAXABLE_SECURITIES[0];
        let monday = customer.price(security, date!(2025 - 10 - 06));
        let tuesday = customer.price(security, date!(2025 - 10 - 07));
        assert_ne!(monday, tuesday);
        let change = ((tuesday - monday) / monday).abs();
        assert!(change < Decimal::new(10, 2), "{monday} -> {tuesday}");
        assert_eq!(customer.price(&TAXABLE_SECURITIES[6], date!(2025 - 10 - 06)), Decimal::ONE);
    }
}
