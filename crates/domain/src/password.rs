//! Passwords: the plaintext a person typed, the policy it must meet, and the port through which it is
//! hashed and verified. The policy lives here (not in `api`) because registration, reset, change and the
//! command line must all enforce the same rules.

use std::collections::HashSet;
use std::fmt;
use std::io::Read;
use std::sync::LazyLock;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::user::Email;

/// The product's name, refused inside passwords because it is the first word an attacker tries against
/// this service.
pub const PRODUCT_NAME: &str = "dashtam";

/// Local parts shorter than this are not looked for inside passwords: `al@example.com` would otherwise
/// forbid every password containing "al" (`"totally"`, `"royal"`), which refuses good passwords for no gain.
pub const MIN_EMAIL_LOCAL_PART_CHECKED: usize = 3;

/// Django's list of 20,000 common passwords (BSD-3-Clause; see `data/README.md` and `data/LICENSE-django`).
static COMMON_PASSWORDS_GZ: &[u8] = include_bytes!("../data/common-passwords.txt.gz");

/// Decompressed once, on first use, so start-up pays nothing and each check is a hash lookup.
static COMMON_PASSWORDS: LazyLock<HashSet<String>> = LazyLock::new(|| {
    decompress_common_passwords(COMMON_PASSWORDS_GZ).unwrap_or_else(|| {
        // The asset is compiled in and a test loads it, so this cannot happen in a shipped binary; an
        // empty list only weakens the policy, where a panic would take every registration down with it.
        debug_assert!(false, "the embedded common-password list is corrupt");
        HashSet::new()
    })
});

/// The lower-cased entries of a gzipped, newline-separated list, or `None` if it is not valid gzip.
fn decompress_common_passwords(gzipped: &[u8]) -> Option<HashSet<String>> {
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(gzipped).read_to_end(&mut bytes).ok()?;
    Some(
        String::from_utf8_lossy(&bytes)
            .lines()
            .map(|line| line.trim().to_lowercase())
            .filter(|line| !line.is_empty())
            .collect(),
    )
}

/// How many distinct entries the bundled common-password list holds, so start-up can log (or refuse to run
/// without) a list that failed to load.
pub fn common_password_count() -> usize {
    COMMON_PASSWORDS.len()
}

/// Whether `candidate` is in the bundled list of common passwords, ignoring case and surrounding spaces.
pub fn is_common_password(candidate: &str) -> bool {
    let lowered = candidate.to_lowercase();
    COMMON_PASSWORDS.contains(&lowered) || COMMON_PASSWORDS.contains(lowered.trim())
}

/// A password exactly as a person typed it. It is never trimmed or truncated, never printed by `Debug`,
/// and its memory is zeroed when it is dropped.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct Password(SecretString);

impl Password {
    /// Wraps a typed password.
    pub fn new(plaintext: String) -> Self {
        Self(SecretString::from(plaintext))
    }

    /// The plaintext, for the policy check and the hasher only.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl From<String> for Password {
    fn from(plaintext: String) -> Self {
        Self::new(plaintext)
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password([redacted])")
    }
}

/// One rule a password broke. The API answers `422 weak_password` with one `errors[]` entry per problem,
/// using [`PasswordProblem::code`] and [`PasswordProblem::message`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum PasswordProblem {
    /// Fewer code points than the policy's minimum.
    #[error("must be at least {min} characters")]
    TooShort {
        /// The policy's minimum, in Unicode code points.
        min: usize,
    },
    /// More code points than the policy's maximum (it is refused, never truncated).
    #[error("must be at most {max} characters")]
    TooLong {
        /// The policy's maximum, in Unicode code points.
        max: usize,
    },
    /// In the bundled list of common or breached passwords.
    #[error("is too common; choose a password that is harder to guess")]
    CommonPassword,
    /// Contains the part of the account's email address before the `@`.
    #[error("must not contain your email address")]
    ContainsEmail,
    /// Contains the product's name.
    #[error("must not contain the name of this service")]
    ContainsProductName,
    /// Has no uppercase letter while the policy requires one.
    #[error("must contain an uppercase letter")]
    MissingUppercase,
    /// Has no lowercase letter while the policy requires one.
    #[error("must contain a lowercase letter")]
    MissingLowercase,
    /// Has no digit while the policy requires one.
    #[error("must contain a digit")]
    MissingDigit,
    /// Has no symbol while the policy requires one.
    #[error("must contain a symbol (a character that is neither a letter nor a digit)")]
    MissingSymbol,
}

