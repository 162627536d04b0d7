//! Writes a generated OFX statement with `count` transactions to `path`, for the import benchmark
//! (`bench/data.sh`): `cargo run --release -p dashtam-import --example write_large -- 100000 large.ofx`.

#[path = "../benches/large.rs"]
mod large;

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let count = args.next().and_then(|count| count.parse().ok()).unwrap_or(100_000);
    let path = args.next().unwrap_or_else(|| "large.ofx".to_owned());
    std::fs::write(&path, large::large_ofx(count))
}
