//! Key material at start-up: configured keys are parsed and checked; in development, missing keys are
//! generated once into `<data_dir>/keys/` (mode 0600) and reused, so a restart keeps sessions and stored
//! credentials valid. Production refuses to start without configured keys, and refuses configured keys that
//! are obviously unsafe (see [`production_key_problems`], called from `Config::validate`).
//!
//! Also `dashtam keys generate`, which prints a new random key in the format these settings take.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, bail};
use dashtam_adapters::access_tokens::SIGNING_KEY_LENGTH;
use dashtam_adapters::encryption::{ENCRYPTION_KEY_LENGTH, EncryptionKeyring};
use dashtam_adapters::keyring::{KeyringEntry, decode_base64_key, is_valid_kid, parse_keyring};
use dashtam_adapters::opaque_tokens::{OpaqueTokens, generate_secret_base64};
use dashtam_domain::providers::KeyRotationReport;
use secrecy::{ExposeSecret, SecretString};
use time::Date;
use zeroize::Zeroizing;

use crate::cli::KeyKind;
use crate::config::{Config, Environment, KeysConfig, setting};

/// Bytes of a generated key.
const GENERATED_KEY_BYTES: usize = 32;

/// Example keys printed in our documentation (`docs/keys.md`). Anyone can read them, so production refuses
/// them; a test keeps this list and the documentation in step.
const DOCUMENTED_EXAMPLE_KEYS: &[&str] = &[
    "yAkw4C7fudxF767LIOshD30tx12MCb0pZxL1YCvJDEw=", // pragma: allowlist secret
    "3N30Ix5L46gpVJ8Ai7Vj/UzRPzOCw6wdww0+5DEGroQ=", // pragma: allowlist secret
    "18JMDvK1jeZ3SpECxQ7G6HrhUM2EGj9s9nDtbUdlme0=", // pragma: allowlist secret
];

/// The keys the server runs with.
#[derive(Debug)]
pub struct Keys {
    /// Access-token signing keyring; the first entry signs.
    pub signing: Vec<KeyringEntry>,
    /// Encryption at rest of stored secrets; the first key encrypts.
    pub encryption: EncryptionKeyring,
    /// Keyed hashing of refresh and one-time tokens.
    pub opaque_tokens: OpaqueTokens,
}

/// Loads the configured keys, generating missing ones in development.
pub fn load(config: &Config) -> anyhow::Result<Keys> {
    // `Config::load` already refused these; a configuration built in code gets the same refusals.
    if config.env == Environment::Production {
        let problems = production_key_problems(&config.keys);
        if !problems.is_empty() {
            let lines: Vec<String> =
                problems.iter().map(|(key_path, problem)| format!("{}: {problem}", setting(key_path))).collect();
            bail!("unsafe keys for production:\n  - {}", lines.join("\n  - "));
        }
    }
    let keys_dir = config.data_dir.join("keys");
    let signing = match &config.keys.signing {
        Some(keyring) => keyring.clone(),
        None => development_key(config, &keys_dir, "signing", |secret| format!("dev1:{secret}"))?,
    };
    let signing = parse_keyring(&signing, SIGNING_KEY_LENGTH)
        .map_err(|error| anyhow::anyhow!("{}: {error}", setting("keys.signing")))?;
    let encryption = match &config.keys.encryption {
        Some(keyring) => keyring.clone(),
        None => development_key(config, &keys_dir, "encryption", |secret| format!("dev1:{secret}"))?,
    };
    let encryption = EncryptionKeyring::parse(&encryption)
        .map_err(|error| anyhow::anyhow!("{}: {error}", setting("keys.encryption")))?;
    let token_hash = match &config.keys.token_hash {
        Some(secret) => secret.clone(),
        None => development_key(config, &keys_dir, "token_hash", str::to_owned)?,
    };
    let opaque_tokens = OpaqueTokens::from_base64(&token_hash)
        .map_err(|error| anyhow::anyhow!("{}: {error}", setting("keys.token_hash")))?;
    Ok(Keys { signing, encryption, opaque_tokens })
}

/// Prints what `dashtam keys rotate` did; an error (so a non-zero exit) when a credential did not decrypt.
pub fn print_rotation(report: &KeyRotationReport) -> anyhow::Result<()> {
    println!("{}", rotation_summary(report));
    for (id, error) in &report.failed {
        println!("failed: provider {id}: {error}");
    }
    if !report.failed.is_empty() {
        bail!(
            "{} stored credential(s) do not decrypt; keep every old key until the connections listed are linked again",
            report.failed.len()
        );
    }
    Ok(())
}

