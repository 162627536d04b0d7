//! The `dashtam` binary as an operator uses it: configuration checks and refusals, migrations, and serving
//! until SIGTERM. Each test runs the real executable in a temporary directory with a clean environment.

mod support;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use support::{Server, dashtam, user_command};
use tempfile::TempDir;

fn run(command: &mut Command) -> Output {
    command.output().expect("run dashtam")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn config_check_prints_the_effective_configuration_with_secrets_redacted() {
    let dir = TempDir::new().expect("temp dir");
    let output = run(dashtam(dir.path())
        .args(["config", "check"])
        .env("DASHTAM_KEYS__SIGNING", "k1:c2lnbmluZy1zZWNyZXQtdmFsdWU=")
        .env("DASHTAM_DATABASE_URL", "postgres://dashtam:hunter2-password@db.internal:5432/dashtam")
        .env("DASHTAM_SCHWAB__CLIENT_ID", "client-id-visible")
        .env("DASHTAM_SCHWAB__CLIENT_SECRET", "schwab-client-secret")
        .env("DASHTAM_MAIL__TRANSPORT", "log"));
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    for secret in ["c2lnbmluZy1zZWNyZXQtdmFsdWU", "hunter2-password", "schwab-client-secret"] {
        assert!(!text.contains(secret), "secret {secret} leaked:\n{text}");
    }
    assert!(text.contains("signing = \"[redacted]\""), "{text}");
    assert!(text.contains("postgres://dashtam:[redacted]@db.internal:5432/dashtam"), "{text}");
    assert!(text.contains("client_id = \"client-id-visible\""), "{text}");
    assert!(text.contains("transport = \"log\""), "{text}");
    // Derived defaults are shown as the server will use them.
    assert!(text.contains("public_url = \"http://127.0.0.1:8000/\""), "{text}");
    assert!(text.contains("bind = \"127.0.0.1:8000\""), "{text}");
}

#[test]
fn invalid_configuration_stops_with_one_message_naming_each_setting() {
    let dir = TempDir::new().expect("temp dir");
    let output = run(dashtam(dir.path())
        .args(["config", "check"])
        .env("DASHTAM_MAIL__TRANSPORT", "pigeon")
        .env("DASHTAM_HTTP__CONNECT_TIMEOUT", "1m"));
    assert_eq!(output.status.code(), Some(2));
    let message = stderr(&output);
    assert!(message.contains("DASHTAM_MAIL__TRANSPORT (mail.transport)"), "{message}");
    assert!(stdout(&output).is_empty());

    let output = run(dashtam(dir.path()).args(["config", "check"]).env("DASHTAM_HTTP__CONNECT_TIMEOUT", "1m"));
    assert_eq!(output.status.code(), Some(2));
    let message = stderr(&output);
    assert!(message.contains("DASHTAM_HTTP__CONNECT_TIMEOUT (http.connect_timeout)"), "{message}");
    assert!(message.contains("DASHTAM_HTTP__TOTAL_TIMEOUT"), "{message}");

    let output = run(dashtam(dir.path()).args(["config", "check"]).env("DASHTAM_MAIL__TRANSPRT", "smtp"));
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("DASHTAM_MAIL__TRANSPRT (mail.transprt): unknown setting"), "{}", stderr(&output));
}

#[test]
fn production_refuses_every_development_default() {
    let dir = TempDir::new().expect("temp dir");
    let output = run(dashtam(dir.path())
        .args(["config", "check"])
        .env("DASHTAM_ENV", "production")
        .env("DASHTAM_SANDBOX__ENABLED", "true")
        .env("DASHTAM_APP_URL", "http://app.example.com"));
    assert_eq!(output.status.code(), Some(2));
    let message = stderr(&output);
    for setting in [
        "DASHTAM_MAIL__TRANSPORT",
        "DASHTAM_SANDBOX__ENABLED",
        "DASHTAM_KEYS__SIGNING",
        "DASHTAM_KEYS__ENCRYPTION",
        "DASHTAM_KEYS__TOKEN_HASH",
        "DASHTAM_PUBLIC_URL",
        "DASHTAM_APP_URL",
    ] {
        assert!(message.contains(setting), "{setting} not named:\n{message}");
    }
    // The server does not start either.
    let served = run(dashtam(dir.path()).env("DASHTAM_ENV", "production"));
    assert_eq!(served.status.code(), Some(2));
    assert!(!dir.path().join("data").exists(), "nothing is created before configuration is valid");
}

