//! The Trader API's shapes, the data's determinism and its internal consistency.

use std::collections::HashMap;

use reqwest::StatusCode;
use rust_decimal::Decimal;
use serde_json::{Value, json};

use crate::support::*;

fn decimal(value: &Value) -> Decimal {
    value.to_string().parse().unwrap_or_else(|_| panic!("{value} is a decimal number"))
}

/// Successive 365-day windows from the sandbox's opening day through `end_day`.
fn windows(end_day: time::Date) -> Vec<(String, String)> {
    let mut windows = Vec::new();
    let mut start = time::macros::date!(2020 - 01 - 01);
    while start <= end_day {
        let end = start + time::Duration::days(364);
        windows.push((format!("{start}T00:00:00.000Z"), format!("{end}T23:59:59.999Z")));
        start = end + time::Duration::days(1);
    }
    windows
}

#[tokio::test]
async fn account_numbers_and_preferences() {
    let harness = Harness::start().await;
    let tokens = harness.login(&[]).await;
    let numbers = harness.api_json(&tokens.access, "/trader/v1/accounts/accountNumbers").await;
    let numbers = numbers.as_array().expect("array");
    assert_eq!(numbers.len(), 2);
    for entry in numbers {
        let number = entry["accountNumber"].as_str().expect("number");
        assert!(number.len() == 8 && number.bytes().all(|b| b.is_ascii_digit()));
        let hash = entry["hashValue"].as_str().expect("hash");
        assert!(hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b)));
    }
    let preferences = harness.api_json(&tokens.access, "/trader/v1/userPreference").await;
    let accounts = preferences["accounts"].as_array().expect("accounts");
    assert_eq!(accounts[0]["type"], "BROKERAGE");
    assert_eq!(accounts[0]["nickName"], "Individual");
    assert_eq!(accounts[0]["primaryAccount"], true);
    assert_eq!(accounts[1]["type"], "IRA");
    assert!(matches!(accounts[1]["nickName"].as_str(), Some("Roth IRA" | "Traditional IRA")));
    assert_eq!(accounts[0]["accountNumber"], numbers[0]["accountNumber"]);
    let display = accounts[0]["displayAcctId"].as_str().expect("display");
    assert!(display.starts_with("...") && numbers[0]["accountNumber"].as_str().expect("n").ends_with(&display[3..]));

    // Another customer sees other accounts; the same one sees the same.
    let alice = harness.login(&[("customer", "alice")]).await;
    let again = harness.login(&[]).await;
    assert_ne!(harness.hashes(&alice.access).await, harness.hashes(&tokens.access).await);
    assert_eq!(harness.hashes(&again.access).await, harness.hashes(&tokens.access).await);
}

