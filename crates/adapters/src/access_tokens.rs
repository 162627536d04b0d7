//! Access tokens: short-lived JWTs signed with HMAC-SHA-256 under a keyring. Each token names its key in the
//! `kid` header; the first key of the ring signs, every key verifies, so a new key can be rolled in while
//! tokens signed with the previous one stay valid until they expire. Validation is pinned to HS256 (no
//! `alg` confusion) and checks issuer, audience, token type and expiry — expiry against the injected clock.

use std::time::Duration;

use dashtam_domain::tokens::{AccessGrant, AccessTokenCodec, AccessTokenError};
use dashtam_domain::{Role, SessionId, UserId};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::keyring::{KeyLength, KeyringEntry, KeyringError};

/// The shortest signing key accepted: HS256 is only as strong as a 256-bit key.
pub const MIN_SIGNING_KEY_BYTES: usize = 32;
/// The length signing keys must have, for [`crate::keyring::parse_keyring`].
pub const SIGNING_KEY_LENGTH: KeyLength = KeyLength::AtLeast(MIN_SIGNING_KEY_BYTES);
/// The `typ` claim of access tokens, so no other kind of token we might sign can be used as one.
const ACCESS_TOKEN_TYPE: &str = "access";

/// What an access token says, as serialised.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct AccessClaims {
    /// The user's id.
    pub sub: Uuid,
    /// The session's id.
    pub sid: Uuid,
    /// The user's token version when issued; a user-level rotation raises it.
    pub ver: i64,
    /// `user` or `admin`.
    pub role: String,
    /// Issued at (Unix seconds).
    pub iat: i64,
    /// Expires at (Unix seconds).
    pub exp: i64,
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
    /// Always `access`.
    pub typ: String,
}

/// Signs and verifies access tokens.
pub struct AccessTokens {
    active_kid: String,
    active_key: EncodingKey,
    verification_keys: Vec<(String, DecodingKey)>,
    /// Built once: every authenticated request verifies a token.
    validation: Validation,
    issuer: String,
    audience: String,
    lifetime: Duration,
}

impl std::fmt::Debug for AccessTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessTokens")
            .field("active_kid", &self.active_kid)
            .field("issuer", &self.issuer)
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

impl AccessTokens {
    /// A signer/verifier over `keyring` (its first entry signs).
    pub fn new(
        keyring: &[KeyringEntry],
        issuer: String,
        audience: String,
        lifetime: Duration,
    ) -> Result<Self, KeyringError> {
        let active = keyring.first().ok_or(KeyringError::Empty)?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[&issuer]);
        validation.set_audience(&[&audience]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        // Expiry is checked in `verify` against the injected clock, so tests can move time without sleeping.
        validation.validate_exp = false;
        Ok(Self {
            active_kid: active.kid.clone(),
            active_key: EncodingKey::from_secret(active.key.expose_secret()),
            verification_keys: keyring
                .iter()
                .map(|entry| (entry.kid.clone(), DecodingKey::from_secret(entry.key.expose_secret())))
                .collect(),
            validation,
            issuer,
            audience,
            lifetime,
        })
    }
}

impl AccessTokenCodec for AccessTokens {
    fn lifetime(&self) -> Duration {
        self.lifetime
    }

    fn issue(
        &self,
        user_id: UserId,
        session_id: SessionId,
        token_version: i64,
        role: Role,
        now: OffsetDateTime,
    ) -> Result<String, AccessTokenError> {
        let iat = now.unix_timestamp();
        let lifetime = i64::try_from(self.lifetime.as_secs()).map_err(|_| AccessTokenError::Invalid)?;
        let claims = AccessClaims {
            sub: user_id.as_uuid(),
            sid: session_id.as_uuid(),
            ver: token_version,
            role: role.as_str().to_owned(),
            iat,
            exp: iat.saturating_add(lifetime),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            typ: ACCESS_TOKEN_TYPE.to_owned(),
        };
        let header = Header { kid: Some(self.active_kid.clone()), ..Header::new(Algorithm::HS256) };
        jsonwebtoken::encode(&header, &claims, &self.active_key).map_err(|_| AccessTokenError::Invalid)
    }

