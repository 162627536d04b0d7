//! Property tests for the adapters' parsers of outside input: presented opaque tokens (refresh and one-time),
//! presented access tokens (JWTs), the key material read from configuration (keyrings and the token-hash
//! key), stored encrypted secrets, and the user agents and client addresses that describe a session's device.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::engine::{GeneralPurpose, GeneralPurposeConfig};
use dashtam_adapters::access_tokens::{AccessTokens, SIGNING_KEY_LENGTH};
use dashtam_adapters::device::UserAgentGeoResolver;
use dashtam_adapters::encryption::{EncryptionKeyring, FORMAT_VERSION};
use dashtam_adapters::keyring::{KeyLength, KeyringEntry, KeyringError, parse_keyring};
use dashtam_adapters::opaque_tokens::{
    MIN_HASH_KEY_BYTES, OpaqueTokens, TOKEN_TEXT_LEN, TokenHashKeyError, generate_secret_base64,
};
use dashtam_domain::device::{Device, DeviceResolver, MAX_USER_AGENT_CHARS, truncate_user_agent};
use dashtam_domain::secrets::{SecretCipherError, SecretLocation};
use dashtam_domain::tokens::{AccessTokenCodec, AccessTokenError, MalformedToken, OpaqueTokenIssuer};
use dashtam_domain::{Role, SessionId, UserId};
use proptest::prelude::*;
use secrecy::{ExposeSecret, SecretString};
use time::OffsetDateTime;
use uuid::Uuid;

/// Default case count, and no regression files written next to the sources.
fn config() -> ProptestConfig {
    ProptestConfig { failure_persistence: None, ..ProptestConfig::default() }
}

const BASE64URL: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// URL-safe base64 that accepts non-zero trailing bits, to tell which edits leave the decoded bytes unchanged.
const LENIENT_URL_SAFE: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

fn opaque_tokens() -> OpaqueTokens {
    OpaqueTokens::from_base64(&generate_secret_base64(32).expect("randomness")).expect("a generated key is valid")
}

fn is_well_formed_token(text: &str) -> bool {
    text.len() == TOKEN_TEXT_LEN && text.bytes().all(|byte| BASE64URL.as_bytes().contains(&byte))
}

/// Presented refresh or one-time tokens: well-formed ones, near misses (length, alphabet, padding,
/// multi-byte characters) and arbitrary strings.
fn presented_token() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z0-9_-]{43}",
        "[A-Za-z0-9_-]{40,46}",
        "[A-Za-z0-9_+/=-]{43}",
        "[A-Za-z0-9_-]{41}[é.~ ]",
        "[A-Za-z0-9_-]{20}[\\x00\\n\\t\"'%]{1,3}[A-Za-z0-9_-]{20}",
        any::<String>(),
    ]
}

