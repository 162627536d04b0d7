//! Parse speed: a 100,000-transaction OFX statement (the import target is well under a second).

mod large;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn parse_large_ofx(c: &mut Criterion) {
    let bytes = large::large_ofx(100_000);
    let mut group = c.benchmark_group("ofx");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.bench_function("100k transactions", |b| {
        b.iter(|| {
            let statement = dashtam_import::parse_ofx(std::hint::black_box(&bytes)).expect("parses");
            assert_eq!(statement.accounts[0].transactions.len(), 100_000);
            statement
        })
    });
    group.finish();
}

criterion_group!(benches, parse_large_ofx);
criterion_main!(benches);
