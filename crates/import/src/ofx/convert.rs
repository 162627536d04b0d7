//! From OFX elements to the statement types: accounts, transactions, positions and securities.

use std::collections::HashMap;

use dashtam_domain::finance::{AccountType, AssetType, TransactionSubtype, TransactionType};
use dashtam_domain::money::{Currency, Decimal};
use time::Date;

use super::tree::{Sink, Tree};
use crate::error::{ParseError, quoted, snippet};
use crate::statement::{StatementAccount, StatementBalance, StatementPosition, StatementTransaction};
use crate::value::{OfxDateTime, parse_ofx_amount, parse_ofx_datetime};
use crate::warnings::Warnings;

/// The statement aggregates, one per account.
const STATEMENTS: &[&str] = &["STMTRS", "CCSTMTRS", "INVSTMTRS"];

/// Which kind of statement a transaction belongs to; the same `TRNTYPE` means different things in each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Context {
    Bank,
    Card,
    Investment,
}

/// A position whose date may come from the statement, which is only known once it closes.
#[derive(Debug)]
struct PendingPosition {
    position: StatementPosition,
    as_of: Option<Date>,
    line: usize,
}

/// Converts transactions and positions as they close (so the tree never holds them all) and assembles the
/// accounts at the end.
#[derive(Debug, Default)]
pub(crate) struct Collector {
    /// Keyed by the statement element's id, which stays in the tree.
    transactions: HashMap<u32, Vec<StatementTransaction>>,
    positions: HashMap<u32, Vec<PendingPosition>>,
    warnings: Warnings,
    currency_warned: bool,
}