proptest! {
    #![proptest_config(config())]

    /// Any presented text: never a panic, `Ok` exactly for 43 characters of base64url, and the same text
    /// always gives the same digest.
    #[test]
    fn opaque_digest_accepts_exactly_43_base64url_characters(presented in presented_token()) {
        let tokens = opaque_tokens();
        let result = tokens.digest(&presented);
        if is_well_formed_token(&presented) {
            let digest = result.expect("well-formed tokens are digested");
            prop_assert_eq!(tokens.digest(&presented), Ok(digest), "digest is not deterministic");
        } else {
            prop_assert_eq!(result, Err(MalformedToken));
        }
    }

    /// Two different well-formed texts never share a digest, and a digest depends on the server's key.
    #[test]
    fn opaque_digests_separate_texts_and_keys(first in "[A-Za-z0-9_-]{43}", second in "[A-Za-z0-9_-]{43}") {
        let tokens = opaque_tokens();
        let digest = tokens.digest(&first).expect("well-formed");
        prop_assert_eq!(tokens.digest(&second).expect("well-formed") == digest, first == second);
        prop_assert_ne!(opaque_tokens().digest(&first).expect("well-formed"), digest);
    }

    /// Issued tokens are well formed, are digested back to their stored digest, and are pairwise distinct.
    #[test]
    fn issued_opaque_tokens_round_trip_and_are_distinct(count in 2_usize..24) {
        let tokens = opaque_tokens();
        let mut texts = HashSet::new();
        let mut digests = HashSet::new();
        for _ in 0..count {
            let issued = tokens.issue().expect("randomness");
            let text = issued.text.expose_secret();
            prop_assert!(is_well_formed_token(text), "{text:?}");
            prop_assert_eq!(URL_SAFE_NO_PAD.decode(text).map(|bytes| bytes.len()), Ok(32));
            prop_assert_eq!(tokens.digest(text), Ok(issued.digest));
            prop_assert!(texts.insert(text.to_owned()), "repeated token");
            prop_assert!(digests.insert(issued.digest.0), "repeated digest");
        }
    }

    /// `generate_secret_base64(n)` is standard base64 of `n` bytes, usable as a token-hash key when n ≥ 32.
    #[test]
    fn generated_secrets_decode_to_their_length(bytes in 0_usize..96) {
        let secret = generate_secret_base64(bytes).expect("randomness");
        prop_assert_eq!(STANDARD.decode(secret.expose_secret()).map(|decoded| decoded.len()), Ok(bytes));
        match OpaqueTokens::from_base64(&secret) {
            Ok(_) => prop_assert!(bytes >= MIN_HASH_KEY_BYTES),
            Err(error) => prop_assert_eq!(error, TokenHashKeyError::TooShort(bytes)),
        }
    }

    /// The token-hash key from configuration: arbitrary text never panics; standard or URL-safe base64 of
    /// any bytes is accepted exactly when it is at least 32 bytes long; errors never echo the key.
    #[test]
    fn token_hash_keys_are_classified_without_echoing_them(
        key in prop::collection::vec(any::<u8>(), 0..64),
        url_safe in any::<bool>(),
        garbage in prop_oneof![any::<String>(), "[A-Za-z0-9+/=_ -]{0,80}"],
    ) {
        let encoded = if url_safe { URL_SAFE_NO_PAD.encode(&key) } else { STANDARD.encode(&key) };
        match OpaqueTokens::from_base64(&SecretString::from(format!(" {encoded}\n"))) {
            Ok(_) => prop_assert!(key.len() >= MIN_HASH_KEY_BYTES),
            Err(error) => prop_assert_eq!(error, TokenHashKeyError::TooShort(key.len())),
        }
        if let Err(error) = OpaqueTokens::from_base64(&SecretString::from(garbage.clone())) {
            let message = error.to_string();
            // The messages are fixed sentences plus a length; only a short key could appear in one by chance.
            prop_assert!(garbage.trim().chars().count() < 12 || !message.contains(garbage.trim()), "{message}");
            if let TokenHashKeyError::TooShort(len) = error {
                prop_assert!(len < MIN_HASH_KEY_BYTES);
            }
        }
    }
}

// ---- Keyrings ---------------------------------------------------------------------------------------------

/// A valid key id: 1–64 characters of `[A-Za-z0-9._-]`.
fn kid() -> impl Strategy<Value = String> {
    "[A-Za-z0-9._-]{1,64}"
}

fn encode_key(key: &[u8], style: u8) -> String {
    match style % 3 {
        0 => STANDARD.encode(key),
        1 => URL_SAFE_NO_PAD.encode(key),
        _ => base64::engine::general_purpose::URL_SAFE.encode(key),
    }
}

/// Key material after a valid kid that is either good base64 of ≥16 random bytes, or long garbage: long
/// enough that it cannot appear in an error message by coincidence.
fn key_material() -> impl Strategy<Value = String> {
    prop_oneof![
        (prop::collection::vec(any::<u8>(), 16..48), any::<u8>()).prop_map(|(key, style)| encode_key(&key, style)),
        "[A-Za-z0-9+/=%!*_ -]{24,60}",
        "[^,]{24,60}",
    ]
}

fn exposed_key(entry: &KeyringEntry) -> Vec<u8> {
    entry.key.expose_secret().clone()
}