impl PasswordProblem {
    /// A stable snake_case identifier that clients may switch on.
    pub fn code(&self) -> &'static str {
        match self {
            PasswordProblem::TooShort { .. } => "too_short",
            PasswordProblem::TooLong { .. } => "too_long",
            PasswordProblem::CommonPassword => "common_password",
            PasswordProblem::ContainsEmail => "contains_email",
            PasswordProblem::ContainsProductName => "contains_product_name",
            PasswordProblem::MissingUppercase => "missing_uppercase",
            PasswordProblem::MissingLowercase => "missing_lowercase",
            PasswordProblem::MissingDigit => "missing_digit",
            PasswordProblem::MissingSymbol => "missing_symbol",
        }
    }

    /// A sentence fragment for people, meant to follow the field's name ("password must be …").
    pub fn message(&self) -> String {
        self.to_string()
    }
}

/// A [`PasswordPolicy`] whose settings contradict each other.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordPolicyError {
    /// A minimum of zero would accept the empty password.
    #[error("password min_length must be at least 1")]
    MinLengthZero,
    /// No password could satisfy both bounds.
    #[error("password min_length ({min}) is greater than max_length ({max})")]
    MinAboveMax {
        /// The configured minimum.
        min: usize,
        /// The configured maximum.
        max: usize,
    },
}

/// The rules a new password must meet. Lengths count Unicode code points, so `é` is one character however
/// it is encoded, and a password is never truncated to fit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PasswordPolicy {
    /// The fewest code points accepted.
    pub min_length: usize,
    /// The most code points accepted; longer passwords are refused rather than cut, so what is hashed is
    /// always what the person typed.
    pub max_length: usize,
    /// Require at least one uppercase letter (any script).
    pub require_uppercase: bool,
    /// Require at least one lowercase letter (any script).
    pub require_lowercase: bool,
    /// Require at least one digit (any script).
    pub require_digit: bool,
    /// Require at least one character that is neither a letter nor a digit (a space counts).
    pub require_symbol: bool,
}

impl Default for PasswordPolicy {
    // Length and a blocklist rather than composition rules, as NIST SP 800-63B advises.
    fn default() -> Self {
        Self {
            min_length: Self::DEFAULT_MIN_LENGTH,
            max_length: Self::DEFAULT_MAX_LENGTH,
            require_uppercase: false,
            require_lowercase: false,
            require_digit: false,
            require_symbol: false,
        }
    }
}

impl PasswordPolicy {
    /// The default minimum length, in code points.
    pub const DEFAULT_MIN_LENGTH: usize = 12;
    /// The default maximum length, in code points.
    pub const DEFAULT_MAX_LENGTH: usize = 128;

    /// Checks that the settings can be met; run once after loading configuration.
    pub fn validate(&self) -> Result<(), PasswordPolicyError> {
        if self.min_length == 0 {
            return Err(PasswordPolicyError::MinLengthZero);
        }
        if self.min_length > self.max_length {
            return Err(PasswordPolicyError::MinAboveMax { min: self.min_length, max: self.max_length });
        }
        Ok(())
    }