#[test]
fn production_refuses_unsafe_keys_naming_the_setting() {
    let dir = TempDir::new().expect("temp dir");
    let generate = |kind: &str| stdout(&run(dashtam(dir.path()).args(["keys", "generate", "--kind", kind])));
    let zeros = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="; // 32 zero bytes
    let output = run(dashtam(dir.path())
        .args(["config", "check"])
        .env("DASHTAM_ENV", "production")
        .env("DASHTAM_PUBLIC_URL", "https://dashtam.example.com")
        .env("DASHTAM_MAIL__TRANSPORT", "log")
        .env("DASHTAM_KEYS__SIGNING", generate("signing").trim())
        .env("DASHTAM_KEYS__ENCRYPTION", format!("{},old:{zeros}", generate("encryption").trim()))
        .env("DASHTAM_KEYS__TOKEN_HASH", generate("token-hash").trim()));
    assert_eq!(output.status.code(), Some(2));
    let message = stderr(&output);
    assert!(message.contains("DASHTAM_KEYS__ENCRYPTION (keys.encryption): the key of entry 2"), "{message}");
    assert!(!message.contains("DASHTAM_KEYS__SIGNING") && !message.contains(zeros), "{message}");

    // The same keys, all generated, start cleanly.
    let output = run(dashtam(dir.path())
        .args(["config", "check"])
        .env("DASHTAM_ENV", "production")
        .env("DASHTAM_PUBLIC_URL", "https://dashtam.example.com")
        .env("DASHTAM_MAIL__TRANSPORT", "log")
        .env("DASHTAM_KEYS__SIGNING", generate("signing").trim())
        .env("DASHTAM_KEYS__ENCRYPTION", generate("encryption").trim())
        .env("DASHTAM_KEYS__TOKEN_HASH", generate("token-hash").trim()));
    assert!(output.status.success(), "{}", stderr(&output));
}

#[test]
fn keys_generate_prints_one_key_in_the_format_of_its_setting() {
    use dashtam_adapters::access_tokens::SIGNING_KEY_LENGTH;
    use dashtam_adapters::encryption::EncryptionKeyring;
    use dashtam_adapters::keyring::parse_keyring;
    use secrecy::{ExposeSecret, SecretString};

    let dir = TempDir::new().expect("temp dir");
    // No configuration is read: a production environment without keys is exactly when keys are generated.
    let generate =
        |args: &[&str]| run(dashtam(dir.path()).args(["keys", "generate"]).args(args).env("DASHTAM_ENV", "production"));
    let one_line = |output: &Output| {
        assert!(output.status.success(), "{}", stderr(output));
        let text = stdout(output);
        assert_eq!(text.lines().count(), 1, "{text:?}");
        assert!(text.ends_with('\n'));
        SecretString::from(text.trim_end().to_owned())
    };

    let default = one_line(&generate(&[]));
    let entries = parse_keyring(&default, SIGNING_KEY_LENGTH).expect("a keyring entry");
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].key.expose_secret().len(), 32);
    let kid = &entries[0].kid;
    assert!(kid.len() == 9 && kid.starts_with("k") && kid[1..].bytes().all(|byte| byte.is_ascii_digit()), "{kid}");
    assert_eq!(EncryptionKeyring::parse(&default).expect("an encryption key").active_kid(), kid);
    assert_ne!(one_line(&generate(&[])).expose_secret(), default.expose_secret(), "fresh randomness");

    let signing = one_line(&generate(&["--kind", "signing", "--kid", "sig-2"]));
    let entries = parse_keyring(&signing, SIGNING_KEY_LENGTH).expect("a keyring entry");
    assert_eq!((entries[0].kid.as_str(), entries[0].key.expose_secret().len()), ("sig-2", 32));

    let token_hash = one_line(&generate(&["--kind", "token-hash"]));
    let decoded = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, token_hash.expose_secret());
    assert_eq!(decoded.map(|key| key.len()), Ok(32));

    for bad in [&["--kid", "no spaces"][..], &["--kind", "token-hash", "--kid", "k1"], &["--kind", "rsa"]] {
        let output = generate(bad);
        assert!(!output.status.success(), "{bad:?}");
        assert!(stdout(&output).is_empty(), "{bad:?}: {}", stdout(&output));
    }
}