proptest! {
    #![proptest_config(config())]

    /// Arbitrary keyring text never panics, and the outcome is consistent: `Ok` has at least one entry with
    /// distinct valid kids and long-enough keys; a `WrongLength` reports a length below the minimum.
    #[test]
    fn parse_keyring_never_panics_and_is_consistent(
        text in prop_oneof![any::<String>(), "[a-z0-9:,= ]{0,40}", "([a-z]{1,3}:[A-Za-z0-9+/=]{0,50},?){0,3}"],
        min in 0_usize..40,
    ) {
        match parse_keyring(&SecretString::from(text.clone()), KeyLength::AtLeast(min)) {
            Ok(entries) => {
                prop_assert!(!entries.is_empty());
                let kids: HashSet<&str> = entries.iter().map(|entry| entry.kid.as_str()).collect();
                prop_assert_eq!(kids.len(), entries.len(), "duplicate kids accepted");
                for entry in &entries {
                    let prefix = format!("{}:", entry.kid);
                    prop_assert!(text.contains(&prefix), "kid {:?} is not in the text", entry.kid);
                    prop_assert!(exposed_key(entry).len() >= min);
                }
            }
            Err(KeyringError::Empty) => prop_assert!(text.split(',').all(|entry| entry.trim().is_empty())),
            Err(KeyringError::WrongLength { len, required, .. }) => {
                prop_assert_eq!(required, KeyLength::AtLeast(min));
                prop_assert!(len < min);
            }
            Err(KeyringError::NotKidColonKey(position) | KeyringError::InvalidKid(position)) => {
                prop_assert!(position >= 1);
            }
            Err(KeyringError::NotBase64(_) | KeyringError::DuplicateKid(_)) => {}
        }
    }

    /// Well-formed keyrings (any spacing, empty entries, any of the three base64 spellings) round-trip: the
    /// kids in order, and the exact key bytes.
    #[test]
    fn well_formed_keyrings_round_trip(
        keys in prop::collection::vec((kid(), prop::collection::vec(any::<u8>(), 32..80), any::<u8>()), 1..5),
        separators in prop::collection::vec(prop_oneof![Just(","), Just(" , "), Just(",,"), Just(",\n\t")], 4),
    ) {
        let mut seen = HashSet::new();
        let keys: Vec<_> = keys.into_iter().filter(|(kid, _, _)| seen.insert(kid.clone())).collect();
        let mut text = String::from(" ");
        for (index, (kid, key, style)) in keys.iter().enumerate() {
            if index > 0 {
                text.push_str(separators[index % separators.len()]);
            }
            text.push_str(&format!("{kid}:{}", encode_key(key, *style)));
        }
        text.push_str(", ");
        let entries = parse_keyring(&SecretString::from(text), SIGNING_KEY_LENGTH).expect("a valid keyring");
        prop_assert_eq!(entries.len(), keys.len());
        for (entry, (kid, key, _)) in entries.iter().zip(&keys) {
            prop_assert_eq!(&entry.kid, kid);
            prop_assert_eq!(&exposed_key(entry), key);
            let debug = format!("{entry:?}");
            prop_assert!(!debug.contains(&encode_key(key, 0)), "{debug}");
        }
    }

    /// Whatever is wrong with a keyring, the message names the entry or its kid, never the key material
    /// that follows the kid.
    #[test]
    fn keyring_errors_never_echo_key_material(
        good in prop::collection::vec((kid(), prop::collection::vec(any::<u8>(), 32..48)), 0..3),
        kid in kid(),
        material in key_material(),
        duplicate in any::<bool>(),
    ) {
        prop_assume!(material.trim().chars().count() >= 16 && !kid.contains(material.trim()));
        let mut entries: Vec<String> =
            good.iter().map(|(kid, key)| format!("{kid}:{}", STANDARD.encode(key))).collect();
        entries.push(format!("{kid}:{material}"));
        if duplicate {
            entries.push(format!("{kid}:{material}"));
        }
        let text = entries.join(",");
        if let Err(error) = parse_keyring(&SecretString::from(text), SIGNING_KEY_LENGTH) {
            let message = error.to_string();
            prop_assert!(!message.contains(material.trim()), "{message}");
            for (_, key) in &good {
                prop_assert!(!message.contains(&STANDARD.encode(key)), "{message}");
            }
        }
    }

    /// See `keyring_errors_echo_a_key_in_the_kid_position_minimal`.
    #[test]
    fn keyring_errors_never_echo_a_misplaced_key(
        // Base64 text of 32–48 bytes that also passes as a key id: exactly what a swapped entry looks like.
        encoded in "[A-Za-z0-9]{43,64}",
        after in prop_oneof![Just(String::new()), kid()],
    ) {
        if let Err(error) = parse_keyring(&SecretString::from(format!("{encoded}:{after}")), SIGNING_KEY_LENGTH) {
            let message = error.to_string();
            prop_assert!(!message.contains(&encoded), "{message}");
        }
    }
}