#[tokio::test]
async fn accounts_list_positions_only_when_asked() {
    let harness = Harness::start().await;
    let tokens = harness.login(&[]).await;
    let plain = harness.api_json(&tokens.access, "/trader/v1/accounts").await;
    assert!(plain[0]["securitiesAccount"].get("positions").is_none());
    let full = harness.api_json(&tokens.access, "/trader/v1/accounts?fields=positions").await;
    assert_eq!(full[0]["securitiesAccount"]["type"], "MARGIN");
    assert_eq!(full[1]["securitiesAccount"]["type"], "CASH");
    assert!(full[0]["securitiesAccount"]["currentBalances"]["availableFunds"].is_number());
    assert!(full[1]["securitiesAccount"]["currentBalances"]["cashAvailableForWithdrawal"].is_number());

    let mut asset_types = Vec::new();
    for account in full.as_array().expect("array") {
        let securities = &account["securitiesAccount"];
        let positions = securities["positions"].as_array().expect("positions");
        assert!((4..=8).contains(&positions.len()));
        let market_value: Decimal = positions.iter().map(|p| decimal(&p["marketValue"])).sum();
        let balances = &securities["currentBalances"];
        let cash = decimal(&balances["cashBalance"]);
        assert!(cash >= Decimal::ZERO);
        assert_eq!(decimal(&balances["longMarketValue"]), market_value);
        assert_eq!(decimal(&balances["liquidationValue"]), cash + market_value);
        assert_eq!(decimal(&account["aggregatedBalance"]["liquidationValue"]), cash + market_value);
        for position in positions {
            asset_types.push(position["instrument"]["assetType"].as_str().expect("type").to_owned());
            let quantity = decimal(&position["longQuantity"]);
            let value = decimal(&position["marketValue"]);
            assert!(quantity > Decimal::ZERO && value > Decimal::ZERO);
            assert!(value.scale() <= 2 && decimal(&position["averagePrice"]).scale() <= 4);
            // The average price is rounded to 4 places, so cost rebuilt from it may be a cent or two off.
            let cost = decimal(&position["averagePrice"]) * quantity;
            let difference = decimal(&position["longOpenProfitLoss"]) - (value - cost);
            assert!(difference.abs() <= Decimal::new(5, 2), "{position}");
        }
    }
    for wanted in ["EQUITY", "COLLECTIVE_INVESTMENT", "MUTUAL_FUND", "CASH_EQUIVALENT"] {
        assert!(asset_types.iter().any(|t| t == wanted), "{wanted} in {asset_types:?}");
    }
    let etf = full[0]["securitiesAccount"]["positions"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["instrument"]["assetType"] == "COLLECTIVE_INVESTMENT"))
        .expect("an ETF");
    assert_eq!(etf["instrument"]["type"], "EXCHANGE_TRADED_FUND");

    let one = harness
        .api_json(
            &tokens.access,
            &format!("/trader/v1/accounts/{}?fields=positions", harness.hashes(&tokens.access).await[1]),
        )
        .await;
    assert_eq!(one, full[1]);
    let response = harness.api(&tokens.access, &format!("/trader/v1/accounts/{}", "0".repeat(64))).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn positions_and_cash_are_the_sum_of_the_history() {
    let harness = Harness::start().await;
    let tokens = harness.login(&[]).await;
    let hashes = harness.hashes(&tokens.access).await;
    let accounts = harness.api_json(&tokens.access, "/trader/v1/accounts?fields=positions").await;
    let today = START.date();
    let kinds = ["TRADE", "DIVIDEND_OR_INTEREST", "ACH_RECEIPT", "ACH_DISBURSEMENT", "JOURNAL", "CASH_RECEIPT"];
    for (index, hash) in hashes.iter().enumerate() {
        let mut quantities: HashMap<String, Decimal> = HashMap::new();
        let mut cash = Decimal::ZERO;
        let mut seen = HashMap::new();
        for (start, end) in windows(today) {
            let response = harness.transactions(&tokens.access, hash, &start, &end).await;
            assert_eq!(response.status(), StatusCode::OK);
            let entries: Value = response.json().await.expect("json");
            for entry in entries.as_array().expect("array") {
                assert!(seen.insert(entry["activityId"].as_i64().expect("id"), ()).is_none(), "ids are unique");
                assert!(kinds.contains(&entry["type"].as_str().expect("type")), "{entry}");
                let net = decimal(&entry["netAmount"]);
                assert!(net.scale() <= 2);
                cash += net;
                if entry["type"] == "TRADE" {
                    let items = entry["transferItems"].as_array().expect("items");
                    let security = items.iter().find(|i| i["instrument"]["assetType"] != "CURRENCY").expect("security");
                    let fees: Decimal = items
                        .iter()
                        .filter(|i| i["instrument"]["assetType"] == "CURRENCY" && i.get("feeType").is_some())
                        .map(|i| decimal(&i["cost"]))
                        .sum();
                    assert_eq!(net, decimal(&security["cost"]) + fees, "{entry}");
                    let amount = decimal(&security["amount"]);
                    assert_eq!(entry["description"], if amount > Decimal::ZERO { "BUY TRADE" } else { "SELL TRADE" });
                    let symbol = security["instrument"]["symbol"].as_str().expect("symbol").to_owned();
                    *quantities.entry(symbol).or_default() += amount;
                }
            }
        }
        assert!(seen.len() > 400, "years of history");
        let securities = &accounts[index]["securitiesAccount"];
        assert_eq!(decimal(&securities["currentBalances"]["cashBalance"]), cash);
        for position in securities["positions"].as_array().expect("positions") {
            let symbol = position["instrument"]["symbol"].as_str().expect("symbol");
            assert_eq!(decimal(&position["longQuantity"]), quantities[symbol], "{symbol}");
        }
    }
}