    /// Checks `password` against every rule and returns all the rules it breaks, so a person can fix them
    /// in one go. `email` is the account's address when known (registration, reset, change).
    pub fn check(&self, password: &Password, email: Option<&Email>) -> Result<(), Vec<PasswordProblem>> {
        let plaintext = password.expose();
        let lowered = plaintext.to_lowercase();
        let mut problems = Vec::new();

        let length = plaintext.chars().count();
        if length < self.min_length {
            problems.push(PasswordProblem::TooShort { min: self.min_length });
        }
        if length > self.max_length {
            problems.push(PasswordProblem::TooLong { max: self.max_length });
        }
        if is_common_password(plaintext) {
            problems.push(PasswordProblem::CommonPassword);
        }
        if let Some(email) = email {
            let local = email.local_part().to_lowercase();
            if local.chars().count() >= MIN_EMAIL_LOCAL_PART_CHECKED && lowered.contains(&local) {
                problems.push(PasswordProblem::ContainsEmail);
            }
        }
        if lowered.contains(PRODUCT_NAME) {
            problems.push(PasswordProblem::ContainsProductName);
        }
        if self.require_uppercase && !plaintext.chars().any(char::is_uppercase) {
            problems.push(PasswordProblem::MissingUppercase);
        }
        if self.require_lowercase && !plaintext.chars().any(char::is_lowercase) {
            problems.push(PasswordProblem::MissingLowercase);
        }
        if self.require_digit && !plaintext.chars().any(char::is_numeric) {
            problems.push(PasswordProblem::MissingDigit);
        }
        if self.require_symbol && plaintext.chars().all(char::is_alphanumeric) {
            problems.push(PasswordProblem::MissingSymbol);
        }

        if problems.is_empty() { Ok(()) } else { Err(problems) }
    }
}

/// The outcome of checking a password against a stored hash.
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordVerification {
    /// The password is right.
    Match {
        /// The stored hash uses an older algorithm or other parameters than the current ones; the caller
        /// should store a fresh [`PasswordHasher::hash`] of the password it now knows to be right.
        needs_rehash: bool,
    },
    /// The password is wrong, or there was no account to check it against.
    Mismatch,
}

impl PasswordVerification {
    /// Whether the password was right.
    pub fn is_match(self) -> bool {
        matches!(self, PasswordVerification::Match { .. })
    }
}

/// Why a password could not be hashed or checked. Neither variant ever carries the password or the hash.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordHashError {
    /// The stored hash is damaged, uses a format this server cannot verify, or asks for parameters beyond
    /// the hasher's safety limits. The account's data needs an operator, not a retry; it is reported as an
    /// error rather than a mismatch so that damage is noticed instead of looking like a forgotten password.
    #[error("the stored password hash is invalid or unsupported")]
    InvalidStoredHash,
    /// The hasher itself failed (the OS random source, a worker thread that died).
    #[error("password hashing failed: {0}")]
    Internal(String),
}

/// Hashes and verifies passwords, so services never depend on a particular algorithm.
#[async_trait::async_trait]
pub trait PasswordHasher: Send + Sync + fmt::Debug {
    /// Hashes with the current parameters, returning a PHC string to store.
    async fn hash(&self, password: &Password) -> Result<String, PasswordHashError>;

    /// Verifies `password` against a stored hash. With `None` (no such account) it verifies against a
    /// dummy hash, so the call costs the same as for a real account, and answers
    /// [`PasswordVerification::Mismatch`].
    async fn verify(
        &self,
        password: &Password,
        stored: Option<&str>,
    ) -> Result<PasswordVerification, PasswordHashError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn password(text: &str) -> Password {
        Password::new(text.to_owned())
    }

    fn email(address: &str) -> Email {
        Email::parse(address).expect("valid test address")
    }

    fn problems(policy: &PasswordPolicy, text: &str, address: Option<&str>) -> Vec<PasswordProblem> {
        let email = address.map(email);
        match policy.check(&password(text), email.as_ref()) {
            Ok(()) => Vec::new(),
            Err(problems) => problems,
        }
    }