/// Minimal reproducer: a 32-byte key written without a kid but followed by a colon (or swapped with its
/// kid) is printed in full by the error's `Display`, which goes to the start-up log.
#[test]
fn keyring_errors_echo_a_key_in_the_kid_position_minimal() {
    let key = URL_SAFE_NO_PAD.encode([0_u8; 32]); // "AAAA…A", 43 characters
    for text in [format!("{key}:"), format!("{key}:k1")] {
        let error = parse_keyring(&SecretString::from(text.clone()), SIGNING_KEY_LENGTH).expect_err(&text);
        assert!(!error.to_string().contains(&key), "{text:?} → {error}");
    }
}

// ---- Access tokens ----------------------------------------------------------------------------------------

const ISSUER: &str = "https://dashtam.example";
const AUDIENCE: &str = "dashtam";

fn keyring(kids: &[&str]) -> Vec<KeyringEntry> {
    let text = kids
        .iter()
        .map(|kid| format!("{kid}:{}", generate_secret_base64(32).expect("randomness").expose_secret()))
        .collect::<Vec<_>>()
        .join(",");
    parse_keyring(&SecretString::from(text), SIGNING_KEY_LENGTH).expect("a valid keyring")
}

fn access_tokens(entries: &[KeyringEntry], lifetime: Duration) -> AccessTokens {
    AccessTokens::new(entries, ISSUER.into(), AUDIENCE.into(), lifetime).expect("keys")
}

/// 1970-01-01 to 2200-01-01, whole seconds.
fn instant() -> impl Strategy<Value = OffsetDateTime> {
    (0_i64..7_258_118_400).prop_map(|seconds| OffsetDateTime::from_unix_timestamp(seconds).expect("in range"))
}

fn role() -> impl Strategy<Value = Role> {
    prop_oneof![Just(Role::User), Just(Role::Admin)]
}