/// The counts of a key rotation on one line.
pub fn rotation_summary(report: &KeyRotationReport) -> String {
    let mut summary = format!(
        "active key {}: examined {}, re-encrypted {}, already current {}, changed meanwhile {}, failed {}",
        report.active_key_id,
        report.examined,
        report.reencrypted,
        report.already_current,
        report.changed_meanwhile,
        report.failed.len()
    );
    if report.changed_meanwhile > 0 {
        summary.push_str(" (run `dashtam keys rotate` again for the ones changed meanwhile)");
    }
    summary
}

/// What is unsafe about the configured keys for production, as `(key path, problem)` pairs. Keys that cannot be parsed or are too short are reported, and so
/// are keys that are one byte value repeated (an all-zero placeholder) or are an example from our
/// documentation. Missing keys are not reported here (`Config::validate` does that). No message contains
/// key material: entries are named by position.
pub fn production_key_problems(keys: &KeysConfig) -> Vec<(&'static str, String)> {
    let mut problems = Vec::new();
    let keyrings = [
        ("keys.signing", &keys.signing, SIGNING_KEY_LENGTH, KeyKind::Signing),
        ("keys.encryption", &keys.encryption, ENCRYPTION_KEY_LENGTH, KeyKind::Encryption),
    ];
    for (key_path, text, length, kind) in keyrings {
        let Some(text) = text else { continue };
        match parse_keyring(text, length) {
            Err(error) => problems.push((key_path, error.to_string())),
            Ok(entries) => {
                for (index, entry) in entries.iter().enumerate() {
                    if let Some(weakness) = weakness(entry.key.expose_secret()) {
                        let problem = format!("the key of entry {} {weakness}; {}", index + 1, remedy(kind));
                        problems.push((key_path, problem));
                    }
                }
            }
        }
    }
    if let Some(text) = &keys.token_hash {
        match OpaqueTokens::from_base64(text) {
            Err(error) => problems.push(("keys.token_hash", error.to_string())),
            Ok(_) => {
                let key = Zeroizing::new(decode_base64_key(text.expose_secret().trim()).unwrap_or_default());
                if let Some(weakness) = weakness(&key) {
                    let problem = format!("the key {weakness}; {}", remedy(KeyKind::TokenHash));
                    problems.push(("keys.token_hash", problem));
                }
            }
        }
    }
    problems
}

/// Why a key of an acceptable length is still unsafe, if it is.
fn weakness(key: &[u8]) -> Option<&'static str> {
    if key.windows(2).all(|pair| pair[0] == pair[1]) {
        return Some("is a single byte value repeated (a placeholder, not a random key)");
    }
    let documented = DOCUMENTED_EXAMPLE_KEYS
        .iter()
        .any(|example| decode_base64_key(example).is_some_and(|example| example.as_slice() == key));
    documented.then_some("is an example key from the Dashtam documentation")
}

fn remedy(kind: KeyKind) -> String {
    format!("generate a random one with `dashtam keys generate --kind {}`", kind.name())
}

/// A new key for `dashtam keys generate`: `kid:base64key` (32 random bytes from the OS) for a keyring, or
/// bare base64 for the token-hash key. Without a kid, keyring keys are named `k` and today's UTC date.
pub fn generate(kind: KeyKind, kid: Option<&str>, today: Date) -> anyhow::Result<SecretString> {
    let secret = generate_secret_base64(GENERATED_KEY_BYTES)?;
    match kind {
        KeyKind::TokenHash if kid.is_some() => {
            bail!("--kid: the token-hash key is a single secret without an id; leave --kid out")
        }
        KeyKind::TokenHash => Ok(secret),
        KeyKind::Signing | KeyKind::Encryption => {
            let kid = match kid {
                Some(kid) if is_valid_kid(kid) => kid.to_owned(),
                Some(_) => bail!("--kid: use 1-64 characters of A-Z a-z 0-9 . _ -"),
                None => format!("k{:04}{:02}{:02}", today.year(), u8::from(today.month()), today.day()),
            };
            Ok(SecretString::from(format!("{kid}:{}", secret.expose_secret())))
        }
    }
}