#[test]
fn a_toml_file_is_read_and_the_environment_overrides_it() {
    let dir = TempDir::new().expect("temp dir");
    let file = dir.path().join("dashtam.toml");
    std::fs::write(&file, "bind = \"127.0.0.1:9100\"\n[mail]\ntransport = \"log\"\n[server]\njson_body_limit = 4096\n")
        .expect("write config");
    let output = run(dashtam(dir.path())
        .args(["--config", "dashtam.toml", "config", "check"])
        .env("DASHTAM_BIND", "127.0.0.1:9200"));
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.contains("bind = \"127.0.0.1:9200\""), "environment wins: {text}");
    assert!(text.contains("transport = \"log\"") && text.contains("json_body_limit = 4096"), "{text}");

    let via_env = run(dashtam(dir.path()).args(["config", "check"]).env("DASHTAM_CONFIG", &file));
    assert!(stdout(&via_env).contains("bind = \"127.0.0.1:9100\""), "{}", stderr(&via_env));

    std::fs::write(&file, "[mail]\ntransport = \"log\"\nunknown_key = 1\n").expect("write config");
    let refused = run(dashtam(dir.path()).args(["--config", "dashtam.toml", "config", "check"]));
    assert_eq!(refused.status.code(), Some(2));
    assert!(stderr(&refused).contains("mail.unknown_key"), "{}", stderr(&refused));

    let missing = run(dashtam(dir.path()).args(["--config", "nope.toml", "config", "check"]));
    assert_eq!(missing.status.code(), Some(2));
    assert!(stderr(&missing).contains("nope.toml"), "{}", stderr(&missing));
}

#[test]
fn secrets_can_come_from_files() {
    let dir = TempDir::new().expect("temp dir");
    let secret = dir.path().join("token_hash");
    std::fs::write(&secret, "file-held-secret-value\n").expect("write secret");
    let output = run(dashtam(dir.path()).args(["config", "check"]).env("DASHTAM_KEYS__TOKEN_HASH_FILE", &secret));
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.contains("token_hash = \"[redacted]\"") && !text.contains("file-held-secret-value"), "{text}");

    let both = run(dashtam(dir.path())
        .args(["config", "check"])
        .env("DASHTAM_KEYS__TOKEN_HASH_FILE", &secret)
        .env("DASHTAM_KEYS__TOKEN_HASH", "inline"));
    assert_eq!(both.status.code(), Some(2));
    assert!(stderr(&both).contains("DASHTAM_KEYS__TOKEN_HASH_FILE"), "{}", stderr(&both));

    let unreadable =
        run(dashtam(dir.path()).args(["config", "check"]).env("DASHTAM_KEYS__SIGNING_FILE", "/no/such/file"));
    assert_eq!(unreadable.status.code(), Some(2));
    assert!(
        stderr(&unreadable).contains("DASHTAM_KEYS__SIGNING_FILE: cannot read /no/such/file"),
        "{}",
        stderr(&unreadable)
    );
}

#[test]
fn otel_settings_are_checked_at_start_up() {
    let dir = TempDir::new().expect("temp dir");
    for (endpoint, problem) in [
        ("not a url", "DASHTAM_OTEL__ENDPOINT (otel.endpoint): "),
        ("ftp://collector:4318", "DASHTAM_OTEL__ENDPOINT (otel.endpoint): must be an http:// or https:// URL"),
    ] {
        let output = run(dashtam(dir.path()).args(["config", "check"]).env("DASHTAM_OTEL__ENDPOINT", endpoint));
        assert_eq!(output.status.code(), Some(2), "{endpoint}");
        assert!(stderr(&output).contains(problem), "{endpoint}: {}", stderr(&output));
    }
    let output = run(dashtam(dir.path()).args(["config", "check"]).env("DASHTAM_OTEL__SAMPLE_RATIO", "2"));
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("DASHTAM_OTEL__SAMPLE_RATIO (otel.sample_ratio)"), "{}", stderr(&output));
}

