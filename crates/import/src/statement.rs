//! What a parsed statement file holds, in the domain's vocabularies.

use dashtam_domain::finance::{AccountType, AssetType, TransactionSubtype, TransactionType};
use dashtam_domain::money::{Currency, Decimal};
use time::{Date, OffsetDateTime};

/// Everything read from one file: one or more accounts, and warnings about tolerated quirks.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    /// The accounts, in file order.
    pub accounts: Vec<StatementAccount>,
    /// Quirks read past ("line 12: empty <FITID>"), for the import result; never failures.
    pub warnings: Vec<String>,
}

/// One account's part of a statement.
#[derive(Debug, Clone, PartialEq)]
pub struct StatementAccount {
    /// The institution: OFX `ORG`, else `FID`; `None` when the file does not say (CSV).
    pub institution: Option<String>,
    /// The account number as the file gives it (OFX `ACCTID`); empty for a CSV, whose account the caller names.
    pub account_id: String,
    /// The kind of account.
    pub account_type: AccountType,
    /// The currency of every amount in this account (OFX `CURDEF`; USD when a CSV does not say).
    pub currency: Currency,
    /// The balance from the owner's side (negative when owed): `LEDGERBAL`, or for an investment account the
    /// total value (`INV401KBAL` `TOTAL`, else cash plus the positions' market value).
    pub balance: Option<StatementBalance>,
    /// Money available: `AVAILBAL`, or for an investment account the cash (`AVAILCASH` / `CASHBAL`).
    pub available_balance: Option<StatementBalance>,
    /// Transactions, in file order.
    pub transactions: Vec<StatementTransaction>,
    /// Positions held at the statement date (investment accounts only).
    pub positions: Vec<StatementPosition>,
}

/// A balance and the day it was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatementBalance {
    /// The amount, signed from the owner's side.
    pub amount: Decimal,
    /// The day (as the file states it, in the file's own time zone).
    pub as_of: Date,
}

/// One transaction line.
#[derive(Debug, Clone, PartialEq)]
pub struct StatementTransaction {
    /// The institution's id (OFX `FITID`, a CSV id column); `None` when absent or empty.
    pub fitid: Option<String>,
    /// The posting (investment: trade) date as the file states it, in the file's own time zone.
    pub posted_on: Date,
    /// The moment in UTC, when the file gives a time of day.
    pub posted_at: Option<OffsetDateTime>,
    /// Signed from the owner's side: money in is positive.
    pub amount: Decimal,
    /// The description (OFX `NAME`, else `MEMO`, else the kind of transaction).
    pub description: String,
    /// Who was paid or paid, when the file says.
    pub payee: Option<String>,
    /// A free-text note, when the file has one.
    pub memo: Option<String>,
    /// Broad kind.
    pub transaction_type: TransactionType,
    /// Finer kind, when known.
    pub subtype: Option<TransactionSubtype>,
    /// For trades, income and security transfers: the ticker (from `SECLIST`), else the security id.
    pub symbol: Option<String>,
    /// For trades and security transfers: units, positive in and negative out.
    pub quantity: Option<Decimal>,
    /// For trades: the price per unit.
    pub unit_price: Option<Decimal>,
    /// For trades: commissions, fees, taxes and loads together, as a positive amount.
    pub fees: Option<Decimal>,
    /// The 1-based line where the transaction starts: for messages, and to tell identical rows apart.
    pub line: usize,
}

/// A position held at the statement date.
#[derive(Debug, Clone, PartialEq)]
pub struct StatementPosition {
    /// The ticker (from `SECLIST`), else the security id (CUSIP or other `UNIQUEID`).
    pub symbol: String,
    /// The security's name, when the file's security list has it.
    pub name: Option<String>,
    /// What the security is.
    pub asset_type: AssetType,
    /// Units held, negative for a short position.
    pub quantity: Decimal,
    /// The price per unit.
    pub unit_price: Option<Decimal>,
    /// The position's market value.
    pub market_value: Decimal,
    /// The day of the price.
    pub as_of: Date,
}
