//! Argon2id password hashing behind the domain's [`PasswordHasher`] port, with verification (and upgrade)
//! of bcrypt hashes imported from the original system.
//!
//! Hashing is deliberately expensive in memory and CPU, so every call runs on tokio's blocking pool, and a
//! semaphore bounds how many run at once: a flood of logins queues instead of exhausting memory or
//! starving the async workers.

use std::sync::Arc;

use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use async_trait::async_trait;
use dashtam_domain::password::{Password, PasswordHashError, PasswordHasher, PasswordVerification};
use tokio::sync::Semaphore;
use zeroize::Zeroizing;

/// Tuning for [`Argon2PasswordHasher`]. The defaults are OWASP's Argon2id recommendation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordHashingOptions {
    /// Memory per hash, in KiB (Argon2 `m`).
    pub memory_kib: u32,
    /// Passes over that memory (Argon2 `t`).
    pub iterations: u32,
    /// Lanes (Argon2 `p`).
    pub parallelism: u32,
    /// Hashes allowed to run at once; further calls wait their turn. Peak memory is about
    /// `memory_kib × max_concurrent`.
    pub max_concurrent: usize,
}

impl PasswordHashingOptions {
    /// OWASP's Argon2id memory cost (19 MiB).
    pub const DEFAULT_MEMORY_KIB: u32 = 19_456;
    /// OWASP's Argon2id time cost.
    pub const DEFAULT_ITERATIONS: u32 = 2;
    /// OWASP's Argon2id parallelism.
    pub const DEFAULT_PARALLELISM: u32 = 1;
    /// The most memory a hash may ask for, configured or stored (1 GiB). A damaged stored hash claiming
    /// gigabytes would otherwise abort the process on allocation failure.
    pub const MAX_MEMORY_KIB: u32 = 1024 * 1024;
    /// The most passes a hash may ask for, so a damaged stored hash cannot pin a thread for minutes.
    pub const MAX_ITERATIONS: u32 = 64;
    /// The most lanes a hash may ask for.
    pub const MAX_PARALLELISM: u32 = 64;
    /// The highest bcrypt cost verified (2^16 rounds, several seconds); bcrypt allows up to 31, which
    /// would take days.
    pub const MAX_BCRYPT_COST: u32 = 16;
}

impl Default for PasswordHashingOptions {
    fn default() -> Self {
        // One hash per core keeps the CPU busy without queueing more work than it can do.
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        Self {
            memory_kib: Self::DEFAULT_MEMORY_KIB,
            iterations: Self::DEFAULT_ITERATIONS,
            parallelism: Self::DEFAULT_PARALLELISM,
            max_concurrent: cores.max(1),
        }
    }
}

/// The options cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordHashingOptionsError {
    /// Argon2 refuses the combination (for example memory below 8 KiB per lane).
    #[error("invalid Argon2 parameters: {0}")]
    InvalidParams(String),
    /// Above the safety limits in [`PasswordHashingOptions`]; this hasher would refuse its own hashes.
    #[error(
        "Argon2 parameters exceed the safety limits (memory ≤ {} KiB, iterations ≤ {}, parallelism ≤ {})",
        PasswordHashingOptions::MAX_MEMORY_KIB,
        PasswordHashingOptions::MAX_ITERATIONS,
        PasswordHashingOptions::MAX_PARALLELISM
    )]
    AboveLimits,
    /// No hash could ever run.
    #[error("max_concurrent must be at least 1")]
    NoConcurrency,
    /// The dummy hash for unknown accounts could not be made.
    #[error("could not compute the dummy hash: {0}")]
    DummyHash(String),
}

/// Argon2id hashing with bounded concurrency; verifies Argon2 (any variant) and bcrypt hashes.
#[derive(Clone)]
pub struct Argon2PasswordHasher {
    params: Params,
    permits: Arc<Semaphore>,
    max_concurrent: usize,
    /// A hash of a random, forgotten password made with the current parameters, verified against when
    /// there is no account, so an unknown email costs what a wrong password costs.
    dummy_hash: Arc<str>,
}