#[tokio::test]
async fn transactions_have_schwabs_shape_newest_first() {
    let harness = Harness::start().await;
    let tokens = harness.login(&[]).await;
    let hash = harness.hashes(&tokens.access).await.remove(0);
    let response =
        harness.transactions(&tokens.access, &hash, "2025-01-01T00:00:00.000Z", "2025-10-03T23:59:59.999Z").await;
    let text = response.text().await.expect("text");
    let entries: Value = serde_json::from_str(&text).expect("json");
    let entries = entries.as_array().expect("array");
    assert!(entries.len() > 200, "{}", entries.len());
    let times: Vec<&str> = entries.iter().map(|e| e["time"].as_str().expect("time")).collect();
    assert!(times.windows(2).all(|pair| pair[0] >= pair[1]), "newest first");
    for time in &times {
        assert!(time.len() == 24 && time.ends_with("+0000") && &time[10..11] == "T", "{time}");
    }
    for kind in ["TRADE", "DIVIDEND_OR_INTEREST", "ACH_RECEIPT", "JOURNAL"] {
        assert!(entries.iter().any(|e| e["type"] == kind), "{kind}");
    }
    assert!(entries.iter().any(|e| e["description"].as_str().is_some_and(|d| d.contains("DIVIDEND"))));
    assert!(entries.iter().any(|e| e["description"] == "CREDIT INTEREST"));
    assert!(entries.iter().any(|e| e["description"].as_str().is_some_and(|d| d.contains("FEE"))));
    assert!(
        entries.iter().any(|e| e["transferItems"]
            .as_array()
            .is_some_and(|items| items.iter().any(|i| i["feeType"] == "SEC_FEE")))
    );
    let trade = entries.iter().find(|e| e["type"] == "TRADE").expect("a trade");
    for field in [
        "activityId",
        "accountNumber",
        "status",
        "subAccount",
        "tradeDate",
        "settlementDate",
        "positionId",
        "orderId",
        "netAmount",
    ] {
        assert!(trade.get(field).is_some(), "{field}");
    }
    assert!(trade["settlementDate"].as_str().is_some_and(|s| s.ends_with("T04:00:00+0000")));
    // Numbers are plain JSON numbers with at most 4 decimals, never a float's long tail.
    let long_fraction = text
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .any(|token| token.split_once('.').is_some_and(|(_, fraction)| fraction.len() > 4));
    assert!(!long_fraction);
}

#[tokio::test]
async fn transaction_queries_are_checked() {
    let harness = Harness::start().await;
    let tokens = harness.login(&[]).await;
    let hash = harness.hashes(&tokens.access).await.remove(0);
    for (start, end) in [
        ("2024-01-01T00:00:00.000Z", "2025-01-01T00:00:00.001Z"),
        ("2025-03-01T00:00:00.000Z", "2025-02-01T00:00:00.000Z"),
        ("2025-03-01", "2025-04-01T00:00:00.000Z"),
        ("yesterday", "2025-04-01T00:00:00.000Z"),
        ("2025-03-01T00:00:00.000", "2025-04-01T00:00:00.000Z"),
    ] {
        let response = harness.transactions(&tokens.access, &hash, start, end).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{start} {end}");
        let body: Value = response.json().await.expect("json");
        assert!(body["message"].is_string() && body["errors"].is_array(), "{body}");
    }
    let path = format!("/trader/v1/accounts/{hash}/transactions?endDate=2025-04-01T00:00:00.000Z");
    assert_eq!(harness.api(&tokens.access, &path).await.status(), StatusCode::BAD_REQUEST);
    // Exactly one year is fine.
    let response =
        harness.transactions(&tokens.access, &hash, "2024-01-01T00:00:00.000Z", "2025-01-01T00:00:00.000Z").await;
    assert_eq!(response.status(), StatusCode::OK);
    let response = harness
        .transactions(&tokens.access, &"A".repeat(64), "2025-01-01T00:00:00.000Z", "2025-02-01T00:00:00.000Z")
        .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    // The filter the connector sends is honoured.
    let path = format!(
        "/trader/v1/accounts/{hash}/transactions?startDate=2025-01-01T00:00:00.000Z&endDate=2025-10-03T23:59:59.999Z&types=ACH_RECEIPT"
    );
    let entries = harness.api_json(&tokens.access, &path).await;
    assert!(!entries.as_array().expect("array").is_empty());
    assert!(entries.as_array().expect("array").iter().all(|e| e["type"] == "ACH_RECEIPT"));
}

