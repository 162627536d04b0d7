//! Financial data fixtures shared by the store contract and the ledger API suites.

use std::str::FromStr;

use dashtam_domain::UserId;
use dashtam_domain::finance::{TransactionStatus, TransactionSubtype, TransactionType};
use dashtam_domain::ledger::{AccountId, Transaction, TransactionId};
use dashtam_domain::money::{Currency, Decimal};
use time::{Date, OffsetDateTime};
use uuid::Uuid;

/// An exact decimal from its text.
pub fn dec(text: &str) -> Decimal {
    Decimal::from_str(text).expect("decimal")
}

/// A posted card purchase (or refund, for a positive `amount`) of `user_id` in `account_id`, recorded at
/// `recorded_at`, with a fresh id and provider id.
pub fn purchase(
    user_id: UserId,
    account_id: AccountId,
    posted_on: Date,
    amount: &str,
    text: &str,
    recorded_at: OffsetDateTime,
) -> Transaction {
    Transaction {
        id: TransactionId::generate(),
        account_id,
        user_id,
        provider_transaction_id: Uuid::now_v7().to_string(),
        posted_on,
        posted_at: None,
        amount: dec(amount),
        currency: Currency::USD,
        description: text.to_owned(),
        payee: None,
        memo: None,
        transaction_type: TransactionType::Spending,
        subtype: Some(TransactionSubtype::Purchase),
        status: TransactionStatus::Posted,
        symbol: None,
        quantity: None,
        unit_price: None,
        fees: None,
        created_at: recorded_at,
        updated_at: recorded_at,
    }
}