/// Reads `<dir>/<name>.key`, creating it with a fresh secret (formatted by `format`) on first use.
fn development_key(
    config: &Config,
    dir: &Path,
    name: &str,
    format: impl Fn(&str) -> String,
) -> anyhow::Result<SecretString> {
    if config.env == Environment::Production {
        bail!("keys.{name} must be configured in production");
    }
    let path = dir.join(format!("{name}.key"));
    if let Ok(existing) = std::fs::read_to_string(&path) {
        return Ok(SecretString::from(existing.trim().to_owned()));
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let secret = generate_secret_base64(GENERATED_KEY_BYTES)?;
    let contents = format(secret.expose_secret());
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(&path) {
        Ok(mut file) => {
            file.write_all(contents.as_bytes()).with_context(|| format!("writing {}", path.display()))?;
            tracing::warn!(path = %path.display(), "generated a development key; configure keys.{name} in production");
            Ok(SecretString::from(contents))
        }
        // Another instance created it first: use theirs, so both sign and hash alike.
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
            let existing = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
            Ok(SecretString::from(existing.trim().to_owned()))
        }
        Err(error) => Err(error).with_context(|| format!("creating {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use dashtam_domain::secrets::SecretLocation;
    use time::macros::date;

    use super::*;

    fn random_key() -> String {
        generate_secret_base64(32).expect("randomness").expose_secret().to_owned()
    }

    /// A production configuration with sound random keys.
    fn production(dir: &Path) -> Config {
        let mut config = Config { data_dir: dir.to_path_buf(), env: Environment::Production, ..Config::default() };
        config.keys.signing = Some(SecretString::from(format!("s1:{}", random_key())));
        config.keys.encryption = Some(SecretString::from(format!("e2:{},e1:{}", random_key(), random_key())));
        config.keys.token_hash = Some(SecretString::from(random_key()));
        config
    }

    #[test]
    fn development_keys_are_generated_once_with_private_permissions_and_reused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = Config { data_dir: dir.path().to_path_buf(), ..Config::default() };
        let first = load(&config).expect("generate");
        for name in ["signing", "encryption", "token_hash"] {
            let file = dir.path().join(format!("keys/{name}.key"));
            let contents = std::fs::read_to_string(&file).expect("generated");
            assert_eq!(contents.starts_with("dev1:"), name != "token_hash", "{name}: {contents}");
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let mode = std::fs::metadata(&file).expect("exists").permissions().mode();
                assert_eq!(mode & 0o777, 0o600, "{name}");
            }
        }
        let second = load(&config).expect("reuse");
        assert_eq!(first.signing[0].kid, second.signing[0].kid);
        assert_eq!(first.signing[0].key.expose_secret(), second.signing[0].key.expose_secret());
        // A credential stored before a restart still decrypts after it.
        let location = SecretLocation::new("provider_credentials", "access_token", "row-1");
        assert_eq!(first.encryption.active_kid(), "dev1");
        let sealed = first.encryption.encrypt(b"stored credential", &location).expect("encrypt");
        let opened = second.encryption.decrypt(&sealed, &location).expect("same key after restart");
        assert_eq!(opened.as_slice(), b"stored credential");
    }

    #[test]
    fn configured_keys_are_validated_and_named_in_errors() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config { data_dir: dir.path().to_path_buf(), ..Config::default() };
        config.keys.signing = Some(SecretString::from("k1:dG9vLXNob3J0".to_owned()));
        let error = load(&config).expect_err("short key").to_string();
        assert!(error.contains("DASHTAM_KEYS__SIGNING") && !error.contains("dG9vLXNob3J0"), "{error}");

        config.keys.signing = Some(SecretString::from(format!("k1:{}", random_key())));
        let long = STANDARD.encode([7_u8; 40]);
        config.keys.encryption = Some(SecretString::from(format!("e1:{long}")));
        let error = load(&config).expect_err("an AES-256 key is exactly 32 bytes").to_string();
        assert!(error.starts_with("DASHTAM_KEYS__ENCRYPTION (keys.encryption): "), "{error}");
        assert!(error.contains("exactly 32 bytes") && !error.contains(&long), "{error}");
        assert!(!dir.path().join("keys/signing.key").exists(), "nothing generated for configured keys");
    }

    #[test]
    fn production_loads_sound_keys_and_generates_nothing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = production(dir.path());
        assert!(production_key_problems(&config.keys).is_empty());
        let keys = load(&config).expect("sound keys");
        assert_eq!((keys.signing[0].kid.as_str(), keys.encryption.active_kid()), ("s1", "e2"));
        assert!(!dir.path().join("keys").exists());
    }

    #[test]
    fn production_refuses_each_unsafe_key_by_setting_without_echoing_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let documented = DOCUMENTED_EXAMPLE_KEYS[1];
        let unsafe_keys = [
            (STANDARD.encode([0_u8; 16]), "bytes"),
            (STANDARD.encode([0_u8; 32]), "single byte value"),
            (STANDARD.encode([0x41_u8; 32]), "single byte value"),
            (documented.to_owned(), "example key"),
            // URL-safe spelling of the same example: compared as bytes, not text.
            (
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .encode(decode_base64_key(documented).expect("valid example")),
                "example key",
            ),
        ];
        for (key_path, variable) in [
            ("keys.signing", "DASHTAM_KEYS__SIGNING (keys.signing)"),
            ("keys.encryption", "DASHTAM_KEYS__ENCRYPTION (keys.encryption)"),
            ("keys.token_hash", "DASHTAM_KEYS__TOKEN_HASH (keys.token_hash)"),
        ] {
            for (key, why) in &unsafe_keys {
                let mut config = production(dir.path());
                // In a keyring the unsafe key is the second, older entry: every entry is checked.
                let slot = match key_path {
                    "keys.signing" => &mut config.keys.signing,
                    "keys.encryption" => &mut config.keys.encryption,
                    _ => &mut config.keys.token_hash,
                };
                *slot = Some(SecretString::from(if key_path == "keys.token_hash" {
                    key.clone()
                } else {
                    format!("new:{},old:{key}", random_key())
                }));
                let problems = production_key_problems(&config.keys);
                assert_eq!(problems.len(), 1, "{key_path} {why}: {problems:?}");
                assert_eq!(problems[0].0, key_path);
                let error = load(&config).expect_err("refused").to_string();
                assert!(error.contains(variable) && error.contains(why), "{key_path} {why}: {error}");
                assert!(!error.contains(key.as_str()), "key echoed: {error}");
                if why != &"bytes" {
                    assert!(error.contains("dashtam keys generate --kind"), "{error}");
                    let entry = if key_path == "keys.token_hash" { "the key " } else { "the key of entry 2 " };
                    assert!(error.contains(entry), "{error}");
                }
            }
        }
        assert!(!dir.path().join("keys").exists());
    }

    #[test]
    fn development_accepts_what_production_refuses() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config { data_dir: dir.path().to_path_buf(), ..Config::default() };
        config.keys.encryption = Some(SecretString::from(format!("e1:{}", STANDARD.encode([0_u8; 32]))));
        assert!(load(&config).is_ok(), "a placeholder key is fine for local development");
    }

    /// Every key-like string in the documentation is in `DOCUMENTED_EXAMPLE_KEYS`, so production refuses it,
    /// and every listed example is still printed in `docs/keys.md`.
    #[test]
    fn documented_example_keys_are_exactly_the_refused_ones() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut documents = vec![root.join("README.md")];
        for entry in std::fs::read_dir(root.join("docs")).expect("docs folder") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|extension| extension == "md") {
                documents.push(path);
            }
        }
        let listed: Vec<Vec<u8>> =
            DOCUMENTED_EXAMPLE_KEYS.iter().map(|key| decode_base64_key(key).expect("valid example")).collect();
        for document in &documents {
            let text = std::fs::read_to_string(document).expect("readable");
            let words = text.split(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=' | '-' | '_')));
            for word in words.filter(|word| word.len() >= 43) {
                if let Some(bytes) = decode_base64_key(word).filter(|bytes| bytes.len() >= 32) {
                    assert!(
                        listed.contains(&bytes),
                        "{}: {word} is not in DOCUMENTED_EXAMPLE_KEYS",
                        document.display()
                    );
                }
            }
        }
        let keys_doc = std::fs::read_to_string(root.join("docs/keys.md")).expect("docs/keys.md");
        for example in DOCUMENTED_EXAMPLE_KEYS {
            assert!(keys_doc.contains(example), "{example} is no longer in docs/keys.md; drop it from the list");
        }
    }

    #[test]
    fn generated_keys_fit_their_settings() {
        let today = date!(2025 - 01 - 31);
        let signing = generate(KeyKind::Signing, None, today).expect("generate");
        let entries = parse_keyring(&signing, SIGNING_KEY_LENGTH).expect("a keyring entry");
        assert_eq!((entries.len(), entries[0].kid.as_str()), (1, "k20250131"));
        assert_eq!(entries[0].key.expose_secret().len(), 32);

        let encryption = generate(KeyKind::Encryption, Some("e.2025-b"), today).expect("generate");
        assert!(encryption.expose_secret().starts_with("e.2025-b:"));
        assert_eq!(EncryptionKeyring::parse(&encryption).expect("an encryption keyring").active_kid(), "e.2025-b");

        let token_hash = generate(KeyKind::TokenHash, None, today).expect("generate");
        assert!(!token_hash.expose_secret().contains(':'));
        assert_eq!(STANDARD.decode(token_hash.expose_secret()).map(|key| key.len()), Ok(32));
        assert!(OpaqueTokens::from_base64(&token_hash).is_ok());

        let config =
            KeysConfig { signing: Some(signing), encryption: Some(encryption.clone()), token_hash: Some(token_hash) };
        assert!(production_key_problems(&config).is_empty());
        assert_ne!(
            generate(KeyKind::Encryption, Some("e.2025-b"), today).expect("generate").expose_secret(),
            encryption.expose_secret(),
            "fresh randomness every time"
        );

        assert!(generate(KeyKind::Signing, Some("bad kid"), today).is_err());
        assert!(generate(KeyKind::Signing, Some(""), today).is_err());
        assert!(generate(KeyKind::TokenHash, Some("k1"), today).is_err());
    }
}