impl std::fmt::Debug for Argon2PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Argon2PasswordHasher")
            .field("memory_kib", &self.params.m_cost())
            .field("iterations", &self.params.t_cost())
            .field("parallelism", &self.params.p_cost())
            .field("max_concurrent", &self.max_concurrent)
            .finish_non_exhaustive()
    }
}

impl Argon2PasswordHasher {
    /// Validates `options` and computes the dummy hash. This runs one hash on the calling thread, so call
    /// it at start-up, not per request.
    pub fn new(options: PasswordHashingOptions) -> Result<Self, PasswordHashingOptionsError> {
        if options.max_concurrent == 0 {
            return Err(PasswordHashingOptionsError::NoConcurrency);
        }
        let params = Params::new(options.memory_kib, options.iterations, options.parallelism, None)
            .map_err(|error| PasswordHashingOptionsError::InvalidParams(error.to_string()))?;
        if !within_limits(&params) {
            return Err(PasswordHashingOptionsError::AboveLimits);
        }
        let mut throwaway = Zeroizing::new([0_u8; 32]);
        OsRng.fill_bytes(throwaway.as_mut_slice());
        let dummy_hash = hash_blocking(&params, throwaway.as_slice())
            .map_err(|error| PasswordHashingOptionsError::DummyHash(error.to_string()))?;
        Ok(Self {
            params,
            permits: Arc::new(Semaphore::new(options.max_concurrent)),
            max_concurrent: options.max_concurrent,
            dummy_hash: dummy_hash.into(),
        })
    }

    /// Runs `work` on the blocking pool once a permit is free. The permit travels with the work, so it is
    /// held until the hash really finishes even if the caller gives up waiting (a request timeout).
    async fn run_bounded<T, F>(&self, work: F) -> Result<T, PasswordHashError>
    where
        F: FnOnce() -> Result<T, PasswordHashError> + Send + 'static,
        T: Send + 'static,
    {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| PasswordHashError::Internal("the hashing semaphore was closed".into()))?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work()
        })
        .await
        .map_err(|error| PasswordHashError::Internal(format!("hashing task failed: {error}")))?
    }
}

#[async_trait]
impl PasswordHasher for Argon2PasswordHasher {
    async fn hash(&self, password: &Password) -> Result<String, PasswordHashError> {
        let plaintext = Zeroizing::new(password.expose().as_bytes().to_vec());
        let params = self.params.clone();
        self.run_bounded(move || hash_blocking(&params, &plaintext)).await
    }

    async fn verify(
        &self,
        password: &Password,
        stored: Option<&str>,
    ) -> Result<PasswordVerification, PasswordHashError> {
        let plaintext = Zeroizing::new(password.expose().as_bytes().to_vec());
        let stored = stored.map(str::to_owned);
        let params = self.params.clone();
        let dummy_hash = Arc::clone(&self.dummy_hash);
        self.run_bounded(move || verify_blocking(&params, &dummy_hash, &plaintext, stored.as_deref())).await
    }
}

fn argon2id(params: &Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
}

fn within_limits(params: &Params) -> bool {
    params.m_cost() <= PasswordHashingOptions::MAX_MEMORY_KIB
        && params.t_cost() <= PasswordHashingOptions::MAX_ITERATIONS
        && params.p_cost() <= PasswordHashingOptions::MAX_PARALLELISM
}

fn hash_blocking(params: &Params, plaintext: &[u8]) -> Result<String, PasswordHashError> {
    use argon2::password_hash::PasswordHasher as _;
    // A 16-byte salt from the OS; OsRng comes through argon2's own rand_core so the versions agree.
    let salt = SaltString::generate(&mut OsRng);
    argon2id(params)
        .hash_password(plaintext, &salt)
        .map(|hash| hash.to_string())
        .map_err(|error| PasswordHashError::Internal(format!("argon2 hashing failed: {error}")))
}

