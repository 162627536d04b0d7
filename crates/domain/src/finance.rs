//! Financial data as providers report it: accounts with their positions and balances, and transactions.
//! Connectors translate each provider's shapes into these; the sync engine stores them.

use time::{Date, OffsetDateTime};

use crate::money::{Currency, Decimal};

/// Declares a closed vocabulary stored and served as snake_case text. Unknown text from a provider or an
/// old row maps to `Other`, so a new value upstream never breaks a sync.
macro_rules! vocabulary {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
            /// Anything this version does not name.
            Other,
        }

        impl $name {
            /// Every value, `Other` last.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+ $name::Other];

            /// The stored and served text.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                    $name::Other => "other",
                }
            }

            /// The value for `text`, or `None` when it names none (the API rejects those).
            pub fn parse(text: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|value| value.as_str() == text)
            }

            /// The value for `text`, `Other` when it names none (for provider data and stored rows).
            pub fn parse_lenient(text: &str) -> Self {
                Self::parse(text).unwrap_or($name::Other)
            }
        }
    };
}

vocabulary!(
    /// What kind of account: investment, retirement, bank, credit or loan.
    AccountType {
        /// A taxable investment account.
        Brokerage => "brokerage",
        /// A traditional individual retirement account.
        Ira => "ira",
        /// A Roth individual retirement account.
        RothIra => "roth_ira",
        /// An employer retirement plan (401(k), 403(b) and the like).
        EmployerRetirement => "employer_retirement",
        /// A health savings account.
        Hsa => "hsa",
        /// A checking (current) account.
        Checking => "checking",
        /// A savings account.
        Savings => "savings",
        /// A money-market deposit account.
        MoneyMarket => "money_market",
        /// A certificate of deposit.
        Cd => "cd",
        /// A credit card.
        CreditCard => "credit_card",
        /// A revolving line of credit.
        LineOfCredit => "line_of_credit",
        /// An instalment loan.
        Loan => "loan",
        /// A mortgage.
        Mortgage => "mortgage",
    }
);

impl AccountType {
    /// Whether the balance is money owed: such accounts count negative in net worth.
    pub fn is_liability(self) -> bool {
        matches!(self, Self::CreditCard | Self::LineOfCredit | Self::Loan | Self::Mortgage)
    }
}

vocabulary!(
    /// What a holding is.
    AssetType {
        /// A stock.
        Equity => "equity",
        /// An exchange-traded fund.
        Etf => "etf",
        /// A mutual fund.
        MutualFund => "mutual_fund",
        /// A bond or other fixed income.
        FixedIncome => "fixed_income",
        /// An option contract.
        Option => "option",
        /// Cash or a cash equivalent (sweep, money-market fund).
        CashEquivalent => "cash_equivalent",
        /// A crypto asset.
        Crypto => "crypto",
    }
);

vocabulary!(
    /// The broad kind of a transaction.
    TransactionType {
        /// A purchase or sale of a security.
        Trade => "trade",
        /// Dividends, interest, distributions.
        Income => "income",
        /// Money or securities moving in or out.
        Transfer => "transfer",
        /// Commissions and fees.
        Fee => "fee",
        /// A card or bank purchase, refund or payment.
        Spending => "spending",
        /// Corrections, journal entries, corporate actions.
        Adjustment => "adjustment",
    }
);

vocabulary!(
    /// The finer kind of a transaction within its [`TransactionType`].
    TransactionSubtype {
        /// Trade: bought.
        Buy => "buy",
        /// Trade: sold.
        Sell => "sell",
        /// Income: a dividend.
        Dividend => "dividend",
        /// Income: interest.
        Interest => "interest",
        /// Income: a capital-gain distribution.
        CapitalGain => "capital_gain",
        /// Transfer: money in.
        Deposit => "deposit",
        /// Transfer: money out.
        Withdrawal => "withdrawal",
        /// Transfer: securities in or out.
        SecurityTransfer => "security_transfer",
        /// Fee: a commission.
        Commission => "commission",
        /// Fee: an account or service fee.
        AccountFee => "account_fee",
        /// Fee: a regulatory fee.
        RegulatoryFee => "regulatory_fee",
        /// Spending: a purchase.
        Purchase => "purchase",
        /// Spending: a refund.
        Refund => "refund",
        /// Spending: a payment towards a card or loan.
        Payment => "payment",
    }
);

