//! Refresh and one-time tokens: 256 random bits shown to the client once, stored only as a keyed hash.
//!
//! The hash is HMAC-SHA-256 under a server secret, so a stolen database alone cannot confirm a guessed token,
//! and lookup is one indexed equality query — never a scan comparing slow hashes row by row.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use dashtam_domain::TokenDigest;
use dashtam_domain::tokens::{IssuedToken, MalformedToken, OpaqueTokenIssuer, RandomnessError};
use hmac::{Hmac, Mac};
use rand::TryRngCore;
use rand::rngs::OsRng;
use secrecy::{ExposeSecret, SecretBox, SecretString};
use sha2::Sha256;

/// Random bytes per token: 256 bits.
const TOKEN_BYTES: usize = 32;
/// Length of a token's text: 32 bytes in unpadded base64url.
pub const TOKEN_TEXT_LEN: usize = 43;
/// The shortest token-hash secret accepted.
pub const MIN_HASH_KEY_BYTES: usize = 32;

/// Fills `buffer` from the OS random number generator.
pub fn fill_random(buffer: &mut [u8]) -> Result<(), RandomnessError> {
    OsRng.try_fill_bytes(buffer).map_err(|error| RandomnessError(error.to_string()))
}

/// The token-hash secret is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenHashKeyError {
    /// Not base64.
    #[error("the token-hash key is not valid base64")]
    NotBase64,
    /// Fewer than 32 bytes.
    #[error("the token-hash key must be at least {MIN_HASH_KEY_BYTES} bytes (got {0})")]
    TooShort(usize),
}

/// Issues and hashes opaque tokens under one secret.
pub struct OpaqueTokens {
    key: SecretBox<Vec<u8>>,
}

impl std::fmt::Debug for OpaqueTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpaqueTokens").finish_non_exhaustive()
    }
}

impl OpaqueTokens {
    /// Uses `key` (base64, standard or URL-safe, at least 32 bytes) as the HMAC secret.
    pub fn from_base64(key: &SecretString) -> Result<Self, TokenHashKeyError> {
        let text = key.expose_secret().trim();
        let bytes = crate::keyring::decode_base64_key(text).ok_or(TokenHashKeyError::NotBase64)?;
        if bytes.len() < MIN_HASH_KEY_BYTES {
            return Err(TokenHashKeyError::TooShort(bytes.len()));
        }
        Ok(Self { key: SecretBox::new(Box::new(bytes)) })
    }

    /// A key for another purpose, derived from this secret (HMAC of the purpose label), so operators manage one
    /// secret while each use gets its own key.
    pub fn derive_key(&self, purpose: &str) -> SecretBox<[u8; 32]> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.key.expose_secret())
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(b"dashtam-derived-key:");
        mac.update(purpose.as_bytes());
        SecretBox::new(Box::new(mac.finalize().into_bytes().into()))
    }

    /// The keyed hash of a token's text.
    fn hash_text(&self, text: &str) -> TokenDigest {
        // HMAC accepts keys of any length, so construction cannot fail.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.key.expose_secret())
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(text.as_bytes());
        TokenDigest(mac.finalize().into_bytes().into())
    }
}

impl OpaqueTokenIssuer for OpaqueTokens {
    fn issue(&self) -> Result<IssuedToken, RandomnessError> {
        let mut bytes = zeroize::Zeroizing::new([0_u8; TOKEN_BYTES]);
        fill_random(bytes.as_mut())?;
        let text = URL_SAFE_NO_PAD.encode(bytes.as_ref());
        let digest = self.hash_text(&text);
        Ok(IssuedToken { text: SecretString::from(text), digest })
    }

    fn digest(&self, presented: &str) -> Result<TokenDigest, MalformedToken> {
        let well_formed = presented.len() == TOKEN_TEXT_LEN
            && presented.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_');
        if well_formed { Ok(self.hash_text(presented)) } else { Err(MalformedToken) }
    }
}

/// A new random secret of `bytes` bytes, base64-encoded: for generated development keys and
/// `dashtam keys generate`.
pub fn generate_secret_base64(bytes: usize) -> Result<SecretString, RandomnessError> {
    let mut secret = zeroize::Zeroizing::new(vec![0_u8; bytes]);
    fill_random(&mut secret)?;
    Ok(SecretString::from(base64::engine::general_purpose::STANDARD.encode(secret.as_slice())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> OpaqueTokens {
        OpaqueTokens::from_base64(&generate_secret_base64(32).expect("randomness")).expect("valid key")
    }

    #[test]
    fn issued_tokens_are_256_bit_base64url_and_unique() {
        let tokens = tokens();
        let first = tokens.issue().expect("randomness");
        let second = tokens.issue().expect("randomness");
        assert_eq!(first.text.expose_secret().len(), TOKEN_TEXT_LEN);
        assert_ne!(first.text.expose_secret(), second.text.expose_secret());
        assert_ne!(first.digest, second.digest);
    }

    #[test]
    fn hashing_the_presented_text_finds_the_stored_hash() {
        let tokens = tokens();
        let issued = tokens.issue().expect("randomness");
        assert_eq!(tokens.digest(issued.text.expose_secret()), Ok(issued.digest));
    }

    #[test]
    fn the_hash_depends_on_the_server_secret() {
        let issued = tokens().issue().expect("randomness");
        assert_ne!(tokens().digest(issued.text.expose_secret()), Ok(issued.digest));
    }

    #[test]
    fn malformed_tokens_are_refused_before_lookup() {
        let tokens = tokens();
        let valid = tokens.issue().expect("randomness").text.expose_secret().to_owned();
        for bad in [
            String::new(),
            valid[..42].to_owned(),
            format!("{valid}A"),
            format!("{}+", &valid[..42]),
            format!("{}=", &valid[..42]),
            "é".repeat(22),
        ] {
            assert_eq!(tokens.digest(&bad), Err(MalformedToken), "{bad:?}");
        }
    }

    #[test]
    fn keys_must_be_base64_and_long_enough() {
        assert_eq!(OpaqueTokens::from_base64(&SecretString::from("!!!")).map(drop), Err(TokenHashKeyError::NotBase64));
        let short = base64::engine::general_purpose::STANDARD.encode([7_u8; 16]);
        assert_eq!(
            OpaqueTokens::from_base64(&SecretString::from(short)).map(drop),
            Err(TokenHashKeyError::TooShort(16))
        );
        let url_safe = URL_SAFE_NO_PAD.encode([0xfb_u8; 32]);
        assert!(OpaqueTokens::from_base64(&SecretString::from(url_safe)).is_ok());
    }

    #[test]
    fn debug_hides_the_key() {
        let key = generate_secret_base64(32).expect("randomness");
        let tokens = OpaqueTokens::from_base64(&key).expect("valid");
        assert!(!format!("{tokens:?}").contains(key.expose_secret()));
    }
}