/// Presented bearer tokens that are not ours: arbitrary text, JWT-shaped base64url, and JWT-shaped text
/// whose header names our kid with assorted algorithms.
fn garbage_token() -> impl Strategy<Value = String> {
    let header = prop_oneof![
        Just(r#"{"alg":"HS256","kid":"k1"}"#.to_owned()),
        Just(r#"{"alg":"none","kid":"k1"}"#.to_owned()),
        Just(r#"{"alg":"HS512","kid":"k1","typ":"JWT"}"#.to_owned()),
        Just(r#"{"alg":"HS256"}"#.to_owned()),
        "\\{\"alg\":\"[A-Za-z0-9]{0,6}\",\"kid\":\"[a-z0-9]{0,3}\"\\}",
    ];
    let payload = prop_oneof![
        Just("{}".to_owned()),
        Just(r#"{"sub":"00000000-0000-0000-0000-000000000000","exp":99999999999}"#.to_owned()),
        ".{0,40}",
    ];
    prop_oneof![
        any::<String>(),
        "[A-Za-z0-9_-]{0,60}(\\.[A-Za-z0-9_-]{0,60}){0,3}",
        "[A-Za-z0-9_=+/.-]{0,120}",
        (header, payload, "[A-Za-z0-9_-]{0,50}").prop_map(|(header, payload, signature)| {
            format!("{}.{}.{signature}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(payload))
        }),
    ]
}

proptest! {
    #![proptest_config(config())]

    /// Arbitrary presented tokens never panic and are `Invalid` (never `Expired`, never accepted).
    #[test]
    fn verify_refuses_garbage_as_invalid(token in garbage_token(), now in instant()) {
        let tokens = access_tokens(&keyring(&["k1"]), Duration::from_secs(900));
        prop_assert_eq!(tokens.verify(&token, now), Err(AccessTokenError::Invalid));
    }

    /// Issuing then verifying gives back exactly what was issued, until the token expires.
    #[test]
    fn issue_then_verify_round_trips(
        user in any::<u128>(),
        session in any::<u128>(),
        version in any::<i64>(),
        role in role(),
        now in instant(),
        lifetime in 1_u64..=31_536_000,
        later in 0_u64..2_000_000,
    ) {
        let tokens = access_tokens(&keyring(&["k1", "k0"]), Duration::from_secs(lifetime));
        let user_id = UserId::from_uuid(Uuid::from_u128(user));
        let session_id = SessionId::from_uuid(Uuid::from_u128(session));
        let token = tokens.issue(user_id, session_id, version, role, now).expect("issue");
        let grant = tokens.verify(&token, now).expect("a fresh token verifies");
        prop_assert_eq!(
            (grant.user_id, grant.session_id, grant.token_version, grant.role),
            (user_id, session_id, version, role)
        );
        let lifetime = time::Duration::seconds(i64::try_from(lifetime).expect("small"));
        prop_assert_eq!((grant.issued_at, grant.expires_at), (now, now + lifetime));
        let then = now + time::Duration::seconds(i64::try_from(later).expect("small"));
        if then < grant.expires_at {
            prop_assert_eq!(tokens.verify(&token, then), Ok(grant));
        } else {
            prop_assert_eq!(tokens.verify(&token, then), Err(AccessTokenError::Expired));
        }
    }

    /// Changing any one character of a valid token (header, payload or signature) makes it `Invalid`
    /// whenever the change alters the decoded bytes or breaks the encoding. A change hidden in a segment's
    /// unused trailing bits must still never panic, be `Expired`, or grant anything else.
    #[test]
    fn any_single_character_change_is_invalid(
        segment in 0_usize..3,
        position in any::<prop::sample::Index>(),
        replacement in prop_oneof![
            4 => prop::sample::select(BASE64URL.chars().collect::<Vec<_>>()),
            1 => prop::sample::select(vec!['.', '=', '+', '/', ' ', '%', 'é', '\0']),
        ],
        role in role(),
        now in instant(),
    ) {
        let tokens = access_tokens(&keyring(&["k1"]), Duration::from_secs(900));
        let token = tokens.issue(UserId::generate(), SessionId::generate(), 7, role, now).expect("issue");
        let original = tokens.verify(&token, now).expect("verifies");
        let segments: Vec<&str> = token.split('.').collect();
        prop_assert_eq!(segments.len(), 3);
        let chars: Vec<char> = segments[segment].chars().collect();
        let index = position.index(chars.len());
        prop_assume!(chars[index] != replacement);
        let mut changed = chars.clone();
        changed[index] = replacement;
        let changed: String = changed.into_iter().collect();
        let mut tampered = segments.iter().map(|part| (*part).to_owned()).collect::<Vec<_>>();
        tampered[segment] = changed.clone();
        let tampered = tampered.join(".");

        let same_bytes = matches!(
            (LENIENT_URL_SAFE.decode(segments[segment]), LENIENT_URL_SAFE.decode(&changed)),
            (Ok(before), Ok(after)) if before == after
        );
        let result = tokens.verify(&tampered, now);
        if same_bytes {
            prop_assert!(result == Err(AccessTokenError::Invalid) || result == Ok(original), "{result:?}");
        } else {
            prop_assert_eq!(result, Err(AccessTokenError::Invalid), "{}", tampered);
        }
    }

    /// Tokens signed under another key with the same kid, for another audience or issuer, or spliced from
    /// two valid tokens, are `Invalid`.
    #[test]
    fn foreign_and_spliced_tokens_are_invalid(role in role(), now in instant(), which in 0_usize..4) {
        let entries = keyring(&["k1"]);
        let tokens = access_tokens(&entries, Duration::from_secs(900));
        let issue = |codec: &AccessTokens| {
            codec.issue(UserId::generate(), SessionId::generate(), 1, role, now).expect("issue")
        };
        let other_key = access_tokens(&keyring(&["k1"]), Duration::from_secs(900));
        let lifetime = Duration::from_secs(900);
        let other_audience = AccessTokens::new(&entries, ISSUER.into(), "other".into(), lifetime).expect("keys");
        let other_issuer =
            AccessTokens::new(&entries, "https://evil.example".into(), AUDIENCE.into(), lifetime).expect("keys");
        let token = match which {
            0 => issue(&other_key),
            1 => issue(&other_audience),
            2 => issue(&other_issuer),
            _ => {
                let (first, second) = (issue(&tokens), issue(&tokens));
                let first: Vec<&str> = first.split('.').collect();
                let second: Vec<&str> = second.split('.').collect();
                format!("{}.{}.{}", first[0], second[1], first[2])
            }
        };
        prop_assert_eq!(tokens.verify(&token, now), Err(AccessTokenError::Invalid));
    }
}

// ---- Encryption at rest -----------------------------------------------------------------------------------

/// Header, nonce and tag around the ciphertext of a value encrypted under a two-character kid.
const SEALED_OVERHEAD: usize = 2 + 2 + 12 + 16;

fn encryption_keyring(kids: &[&str]) -> EncryptionKeyring {
    let text = kids
        .iter()
        .map(|kid| format!("{kid}:{}", generate_secret_base64(32).expect("randomness").expose_secret()))
        .collect::<Vec<_>>()
        .join(",");
    EncryptionKeyring::parse(&SecretString::from(text)).expect("a valid keyring")
}

/// Stored values that are not ours: arbitrary bytes, and bytes behind a well-formed header naming a key of
/// the ring (or not), so decryption gets past the header checks.
fn foreign_sealed_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..96),
        (prop::sample::select(vec!["k1", "k0", "zz", "k1\0"]), prop::collection::vec(any::<u8>(), 0..80)).prop_map(
            |(kid, rest)| {
                let mut bytes = vec![FORMAT_VERSION, u8::try_from(kid.len()).expect("short")];
                bytes.extend_from_slice(kid.as_bytes());
                bytes.extend(rest);
                bytes
            }
        ),
    ]
}

proptest! {
    #![proptest_config(config())]

    /// Arbitrary bytes given to decrypt never panic, never authenticate, and get the error their shape
    /// calls for; reading the header for rotation agrees with decryption.
    #[test]
    fn decrypting_arbitrary_bytes_never_panics(bytes in foreign_sealed_value(), row in any::<String>()) {
        let keys = encryption_keyring(&["k1", "k0"]);
        let location = SecretLocation::new("provider_credentials", "access_token", &row);
        match keys.decrypt(&bytes, &location) {
            Ok(_) => prop_assert!(false, "arbitrary bytes authenticated"),
            Err(SecretCipherError::UnsupportedVersion(version)) => {
                prop_assert!(bytes.first() == Some(&version) && version != FORMAT_VERSION);
            }
            Err(SecretCipherError::Truncated) => {
                let kid_len = bytes.get(1).map_or(0, |len| usize::from(*len));
                prop_assert!(bytes.len() < 2 + kid_len + 12 + 16, "{} bytes called truncated", bytes.len());
            }
            Err(SecretCipherError::UnknownKeyId { kid }) => prop_assert!(kid != "k1" && kid != "k0", "{kid}"),
            Err(SecretCipherError::Malformed | SecretCipherError::AuthenticationFailed) => {}
            Err(other) => prop_assert!(false, "unexpected error {other:?}"),
        }
        let kid = EncryptionKeyring::key_id_of(&bytes);
        prop_assert_eq!(keys.needs_reencryption(&bytes), kid.is_ok_and(|kid| kid != "k1"));
    }

    /// Any plaintext at any location round-trips, under the active key, at a fixed overhead; the same value
    /// does not decrypt at another row, and still decrypts after a new key is put first.
    #[test]
    fn encrypt_then_decrypt_round_trips(
        plaintext in prop::collection::vec(any::<u8>(), 0..1024),
        table in "[a-z_]{0,24}",
        column in "[a-z_]{0,24}",
        row in any::<String>(),
        other_row in any::<String>(),
    ) {
        let keys = encryption_keyring(&["k1"]);
        let location = SecretLocation::new(&table, &column, &row);
        let sealed = keys.encrypt(&plaintext, &location).expect("encrypt");
        prop_assert_eq!(sealed.len(), SEALED_OVERHEAD + plaintext.len());
        let opened = keys.decrypt(&sealed, &location).expect("decrypt");
        prop_assert_eq!(opened.as_slice(), plaintext.as_slice());
        prop_assert_eq!(EncryptionKeyring::key_id_of(&sealed), Ok("k1"));
        prop_assert!(!keys.needs_reencryption(&sealed));
        if other_row != row {
            let elsewhere = SecretLocation::new(&table, &column, &other_row);
            prop_assert_eq!(keys.decrypt(&sealed, &elsewhere), Err(SecretCipherError::AuthenticationFailed));
        }
    }

    /// Flipping any one bit of a stored value is detected.
    #[test]
    fn any_flipped_bit_is_detected(
        plaintext in prop::collection::vec(any::<u8>(), 0..64),
        position in any::<prop::sample::Index>(),
        bit in 0_u8..8,
    ) {
        let keys = encryption_keyring(&["k1"]);
        let location = SecretLocation::new("provider_credentials", "refresh_token", "row");
        let mut sealed = keys.encrypt(&plaintext, &location).expect("encrypt");
        let index = position.index(sealed.len());
        sealed[index] ^= 1 << bit;
        prop_assert!(keys.decrypt(&sealed, &location).is_err());
    }
}

// ---- Device descriptions ----------------------------------------------------------------------------------

fn geo_fixture() -> UserAgentGeoResolver {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/geo-fixture.mmdb");
    UserAgentGeoResolver::new(Some(&path)).expect("the fixture opens")
}

/// Pieces of real user agents, including the ones that send woothee down its version-capturing branches
/// (MSIE, Trident, Windows versions, Windows Phone, feature phones, consoles), to be shuffled together.
const USER_AGENT_PIECES: &[&str] = &[
    "Mozilla/5.0",
    "(X11; Linux x86_64; rv:128.0)",
    "Gecko/20100101",
    "Firefox/128.0",
    "Chrome/126.0.0.0",
    "Safari/537.36",
    "Version/17.5",
    "Mobile/15E148",
    "(iPhone; CPU iPhone OS 17_5 like Mac OS X)",
    "(iPad; CPU OS 16_0 like Mac OS X)",
    "(Macintosh; Intel Mac OS X 10_15_7)",
    "(Windows NT 10.0; Win64; x64)",
    "Windows NT 6.1",
    "Windows Phone OS 8.0",
    "Windows Phone",
    "compatible; MSIE",
    "MSIE 9.0;",
    "Trident/7.0; rv:11.0",
    "Trident/",
    "IEMobile/10.0",
    "IEMobile",
    "Edg/126.0",
    "OPR/110.0",
    "Opera",
    "Vivaldi/6.7",
    "YaBrowser/24.4.0.0",
    "SamsungBrowser/25.0",
    "Sleipnir/",
    "(Linux; Android 14; Pixel 8)",
    "Android",
    "BlackBerry",
    "DoCoMo/2.0",
    "KDDI-",
    "SoftBank",
    "Xbox; Xbox One)",
    "PlayStation 4",
    "Nintendo Switch",
    "CFNetwork/1490",
    "Darwin/23.0.0",
    "(compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "bingbot",
    "curl/8.5.0",
    "Wget/1.21",
    "Java/17",
    "(",
    ")",
    ";",
    "/",
    "é",
    "😀",
];

/// What a client may send as `User-Agent`: arbitrary text (short and long), and shuffled real pieces with
/// noise between them.
fn user_agent() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        4 => prop::sample::select(USER_AGENT_PIECES).prop_map(str::to_owned),
        1 => ".{0,12}",
    ];
    prop_oneof![
        any::<String>(),
        ".{400,700}",
        prop::collection::vec(piece, 0..14).prop_map(|pieces| pieces.join(" ")),
        (".{0,520}", prop::sample::select(USER_AGENT_PIECES)).prop_map(|(noise, piece)| format!("{noise}{piece}")),
    ]
}

/// Addresses in and around the fixture's networks, and anywhere else.
fn client_ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<u8>().prop_map(|last| IpAddr::V4(Ipv4Addr::new(203, 0, 113, last))),
        any::<u8>().prop_map(|last| IpAddr::V4(Ipv4Addr::new(198, 51, 100, last))),
        any::<u8>().prop_map(|last| IpAddr::V4(Ipv4Addr::new(203, 0, 112, last))),
        any::<u128>().prop_map(|bits| IpAddr::V6(Ipv6Addr::from((0x2001_0db8_u128 << 96) | (bits >> 32)))),
        any::<u32>().prop_map(|bits| IpAddr::V6(Ipv4Addr::from(bits).to_ipv6_mapped())),
        any::<u32>().prop_map(|bits| IpAddr::V4(Ipv4Addr::from(bits))),
        any::<u128>().prop_map(|bits| IpAddr::V6(Ipv6Addr::from(bits))),
    ]
}