/// Whether a transaction is final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransactionStatus {
    /// Reported but not yet settled; it may change or vanish.
    Pending,
    /// Settled.
    Posted,
}

impl TransactionStatus {
    /// The stored and served text.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Posted => "posted",
        }
    }

    /// The status for `text`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "pending" => Some(Self::Pending),
            "posted" => Some(Self::Posted),
            _ => None,
        }
    }
}

/// An account as a provider reports it, with its positions and current balances.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderAccount {
    /// The provider's stable identifier for the account (never the full account number).
    pub provider_account_id: String,
    /// The handle the connector needs to fetch this account's transactions (for Schwab, the account-number
    /// hash); opaque to everyone else.
    pub api_handle: String,
    /// A name for people ("Individual Brokerage").
    pub name: String,
    /// Its kind.
    pub account_type: AccountType,
    /// The last four characters of the account number, masked ("••••1234").
    pub number_masked: String,
    /// The account's currency.
    pub currency: Currency,
    /// The balance from the owner's side: negative when money is owed.
    pub balance: Decimal,
    /// Money available to spend or withdraw, when the provider says.
    pub available_balance: Option<Decimal>,
    /// Open positions (empty for bank and card accounts).
    pub positions: Vec<ProviderPosition>,
}

/// A position held in an account.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderPosition {
    /// The ticker or other identifier.
    pub symbol: String,
    /// The security's name, when reported.
    pub name: Option<String>,
    /// Its kind.
    pub asset_type: AssetType,
    /// Units held (negative for a short position).
    pub quantity: Decimal,
    /// Average cost per unit, when reported.
    pub average_cost: Option<Decimal>,
    /// The latest price per unit, when reported.
    pub price: Option<Decimal>,
    /// The position's market value.
    pub market_value: Decimal,
    /// The currency of the amounts.
    pub currency: Currency,
}

/// A transaction as a provider reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderTransaction {
    /// The provider's identifier, stable across syncs and across pending → posted where the provider keeps it.
    pub provider_transaction_id: String,
    /// For a posted transaction that replaces a pending one under a different id: the pending one's id.
    pub pending_transaction_id: Option<String>,
    /// The date it posted (or was made, while pending).
    pub posted_on: Date,
    /// The moment, when the provider gives one.
    pub posted_at: Option<OffsetDateTime>,
    /// Signed from the owner's side: money in is positive.
    pub amount: Decimal,
    /// The currency of the amounts.
    pub currency: Currency,
    /// The provider's description.
    pub description: String,
    /// Who was paid or paid, when known.
    pub payee: Option<String>,
    /// A free-text note, when the provider has one.
    pub memo: Option<String>,
    /// Broad kind.
    pub transaction_type: TransactionType,
    /// Finer kind, when known.
    pub subtype: Option<TransactionSubtype>,
    /// Pending or posted.
    pub status: TransactionStatus,
    /// For trades and income: the security.
    pub symbol: Option<String>,
    /// For trades: units (positive bought, negative sold).
    pub quantity: Option<Decimal>,
    /// For trades: price per unit.
    pub unit_price: Option<Decimal>,
    /// For trades: commissions and fees, as a positive amount.
    pub fees: Option<Decimal>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vocabularies_round_trip_and_map_unknown_text_to_other() {
        for value in AccountType::ALL {
            assert_eq!(AccountType::parse(value.as_str()), Some(*value));
        }
        for value in TransactionSubtype::ALL {
            assert_eq!(TransactionSubtype::parse(value.as_str()), Some(*value));
        }
        assert_eq!(AssetType::parse("warrant"), None);
        assert_eq!(AssetType::parse_lenient("warrant"), AssetType::Other);
        assert!(AccountType::CreditCard.is_liability());
        assert!(!AccountType::RothIra.is_liability());
    }
}