/// What a stored hash turned out to be.
enum StoredHash<'a> {
    /// A well-formed Argon2 PHC hash within the limits.
    Argon2(Box<PasswordHash<'a>>),
    /// A bcrypt hash (`$2a$`, `$2b$`, `$2y$`) of an acceptable cost.
    Bcrypt(&'a str),
    /// Damaged, unsupported, or beyond the limits.
    Invalid,
}

fn classify(stored: &str) -> StoredHash<'_> {
    if ["$2a$", "$2b$", "$2y$"].iter().any(|prefix| stored.starts_with(prefix)) {
        return match stored.parse::<bcrypt::HashParts>() {
            Ok(parts) if parts.get_cost() <= PasswordHashingOptions::MAX_BCRYPT_COST => StoredHash::Bcrypt(stored),
            _ => StoredHash::Invalid,
        };
    }
    let Ok(hash) = PasswordHash::new(stored) else {
        return StoredHash::Invalid;
    };
    if Algorithm::try_from(hash.algorithm).is_err() || hash.salt.is_none() || hash.hash.is_none() {
        // Without salt or output the library would report a plain mismatch, hiding the damage.
        return StoredHash::Invalid;
    }
    match Params::try_from(&hash) {
        Ok(params) if within_limits(&params) => StoredHash::Argon2(Box::new(hash)),
        _ => StoredHash::Invalid,
    }
}

fn needs_rehash(hash: &PasswordHash<'_>, current: &Params) -> bool {
    let Ok(stored) = Params::try_from(hash) else {
        return true;
    };
    hash.algorithm != Algorithm::Argon2id.ident()
        || hash.version != Some(Version::V0x13.into())
        || stored.m_cost() != current.m_cost()
        || stored.t_cost() != current.t_cost()
        || stored.p_cost() != current.p_cost()
        || hash.hash.map(|output| output.len()) != Some(Params::DEFAULT_OUTPUT_LEN)
}

/// Runs the same Argon2 work as a real verification and discards the answer, so a caller cannot tell
/// "no account" or "damaged hash" from "wrong password" by the time taken.
fn verify_dummy(params: &Params, dummy_hash: &str, plaintext: &[u8]) {
    if let Ok(hash) = PasswordHash::new(dummy_hash) {
        let _ = argon2id(params).verify_password(plaintext, &hash);
    }
}