    fn codes(policy: &PasswordPolicy, text: &str, address: Option<&str>) -> Vec<&'static str> {
        problems(policy, text, address).iter().map(PasswordProblem::code).collect()
    }

    const STRONG: &str = "correct horse battery staple";

    #[test]
    fn the_bundled_list_loads_once_with_about_twenty_thousand_entries() {
        // 20,000 lines; a few hundred collapse once lower-cased.
        let count = common_password_count();
        assert!((19_500..=20_000).contains(&count), "{count} entries");
        assert!(
            COMMON_PASSWORDS
                .iter()
                .all(|entry| { *entry == entry.to_lowercase() && !entry.is_empty() && entry.trim() == entry })
        );
    }

    #[test]
    fn the_list_is_matched_ignoring_case_and_surrounding_spaces() {
        assert!(is_common_password("password1234"));
        assert!(is_common_password("PassWord1234"));
        assert!(is_common_password("  qwerty123456 "));
        assert!(!is_common_password(STRONG));
        assert!(!is_common_password(""));
    }

    #[test]
    fn a_corrupt_list_is_detected_rather_than_panicking() {
        assert_eq!(decompress_common_passwords(b"not gzip at all"), None);
        assert_eq!(decompress_common_passwords(&COMMON_PASSWORDS_GZ[..100]), None);
    }

    #[test]
    fn defaults_match_the_api_contract() {
        let policy = PasswordPolicy::default();
        assert_eq!(policy.min_length, 12);
        assert_eq!(policy.max_length, 128);
        assert!(!policy.require_uppercase);
        assert!(!policy.require_lowercase);
        assert!(!policy.require_digit);
        assert!(!policy.require_symbol);
        assert_eq!(policy.validate(), Ok(()));
    }

    #[test]
    fn a_strong_password_passes() {
        assert_eq!(PasswordPolicy::default().check(&password(STRONG), Some(&email("alice@example.com"))), Ok(()));
    }

    #[test]
    fn length_bounds_are_inclusive() {
        let policy = PasswordPolicy::default();
        assert!(codes(&policy, &"x7".repeat(6), None).is_empty());
        assert!(codes(&policy, &"k".repeat(128), None).is_empty());
        assert_eq!(problems(&policy, &"k".repeat(11), None), vec![PasswordProblem::TooShort { min: 12 }]);
        assert_eq!(problems(&policy, &"k".repeat(129), None), vec![PasswordProblem::TooLong { max: 128 }]);
    }

    #[test]
    fn length_counts_code_points_not_bytes() {
        let policy = PasswordPolicy::default();
        // 12 code points but 24 bytes: a byte count would call it long enough for the wrong reason.
        assert!(codes(&policy, &"é".repeat(12), None).is_empty());
        assert_eq!(codes(&policy, &"é".repeat(11), None), vec!["too_short"]);
        // 128 code points of 4 bytes each: a byte count would refuse it.
        assert!(codes(&policy, &"🔒".repeat(128), None).is_empty());
        assert_eq!(codes(&policy, &"🔒".repeat(129), None), vec!["too_long"]);
    }

    #[test]
    fn an_overlong_password_is_refused_never_truncated() {
        let policy = PasswordPolicy::default();
        let long = STRONG.repeat(8);
        assert!(long.chars().count() >= 200);
        assert_eq!(problems(&policy, &long, None), vec![PasswordProblem::TooLong { max: 128 }]);
        // Its first 128 characters alone would pass, so only a refusal (not a cut) explains the result.
        let prefix: String = long.chars().take(128).collect();
        assert!(codes(&policy, &prefix, None).is_empty());
    }

    #[test]
    fn whitespace_is_part_of_the_password() {
        let policy = PasswordPolicy::default();
        // Eleven visible characters and a space are twelve: nothing is trimmed.
        assert!(codes(&policy, "tangerine7q ", None).is_empty());
        assert_eq!(codes(&policy, "tangerine7q", None), vec!["too_short"]);
    }

    #[test]
    fn common_passwords_are_refused_in_any_case_and_with_spaces_around() {
        let policy = PasswordPolicy::default();
        assert_eq!(codes(&policy, "password1234", None), vec!["common_password"]);
        assert_eq!(codes(&policy, "PASSWORD1234", None), vec!["common_password"]);
        assert_eq!(codes(&policy, " qwerty123456 ", None), vec!["common_password"]);
    }

    #[test]
    fn the_email_local_part_is_refused_in_any_case() {
        let policy = PasswordPolicy::default();
        assert_eq!(codes(&policy, "my-Alice.Smith-pass", Some("alice.smith@example.com")), vec!["contains_email"]);
        assert!(codes(&policy, "my-Alice.Smith-pass", Some("bob@example.com")).is_empty());
        assert!(codes(&policy, "my-Alice.Smith-pass", None).is_empty());
    }

    #[test]
    fn very_short_local_parts_are_ignored() {
        let policy = PasswordPolicy::default();
        // "al" appears in countless words; refusing them would teach nothing.
        assert!(codes(&policy, "royal totally fine", Some("al@example.com")).is_empty());
        assert_eq!(codes(&policy, "royal totally fine", Some("tot@example.com")), vec!["contains_email"]);
    }

    #[test]
    fn the_product_name_is_refused_in_any_case() {
        let policy = PasswordPolicy::default();
        assert_eq!(codes(&policy, "my DashTam vault 42", None), vec!["contains_product_name"]);
    }

    #[test]
    fn composition_rules_are_off_by_default_and_each_can_be_switched_on() {
        let strict = PasswordPolicy {
            require_uppercase: true,
            require_lowercase: true,
            require_digit: true,
            require_symbol: true,
            ..PasswordPolicy::default()
        };
        assert!(codes(&strict, "Tangerine7 quartz", None).is_empty());
        assert_eq!(
            codes(&strict, "tangerinequartz", None),
            vec!["missing_uppercase", "missing_digit", "missing_symbol"]
        );
        assert_eq!(codes(&strict, "TANGERINE7 QUARTZ", None), vec!["missing_lowercase"]);
        // Letters and digits of other scripts count too.
        assert!(codes(&strict, "Ωμέγα٣ κάτι-άλλο", None).is_empty());
        assert!(codes(&PasswordPolicy::default(), "tangerinequartz", None).is_empty());
    }

    #[test]
    fn every_failure_is_reported_together() {
        let strict = PasswordPolicy {
            require_uppercase: true,
            require_digit: true,
            require_symbol: true,
            ..PasswordPolicy::default()
        };
        assert_eq!(
            problems(&strict, "dashtamjoe", Some("joe@example.com")),
            vec![
                PasswordProblem::TooShort { min: 12 },
                PasswordProblem::ContainsEmail,
                PasswordProblem::ContainsProductName,
                PasswordProblem::MissingUppercase,
                PasswordProblem::MissingDigit,
                PasswordProblem::MissingSymbol,
            ]
        );
        assert_eq!(codes(&PasswordPolicy::default(), "password", None), vec!["too_short", "common_password"]);
    }

    #[test]
    fn problems_have_stable_codes_and_readable_messages() {
        assert_eq!(PasswordProblem::TooShort { min: 12 }.message(), "must be at least 12 characters");
        assert_eq!(PasswordProblem::TooLong { max: 128 }.message(), "must be at most 128 characters");
        let all = [
            PasswordProblem::TooShort { min: 1 },
            PasswordProblem::TooLong { max: 1 },
            PasswordProblem::CommonPassword,
            PasswordProblem::ContainsEmail,
            PasswordProblem::ContainsProductName,
            PasswordProblem::MissingUppercase,
            PasswordProblem::MissingLowercase,
            PasswordProblem::MissingDigit,
            PasswordProblem::MissingSymbol,
        ];
        let codes: HashSet<_> = all.iter().map(PasswordProblem::code).collect();
        assert_eq!(codes.len(), all.len());
        assert!(codes.iter().all(|code| { code.chars().all(|c| c.is_ascii_lowercase() || c == '_') }));
        assert!(all.iter().all(|problem| !problem.message().is_empty()));
    }

    #[test]
    fn policy_settings_are_validated() {
        let zero = PasswordPolicy { min_length: 0, ..PasswordPolicy::default() };
        assert_eq!(zero.validate(), Err(PasswordPolicyError::MinLengthZero));
        let inverted = PasswordPolicy { min_length: 20, max_length: 10, ..PasswordPolicy::default() };
        assert_eq!(inverted.validate(), Err(PasswordPolicyError::MinAboveMax { min: 20, max: 10 }));
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let secret = password("hunter2-but-longer");
        let printed = format!("{secret:?} {:?}", vec![secret.clone()]);
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(printed.contains("redacted"));
        assert_eq!(secret.expose(), "hunter2-but-longer");
    }

    #[test]
    fn a_password_deserialises_from_a_plain_string() {
        use serde::de::IntoDeserializer;
        use serde::de::value::{Error, StrDeserializer};
        // The domain crate has no JSON dependency; a string deserializer proves `transparent` works.
        let deserializer: StrDeserializer<'_, Error> = "x y z".into_deserializer();
        let parsed = Password::deserialize(deserializer).expect("a string deserialises");
        assert_eq!(parsed.expose(), "x y z");
    }
}