/// Asked to export traces it cannot, a build without the feature refuses to start rather than run untraced.
#[cfg(not(feature = "otel"))]
#[test]
fn a_build_without_the_otel_feature_refuses_otel_enabled() {
    let dir = TempDir::new().expect("temp dir");
    let served = run(dashtam(dir.path()).env("DASHTAM_OTEL__ENABLED", "true"));
    assert_eq!(served.status.code(), Some(2));
    let message = stderr(&served);
    assert!(
        message
            .contains("DASHTAM_OTEL__ENABLED (otel.enabled): this dashtam was built without the `otel` cargo feature"),
        "{message}"
    );
    assert!(!dir.path().join("data").exists(), "nothing is created before configuration is valid");
}

fn migrate(dir: &Path, database_url: &str, args: &[&str]) -> String {
    let output = run(dashtam(dir).arg("migrate").args(args).env("DASHTAM_DATABASE_URL", database_url));
    assert!(output.status.success(), "migrate {args:?}: {}", stderr(&output));
    stdout(&output)
}

fn migrations_round_trip(database_url: &str) {
    let dir = TempDir::new().expect("temp dir");
    let pending = migrate(dir.path(), database_url, &["status"]);
    assert!(pending.lines().count() >= 1 && pending.lines().all(|line| line.contains("pending")), "{pending}");
    let applied = migrate(dir.path(), database_url, &["up"]);
    assert!(applied.starts_with("applied "), "{applied}");
    assert!(migrate(dir.path(), database_url, &["status"]).lines().all(|line| line.contains(" applied ")));
    assert_eq!(migrate(dir.path(), database_url, &["up"]).trim(), "applied 0 migration(s)");
    let reverted = migrate(dir.path(), database_url, &["down", "--steps", "1"]);
    assert!(reverted.starts_with("reverted 1 migration(s)"), "{reverted}");
    let status = migrate(dir.path(), database_url, &["status"]);
    assert!(status.lines().last().is_some_and(|line| line.contains("pending")), "{status}");
    migrate(dir.path(), database_url, &["up"]);
    assert!(migrate(dir.path(), database_url, &["status"]).lines().all(|line| line.contains(" applied ")));
}

#[test]
fn migrations_round_trip_on_sqlite() {
    let dir = TempDir::new().expect("temp dir");
    migrations_round_trip(&format!("sqlite://{}", dir.path().join("round-trip.db").display()));
}

#[tokio::test]
async fn migrations_round_trip_on_postgres() {
    let Some(database) = dashtam_testkit_free::postgres_schema_url().await else {
        return;
    };
    tokio::task::spawn_blocking(move || migrations_round_trip(&database)).await.expect("round trip");
}

/// `GET path` on `server`: the status and the body.
fn get(server: &Server, path: &str) -> (u16, String) {
    let response = std::process::Command::new("curl")
        .args(["-s", "-o", "-", "-w", "\n%{http_code}", &format!("http://{}{path}", server.address)])
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&response.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or_default();
    (status.parse().unwrap_or(0), body.to_owned())
}

#[test]
fn serves_sqlite_under_data_by_default_and_stops_cleanly_on_sigterm() {
    let dir = TempDir::new().expect("temp dir");
    let server = Server::start(&mut dashtam(dir.path()));
    let (status, body) = get(&server, "/health");
    assert_eq!((status, body.contains("\"ok\"")), (200, true), "{body}");
    let (status, body) = get(&server, "/ready");
    assert_eq!(status, 200, "{body}");
    assert!(dir.path().join("data/dashtam.db").is_file(), "SQLite database created under ./data");
    let log = server.log();
    let exit = server.terminate();
    assert!(exit.success(), "clean exit after SIGTERM: {exit:?}");
    let lines = log.lines();
    assert!(lines.iter().any(|line| line.contains("backend=\"sqlite\"")), "start-up names the backend: {lines:#?}");
    assert!(lines.last().is_some_and(|line| line.ends_with("stopped")), "{lines:#?}");
}

