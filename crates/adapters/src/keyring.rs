//! Keyrings as configured: `kid:base64key,kid:base64key,…`, the first entry active. One format serves the
//! access-token signing keys (`DASHTAM_KEYS__SIGNING`) and the encryption-at-rest keys
//! (`DASHTAM_KEYS__ENCRYPTION`); only the accepted key length differs.

use std::collections::HashSet;
use std::fmt;

use base64::Engine;
use secrecy::{ExposeSecret, SecretString};

/// The longest key id: it must fit the one-byte length of the encryption format with room to spare.
pub const MAX_KID_LEN: usize = 64;

/// How long each key of a keyring must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyLength {
    /// At least this many bytes (HMAC keys may be longer).
    AtLeast(usize),
    /// Exactly this many bytes (an AES-256 key is 32).
    Exactly(usize),
}

impl fmt::Display for KeyLength {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AtLeast(bytes) => write!(f, "at least {bytes} bytes"),
            Self::Exactly(bytes) => write!(f, "exactly {bytes} bytes"),
        }
    }
}

/// Why a keyring string was refused. Entries are named by position, never by text: a key pasted where the id
/// belongs must not end up in a log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyringError {
    /// No keys at all.
    #[error("the keyring is empty")]
    Empty,
    /// An entry is not `kid:base64key`.
    #[error("entry {0} is not of the form kid:base64key")]
    NotKidColonKey(usize),
    /// A key id with characters outside `[A-Za-z0-9._-]` or longer than 64.
    #[error("entry {0} has an invalid key id (use 1-64 characters of A-Z a-z 0-9 . _ -)")]
    InvalidKid(usize),
    /// The key of entry N (1-based) is not base64.
    #[error("the key of entry {0} is not valid base64")]
    NotBase64(usize),
    /// The key of an entry has the wrong length.
    #[error("the key of entry {entry} is {len} bytes; {required} are required")]
    WrongLength {
        /// Its position (1-based).
        entry: usize,
        /// Its length.
        len: usize,
        /// What the keyring accepts.
        required: KeyLength,
    },
    /// Entry N reuses the id of an earlier entry.
    #[error("entry {0} reuses the key id of an earlier entry")]
    DuplicateKid(usize),
}

/// One `kid:key` entry of a keyring, decoded.
pub struct KeyringEntry {
    /// The key's id.
    pub kid: String,
    /// The key bytes.
    pub key: secrecy::SecretBox<Vec<u8>>,
}

impl fmt::Debug for KeyringEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyringEntry").field("kid", &self.kid).finish_non_exhaustive()
    }
}

/// Whether `kid` is a valid key id: 1–64 characters of `[A-Za-z0-9._-]`.
pub fn is_valid_kid(kid: &str) -> bool {
    (1..=MAX_KID_LEN).contains(&kid.len())
        && kid.bytes().all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-'))
}

/// Decodes a key written in standard or URL-safe base64, padded or not.
pub fn decode_base64_key(encoded: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(encoded.trim_end_matches('=')))
        .ok()
}

/// Parses `kid:base64key,kid:base64key,…` (the first is active), every key of length `length`.
pub fn parse_keyring(text: &SecretString, length: KeyLength) -> Result<Vec<KeyringEntry>, KeyringError> {
    let mut entries = Vec::new();
    let mut seen = HashSet::new();
    for (index, entry) in text.expose_secret().split(',').map(str::trim).filter(|entry| !entry.is_empty()).enumerate() {
        let position = index + 1;
        let (kid, encoded) = entry.split_once(':').ok_or(KeyringError::NotKidColonKey(position))?;
        if !is_valid_kid(kid) {
            return Err(KeyringError::InvalidKid(position));
        }
        let key = decode_base64_key(encoded).ok_or(KeyringError::NotBase64(position))?;
        let fits = match length {
            KeyLength::AtLeast(min) => key.len() >= min,
            KeyLength::Exactly(exact) => key.len() == exact,
        };
        if !fits {
            return Err(KeyringError::WrongLength { entry: position, len: key.len(), required: length });
        }
        if !seen.insert(kid.to_owned()) {
            return Err(KeyringError::DuplicateKid(position));
        }
        entries.push(KeyringEntry { kid: kid.to_owned(), key: secrecy::SecretBox::new(Box::new(key)) });
    }
    if entries.is_empty() { Err(KeyringError::Empty) } else { Ok(entries) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyrings_are_validated_without_echoing_keys() {
        let short = base64::engine::general_purpose::STANDARD.encode([1_u8; 16]);
        let long = base64::engine::general_purpose::STANDARD.encode([1_u8; 32]);
        let longer = base64::engine::general_purpose::STANDARD.encode([1_u8; 48]);
        let at_least = KeyLength::AtLeast(32);
        let exactly = KeyLength::Exactly(32);
        let cases = [
            ("", at_least, KeyringError::Empty),
            ("nokey", at_least, KeyringError::NotKidColonKey(1)),
            (&*format!("bad kid!:{long}"), at_least, KeyringError::InvalidKid(1)),
            ("k1:%%%", at_least, KeyringError::NotBase64(1)),
            (&*format!("k1:{short}"), at_least, KeyringError::WrongLength { entry: 1, len: 16, required: at_least }),
            (&*format!("k1:{long},k1:{long}"), at_least, KeyringError::DuplicateKid(2)),
            (
                &*format!("k1:{long},k2:{longer}"),
                exactly,
                KeyringError::WrongLength { entry: 2, len: 48, required: exactly },
            ),
        ];
        for (text, length, expected) in cases {
            let error = parse_keyring(&SecretString::from(text.to_owned()), length).expect_err(text);
            assert_eq!(error, expected);
            assert!(!error.to_string().contains(&long));
        }
        assert_eq!(
            KeyringError::WrongLength { entry: 2, len: 48, required: exactly }.to_string(),
            "the key of entry 2 is 48 bytes; exactly 32 bytes are required"
        );
        let text = SecretString::from(format!(" a:{long} ,, b:{longer}"));
        let entries = parse_keyring(&text, at_least).expect("valid keyring");
        assert_eq!(entries.iter().map(|entry| entry.kid.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        assert!(!format!("{entries:?}").contains(&long));
    }

    #[test]
    fn key_ids_are_short_and_plain() {
        assert!(is_valid_kid("k20250101") && is_valid_kid("dev1") && is_valid_kid("a.b_c-d"));
        assert!(is_valid_kid(&"k".repeat(MAX_KID_LEN)));
        for bad in ["", "k 1", "k:1", "k,1", "kö", &"k".repeat(MAX_KID_LEN + 1)] {
            assert!(!is_valid_kid(bad), "{bad:?}");
        }
    }
}
