//! Encryption at rest: AES-256-GCM under a keyring (`DASHTAM_KEYS__ENCRYPTION`, `kid:base64key,…`, the first
//! key active).
//!
//! A stored value is `version (1 byte) ‖ kid length (1 byte) ‖ kid ‖ nonce (12 random bytes) ‖ ciphertext ‖
//! tag (16 bytes)`. The header names the key, so values written under an older key still decrypt after a new
//! key is put first, and key rotation can find exactly the values still under an old key. The associated data
//! is the header plus the value's [`SecretLocation`] (table, column, row id), each length-prefixed so no two
//! locations encode alike: a value copied to another row, column or table fails authentication.
//!
//! Random 96-bit nonces are safe for far more values than a credential table will ever hold under one key
//! (NIST's bound is 2^32 encryptions per key).

use std::fmt;

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use dashtam_domain::secrets::{SecretCipher, SecretCipherError, SecretLocation};
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use crate::keyring::{KeyLength, KeyringError, MAX_KID_LEN, is_valid_kid, parse_keyring};
use crate::opaque_tokens::fill_random;

/// The format version written by this build.
pub const FORMAT_VERSION: u8 = 1;
/// An AES-256 key is 32 bytes.
pub const ENCRYPTION_KEY_BYTES: usize = 32;
/// Encryption keys must be exactly this long.
pub const ENCRYPTION_KEY_LENGTH: KeyLength = KeyLength::Exactly(ENCRYPTION_KEY_BYTES);
const NONCE_BYTES: usize = 12;
const TAG_BYTES: usize = 16;
/// Prefixes the associated data, so these values can never be confused with another use of the same key.
const AAD_CONTEXT: &[u8] = b"dashtam/secret-at-rest";

/// One key of the ring, ready to use.
struct Slot {
    kid: String,
    cipher: Aes256Gcm,
}

/// The encryption keyring. Its first key encrypts; every key decrypts.
pub struct EncryptionKeyring {
    active: Slot,
    /// Older keys, kept so values not yet re-encrypted still decrypt.
    previous: Vec<Slot>,
}

impl fmt::Debug for EncryptionKeyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let previous: Vec<&str> = self.previous.iter().map(|slot| slot.kid.as_str()).collect();
        f.debug_struct("EncryptionKeyring")
            .field("active_kid", &self.active.kid)
            .field("previous_kids", &previous)
            .finish_non_exhaustive()
    }
}

/// A stored value's parts, borrowed from it.
struct Envelope<'a> {
    /// `version ‖ kid length ‖ kid`, authenticated with the location.
    header: &'a [u8],
    kid: &'a str,
    nonce: [u8; NONCE_BYTES],
    ciphertext: &'a [u8],
    tag: [u8; TAG_BYTES],
}

impl<'a> Envelope<'a> {
    fn parse(bytes: &'a [u8]) -> Result<Self, SecretCipherError> {
        let (&version, rest) = bytes.split_first().ok_or(SecretCipherError::Truncated)?;
        if version != FORMAT_VERSION {
            return Err(SecretCipherError::UnsupportedVersion(version));
        }
        let (&kid_len, rest) = rest.split_first().ok_or(SecretCipherError::Truncated)?;
        let kid_len = usize::from(kid_len);
        if kid_len == 0 || kid_len > MAX_KID_LEN {
            return Err(SecretCipherError::Malformed);
        }
        let (kid, rest) = rest.split_at_checked(kid_len).ok_or(SecretCipherError::Truncated)?;
        let kid = std::str::from_utf8(kid).ok().filter(|kid| is_valid_kid(kid)).ok_or(SecretCipherError::Malformed)?;
        let (nonce, rest) = rest.split_at_checked(NONCE_BYTES).ok_or(SecretCipherError::Truncated)?;
        let tag_start = rest.len().checked_sub(TAG_BYTES).ok_or(SecretCipherError::Truncated)?;
        let (ciphertext, tag) = rest.split_at(tag_start);
        Ok(Self {
            header: &bytes[..2 + kid_len],
            kid,
            nonce: nonce.try_into().map_err(|_| SecretCipherError::Truncated)?,
            ciphertext,
            tag: tag.try_into().map_err(|_| SecretCipherError::Truncated)?,
        })
    }
}

/// The associated data: context, header, then table, column and row id, each preceded by its length.
fn associated_data(header: &[u8], location: &SecretLocation<'_>) -> Vec<u8> {
    let fields = [header, location.table.as_bytes(), location.column.as_bytes(), location.row_id.as_bytes()];
    let mut aad = Vec::with_capacity(AAD_CONTEXT.len() + fields.iter().map(|field| 8 + field.len()).sum::<usize>());
    aad.extend_from_slice(AAD_CONTEXT);
    for field in fields {
        // A usize always fits in a u64 on the platforms Rust supports.
        aad.extend_from_slice(&(field.len() as u64).to_be_bytes());
        aad.extend_from_slice(field);
    }
    aad
}

