//! The sandbox's deterministic randomness.
//!
//! The data must be a pure function of (seed, date) forever, so it cannot depend on a generator whose output a
//! dependency update may change (`rand`'s `SmallRng` and `StdRng` promise no stability across versions).
//! SplitMix64 is tiny, fixed by its published constants and good enough to make prices and activity look random.

/// One step of SplitMix64's output function: a strong 64-bit mix.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A small deterministic generator seeded from a list of keys, e.g. (customer, account, day).
#[derive(Debug, Clone)]
pub(crate) struct KeyedRng {
    state: u64,
}

impl KeyedRng {
    /// A generator whose sequence depends on every key and their order.
    pub(crate) fn new(keys: &[u64]) -> Self {
        let state = keys.iter().fold(0x5EED_DA54_7A11_0000_u64, |acc, key| mix(acc ^ mix(*key)));
        Self { state }
    }

    /// The next 64 random bits.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.state)
    }

    /// A float uniformly distributed in `[0, 1)`.
    pub(crate) fn unit(&mut self) -> f64 {
        // The top 53 bits fill an f64 mantissa exactly.
        (self.next_u64() >> 11) as f64 / (1_u64 << 53) as f64
    }

    /// A float uniformly distributed in `[low, high)`.
    pub(crate) fn between(&mut self, low: f64, high: f64) -> f64 {
        low + (high - low) * self.unit()
    }

    /// An integer uniformly distributed in `[0, bound)`; `bound` must be positive.
    pub(crate) fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound.max(1)
    }

    /// True with probability `p`.
    pub(crate) fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// An approximately standard-normal value (Irwin–Hall with 12 terms): bounded tails keep prices sane.
    pub(crate) fn normal(&mut self) -> f64 {
        (0..12).map(|_| self.unit()).sum::<f64>() - 6.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_keys_same_sequence_and_order_matters() {
        let mut a = KeyedRng::new(&[1, 2, 3]);
        let mut b = KeyedRng::new(&[1, 2, 3]);
        let mut c = KeyedRng::new(&[3, 2, 1]);
        let first = a.next_u64();
        assert_eq!(first, b.next_u64());
        assert_ne!(first, c.next_u64());
    }

    #[test]
    fn unit_stays_in_range() {
        let mut rng = KeyedRng::new(&[42]);
        for _ in 0..10_000 {
            let u = rng.unit();
            assert!((0.0..1.0).contains(&u));
        }
    }
}