#[tokio::test]
async fn at_most_3000_transactions_the_newest_ones() {
    let harness = Harness::start().await;
    harness.set_client(json!({"transactions_per_day": 12})).await;
    let tokens = harness.login(&[]).await;
    let hash = harness.hashes(&tokens.access).await.remove(0);
    let full_year =
        harness.transactions(&tokens.access, &hash, "2024-10-04T00:00:00.000Z", "2025-10-03T23:59:59.999Z").await;
    let full_year: Value = full_year.json().await.expect("json");
    let full_year = full_year.as_array().expect("array");
    assert_eq!(full_year.len(), 3000);
    let recent =
        harness.transactions(&tokens.access, &hash, "2025-09-01T00:00:00.000Z", "2025-10-03T23:59:59.999Z").await;
    let recent: Value = recent.json().await.expect("json");
    let recent = recent.as_array().expect("array");
    assert!(recent.len() > 300 && recent.len() < 3000);
    assert_eq!(&full_year[..recent.len()], &recent[..], "the capped answer starts with the newest entries");
}

#[tokio::test]
async fn the_same_day_answers_the_same_and_the_next_day_moves_on() {
    let harness = Harness::start().await;
    harness.set_client(json!({"transactions_per_day": 5})).await;
    let tokens = harness.login(&[]).await;
    let hash = harness.hashes(&tokens.access).await.remove(0);
    let window = ("2025-09-01T00:00:00.000Z", "2025-10-31T23:59:59.999Z");

    let accounts = harness.api_json(&tokens.access, "/trader/v1/accounts?fields=positions").await;
    let history: Value =
        harness.transactions(&tokens.access, &hash, window.0, window.1).await.json().await.expect("json");
    // Later in the same day, and through a fresh authorization, nothing changes.
    harness.clock.advance(time::Duration::hours(3));
    let again = harness.login(&[]).await;
    assert_eq!(harness.api_json(&again.access, "/trader/v1/accounts?fields=positions").await, accounts);
    let same: Value = harness.transactions(&again.access, &hash, window.0, window.1).await.json().await.expect("json");
    assert_eq!(same, history);

    let pending: Vec<&Value> = history.as_array().expect("array").iter().filter(|e| e["status"] == "PENDING").collect();
    assert!(!pending.is_empty());
    assert!(pending.iter().all(|e| e["time"].as_str().is_some_and(|t| t.starts_with("2025-10-03"))));

    harness.advance_days(1).await;
    let next_accounts = harness.api_json(&again.access, "/trader/v1/accounts?fields=positions").await;
    assert_ne!(
        next_accounts[0]["securitiesAccount"]["currentBalances"],
        accounts[0]["securitiesAccount"]["currentBalances"]
    );
    let price = |accounts: &Value| accounts[0]["securitiesAccount"]["positions"][0]["marketValue"].clone();
    assert_ne!(price(&next_accounts), price(&accounts));
    let next: Value = harness.transactions(&again.access, &hash, window.0, window.1).await.json().await.expect("json");
    for entry in pending {
        let posted =
            next.as_array().expect("array").iter().find(|e| e["activityId"] == entry["activityId"]).expect("same id");
        assert_eq!(posted["status"], "VALID");
        let mut unchanged = posted.clone();
        unchanged["status"] = json!("PENDING");
        assert_eq!(&unchanged, entry);
    }
}

#[tokio::test]
async fn the_volume_knob_makes_ten_thousand_transactions_a_year() {
    let harness = Harness::start().await;
    harness.set_client(json!({"transactions_per_day": 30})).await;
    let tokens = harness.login(&[]).await;
    let hash = harness.hashes(&tokens.access).await.remove(0);
    let quarters = [
        ("2024-10-04T00:00:00.000Z", "2024-12-31T23:59:59.999Z"),
        ("2025-01-01T00:00:00.000Z", "2025-03-31T23:59:59.999Z"),
        ("2025-04-01T00:00:00.000Z", "2025-06-30T23:59:59.999Z"),
        ("2025-07-01T00:00:00.000Z", "2025-10-03T23:59:59.999Z"),
    ];
    let mut total = 0;
    for (start, end) in quarters {
        let entries: Value = harness.transactions(&tokens.access, &hash, start, end).await.json().await.expect("json");
        let count = entries.as_array().expect("array").len();
        assert!(count < 3000, "a quarter stays under the cap");
        total += count;
    }
    assert!(total > 10_000, "{total}");
}
