//! Key material at start-up: configured keys are parsed and checked; in development, missing keys are
//! generated once into `<data_dir>/keys/` (mode 0600) and reused, so a restart keeps sessions valid.
//! Production refuses to start without configured keys (see `Config::validate`).

use std::io::Write;
use std::path::Path;

use anyhow::{Context, bail};
use dashtam_adapters::access_tokens::SIGNING_KEY_LENGTH;
use dashtam_adapters::keyring::{KeyringEntry, parse_keyring};
use dashtam_adapters::opaque_tokens::{OpaqueTokens, generate_secret_base64};
use secrecy::{ExposeSecret, SecretString};

use crate::config::{Config, Environment};

/// Bytes of a generated key.
const GENERATED_KEY_BYTES: usize = 32;

/// The keys the server runs with.
#[derive(Debug)]
pub struct Keys {
    /// Access-token signing keyring; the first entry signs.
    pub signing: Vec<KeyringEntry>,
    /// Keyed hashing of refresh and one-time tokens.
    pub opaque_tokens: OpaqueTokens,
}

/// Loads the configured keys, generating missing ones in development.
pub fn load(config: &Config) -> anyhow::Result<Keys> {
    let keys_dir = config.data_dir.join("keys");
    let signing = match &config.keys.signing {
        Some(keyring) => keyring.clone(),
        None => development_key(config, &keys_dir, "signing", |secret| format!("dev1:{secret}"))?,
    };
    let signing = parse_keyring(&signing, SIGNING_KEY_LENGTH)
        .map_err(|error| anyhow::anyhow!("DASHTAM_KEYS__SIGNING (keys.signing): {error}"))?;
    let token_hash = match &config.keys.token_hash {
        Some(secret) => secret.clone(),
        None => development_key(config, &keys_dir, "token_hash", str::to_owned)?,
    };
    let opaque_tokens = OpaqueTokens::from_base64(&token_hash)
        .map_err(|error| anyhow::anyhow!("DASHTAM_KEYS__TOKEN_HASH (keys.token_hash): {error}"))?;
    Ok(Keys { signing, opaque_tokens })
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
    use super::*;

    #[test]
    fn development_keys_are_generated_once_with_private_permissions_and_reused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = Config { data_dir: dir.path().to_path_buf(), ..Config::default() };
        let first = load(&config).expect("generate");
        let signing_file = dir.path().join("keys/signing.key");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&signing_file).expect("exists").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let second = load(&config).expect("reuse");
        assert_eq!(first.signing[0].kid, second.signing[0].kid);
        assert_eq!(first.signing[0].key.expose_secret(), second.signing[0].key.expose_secret());
        assert!(std::fs::read_to_string(dir.path().join("keys/token_hash.key")).is_ok());
    }

    #[test]
    fn configured_keys_are_validated_and_named_in_errors() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config { data_dir: dir.path().to_path_buf(), ..Config::default() };
        config.keys.signing = Some(SecretString::from("k1:dG9vLXNob3J0".to_owned()));
        let error = load(&config).expect_err("short key").to_string();
        assert!(error.contains("DASHTAM_KEYS__SIGNING") && !error.contains("dG9vLXNob3J0"), "{error}");
        assert!(!dir.path().join("keys").exists(), "nothing generated for configured keys");
    }
}