impl<'a> Sink<'a> for Collector {
    fn closed(&mut self, tree: &Tree<'a>, id: u32, ancestors: &[u32]) -> Result<bool, ParseError> {
        let Some(&parent) = ancestors.last() else { return Ok(false) };
        let Some(&statement) = ancestors.iter().rev().find(|&&a| STATEMENTS.contains(&tree.name(a))) else {
            return Ok(false);
        };
        let context = match tree.name(statement) {
            "CCSTMTRS" => Context::Card,
            "INVSTMTRS" => Context::Investment,
            _ => Context::Bank,
        };
        match (tree.name(parent), tree.name(id)) {
            (parent_name, "STMTTRN") if parent_name != "INVBANKTRAN" => {
                if parent_name != "BANKTRANLIST" {
                    // Misplaced, but plainly a transaction of this statement: keep it rather than lose money.
                    self.warnings.push(format!(
                        "line {}: <STMTTRN> inside <{}> rather than <BANKTRANLIST>",
                        tree.line(id),
                        snippet(parent_name)
                    ));
                }
                let transaction = self.bank_transaction(tree, id, context)?;
                self.transactions.entry(statement).or_default().push(transaction);
                Ok(true)
            }
            ("INVTRANLIST", _) => {
                if let Some(transaction) = self.investment_transaction(tree, id)? {
                    self.transactions.entry(statement).or_default().push(transaction);
                }
                Ok(true)
            }
            ("INVPOSLIST", _) => {
                let position = position(tree, id)?;
                self.positions.entry(statement).or_default().push(position);
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

impl Collector {
    fn bank_transaction(
        &mut self,
        tree: &Tree<'_>,
        id: u32,
        context: Context,
    ) -> Result<StatementTransaction, ParseError> {
        let line = tree.line(id);
        let trntype = tree.child(id, "TRNTYPE").map(|t| tree.text(t).trim().to_ascii_uppercase()).unwrap_or_default();
        let posted = date_at(tree, required(tree, id, "DTPOSTED")?)?;
        let amount = amount_at(tree, required(tree, id, "TRNAMT")?)?;
        let fitid = self.fitid(tree, id);
        let name = text_of(tree, id, "NAME");
        let payee = tree.path(id, &["PAYEE", "NAME"]).map(|p| tree.text(p).trim().to_owned()).filter(|p| !p.is_empty());
        let memo = text_of(tree, id, "MEMO");
        if !self.currency_warned && (tree.child(id, "CURRENCY").is_some() || tree.child(id, "ORIGCURRENCY").is_some()) {
            self.currency_warned = true;
            self.warnings.push(format!("line {line}: foreign-currency details ignored; amounts kept as written"));
        }
        let description = name
            .clone()
            .or_else(|| payee.clone())
            .or_else(|| memo.clone())
            .or_else(|| text_of(tree, id, "CHECKNUM").map(|n| format!("Check {n}")))
            .unwrap_or_else(|| describe_trntype(&trntype).to_owned());
        let (transaction_type, subtype) = bank_kind(&trntype, amount, context);
        Ok(StatementTransaction {
            fitid,
            posted_on: posted.date,
            posted_at: posted.at,
            amount,
            description,
            payee: payee.or(name),
            memo,
            transaction_type,
            subtype,
            symbol: None,
            quantity: None,
            unit_price: None,
            fees: None,
            line,
        })
    }

    /// `FITID` under `id`; an empty one is a warning and counts as absent.
    fn fitid(&mut self, tree: &Tree<'_>, id: u32) -> Option<String> {
        let element = tree.child(id, "FITID")?;
        let value = tree.text(element).trim().to_owned();
        if value.is_empty() {
            self.warnings.push(format!(
                "line {}: empty <FITID>; the transaction is identified by its content",
                tree.line(element)
            ));
            return None;
        }
        Some(value)
    }

    fn investment_transaction(&mut self, tree: &Tree<'_>, id: u32) -> Result<Option<StatementTransaction>, ParseError> {
        let kind = tree.name(id);
        let line = tree.line(id);
        if kind == "INVBANKTRAN" {
            let statement = required(tree, id, "STMTTRN")?;
            return self.bank_transaction(tree, statement, Context::Investment).map(Some);
        }
        let inner = if kind.starts_with("BUY") {
            required(tree, id, "INVBUY")?
        } else if kind.starts_with("SELL") {
            required(tree, id, "INVSELL")?
        } else {
            id
        };
        let Some(invtran) = tree.child(inner, "INVTRAN") else {
            self.warnings.push(format!("line {line}: skipped <{}>, which is not a transaction", snippet(kind)));
            return Ok(None);
        };
        let traded = date_at(tree, required(tree, invtran, "DTTRADE")?)?;
        let fitid = self.fitid(tree, invtran);
        let memo = text_of(tree, invtran, "MEMO");
        let symbol =
            tree.path(inner, &["SECID", "UNIQUEID"]).map(|u| tree.text(u).trim().to_owned()).filter(|s| !s.is_empty());
        let units = optional_amount(tree, inner, "UNITS")?;
        let unit_price = optional_amount(tree, inner, "UNITPRICE")?;
        let mut fees = None;
        for name in ["COMMISSION", "FEES", "TAXES", "LOAD"] {
            if let Some(value) = optional_amount(tree, inner, name)? {
                fees = Some(fees.unwrap_or(Decimal::ZERO) + value.abs());
            }
        }
        let total = || -> Result<Decimal, ParseError> { amount_at(tree, required(tree, inner, "TOTAL")?) };
        let zero_or_total =
            || -> Result<Decimal, ParseError> { Ok(optional_amount(tree, inner, "TOTAL")?.unwrap_or_default()) };
        let (transaction_type, subtype, amount, quantity, label) = match kind {
            "BUYSTOCK" | "BUYMF" | "BUYDEBT" | "BUYOPT" | "BUYOTHER" | "REINVEST" => {
                let mut amount = total()?;
                if amount > Decimal::ZERO {
                    // A purchase always costs money; some exporters write its total unsigned.
                    self.warnings.push(format!("line {line}: positive <TOTAL> on <{kind}> read as money out"));
                    amount = -amount;
                }
                let label = if kind == "REINVEST" { "Reinvestment" } else { "Buy" };
                (TransactionType::Trade, Some(TransactionSubtype::Buy), amount, units.map(|u| u.abs()), label)
            }
            "SELLSTOCK" | "SELLMF" | "SELLDEBT" | "SELLOPT" | "SELLOTHER" => {
                (TransactionType::Trade, Some(TransactionSubtype::Sell), total()?, units.map(|u| -u.abs()), "Sell")
            }
            "INCOME" => {
                let income = tree.child(inner, "INCOMETYPE").map(|t| tree.text(t).trim().to_ascii_uppercase());
                let (subtype, label) = match income.as_deref() {
                    Some("DIV") => (Some(TransactionSubtype::Dividend), "Dividend"),
                    Some("INTEREST") => (Some(TransactionSubtype::Interest), "Interest"),
                    Some("CGLONG") => (Some(TransactionSubtype::CapitalGain), "Long-term capital gain"),
                    Some("CGSHORT") => (Some(TransactionSubtype::CapitalGain), "Short-term capital gain"),
                    _ => (None, "Income"),
                };
                (TransactionType::Income, subtype, total()?, None, label)
            }
            "RETOFCAP" => (TransactionType::Income, None, total()?, None, "Return of capital"),
            "INVEXPENSE" => (TransactionType::Fee, Some(TransactionSubtype::AccountFee), total()?, None, "Expense"),
            "MARGININTEREST" => (TransactionType::Fee, None, total()?, None, "Margin interest"),
            "TRANSFER" => {
                let out =
                    tree.child(inner, "TFERACTION").is_some_and(|a| tree.text(a).trim().eq_ignore_ascii_case("OUT"));
                let quantity = units.map(|u| if out { -u.abs() } else { u.abs() });
                (
                    TransactionType::Transfer,
                    Some(TransactionSubtype::SecurityTransfer),
                    zero_or_total()?,
                    quantity,
                    "Transfer",
                )
            }
            "JRNLFUND" => (TransactionType::Transfer, None, zero_or_total()?, None, "Journal"),
            "JRNLSEC" => (
                TransactionType::Transfer,
                Some(TransactionSubtype::SecurityTransfer),
                zero_or_total()?,
                units,
                "Journal",
            ),
            "SPLIT" => {
                let new = optional_amount(tree, inner, "NEWUNITS")?;
                let old = optional_amount(tree, inner, "OLDUNITS")?;
                let quantity = new.zip(old).map(|(new, old)| new - old);
                (TransactionType::Adjustment, None, zero_or_total()?, quantity, "Split")
            }
            other => {
                self.warnings.push(format!("line {line}: <{}> read as an adjustment", snippet(other)));
                (TransactionType::Adjustment, None, zero_or_total()?, units, "Adjustment")
            }
        };
        Ok(Some(StatementTransaction {
            fitid,
            posted_on: traded.date,
            posted_at: traded.at,
            amount,
            description: memo.clone().unwrap_or_else(|| label.to_owned()),
            payee: None,
            memo,
            transaction_type,
            subtype,
            symbol,
            quantity,
            unit_price,
            fees,
            line,
        }))
    }

    /// Builds the accounts from what stayed in the tree and what was collected on the way.
    pub(crate) fn finish(
        mut self,
        tree: &Tree<'_>,
        warnings: &mut Warnings,
    ) -> Result<Vec<StatementAccount>, ParseError> {
        let root = 0;
        let signon = tree.find_all(root, &["SONRS"]).first().copied();
        let institution = signon
            .and_then(|s| text_at_path(tree, s, &["FI", "ORG"]).or_else(|| text_at_path(tree, s, &["FI", "FID"])));
        let statements = tree.find_all(root, STATEMENTS);
        if statements.is_empty() {
            let refusal = tree
                .find_all(root, &["STATUS"])
                .into_iter()
                .find(|&s| text_of(tree, s, "CODE").is_some_and(|c| c != "0"))
                .map(|s| {
                    format!(
                        " (status {}: {})",
                        snippet(&text_of(tree, s, "CODE").unwrap_or_default()),
                        snippet(&text_of(tree, s, "MESSAGE").unwrap_or_else(|| "no message".to_owned()))
                    )
                })
                .unwrap_or_default();
            return Err(ParseError::at_element(
                tree.line(root),
                tree.name(root),
                format!("no statement (<STMTRS>, <CCSTMTRS> or <INVSTMTRS>) found{refusal}"),
            ));
        }
        let securities = securities(tree);
        let mut accounts = Vec::with_capacity(statements.len());
        for statement in statements {
            accounts.push(self.account(tree, statement, institution.clone(), &securities)?);
        }
        warnings.append(self.warnings);
        Ok(accounts)
    }

    fn account(
        &mut self,
        tree: &Tree<'_>,
        statement: u32,
        institution: Option<String>,
        securities: &HashMap<String, Security>,
    ) -> Result<StatementAccount, ParseError> {
        let kind = tree.name(statement);
        let currency = match tree.child(statement, "CURDEF") {
            Some(curdef) => Currency::parse(&tree.text(curdef)).map_err(|_| {
                ParseError::at_element(
                    tree.line(curdef),
                    "CURDEF",
                    format!("invalid currency {}", quoted(&tree.text(curdef))),
                )
            })?,
            None => {
                self.warnings.push(format!("line {}: <{kind}> has no <CURDEF>; assumed USD", tree.line(statement)));
                Currency::USD
            }
        };
        let (from, account_type) = match kind {
            "CCSTMTRS" => (required(tree, statement, "CCACCTFROM")?, AccountType::CreditCard),
            "INVSTMTRS" => {
                let retirement =
                    tree.child(statement, "INV401K").is_some() || tree.child(statement, "INV401KBAL").is_some();
                let account_type = if retirement { AccountType::EmployerRetirement } else { AccountType::Brokerage };
                (required(tree, statement, "INVACCTFROM")?, account_type)
            }
            _ => {
                let from = required(tree, statement, "BANKACCTFROM")?;
                let account_type = match text_of(tree, from, "ACCTTYPE").map(|t| t.to_ascii_uppercase()).as_deref() {
                    Some("CHECKING") => AccountType::Checking,
                    Some("SAVINGS") => AccountType::Savings,
                    Some("MONEYMRKT") => AccountType::MoneyMarket,
                    Some("CREDITLINE") => AccountType::LineOfCredit,
                    Some("CD") => AccountType::Cd,
                    _ => AccountType::Other,
                };
                (from, account_type)
            }
        };
        let account_id = tree.text(required(tree, from, "ACCTID")?).trim().to_owned();
        let institution = institution.or_else(|| text_of(tree, from, "BROKERID"));
        let mut transactions = self.transactions.remove(&statement).unwrap_or_default();
        let pending = self.positions.remove(&statement).unwrap_or_default();
        let (balance, available_balance, positions) = if kind == "INVSTMTRS" {
            let as_of = tree.child(statement, "DTASOF").map(|d| date_at(tree, d)).transpose()?.map(|d| d.date);
            let mut positions = Vec::with_capacity(pending.len());
            for PendingPosition { mut position, as_of: price_as_of, line } in pending {
                position.as_of = price_as_of.or(as_of).ok_or_else(|| {
                    ParseError::at_element(line, "INVPOS", "no <DTPRICEASOF> and no statement <DTASOF>")
                })?;
                if let Some(security) = securities.get(&position.symbol) {
                    position.name.clone_from(&security.name);
                    if security.asset_type != AssetType::Other || position.asset_type == AssetType::Other {
                        position.asset_type = security.asset_type;
                    }
                    if let Some(ticker) = &security.ticker {
                        position.symbol.clone_from(ticker);
                    }
                }
                positions.push(position);
            }
            for transaction in &mut transactions {
                if let Some(ticker) =
                    transaction.symbol.as_ref().and_then(|s| securities.get(s)).and_then(|s| s.ticker.clone())
                {
                    transaction.symbol = Some(ticker);
                }
                // "Sell" alone says little; "Sell AAPL" is what a person wants to see.
                if let (None, Some(symbol)) = (&transaction.memo, &transaction.symbol) {
                    transaction.description = format!("{} {symbol}", transaction.description);
                }
            }
            let (balance, cash) = investment_balances(tree, statement, as_of, &positions)?;
            (balance, cash, positions)
        } else {
            (balance(tree, statement, "LEDGERBAL")?, balance(tree, statement, "AVAILBAL")?, Vec::new())
        };
        Ok(StatementAccount {
            institution,
            account_id,
            account_type,
            currency,
            balance,
            available_balance,
            transactions,
            positions,
        })
    }
}

/// A security from the file's `SECLIST`.
#[derive(Debug)]
struct Security {
    ticker: Option<String>,
    name: Option<String>,
    asset_type: AssetType,
}

/// The securities of every `SECLIST`, keyed by `UNIQUEID` (a CUSIP, mostly).
fn securities(tree: &Tree<'_>) -> HashMap<String, Security> {
    let mut found = HashMap::new();
    for list in tree.find_all(0, &["SECLIST"]) {
        for info in tree.children(list).collect::<Vec<_>>() {
            let asset_type = match tree.name(info) {
                "STOCKINFO" => AssetType::Equity,
                "MFINFO" => AssetType::MutualFund,
                "DEBTINFO" => AssetType::FixedIncome,
                "OPTINFO" => AssetType::Option,
                _ => AssetType::Other,
            };
            let Some(secinfo) = tree.child(info, "SECINFO") else { continue };
            let Some(id) = text_at_path(tree, secinfo, &["SECID", "UNIQUEID"]) else { continue };
            let name = text_of(tree, secinfo, "SECNAME");
            // Money-market funds are cash in all but name.
            let asset_type = if asset_type == AssetType::MutualFund
                && name.as_deref().is_some_and(|n| n.to_ascii_uppercase().contains("MONEY MARKET"))
            {
                AssetType::CashEquivalent
            } else {
                asset_type
            };
            found.insert(id, Security { ticker: text_of(tree, secinfo, "TICKER"), name, asset_type });
        }
    }
    found
}

fn position(tree: &Tree<'_>, id: u32) -> Result<PendingPosition, ParseError> {
    let line = tree.line(id);
    let invpos = required(tree, id, "INVPOS")?;
    let symbol =
        tree.text(required(tree, invpos, "SECID").and_then(|s| required(tree, s, "UNIQUEID"))?).trim().to_owned();
    let mut quantity = amount_at(tree, required(tree, invpos, "UNITS")?)?;
    if tree.child(invpos, "POSTYPE").is_some_and(|p| tree.text(p).trim().eq_ignore_ascii_case("SHORT")) {
        quantity = -quantity.abs();
    }
    let unit_price = optional_amount(tree, invpos, "UNITPRICE")?;
    let market_value = match (optional_amount(tree, invpos, "MKTVAL")?, unit_price) {
        (Some(value), _) => value,
        (None, Some(price)) => quantity * price,
        (None, None) => return Err(ParseError::at_element(tree.line(invpos), "INVPOS", "missing <MKTVAL>")),
    };
    let as_of = tree.child(invpos, "DTPRICEASOF").map(|d| date_at(tree, d)).transpose()?.map(|d| d.date);
    let asset_type = match tree.name(id) {
        "POSSTOCK" => AssetType::Equity,
        "POSMF" => AssetType::MutualFund,
        "POSDEBT" => AssetType::FixedIncome,
        "POSOPT" => AssetType::Option,
        _ => AssetType::Other,
    };
    Ok(PendingPosition {
        // The date is settled once the statement's own date is known.
        position: StatementPosition {
            symbol,
            name: None,
            asset_type,
            quantity,
            unit_price,
            market_value,
            as_of: Date::MIN,
        },
        as_of,
        line,
    })
}

/// A bank or card balance aggregate (`LEDGERBAL`, `AVAILBAL`).
fn balance(tree: &Tree<'_>, statement: u32, name: &str) -> Result<Option<StatementBalance>, ParseError> {
    let Some(aggregate) = tree.child(statement, name) else { return Ok(None) };
    let amount = amount_at(tree, required(tree, aggregate, "BALAMT")?)?;
    let as_of = date_at(tree, required(tree, aggregate, "DTASOF")?)?;
    Ok(Some(StatementBalance { amount, as_of: as_of.date }))
}

/// Total value and cash of an investment statement.
fn investment_balances(
    tree: &Tree<'_>,
    statement: u32,
    as_of: Option<Date>,
    positions: &[StatementPosition],
) -> Result<(Option<StatementBalance>, Option<StatementBalance>), ParseError> {
    let Some(as_of) = as_of else { return Ok((None, None)) };
    let retirement = tree.child(statement, "INV401KBAL");
    let cash = match tree.path(statement, &["INVBAL", "AVAILCASH"]) {
        Some(cash) => Some(amount_at(tree, cash)?),
        None => retirement.map(|r| optional_amount(tree, r, "CASHBAL")).transpose()?.flatten(),
    };
    let total = match retirement.map(|r| optional_amount(tree, r, "TOTAL")).transpose()?.flatten() {
        Some(total) => Some(total),
        None if cash.is_some() || !positions.is_empty() => {
            Some(cash.unwrap_or_default() + positions.iter().map(|p| p.market_value).sum::<Decimal>())
        }
        None => None,
    };
    let at = |amount: Decimal| StatementBalance { amount, as_of };
    Ok((total.map(at), cash.map(at)))
}

/// The domain kind of a bank, card or investment-cash `TRNTYPE`.
fn bank_kind(trntype: &str, amount: Decimal, context: Context) -> (TransactionType, Option<TransactionSubtype>) {
    use TransactionSubtype as S;
    use TransactionType as T;
    let direction = if amount > Decimal::ZERO { S::Deposit } else { S::Withdrawal };
    match trntype {
        "INT" => (T::Income, Some(S::Interest)),
        "DIV" => (T::Income, Some(S::Dividend)),
        "FEE" | "SRVCHG" => (T::Fee, Some(S::AccountFee)),
        "DEP" | "DIRECTDEP" => (T::Transfer, Some(S::Deposit)),
        "ATM" | "CASH" | "XFER" => (T::Transfer, Some(direction)),
        "PAYMENT" | "DIRECTDEBIT" | "REPEATPMT" => (T::Spending, Some(S::Payment)),
        "CHECK" if amount > Decimal::ZERO => (T::Transfer, Some(S::Deposit)),
        "CHECK" => (T::Spending, None),
        "CREDIT" if context == Context::Card => (T::Spending, Some(S::Refund)),
        "CREDIT" => (T::Transfer, Some(S::Deposit)),
        "DEBIT" | "POS" if context == Context::Investment => (T::Transfer, Some(direction)),
        "DEBIT" | "POS" if amount > Decimal::ZERO => (T::Spending, Some(S::Refund)),
        "DEBIT" | "POS" => (T::Spending, Some(S::Purchase)),
        "HOLD" => (T::Adjustment, None),
        _ => (T::Other, None),
    }
}

/// A description for a transaction the file names no other way.
fn describe_trntype(trntype: &str) -> &'static str {
    match trntype {
        "CREDIT" => "Credit",
        "DEBIT" => "Debit",
        "INT" => "Interest",
        "DIV" => "Dividend",
        "FEE" => "Fee",
        "SRVCHG" => "Service charge",
        "DEP" => "Deposit",
        "ATM" => "ATM",
        "POS" => "Point of sale",
        "XFER" => "Transfer",
        "CHECK" => "Check",
        "PAYMENT" => "Payment",
        "CASH" => "Cash withdrawal",
        "DIRECTDEP" => "Direct deposit",
        "DIRECTDEBIT" => "Direct debit",
        "REPEATPMT" => "Repeating payment",
        "HOLD" => "Hold",
        _ => "Other",
    }
}

/// The child `name` of `parent`, which must be there and, if a leaf, not be empty.
fn required(tree: &Tree<'_>, parent: u32, name: &str) -> Result<u32, ParseError> {
    let parent_name = tree.name(parent);
    let child = tree
        .child(parent, name)
        .ok_or_else(|| ParseError::at_element(tree.line(parent), parent_name, format!("missing <{name}>")))?;
    Ok(child)
}

/// The trimmed, non-empty value of the child `name` of `parent`.
fn text_of(tree: &Tree<'_>, parent: u32, name: &str) -> Option<String> {
    let value = tree.text(tree.child(parent, name)?);
    let value = value.trim();
    (!value.is_empty()).then(|| value.to_owned())
}

fn text_at_path(tree: &Tree<'_>, from: u32, path: &[&str]) -> Option<String> {
    let (last, parents) = path.split_last()?;
    text_of(tree, tree.path(from, parents)?, last)
}

fn date_at(tree: &Tree<'_>, id: u32) -> Result<OfxDateTime, ParseError> {
    let text = tree.text(id);
    if text.trim().is_empty() {
        return Err(ParseError::at_element(tree.line(id), tree.name(id), "empty date"));
    }
    parse_ofx_datetime(&text).map_err(|e| ParseError::at_element(tree.line(id), tree.name(id), e.to_string()))
}

fn amount_at(tree: &Tree<'_>, id: u32) -> Result<Decimal, ParseError> {
    let text = tree.text(id);
    if text.trim().is_empty() {
        return Err(ParseError::at_element(tree.line(id), tree.name(id), "empty amount"));
    }
    parse_ofx_amount(&text).map_err(|e| ParseError::at_element(tree.line(id), tree.name(id), e.to_string()))
}

/// The amount in the child `name`, if there is one with a value.
fn optional_amount(tree: &Tree<'_>, parent: u32, name: &str) -> Result<Option<Decimal>, ParseError> {
    match tree.child(parent, name) {
        Some(id) if !tree.text(id).trim().is_empty() => amount_at(tree, id).map(Some),
        _ => Ok(None),
    }
}
