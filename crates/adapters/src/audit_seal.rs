//! Seals the audit chain's head and checkpoint with HMAC-SHA-256 under a key derived from the token-hash
//! secret, so rewriting the chain end-to-end needs that secret, not just write access to the database.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use dashtam_domain::audit::ChainSealer;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretBox};
use sha2::Sha256;

use crate::opaque_tokens::OpaqueTokens;

/// The derivation label; changing it invalidates every stored seal.
const PURPOSE: &str = "audit-chain-seal-v1";

/// HMAC-SHA-256 chain sealer.
pub struct HmacChainSealer {
    key: SecretBox<[u8; 32]>,
}

impl std::fmt::Debug for HmacChainSealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HmacChainSealer").finish_non_exhaustive()
    }
}

impl HmacChainSealer {
    /// A sealer keyed from the token-hash secret.
    pub fn new(tokens: &OpaqueTokens) -> Self {
        Self { key: tokens.derive_key(PURPOSE) }
    }

    fn mac(&self, message: &[u8]) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.key.expose_secret())
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(message);
        mac
    }
}

impl ChainSealer for HmacChainSealer {
    fn seal(&self, message: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(self.mac(message).finalize().into_bytes())
    }

    fn verify(&self, message: &[u8], seal: &str) -> bool {
        URL_SAFE_NO_PAD.decode(seal).is_ok_and(|bytes| self.mac(message).verify_slice(&bytes).is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::opaque_tokens::generate_secret_base64;

    fn sealer() -> HmacChainSealer {
        let secret = generate_secret_base64(32).expect("randomness");
        HmacChainSealer::new(&OpaqueTokens::from_base64(&secret).expect("valid key"))
    }

    #[test]
    fn seals_verify_only_for_their_message_and_key() {
        let sealer = sealer();
        let seal = sealer.seal(b"head:1:abc");
        assert!(sealer.verify(b"head:1:abc", &seal));
        assert!(!sealer.verify(b"head:2:abc", &seal));
        assert!(!sealer.verify(b"head:1:abc", "not base64!"));
        assert!(!super::tests::sealer().verify(b"head:1:abc", &seal), "another key");
    }
}