fn verify_blocking(
    params: &Params,
    dummy_hash: &str,
    plaintext: &[u8],
    stored: Option<&str>,
) -> Result<PasswordVerification, PasswordHashError> {
    let Some(stored) = stored else {
        verify_dummy(params, dummy_hash, plaintext);
        return Ok(PasswordVerification::Mismatch);
    };
    match classify(stored) {
        StoredHash::Argon2(hash) => {
            // The stored hash names its own algorithm, version and parameters; verify_password uses them
            // and compares in constant time.
            match argon2id(params).verify_password(plaintext, &hash) {
                Ok(()) => Ok(PasswordVerification::Match { needs_rehash: needs_rehash(&hash, params) }),
                Err(argon2::password_hash::Error::Password) => Ok(PasswordVerification::Mismatch),
                Err(_) => Err(PasswordHashError::InvalidStoredHash),
            }
        }
        // bcrypt reads only the first 72 bytes of a password, so a legacy hash also accepts any password
        // sharing those bytes. The original system truncated the same way, and the hash is replaced by
        // Argon2id of the full password at the first successful login, which ends the weakness.
        StoredHash::Bcrypt(stored) => match bcrypt::verify(plaintext, stored) {
            Ok(true) => Ok(PasswordVerification::Match { needs_rehash: true }),
            Ok(false) => Ok(PasswordVerification::Mismatch),
            // The bcrypt error repeats the hash; it is dropped so the hash never reaches a log.
            Err(_) => Err(PasswordHashError::InvalidStoredHash),
        },
        StoredHash::Invalid => {
            verify_dummy(params, dummy_hash, plaintext);
            Err(PasswordHashError::InvalidStoredHash)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    /// Small enough that tests run in milliseconds, still real Argon2id.
    fn fast_options() -> PasswordHashingOptions {
        PasswordHashingOptions { memory_kib: 64, iterations: 1, parallelism: 1, max_concurrent: 2 }
    }

    fn hasher(options: PasswordHashingOptions) -> Argon2PasswordHasher {
        Argon2PasswordHasher::new(options).expect("valid options")
    }

    fn password(text: &str) -> Password {
        Password::new(text.to_owned())
    }

    #[test]
    fn defaults_are_owasp_argon2id() {
        let options = PasswordHashingOptions::default();
        assert_eq!(options.memory_kib, 19_456);
        assert_eq!(options.iterations, 2);
        assert_eq!(options.parallelism, 1);
        assert!(options.max_concurrent >= 1);
    }

    #[test]
    fn bad_options_are_refused() {
        let zero = PasswordHashingOptions { max_concurrent: 0, ..fast_options() };
        assert_eq!(Argon2PasswordHasher::new(zero).err(), Some(PasswordHashingOptionsError::NoConcurrency));
        let tiny = PasswordHashingOptions { memory_kib: 1, ..fast_options() };
        assert!(matches!(Argon2PasswordHasher::new(tiny), Err(PasswordHashingOptionsError::InvalidParams(_))));
        let huge = PasswordHashingOptions { memory_kib: PasswordHashingOptions::MAX_MEMORY_KIB + 1, ..fast_options() };
        assert_eq!(Argon2PasswordHasher::new(huge).err(), Some(PasswordHashingOptionsError::AboveLimits));
    }

    #[tokio::test]
    async fn default_parameters_hash_and_verify() {
        let hasher = hasher(PasswordHashingOptions::default());
        let started = Instant::now();
        let hash = hasher.hash(&password("correct horse battery staple")).await.expect("hashes");
        let hashed_in = started.elapsed();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
        let started = Instant::now();
        let verdict = hasher.verify(&password("correct horse battery staple"), Some(&hash)).await.expect("verifies");
        let verified_in = started.elapsed();
        assert_eq!(verdict, PasswordVerification::Match { needs_rehash: false });
        eprintln!("default parameters: hash {hashed_in:?}, verify {verified_in:?}");
    }

    #[tokio::test]
    async fn hash_then_verify_and_reject_a_wrong_password() {
        let hasher = hasher(fast_options());
        let hash = hasher.hash(&password("tangerine quartz")).await.expect("hashes");
        assert!(hash.starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        assert_eq!(
            hasher.verify(&password("tangerine quartz"), Some(&hash)).await,
            Ok(PasswordVerification::Match { needs_rehash: false })
        );
        assert_eq!(hasher.verify(&password("tangerine quartZ"), Some(&hash)).await, Ok(PasswordVerification::Mismatch));
        assert_eq!(hasher.verify(&password(""), Some(&hash)).await, Ok(PasswordVerification::Mismatch));
    }

    #[tokio::test]
    async fn each_hash_gets_its_own_salt() {
        let hasher = hasher(fast_options());
        let first = hasher.hash(&password("same password")).await;
        let second = hasher.hash(&password("same password")).await;
        assert_ne!(first.expect("hashes"), second.expect("hashes"));
    }

    #[tokio::test]
    async fn a_long_password_is_hashed_whole() {
        let hasher = hasher(fast_options());
        let long = "é".repeat(128);
        let hash = hasher.hash(&password(&long)).await.expect("hashes");
        let mut last_changed: String = long.chars().take(127).collect();
        last_changed.push('e');
        assert!(hasher.verify(&password(&long), Some(&hash)).await.expect("ok").is_match());
        assert_eq!(hasher.verify(&password(&last_changed), Some(&hash)).await, Ok(PasswordVerification::Mismatch));
    }

    #[tokio::test]
    async fn an_unknown_account_is_a_mismatch_after_real_argon2_work() {
        let hasher = hasher(fast_options());
        assert_eq!(hasher.verify(&password("anything at all"), None).await, Ok(PasswordVerification::Mismatch));
        // The dummy is a genuine Argon2id hash with the current parameters, so verifying against it does
        // the same work as verifying a real account's up-to-date hash.
        match classify(&hasher.dummy_hash) {
            StoredHash::Argon2(hash) => assert!(!needs_rehash(&hash, &hasher.params)),
            _ => panic!("the dummy hash is not a current Argon2id hash"),
        }
    }

    #[tokio::test]
    async fn changed_parameters_ask_for_a_rehash() {
        let old = hasher(fast_options());
        let hash = old.hash(&password("tangerine quartz")).await.expect("hashes");
        for options in [
            PasswordHashingOptions { memory_kib: 128, ..fast_options() },
            PasswordHashingOptions { iterations: 2, ..fast_options() },
            PasswordHashingOptions { parallelism: 2, ..fast_options() },
        ] {
            let current = hasher(options);
            assert_eq!(
                current.verify(&password("tangerine quartz"), Some(&hash)).await,
                Ok(PasswordVerification::Match { needs_rehash: true })
            );
        }
    }

    #[tokio::test]
    async fn other_argon2_variants_verify_and_ask_for_a_rehash() {
        use argon2::password_hash::PasswordHasher as _;
        let current = hasher(fast_options());
        let salt = SaltString::generate(&mut OsRng);
        let argon2i = Argon2::new(Algorithm::Argon2i, Version::V0x13, current.params.clone())
            .hash_password(b"tangerine quartz", &salt)
            .expect("hashes")
            .to_string();
        assert!(argon2i.starts_with("$argon2i$"));
        assert_eq!(
            current.verify(&password("tangerine quartz"), Some(&argon2i)).await,
            Ok(PasswordVerification::Match { needs_rehash: true })
        );
    }

    #[tokio::test]
    async fn bcrypt_hashes_verify_and_always_ask_for_a_rehash() {
        let hasher = hasher(fast_options());
        let legacy = bcrypt::hash("tangerine quartz", 4).expect("bcrypt hashes");
        assert!(legacy.starts_with("$2b$04$"));
        assert_eq!(
            hasher.verify(&password("tangerine quartz"), Some(&legacy)).await,
            Ok(PasswordVerification::Match { needs_rehash: true })
        );
        assert_eq!(
            hasher.verify(&password("tangerine quartZ"), Some(&legacy)).await,
            Ok(PasswordVerification::Mismatch)
        );
        // The same hash as other implementations spell the prefix.
        for prefix in ["$2a$", "$2y$"] {
            let respelled = legacy.replacen("$2b$", prefix, 1);
            assert!(hasher.verify(&password("tangerine quartz"), Some(&respelled)).await.expect("verifies").is_match());
        }
    }

    #[tokio::test]
    async fn bcrypt_reads_only_72_bytes_of_legacy_passwords() {
        let hasher = hasher(fast_options());
        let long = "k".repeat(80);
        let legacy = bcrypt::hash(&long, 4).expect("bcrypt hashes");
        let same_prefix = format!("{}different tail", "k".repeat(72));
        assert!(hasher.verify(&password(&same_prefix), Some(&legacy)).await.expect("verifies").is_match());
    }

    #[tokio::test]
    async fn damaged_or_unsupported_hashes_are_errors_not_panics() {
        let hasher = hasher(fast_options());
        let real = hasher.hash(&password("tangerine quartz")).await.expect("hashes");
        let bcrypt_real = bcrypt::hash("tangerine quartz", 4).expect("bcrypt hashes");
        let garbage = [
            String::new(),
            "$".into(),
            "$$$$$$".into(),
            "plaintext-password".into(),
            "$argon2id$".into(),
            "$argon2id$v=19$m=64,t=1,p=1".into(),
            "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ".into(),
            "$argon2id$v=19$m=4294967295,t=1,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA".into(),
            "$argon2id$v=19$m=64,t=4294967295,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA".into(),
            "$argon2id$v=99$m=64,t=1,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA".into(),
            "$argon2id$v=19$m=1,t=1,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA".into(),
            "$argon2id$v=19$m=64,t=1,p=1,x=3$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA".into(),
            "$argon2id$v=19$m=64,t=1,p=1$!!!!$????".into(),
            "$scrypt$ln=16,r=8,p=1$c2FsdA$aGFzaA".into(),
            "$pbkdf2-sha256$29000$c2FsdA$aGFzaA".into(),
            "$1$saltsalt$hashhashhashhashhash".into(),
            "$2x$04$abcdefghijklmnopqrstuuabcdefghijklmnopqrstuvwxyzabcde".into(),
            "$2b$31$abcdefghijklmnopqrstuuabcdefghijklmnopqrstuvwxyzabcde".into(),
            "$2b$04$short".into(),
            "$2b$xx$abcdefghijklmnopqrstuuabcdefghijklmnopqrstuvwxyzabcde".into(),
            "$2b$04$ééééééééééééééééééééééééééééééééééééééééééééééééééééé".into(),
            format!("{real}extra"),
            real.replacen("$argon2id$", "$argon2xx$", 1),
            real[..real.len() - 5].to_owned(),
            bcrypt_real[..bcrypt_real.len() - 1].to_owned(),
            "\u{0}\u{1}\u{7f}\u{fffd}".into(),
            "$argon2id$v=19$m=64,t=1,p=1$".repeat(1000),
        ];
        for stored in &garbage {
            let verdict = hasher.verify(&password("tangerine quartz"), Some(stored)).await;
            assert!(
                matches!(verdict, Err(PasswordHashError::InvalidStoredHash) | Ok(PasswordVerification::Mismatch)),
                "{stored:?} gave {verdict:?}"
            );
        }
        // Clearly damaged values are reported, not passed off as a wrong password.
        for stored in ["", "plaintext-password", "$argon2id$v=19$m=64,t=1,p=1"] {
            assert_eq!(
                hasher.verify(&password("tangerine quartz"), Some(stored)).await,
                Err(PasswordHashError::InvalidStoredHash),
                "{stored:?}"
            );
        }
    }

    #[tokio::test]
    async fn the_semaphore_makes_callers_wait_for_a_free_slot() {
        let hasher = hasher(PasswordHashingOptions { max_concurrent: 1, ..fast_options() });
        // Take the only slot, as a hash in progress would.
        let held = Arc::clone(&hasher.permits).acquire_owned().await.expect("semaphore open");
        let waiting = {
            let hasher = hasher.clone();
            tokio::spawn(async move { hasher.hash(&password("tangerine quartz")).await })
        };
        // A hash with these parameters takes about a millisecond, so if the call were not waiting for the
        // slot it would long have finished.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!waiting.is_finished(), "hashed without a free slot");
        drop(held);
        let hash = waiting.await.expect("task ran").expect("hashes");
        assert!(hash.starts_with("$argon2id$"));
        assert_eq!(hasher.permits.available_permits(), 1);
    }

    #[tokio::test]
    async fn concurrent_calls_all_complete_and_return_their_permits() {
        let hasher = hasher(fast_options());
        let calls: Vec<_> = (0..8)
            .map(|i| {
                let hasher = hasher.clone();
                tokio::spawn(async move { hasher.hash(&password(&format!("password {i}"))).await })
            })
            .collect();
        for call in calls {
            assert!(call.await.expect("task ran").is_ok());
        }
        assert_eq!(hasher.permits.available_permits(), hasher.max_concurrent);
    }

    #[test]
    fn debug_shows_parameters_only() {
        let printed = format!("{:?}", hasher(fast_options()));
        assert!(printed.contains("memory_kib: 64"), "{printed}");
        assert!(!printed.contains("$argon2"), "{printed}");
    }
}