impl EncryptionKeyring {
    /// Parses `kid:base64key,…`; every key must be exactly 32 bytes. Errors name entries by position only.
    pub fn parse(text: &SecretString) -> Result<Self, KeyringError> {
        let mut slots = Vec::new();
        for (index, entry) in parse_keyring(text, ENCRYPTION_KEY_LENGTH)?.into_iter().enumerate() {
            let key = entry.key.expose_secret();
            let cipher = Aes256Gcm::new_from_slice(key).map_err(|_| KeyringError::WrongLength {
                entry: index + 1,
                len: key.len(),
                required: ENCRYPTION_KEY_LENGTH,
            })?;
            slots.push(Slot { kid: entry.kid, cipher });
        }
        let mut slots = slots.into_iter();
        let active = slots.next().ok_or(KeyringError::Empty)?;
        Ok(Self { active, previous: slots.collect() })
    }

    /// The id of the key new values are encrypted under.
    pub fn active_kid(&self) -> &str {
        &self.active.kid
    }

    /// `plaintext` encrypted under the active key for storage at `location`.
    pub fn encrypt(&self, plaintext: &[u8], location: &SecretLocation<'_>) -> Result<Vec<u8>, SecretCipherError> {
        let kid = self.active.kid.as_bytes();
        let kid_len = u8::try_from(kid.len()).map_err(|_| SecretCipherError::Malformed)?;
        let mut nonce = [0_u8; NONCE_BYTES];
        fill_random(&mut nonce)?;
        let header_len = 2 + kid.len();
        let body_start = header_len + NONCE_BYTES;
        let capacity = body_start
            .checked_add(plaintext.len())
            .and_then(|len| len.checked_add(TAG_BYTES))
            .ok_or(SecretCipherError::TooLarge)?;
        // The buffer holds plaintext until it is encrypted in place; allocated once, at its final size, so no
        // copy of the plaintext is left behind by a reallocation, and wiped if encryption fails.
        let mut buffer = Zeroizing::new(Vec::with_capacity(capacity));
        buffer.push(FORMAT_VERSION);
        buffer.push(kid_len);
        buffer.extend_from_slice(kid);
        buffer.extend_from_slice(&nonce);
        buffer.extend_from_slice(plaintext);
        let aad = associated_data(&buffer[..header_len], location);
        let tag = self
            .active
            .cipher
            .encrypt_in_place_detached(&Nonce::from(nonce), &aad, &mut buffer[body_start..])
            .map_err(|_| SecretCipherError::TooLarge)?;
        buffer.extend_from_slice(&tag);
        Ok(std::mem::take(&mut *buffer))
    }

    /// The plaintext of a value stored at `location`, wiped from memory when dropped.
    pub fn decrypt(
        &self,
        ciphertext: &[u8],
        location: &SecretLocation<'_>,
    ) -> Result<Zeroizing<Vec<u8>>, SecretCipherError> {
        let envelope = Envelope::parse(ciphertext)?;
        let slot = std::iter::once(&self.active)
            .chain(&self.previous)
            .find(|slot| slot.kid == envelope.kid)
            .ok_or_else(|| SecretCipherError::UnknownKeyId { kid: envelope.kid.to_owned() })?;
        let aad = associated_data(envelope.header, location);
        let mut plaintext = Zeroizing::new(envelope.ciphertext.to_vec());
        slot.cipher
            .decrypt_in_place_detached(&Nonce::from(envelope.nonce), &aad, &mut plaintext, &Tag::from(envelope.tag))
            .map_err(|_| SecretCipherError::AuthenticationFailed)?;
        Ok(plaintext)
    }

    /// The id of the key a stored value was encrypted under, read from its header.
    pub fn key_id_of(ciphertext: &[u8]) -> Result<&str, SecretCipherError> {
        Envelope::parse(ciphertext).map(|envelope| envelope.kid)
    }

    /// Whether a stored value is under a key other than the active one. A value whose header cannot be read
    /// is `false`: re-encrypting it would fail, and decrypting it says why.
    pub fn needs_reencryption(&self, ciphertext: &[u8]) -> bool {
        Self::key_id_of(ciphertext).is_ok_and(|kid| kid != self.active.kid)
    }

    /// A stored value decrypted and encrypted again under the active key, for the same location.
    pub fn reencrypt(&self, ciphertext: &[u8], location: &SecretLocation<'_>) -> Result<Vec<u8>, SecretCipherError> {
        let plaintext = self.decrypt(ciphertext, location)?;
        self.encrypt(&plaintext, location)
    }
}