    /// The claims of a token this server issued, if it is intact, of the right kind and not expired at `now`.
    fn verify(&self, token: &str, now: OffsetDateTime) -> Result<AccessGrant, AccessTokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AccessTokenError::Invalid)?;
        if header.alg != Algorithm::HS256 {
            return Err(AccessTokenError::Invalid);
        }
        let kid = header.kid.ok_or(AccessTokenError::Invalid)?;
        let key = self
            .verification_keys
            .iter()
            .find(|(candidate, _)| *candidate == kid)
            .map(|(_, key)| key)
            .ok_or(AccessTokenError::Invalid)?;
        let claims = jsonwebtoken::decode::<AccessClaims>(token, key, &self.validation)
            .map_err(|_| AccessTokenError::Invalid)?
            .claims;
        if claims.typ != ACCESS_TOKEN_TYPE {
            return Err(AccessTokenError::Invalid);
        }
        if now.unix_timestamp() >= claims.exp {
            return Err(AccessTokenError::Expired);
        }
        let instant = |seconds| OffsetDateTime::from_unix_timestamp(seconds).map_err(|_| AccessTokenError::Invalid);
        Ok(AccessGrant {
            user_id: UserId::from_uuid(claims.sub),
            session_id: SessionId::from_uuid(claims.sid),
            token_version: claims.ver,
            role: claims.role.parse().map_err(|_| AccessTokenError::Invalid)?,
            issued_at: instant(claims.iat)?,
            expires_at: instant(claims.exp)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use secrecy::SecretString;
    use time::macros::datetime;

    use super::*;
    use crate::keyring::parse_keyring;
    use crate::opaque_tokens::generate_secret_base64;

    fn keyring(kids: &[&str]) -> (SecretString, Vec<KeyringEntry>) {
        let text = kids
            .iter()
            .map(|kid| format!("{kid}:{}", generate_secret_base64(32).expect("randomness").expose_secret()))
            .collect::<Vec<_>>()
            .join(",");
        let text = SecretString::from(text);
        let entries = parse_keyring(&text, SIGNING_KEY_LENGTH).expect("valid keyring");
        (text, entries)
    }

    fn signer(entries: &[KeyringEntry]) -> AccessTokens {
        AccessTokens::new(entries, "http://127.0.0.1:8000".into(), "dashtam".into(), Duration::from_secs(900))
            .expect("keys")
    }

    const NOW: OffsetDateTime = datetime!(2025-10-03 10:00:00 UTC);

    fn issue(tokens: &AccessTokens, now: OffsetDateTime) -> String {
        tokens.issue(UserId::generate(), SessionId::generate(), 3, Role::User, now).expect("issue")
    }

    #[test]
    fn issued_tokens_verify_with_their_claims_and_kid() {
        let (_, entries) = keyring(&["k2"]);
        let tokens = signer(&entries);
        let (user_id, session_id) = (UserId::generate(), SessionId::generate());
        let token = tokens.issue(user_id, session_id, 3, Role::Admin, NOW).expect("issue");
        let header = jsonwebtoken::decode_header(&token).expect("header");
        assert_eq!((header.alg, header.kid.as_deref()), (Algorithm::HS256, Some("k2")));
        let grant = tokens.verify(&token, NOW).expect("verify");
        assert_eq!(
            (grant.user_id, grant.session_id, grant.token_version, grant.role),
            (user_id, session_id, 3, Role::Admin)
        );
        assert_eq!((grant.issued_at, grant.expires_at), (NOW, NOW + time::Duration::seconds(900)));
    }

    #[test]
    fn tokens_expire_by_the_injected_clock() {
        let (_, entries) = keyring(&["k1"]);
        let tokens = signer(&entries);
        let token = issue(&tokens, NOW);
        assert!(tokens.verify(&token, NOW + time::Duration::seconds(899)).is_ok());
        assert_eq!(tokens.verify(&token, NOW + time::Duration::seconds(900)), Err(AccessTokenError::Expired));
    }

    #[test]
    fn rotation_keeps_tokens_of_the_previous_key_valid() {
        let (old_text, old) = keyring(&["old"]);
        let old_token = issue(&signer(&old), NOW);
        let (new_text, new) = keyring(&["new"]);
        let rotated_text = SecretString::from(format!("{},{}", new_text.expose_secret(), old_text.expose_secret()));
        let rotated = parse_keyring(&rotated_text, SIGNING_KEY_LENGTH).expect("valid keyring");
        let tokens = signer(&rotated);
        assert!(tokens.verify(&old_token, NOW).is_ok(), "old key still verifies");
        // ...until the token's own lifetime ends, after which the old key can be removed.
        let expiry = NOW + time::Duration::seconds(900);
        assert!(tokens.verify(&old_token, expiry - time::Duration::seconds(1)).is_ok());
        assert_eq!(tokens.verify(&old_token, expiry), Err(AccessTokenError::Expired));
        let fresh = issue(&tokens, NOW);
        assert_eq!(jsonwebtoken::decode_header(&fresh).expect("header").kid.as_deref(), Some("new"));
        assert!(signer(&new).verify(&fresh, NOW).is_ok(), "new tokens need only the new key");
        // Once the old key is removed, its tokens stop verifying.
        assert_eq!(signer(&new).verify(&old_token, NOW), Err(AccessTokenError::Invalid));
    }

    #[test]
    fn forged_altered_and_foreign_tokens_are_invalid() {
        let (_, entries) = keyring(&["k1"]);
        let tokens = signer(&entries);
        let token = issue(&tokens, NOW);
        let mut tampered = token.clone();
        tampered.pop();
        tampered.push(if token.ends_with('A') { 'B' } else { 'A' });
        let (_, other) = keyring(&["k1"]);
        let foreign = issue(&signer(&other), NOW);
        let unsigned = {
            let parts: Vec<&str> = token.split('.').collect();
            let none_header = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r#"{"alg":"none","kid":"k1"}"#);
            format!("{none_header}.{}.", parts[1])
        };
        let wrong_audience =
            AccessTokens::new(&entries, "http://127.0.0.1:8000".into(), "other".into(), Duration::from_secs(900))
                .map(|tokens| issue(&tokens, NOW))
                .expect("keys");
        for bad in
            [tampered.as_str(), foreign.as_str(), unsigned.as_str(), wrong_audience.as_str(), "", "a.b.c", "not a jwt"]
        {
            assert_eq!(tokens.verify(bad, NOW), Err(AccessTokenError::Invalid), "{bad}");
        }
    }
}