#[tokio::test]
async fn two_instances_starting_together_on_one_postgres_both_come_up() {
    let Some(database) = dashtam_testkit_free::postgres_schema_url().await else {
        return;
    };
    let servers = tokio::task::spawn_blocking(move || {
        let dirs: Vec<TempDir> = (0..2).map(|_| TempDir::new().expect("temp dir")).collect();
        let handles: Vec<_> = dirs
            .iter()
            .map(|dir| {
                let mut command = dashtam(dir.path());
                command.env("DASHTAM_DATABASE_URL", &database);
                std::thread::spawn(move || Server::start(&mut command))
            })
            .collect();
        let servers: Vec<Server> = handles.into_iter().map(|handle| handle.join().expect("started")).collect();
        for server in &servers {
            assert_eq!(get(server, "/ready").0, 200);
        }
        for server in servers {
            assert!(server.terminate().success());
        }
        dirs
    });
    servers.await.expect("both instances served");
}

/// Fresh PostgreSQL schemas for the binary tests, without depending on the test kit (which depends on
/// this crate).
mod dashtam_testkit_free {
    /// A URL selecting a new empty schema in `DASHTAM_TEST_DATABASE_URL`, or `None` when unset.
    pub async fn postgres_schema_url() -> Option<String> {
        let base = std::env::var("DASHTAM_TEST_DATABASE_URL").ok().filter(|url| !url.is_empty())?;
        let schema = format!("cli_{}", uuid::Uuid::now_v7().simple());
        let pool = sqlx::PgPool::connect(&base)
            .await
            .unwrap_or_else(|error| panic!("DASHTAM_TEST_DATABASE_URL is set but unreachable: {error}"));
        sqlx::query(&format!("CREATE SCHEMA {schema}")).execute(&pool).await.expect("create schema");
        pool.close().await;
        let mut url = url::Url::parse(&base).expect("URL");
        url.query_pairs_mut().append_pair("options", &format!("-c search_path={schema}"));
        Some(url.to_string())
    }
}

