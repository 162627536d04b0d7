//! The embedded rate limiter: buckets in a sharded hash map in this process.
//!
//! A bucket is one `u64` (its theoretical arrival time, see `dashtam_domain::rate_limit`). A bucket whose
//! time has passed is full, which is exactly what a missing bucket means, so such *stale* buckets are
//! dropped: every shard sweeps them out as it grows, and a shard that is still at its bound after a sweep
//! (many clients active at once) forgets the buckets closest to full first. Memory is therefore bounded by
//! `max_keys` whatever clients send.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use dashtam_domain::Clock;
use dashtam_domain::ports::BoxError;
use dashtam_domain::rate_limit::{BucketPolicy, RateLimitDecision, RateLimiter};

/// Shards, so concurrent requests rarely wait for the same lock.
const SHARDS: usize = 16;
/// A shard sweeps out stale buckets after this many new keys, so idle keys do not linger until the bound.
const SWEEP_EVERY_INSERTS: u32 = 1_024;
/// The part of a full shard dropped at once when sweeping was not enough (one eighth), so the cost of
/// choosing the victims is spread over many inserts.
const EVICT_FRACTION: usize = 8;

/// The default bound on buckets held: ~100 000 keys is around 10 MiB.
pub const DEFAULT_MAX_KEYS: usize = 100_000;

#[derive(Debug, Default)]
struct Shard {
    buckets: HashMap<Box<str>, u64>,
    inserts_since_sweep: u32,
}

/// See the module documentation.
#[derive(Debug)]
pub struct MemoryRateLimiter {
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
    clock: Arc<dyn Clock>,
    max_keys_per_shard: usize,
}

impl MemoryRateLimiter {
    /// A limiter holding at most about `max_keys` buckets, judging time by `clock`.
    pub fn new(clock: Arc<dyn Clock>, max_keys: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            hasher: RandomState::new(),
            clock,
            max_keys_per_shard: max_keys.div_ceil(SHARDS).max(1),
        }
    }

    /// How many buckets are held right now.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|shard| shard.lock().unwrap_or_else(PoisonError::into_inner).buckets.len()).sum()
    }

    /// Whether no bucket is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The check itself, synchronous: what [`RateLimiter::check`] runs.
    pub fn check_now(&self, key: &str, policy: &BucketPolicy) -> RateLimitDecision {
        let now = u64::try_from(self.clock.now().unix_timestamp_nanos()).unwrap_or(0);
        let index = usize::try_from(self.hasher.hash_one(key) % SHARDS as u64).unwrap_or(0);
        // A panic while holding the lock cannot leave a bucket half-written (it is one integer), so a
        // poisoned lock is still safe to use.
        let mut shard = self.shards[index].lock().unwrap_or_else(PoisonError::into_inner);
        let stored = shard.buckets.get(key).copied();
        let (decision, new_tat) = policy.check(stored, now);
        if let Some(new_tat) = new_tat {
            match shard.buckets.get_mut(key) {
                Some(tat) => *tat = new_tat,
                None => {
                    shard.make_room(now, self.max_keys_per_shard);
                    shard.buckets.insert(key.into(), new_tat);
                }
            }
        }
        decision
    }
}

impl Shard {
    fn make_room(&mut self, now: u64, max_keys: usize) {
        self.inserts_since_sweep += 1;
        if self.inserts_since_sweep >= SWEEP_EVERY_INSERTS || self.buckets.len() >= max_keys {
            self.inserts_since_sweep = 0;
            self.buckets.retain(|_, tat| *tat > now);
        }
        if self.buckets.len() >= max_keys {
            // Still full of live buckets: forget the ones nearest to full (the smallest arrival times), which
            // costs their owners the least.
            let mut tats: Vec<u64> = self.buckets.values().copied().collect();
            let victims = (tats.len() / EVICT_FRACTION).max(1);
            let (_, threshold, _) = tats.select_nth_unstable(victims - 1);
            let threshold = *threshold;
            let mut evicted = 0;
            self.buckets.retain(|_, tat| {
                if *tat <= threshold && evicted < victims {
                    evicted += 1;
                    false
                } else {
                    true
                }
            });
        }
    }
}

#[async_trait]
impl RateLimiter for MemoryRateLimiter {
    fn backend(&self) -> &'static str {
        "memory"
    }

    async fn check(&self, key: &str, policy: &BucketPolicy) -> Result<RateLimitDecision, BoxError> {
        Ok(self.check_now(key, policy))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicI64, Ordering};
    use std::time::Duration;

    use time::OffsetDateTime;

    use super::*;

    #[derive(Debug)]
    struct ManualClock(AtomicI64);

    impl ManualClock {
        fn advance(&self, by: Duration) {
            self.0.fetch_add(i64::try_from(by.as_nanos()).expect("small"), Ordering::SeqCst);
        }
    }

    impl Clock for ManualClock {
        fn now(&self) -> OffsetDateTime {
            OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0.load(Ordering::SeqCst))).expect("in range")
        }
    }

    fn limiter(max_keys: usize) -> (Arc<ManualClock>, MemoryRateLimiter) {
        let clock = Arc::new(ManualClock(AtomicI64::new(1_800_000_000_000_000_000)));
        (clock.clone(), MemoryRateLimiter::new(clock, max_keys))
    }

    #[test]
    fn buckets_are_per_key_and_refill_with_the_clock() {
        let (clock, limiter) = limiter(1_000);
        let policy = BucketPolicy::new(2, 1, Duration::from_secs(10)).expect("valid");
        assert!(limiter.check_now("a", &policy).is_admitted());
        assert!(limiter.check_now("a", &policy).is_admitted());
        assert!(!limiter.check_now("a", &policy).is_admitted());
        assert!(limiter.check_now("b", &policy).is_admitted());
        clock.advance(Duration::from_secs(10));
        assert!(limiter.check_now("a", &policy).is_admitted());
        assert!(!limiter.check_now("a", &policy).is_admitted());
    }

    #[test]
    fn memory_stays_bounded() {
        let (clock, limiter) = limiter(160);
        let policy = BucketPolicy::new(5, 1, Duration::from_secs(1)).expect("valid");
        for key in 0..10_000 {
            limiter.check_now(&format!("client-{key}"), &policy);
        }
        assert!(limiter.len() <= 160, "{} buckets held", limiter.len());
        // Once they are all full again, a shard at its bound sweeps them all out rather than evicting.
        clock.advance(Duration::from_secs(5));
        let now = u64::try_from(clock.now().unix_timestamp_nanos()).expect("positive");
        for shard in limiter.shards.iter() {
            shard.lock().expect("lock").make_room(now, 1);
        }
        assert!(limiter.is_empty());
    }

    #[test]
    fn a_live_bucket_is_kept_while_others_come_and_go() {
        let (_clock, limiter) = limiter(10_000);
        let policy = BucketPolicy::new(1, 1, Duration::from_secs(3_600)).expect("valid");
        assert!(limiter.check_now("attacker", &policy).is_admitted());
        for key in 0..5_000 {
            limiter.check_now(&format!("other-{key}"), &policy);
        }
        assert!(!limiter.check_now("attacker", &policy).is_admitted());
    }
}
