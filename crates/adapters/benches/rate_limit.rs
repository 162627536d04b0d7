//! The cost of one rate-limit check: in-process (target ≤ 2 µs median) and in Redis over loopback (target
//! ≤ 300 µs p99). Criterion reports the mean; each group also prints the median and p99 of individually
//! timed checks, which is what the targets are about.
//!
//! `cargo bench -p dashtam-adapters --bench rate_limit`. Redis is `DASHTAM_BENCH_REDIS_URL`, else
//! `DASHTAM_TEST_REDIS_URL`, else `redis://127.0.0.1:6379`; the Redis group is skipped when it does not answer.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use dashtam_adapters::rate_limit::{DEFAULT_MAX_KEYS, MemoryRateLimiter, RedisRateLimiter};
use dashtam_domain::SystemClock;
use dashtam_domain::rate_limit::{BucketPolicy, RateLimiter};

/// A bucket that never runs dry, so every check does the full admit path (read, decide, write).
fn roomy_policy() -> BucketPolicy {
    BucketPolicy::new(u32::MAX / 2, 1_000_000, Duration::from_secs(1)).expect("valid policy")
}

/// Median and p99 of `samples` individually timed runs of `check`.
fn percentiles(samples: usize, mut check: impl FnMut(usize)) -> (Duration, Duration) {
    let mut timings: Vec<Duration> = (0..samples)
        .map(|index| {
            let started = Instant::now();
            check(index);
            started.elapsed()
        })
        .collect();
    timings.sort_unstable();
    (timings[samples / 2], timings[samples * 99 / 100])
}

fn memory(c: &mut Criterion) {
    let limiter = MemoryRateLimiter::new(Arc::new(SystemClock), DEFAULT_MAX_KEYS);
    let policy = roomy_policy();
    let keys: Vec<String> =
        (0..10_000).map(|index| format!("api-reads:ip:198.51.{}.{}", index / 256, index % 256)).collect();
    let mut group = c.benchmark_group("memory");
    group.bench_function("check, one hot key", |b| {
        b.iter(|| limiter.check_now(black_box("login-ip:ip:203.0.113.7"), &policy))
    });
    let mut next = 0;
    group.bench_function("check, 10 000 keys in turn", |b| {
        b.iter(|| {
            next = (next + 1) % keys.len();
            limiter.check_now(black_box(&keys[next]), &policy)
        })
    });
    let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    group.bench_function("check through the port (async)", |b| {
        b.to_async(&runtime).iter(|| limiter.check(black_box("login-ip:ip:203.0.113.7"), &policy))
    });
    group.finish();
    let (median, p99) = percentiles(200_000, |index| {
        black_box(limiter.check_now(&keys[index % keys.len()], &policy));
    });
    println!("memory check, individually timed: median {median:?}, p99 {p99:?} (target: median ≤ 2 µs)");
}

fn redis(c: &mut Criterion) {
    let url = std::env::var("DASHTAM_BENCH_REDIS_URL")
        .or_else(|_| std::env::var("DASHTAM_TEST_REDIS_URL"))
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    // One thread drives both the check and the connection's I/O task, as a busy server's worker would; a
    // hand-off between threads would add wake-up latency that is the scheduler's, not the check's.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let prefix = format!("bench-{}", std::process::id());
    let limiter = RedisRateLimiter::new(&url, Duration::from_secs(1), &prefix).expect("a Redis URL");
    let policy = roomy_policy();
    if runtime.block_on(limiter.check("probe", &policy)).is_err() {
        eprintln!("Redis at {url} does not answer: the Redis benchmarks are skipped");
        return;
    }
    let mut group = c.benchmark_group("redis");
    group.bench_function("check (EVALSHA over loopback)", |b| {
        b.to_async(&runtime)
            .iter(|| async { limiter.check(black_box("login-ip:ip:203.0.113.7"), &policy).await.expect("check") })
    });
    group.finish();
    let (median, p99) = percentiles(20_000, |index| {
        let key = format!("api-reads:ip:198.51.100.{}", index % 256);
        runtime.block_on(limiter.check(&key, &policy)).expect("check");
    });
    println!("redis check, individually timed: median {median:?}, p99 {p99:?} (target: p99 ≤ 300 µs)");
}

criterion_group!(benches, memory, redis);
criterion_main!(benches);