#[test]
fn operators_create_promote_demote_and_disable_accounts() {
    let dir = TempDir::new().expect("temp dir");
    let create = ["create", "--email", "Admin@Example.com", "--name", "Grace", "--admin"];
    let created = user_command(dir.path(), &create, "a sufficiently long passphrase\n");
    assert!(created.status.success(), "{}", stderr(&created));
    assert!(stdout(&created).starts_with("created admin@example.com (admin)"), "{}", stdout(&created));

    let again = user_command(dir.path(), &create, "a sufficiently long passphrase\n");
    assert!(!again.status.success());
    assert!(stderr(&again).contains("already exists"), "{}", stderr(&again));

    let weak = user_command(dir.path(), &["create", "--email", "weak@example.com", "--name", "W"], "short\n");
    assert!(!weak.status.success());
    assert!(stderr(&weak).contains("weak password"), "{}", stderr(&weak));

    let demoted = user_command(dir.path(), &["demote", "admin@example.com"], "");
    assert_eq!(stdout(&demoted).trim(), "admin@example.com is now a user", "{}", stderr(&demoted));
    let promoted = user_command(dir.path(), &["promote", "ADMIN@example.com"], "");
    assert_eq!(stdout(&promoted).trim(), "admin@example.com is now an admin", "{}", stderr(&promoted));

    // The account logs in, then disabling it ends the session at once.
    let server = Server::start(&mut dashtam(dir.path()));
    let login = Command::new("curl")
        .args(["-s", "-X", "POST", "-H", "content-type: application/json", "-d"])
        .arg(r#"{"email":"admin@example.com","password":"a sufficiently long passphrase"}"#)
        .arg(format!("http://{}/api/v1/auth/login", server.address))
        .output()
        .expect("curl");
    let body: serde_json::Value = serde_json::from_slice(&login.stdout).expect("login JSON");
    assert_eq!(body["user"]["role"], "admin", "{body}");
    let access = body["access_token"].as_str().expect("access token").to_owned();

    let disabled = user_command(dir.path(), &["disable", "admin@example.com"], "");
    assert_eq!(stdout(&disabled).trim(), "admin@example.com is disabled; 1 session(s) ended", "{}", stderr(&disabled));
    let me = Command::new("curl")
        .args(["-s", "-H", &format!("authorization: Bearer {access}")])
        .arg(format!("http://{}/api/v1/auth/me", server.address))
        .output()
        .expect("curl");
    let body: serde_json::Value = serde_json::from_slice(&me.stdout).expect("problem JSON");
    assert_eq!(body["code"], "session_revoked", "{body}");
    assert!(server.terminate().success());

    let missing = user_command(dir.path(), &["promote", "nobody@example.com"], "");
    assert!(!missing.status.success());
    assert!(stderr(&missing).contains("no account"), "{}", stderr(&missing));

    // Every command above was audited as the operator's, and the chain verifies.
    let verified = run(dashtam(dir.path()).args(["audit", "verify"]));
    assert!(verified.status.success(), "{}", stderr(&verified));
    assert!(
        stdout(&verified).starts_with("audit log verified: 5 entries\n  chain 1: 5 entries, #1 to #5"),
        "{}",
        stdout(&verified)
    );
}

#[tokio::test]
async fn audit_verify_fails_naming_the_first_tampered_entry() {
    use sqlx::Connection;
    let dir = TempDir::new().expect("temp dir");
    let create = ["create", "--email", "ops@example.com", "--name", "Ops"];
    assert!(user_command(dir.path(), &create, "a sufficiently long passphrase\n").status.success());
    assert!(user_command(dir.path(), &["promote", "ops@example.com"], "").status.success());
    assert!(user_command(dir.path(), &["demote", "ops@example.com"], "").status.success());
    assert!(run(dashtam(dir.path()).args(["audit", "verify"])).status.success());

    let url = format!("sqlite://{}", dir.path().join("data/dashtam.db").display());
    let mut connection = sqlx::SqliteConnection::connect(&url).await.expect("open the database");
    sqlx::raw_sql(
        "DROP TRIGGER audit_log_no_update; \
         UPDATE audit_log SET details = '{\"from\":\"user\",\"to\":\"user\"}' WHERE seq = 2;",
    )
    .execute(&mut connection)
    .await
    .expect("tamper with entry 2");
    connection.close().await.expect("close");

    let output = run(dashtam(dir.path()).args(["audit", "verify"]));
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(message.contains("entry 2 does not match its hash"), "{message}");
}

#[test]
fn operators_rotate_one_users_or_everyones_tokens() {
    let dir = TempDir::new().expect("temp dir");
    let create = ["create", "--email", "ops@example.com", "--name", "Ops"];
    assert!(user_command(dir.path(), &create, "a sufficiently long passphrase\n").status.success());

    let rotated = run(dashtam(dir.path()).args([
        "tokens",
        "rotate",
        "--user",
        "ops@example.com",
        "--reason",
        "laptop stolen at the airport",
    ]));
    assert!(rotated.status.success(), "{}", stderr(&rotated));
    assert_eq!(stdout(&rotated).trim(), "ops@example.com: token version 1 -> 2; 0 session(s) ended");

    let global = [
        "tokens",
        "rotate",
        "--global",
        "--reason",
        "signing key may have leaked from backups",
        "--grace-seconds",
        "30",
    ];
    let rotated = run(dashtam(dir.path()).args(global));
    assert!(rotated.status.success(), "{}", stderr(&rotated));
    assert!(
        stdout(&rotated).starts_with("global token version 1 -> 2; 0 session(s) of 0 user(s) retired in 30 s"),
        "{}",
        stdout(&rotated)
    );

    for bad in [
        vec!["tokens", "rotate", "--global", "--reason", "too short"],
        vec!["tokens", "rotate", "--user", "nobody@example.com", "--reason", "who is this person"],
        vec!["tokens", "rotate", "--reason", "neither user nor global given"],
        vec!["tokens", "rotate", "--global", "--reason", "a long enough reason for the log", "--grace-seconds", "3601"],
    ] {
        assert!(!run(dashtam(dir.path()).args(&bad)).status.success(), "{bad:?}");
    }
    let verified = run(dashtam(dir.path()).args(["audit", "verify"]));
    assert!(stdout(&verified).starts_with("audit log verified: 3 entries"), "{}", stdout(&verified));
}

#[tokio::test]
async fn keys_rotate_reencrypts_stored_credentials_and_fails_naming_unreadable_ones() {
    use dashtam_adapters::encryption::EncryptionKeyring;
    use dashtam_domain::Email;
    use dashtam_domain::providers::service::credentials_location;
    use dashtam_domain::providers::{Alias, CredentialKind, NewProvider, ProviderId, ProviderKey, StoredCredentials};
    use secrecy::SecretString;

    let dir = TempDir::new().expect("temp dir");
    let create = ["create", "--email", "ops@example.com", "--name", "Ops"];
    assert!(user_command(dir.path(), &create, "a sufficiently long passphrase\n").status.success());
    let empty = run(dashtam(dir.path()).args(["keys", "rotate"]));
    assert!(empty.status.success(), "{}", stderr(&empty));
    let summary = "examined 0, re-encrypted 0, already current 0, changed meanwhile 0, failed 0";
    assert_eq!(stdout(&empty).trim(), format!("active key dev1: {summary}"));

    // Two connections: one under the generated development key, one under a key the keyring never had.
    let development_key = std::fs::read_to_string(dir.path().join("data/keys/encryption.key")).expect("dev key");
    let development_key = development_key.trim().to_owned();
    let under = |keyring: String, id: ProviderId| {
        let keyring = EncryptionKeyring::parse(&SecretString::from(keyring)).expect("keyring");
        let row_id = id.to_string();
        let plaintext = br#"{"kind":"api_key","api_key":"k","api_secret":"s"}"#;
        keyring.encrypt(plaintext, &credentials_location(&row_id)).expect("encrypt")
    };
    let url = format!("sqlite://{}", dir.path().join("data/dashtam.db").display());
    let database = dashtam_store::Database::connect(&url, &dashtam_store::PoolOptions::default()).await.expect("open");
    let store = database.store();
    let email = Email::parse("ops@example.com").expect("email");
    let user = store.user_by_email(&email).await.expect("read").expect("user");
    let now = time::OffsetDateTime::now_utc();
    let (readable, unreadable) = (ProviderId::generate(), ProviderId::generate());
    let lost_key = "lost:ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8".to_owned();
    let mut tx = store.begin().await.expect("begin");
    for (id, alias, keyring) in [(readable, "One", development_key.clone()), (unreadable, "Two", lost_key)] {
        let provider_key = ProviderKey::parse("alpaca").expect("key");
        let alias = Alias::parse(alias).expect("alias");
        tx.insert_provider(&NewProvider { id, user_id: user.id, provider_key, alias, created_at: now })
            .await
            .expect("insert");
        let secret = under(keyring, id);
        let credentials = StoredCredentials {
            provider_id: id,
            kind: CredentialKind::ApiKey,
            secret,
            access_expires_at: None,
            has_refresh_token: false,
            scope: None,
            connected_at: now,
            updated_at: now,
        };
        tx.put_credentials(&credentials).await.expect("store");
    }
    tx.commit().await.expect("commit");

    let new_key = "new:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
    let keyring = format!("{new_key},{development_key}");
    let rotate = || run(dashtam(dir.path()).args(["keys", "rotate"]).env("DASHTAM_KEYS__ENCRYPTION", &keyring));
    let output = rotate();
    assert!(!output.status.success(), "a credential that does not decrypt fails the command");
    let text = stdout(&output);
    let summary = "examined 2, re-encrypted 1, already current 0, changed meanwhile 0, failed 1";
    assert!(text.starts_with(&format!("active key new: {summary}\n")), "{text}");
    assert!(text.contains(&format!("failed: provider {unreadable}: ")) && text.contains("\"lost\""), "{text}");
    assert!(stderr(&output).contains("1 stored credential(s) do not decrypt"), "{}", stderr(&output));

    // The connection is linked again (here: deleted); a second run has nothing left to do.
    let mut tx = store.begin().await.expect("begin");
    assert!(tx.delete_provider(user.id, unreadable).await.expect("delete"));
    tx.commit().await.expect("commit");
    database.store().close().await;
    let output = rotate();
    assert!(output.status.success(), "{}", stderr(&output));
    let summary = "examined 1, re-encrypted 0, already current 1, changed meanwhile 0, failed 0";
    assert_eq!(stdout(&output).trim(), format!("active key new: {summary}"));
    assert!(run(dashtam(dir.path()).args(["audit", "verify"])).status.success());
}

/// An OFX bank statement with `count` transactions.
fn large_statement(count: usize) -> String {
    let mut text = String::from(
        "OFXHEADER:100\nDATA:OFXSGML\nVERSION:102\nSECURITY:NONE\nENCODING:USASCII\nCHARSET:1252\nCOMPRESSION:NONE\n\
         OLDFILEUID:NONE\nNEWFILEUID:NONE\n\n<OFX><BANKMSGSRSV1><STMTTRNRS><TRNUID>1<STMTRS><CURDEF>USD\n\
         <BANKACCTFROM><BANKID>1<ACCTID>CRASH-1<ACCTTYPE>CHECKING</BANKACCTFROM><BANKTRANLIST>\n",
    );
    for i in 0..count {
        text.push_str(&format!(
            "<STMTTRN><TRNTYPE>DEBIT<DTPOSTED>2025{:02}{:02}<TRNAMT>-{}.{:02}<FITID>F{i}<NAME>Shop {}</STMTTRN>\n",
            1 + i % 12,
            1 + i % 28,
            i % 500,
            i % 100,
            i % 97
        ));
    }
    text.push_str("</BANKTRANLIST><LEDGERBAL><BALAMT>100.00<DTASOF>20251231</LEDGERBAL></STMTRS></STMTTRNRS></BANKMSGSRSV1></OFX>\n");
    text
}

#[tokio::test]
async fn an_import_killed_mid_way_leaves_nothing_or_everything() {
    use sqlx::Connection;
    const LINES: usize = 40_000;
    let dir = TempDir::new().expect("temp dir");
    let create = ["create", "--email", "ops@example.com", "--name", "Ops"];
    assert!(user_command(dir.path(), &create, "a sufficiently long passphrase\n").status.success());
    let file = dir.path().join("large.ofx");
    std::fs::write(&file, large_statement(LINES)).expect("write the statement");
    let import = || {
        let mut command = dashtam(dir.path());
        command.env("DASHTAM_IMPORTS__MAX_FILE_SIZE", "67108864").arg("import").arg(&file);
        command.args(["--user", "ops@example.com"]).stdout(Stdio::null()).stderr(Stdio::null());
        command
    };
    let url = format!("sqlite://{}", dir.path().join("data/dashtam.db").display());
    let counts = || async {
        let mut connection = sqlx::SqliteConnection::connect(&url).await.expect("open the database");
        let transactions: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM transactions").fetch_one(&mut connection).await.expect("count");
        let imports: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM imports").fetch_one(&mut connection).await.expect("count");
        connection.close().await.expect("close");
        (transactions, imports)
    };
    // Killed at several moments (parsing, writing, committing): the file is in completely or not at all.
    for delay_ms in [200, 600, 1200, 2500] {
        let mut child = import().spawn().expect("spawn an import");
        std::thread::sleep(Duration::from_millis(delay_ms));
        child.kill().expect("SIGKILL the import");
        child.wait().expect("reap");
        let (transactions, imports) = counts().await;
        assert!(
            (transactions, imports) == (0, 0) || (transactions == LINES as i64 && imports >= 1),
            "killed after {delay_ms} ms: {transactions} transactions, {imports} import records"
        );
    }
    // Run to the end it completes, whatever the crashes left behind, and the audit chain is intact.
    assert!(import().status().expect("import").success());
    assert_eq!(counts().await.0, LINES as i64);
    assert!(run(dashtam(dir.path()).args(["audit", "verify"])).status.success());
}
