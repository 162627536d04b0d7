//! Secrets at rest: provider credentials and other values the server must read back are stored encrypted.
//! Services see only this port; the cipher, its keyring and its byte format live in adapters.
//!
//! Every ciphertext is bound to where it is stored (a [`SecretLocation`]), so a value copied into another
//! row, column or table does not decrypt: a database writer cannot move one user's credentials to another.

use std::fmt::Debug;

use zeroize::Zeroizing;

use crate::tokens::RandomnessError;

/// Where a secret is stored: its table, its column and its row's id. The cipher authenticates all three.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecretLocation<'a> {
    /// The table, e.g. `provider_credentials`.
    pub table: &'a str,
    /// The column, e.g. `access_token`.
    pub column: &'a str,
    /// The row's id as text (a UUID, usually).
    pub row_id: &'a str,
}

impl<'a> SecretLocation<'a> {
    /// The location of `table.column` in row `row_id`.
    pub const fn new(table: &'a str, column: &'a str, row_id: &'a str) -> Self {
        Self { table, column, row_id }
    }
}

/// Why a secret could not be encrypted or decrypted. None of the messages contain key material or plaintext.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretCipherError {
    /// The ciphertext names a key that is not in the keyring: it was removed before its values were
    /// re-encrypted.
    #[error("the secret is encrypted under key id {kid:?}, which is not in the encryption keyring")]
    UnknownKeyId {
        /// The key id the ciphertext names (ids are not secret).
        kid: String,
    },
    /// The ciphertext's format version is not one this build reads.
    #[error("the secret's format version {0} is not supported")]
    UnsupportedVersion(u8),
    /// The ciphertext ends before its header, nonce or tag does.
    #[error("the secret is truncated")]
    Truncated,
    /// The ciphertext's header is invalid (an empty or ill-formed key id).
    #[error("the secret is malformed")]
    Malformed,
    /// The key, the location or the ciphertext is wrong: the value was altered, moved, or is not ours.
    #[error("the secret failed authentication (altered, moved to another location, or under another key)")]
    AuthenticationFailed,
    /// The plaintext is larger than the cipher can encrypt under one nonce.
    #[error("the secret is too large to encrypt")]
    TooLarge,
    /// No nonce could be drawn from the operating system.
    #[error(transparent)]
    Randomness(#[from] RandomnessError),
}

/// Encrypts and decrypts secrets bound to their storage location, under a keyring whose first key is active.
pub trait SecretCipher: Send + Sync + Debug {
    /// The id of the active key, the one [`SecretCipher::encrypt`] uses (ids are not secret).
    fn active_key_id(&self) -> &str;

    /// `plaintext` encrypted under the active key for storage at `location`.
    fn encrypt(&self, plaintext: &[u8], location: &SecretLocation<'_>) -> Result<Vec<u8>, SecretCipherError>;

    /// The plaintext of a value stored at `location`, wiped from memory when dropped.
    fn decrypt(
        &self,
        ciphertext: &[u8],
        location: &SecretLocation<'_>,
    ) -> Result<Zeroizing<Vec<u8>>, SecretCipherError>;

    /// Whether `ciphertext` was encrypted under a key other than the active one, so key rotation should
    /// re-encrypt it. A value whose header cannot be read is not reported here; decrypting it reports why.
    fn needs_reencryption(&self, ciphertext: &[u8]) -> bool;

    /// `ciphertext` decrypted and encrypted again under the active key, for the same location.
    fn reencrypt(&self, ciphertext: &[u8], location: &SecretLocation<'_>) -> Result<Vec<u8>, SecretCipherError> {
        let plaintext = self.decrypt(ciphertext, location)?;
        self.encrypt(&plaintext, location)
    }
}
