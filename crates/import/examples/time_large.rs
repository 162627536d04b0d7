//! Times one parse of a generated 100,000-transaction OFX file (run in release, under `/usr/bin/time -v` to
//! see peak memory): `cargo run --release --example time_large [count]`.

#[path = "../benches/large.rs"]
mod large;

fn main() {
    let count = std::env::args().nth(1).and_then(|c| c.parse().ok()).unwrap_or(100_000);
    let bytes = large::large_ofx(count);
    let started = std::time::Instant::now();
    match dashtam_import::parse_ofx(&bytes) {
        Ok(statement) => {
            let elapsed = started.elapsed();
            let transactions: usize = statement.accounts.iter().map(|a| a.transactions.len()).sum();
            println!("{} bytes, {transactions} transactions parsed in {elapsed:?}", bytes.len());
        }
        Err(error) => println!("error: {error}"),
    }
}