impl SecretCipher for EncryptionKeyring {
    fn active_key_id(&self) -> &str {
        self.active_kid()
    }

    fn encrypt(&self, plaintext: &[u8], location: &SecretLocation<'_>) -> Result<Vec<u8>, SecretCipherError> {
        Self::encrypt(self, plaintext, location)
    }

    fn decrypt(
        &self,
        ciphertext: &[u8],
        location: &SecretLocation<'_>,
    ) -> Result<Zeroizing<Vec<u8>>, SecretCipherError> {
        Self::decrypt(self, ciphertext, location)
    }

    fn needs_reencryption(&self, ciphertext: &[u8]) -> bool {
        Self::needs_reencryption(self, ciphertext)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use base64::Engine;

    use super::*;

    const ROW: SecretLocation<'static> = SecretLocation::new("provider_credentials", "access_token", "row-1");

    fn key_text(kid: &str, byte: u8) -> String {
        format!("{kid}:{}", base64::engine::general_purpose::STANDARD.encode([byte; ENCRYPTION_KEY_BYTES]))
    }

    fn keyring(entries: &[(&str, u8)]) -> EncryptionKeyring {
        let text = entries.iter().map(|(kid, byte)| key_text(kid, *byte)).collect::<Vec<_>>().join(",");
        EncryptionKeyring::parse(&SecretString::from(text)).expect("valid keyring")
    }

    #[test]
    fn values_round_trip_with_the_documented_layout() {
        let keys = keyring(&[("k1", 7)]);
        let plaintext = b"refresh-token-from-the-provider";
        let sealed = keys.encrypt(plaintext, &ROW).expect("encrypt");
        assert_eq!(sealed[0], FORMAT_VERSION);
        assert_eq!(&sealed[1..4], b"\x02k1");
        assert_eq!(sealed.len(), 4 + NONCE_BYTES + plaintext.len() + TAG_BYTES);
        assert!(!sealed.windows(plaintext.len()).any(|window| window == plaintext), "plaintext visible");
        assert_eq!(keys.decrypt(&sealed, &ROW).expect("decrypt").as_slice(), plaintext);
        assert_eq!(EncryptionKeyring::key_id_of(&sealed), Ok("k1"));
        // Fresh nonces: the same plaintext never encrypts alike.
        assert_ne!(keys.encrypt(plaintext, &ROW).expect("encrypt"), sealed);
        let empty = keys.encrypt(b"", &ROW).expect("encrypt");
        assert!(keys.decrypt(&empty, &ROW).expect("decrypt").is_empty());
    }

    #[test]
    fn a_value_moved_to_another_row_column_or_table_does_not_decrypt() {
        let keys = keyring(&[("k1", 7)]);
        let sealed = keys.encrypt(b"secret", &ROW).expect("encrypt");
        for elsewhere in [
            SecretLocation::new("provider_credentials", "access_token", "row-2"),
            SecretLocation::new("provider_credentials", "refresh_token", "row-1"),
            SecretLocation::new("other_table", "access_token", "row-1"),
            // Same bytes split differently: length prefixes keep these apart.
            SecretLocation::new("provider_credentialsaccess_token", "", "row-1"),
            SecretLocation::new("provider_credentials", "access_tokenrow-1", ""),
        ] {
            assert_eq!(
                keys.decrypt(&sealed, &elsewhere),
                Err(SecretCipherError::AuthenticationFailed),
                "{elsewhere:?}"
            );
        }
    }

    #[test]
    fn rotation_keeps_old_values_readable_and_finds_them() {
        let old = keyring(&[("k1", 1)]);
        let under_old = old.encrypt(b"old secret", &ROW).expect("encrypt");
        let rotated = keyring(&[("k2", 2), ("k1", 1)]);
        assert_eq!(rotated.active_kid(), "k2");
        assert_eq!(rotated.decrypt(&under_old, &ROW).expect("old key still decrypts").as_slice(), b"old secret");
        let under_new = rotated.encrypt(b"new secret", &ROW).expect("encrypt");
        assert_eq!(EncryptionKeyring::key_id_of(&under_new), Ok("k2"));
        assert!(rotated.needs_reencryption(&under_old));
        assert!(!rotated.needs_reencryption(&under_new));
        assert!(!rotated.needs_reencryption(b"\x09garbage"), "unreadable headers are not reported");

        let reencrypted = rotated.reencrypt(&under_old, &ROW).expect("reencrypt");
        assert!(!rotated.needs_reencryption(&reencrypted));
        // With the old key removed, only re-encrypted values still decrypt.
        let new_only = keyring(&[("k2", 2)]);
        assert_eq!(new_only.decrypt(&reencrypted, &ROW).expect("decrypt").as_slice(), b"old secret");
        assert_eq!(new_only.decrypt(&under_old, &ROW), Err(SecretCipherError::UnknownKeyId { kid: "k1".to_owned() }));
        // The same kid with different key material is an authentication failure, not a silent misread.
        assert_eq!(keyring(&[("k1", 9)]).decrypt(&under_old, &ROW), Err(SecretCipherError::AuthenticationFailed));
    }

    #[test]
    fn damaged_values_give_typed_errors() {
        let keys = keyring(&[("k1", 7)]);
        let sealed = keys.encrypt(b"secret", &ROW).expect("encrypt");
        let with = |edit: &dyn Fn(&mut Vec<u8>)| {
            let mut copy = sealed.clone();
            edit(&mut copy);
            keys.decrypt(&copy, &ROW)
        };
        assert_eq!(keys.decrypt(b"", &ROW), Err(SecretCipherError::Truncated));
        assert_eq!(keys.decrypt(&[FORMAT_VERSION], &ROW), Err(SecretCipherError::Truncated));
        assert_eq!(with(&|bytes| bytes[0] = 2), Err(SecretCipherError::UnsupportedVersion(2)));
        assert_eq!(with(&|bytes| bytes[0] = 0), Err(SecretCipherError::UnsupportedVersion(0)));
        assert_eq!(with(&|bytes| bytes[1] = 0), Err(SecretCipherError::Malformed));
        assert_eq!(with(&|bytes| bytes[1] = 65), Err(SecretCipherError::Malformed));
        assert_eq!(with(&|bytes| bytes[2] = b':'), Err(SecretCipherError::Malformed));
        assert_eq!(with(&|bytes| bytes[3] = b'9'), Err(SecretCipherError::UnknownKeyId { kid: "k9".to_owned() }));
        assert_eq!(with(&|bytes| bytes.truncate(4 + NONCE_BYTES + TAG_BYTES - 1)), Err(SecretCipherError::Truncated));
        assert_eq!(with(&|bytes| bytes.truncate(3)), Err(SecretCipherError::Truncated));
        // Every single flipped bit after the header (nonce, ciphertext, tag) fails authentication; in the kid
        // length it is malformed or truncated, in the kid it names another (unknown) key.
        for index in 0..sealed.len() {
            for bit in 0..8 {
                let result = with(&|bytes| bytes[index] ^= 1 << bit);
                assert!(result.is_err(), "flipping bit {bit} of byte {index} went unnoticed");
                if index >= 4 {
                    assert_eq!(result, Err(SecretCipherError::AuthenticationFailed), "byte {index} bit {bit}");
                }
            }
        }
        // A truncated value whose remaining length is still plausible fails authentication.
        assert_eq!(
            with(&|bytes| {
                bytes.pop();
            }),
            Err(SecretCipherError::AuthenticationFailed)
        );
    }

    #[test]
    fn keys_must_be_32_bytes_and_never_show() {
        let short = format!("k1:{}", base64::engine::general_purpose::STANDARD.encode([5_u8; 16]));
        let long = format!("k1:{}", base64::engine::general_purpose::STANDARD.encode([5_u8; 33]));
        for text in [short, long] {
            let error = EncryptionKeyring::parse(&SecretString::from(text.clone())).expect_err("wrong length");
            assert!(matches!(error, KeyringError::WrongLength { entry: 1, .. }), "{error:?}");
            assert!(!error.to_string().contains(&text[3..]));
        }
        let keys = keyring(&[("k2", 2), ("k1", 1)]);
        let debug = format!("{keys:?}");
        assert!(debug.contains("k2") && debug.contains("k1"), "{debug}");
        assert!(!debug.contains(&key_text("", 2)[1..]), "{debug}");
    }

    #[test]
    fn services_can_hold_the_keyring_as_the_domain_port() {
        let cipher: Arc<dyn SecretCipher> = Arc::new(keyring(&[("k2", 2), ("k1", 1)]));
        let sealed = cipher.encrypt(b"via the port", &ROW).expect("encrypt");
        assert_eq!(cipher.decrypt(&sealed, &ROW).expect("decrypt").as_slice(), b"via the port");
        assert!(!cipher.needs_reencryption(&sealed));
        let under_old = keyring(&[("k1", 1)]).encrypt(b"old", &ROW).expect("encrypt");
        assert!(cipher.needs_reencryption(&under_old));
        let moved = cipher.reencrypt(&under_old, &ROW).expect("reencrypt");
        assert_eq!(EncryptionKeyring::key_id_of(&moved), Ok("k2"));
        assert_eq!(cipher.decrypt(&moved, &ROW).expect("decrypt").as_slice(), b"old");
    }
}