/// The fixture's answer for an address, worked out independently of the database.
fn expected_location(ip: IpAddr) -> Option<&'static str> {
    match ip.to_canonical() {
        IpAddr::V4(ip) => match ip.octets() {
            [203, 0, 113, _] => Some("Berlin, Germany"),
            [198, 51, 100, _] => Some("Canada"),
            _ => None,
        },
        IpAddr::V6(ip) => (ip.segments()[..2] == [0x2001, 0x0db8]).then_some("Tokyo, Japan"),
    }
}

proptest! {
    #![proptest_config(config())]

    /// Any user agent: woothee itself does not panic on what it is given (the resolver's panic guard is only
    /// a backstop), every field is either absent or meaningful text, the device type is one of the five,
    /// `device_info` is exactly what `Device::info_from` makes of browser and OS, and only the first
    /// `MAX_USER_AGENT_CHARS` characters count.
    #[test]
    fn user_agents_never_panic_and_describe_consistently(user_agent in user_agent()) {
        let resolver = UserAgentGeoResolver::new(None).expect("no database");
        let truncated = truncate_user_agent(&user_agent);
        prop_assert!(truncated.chars().count() <= MAX_USER_AGENT_CHARS);
        prop_assert!(user_agent.starts_with(truncated));
        let _ = woothee::parser::Parser::new().parse(truncated);

        let device = resolver.describe(Some(&user_agent), None);
        prop_assert_eq!(&device.device_info, &Device::info_from(device.browser.as_deref(), device.os.as_deref()));
        for field in [&device.browser, &device.os, &device.device_type, &device.device_info].into_iter().flatten() {
            prop_assert!(!field.trim().is_empty() && !field.contains("UNKNOWN"), "{:?}", device);
        }
        if let Some(kind) = device.device_type.as_deref() {
            let kinds = [Device::DESKTOP, Device::MOBILE, Device::TABLET, Device::BOT, Device::OTHER];
            prop_assert!(kinds.contains(&kind), "{kind}");
        }
        prop_assert_eq!(device.location, None);
        prop_assert_eq!(resolver.describe(Some(truncated), None), resolver.describe(Some(&user_agent), None));
    }

    /// Any address against the fixture: never a panic, and the location is the fixture's record for the
    /// networks it holds (IPv4-mapped IPv6 included) and `None` everywhere else.
    #[test]
    fn locations_match_the_fixture(ip in client_ip()) {
        let location = geo_fixture().describe(None, Some(ip)).location;
        prop_assert_eq!(location.as_deref(), expected_location(ip));
    }
}
