//! Configuration (API.md §8): built-in defaults, then an optional TOML file, then `DASHTAM_…` environment
//! variables (`__` separates a section from its key), then `<NAME>_FILE` for secrets. After loading, every
//! rule — including the ones that span settings and the production refusals — is checked, and all broken
//! rules are reported at once, each naming its setting.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Format, Toml};
use ipnet::IpNet;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use url::Url;

pub use crate::rate_limit_config::{RateLimitConfig, RuleConfig};

/// The prefix of every environment variable read here.
const ENV_PREFIX: &str = "DASHTAM_";

/// Top-level names environment variables may set. Other `DASHTAM_*` variables (the test suite's
/// `DASHTAM_TEST_DATABASE_URL`, `DASHTAM_CONFIG` itself) are not settings and are ignored, while a typo
/// inside a known section is still refused.
const TOP_LEVEL_KEYS: &[&str] = &[
    "env",
    "bind",
    "public_url",
    "app_url",
    "data_dir",
    "database_url",
    "redis_url",
    "redis_timeout",
    "trusted_proxies",
    "database",
    "server",
    "auth",
    "audit",
    "geoip",
    "log",
    "mail",
    "rate_limit",
    "keys",
    "sandbox",
    "schwab",
    "alpaca",
    "providers",
    "sync",
    "imports",
    "http",
    "otel",
];

/// Settings that may be given as a file path in `<NAME>_FILE` (container secrets, systemd credentials).
const SECRET_KEYS: &[&str] = &[
    "database_url",
    "redis_url",
    "mail.smtp_url",
    "keys.signing",
    "keys.encryption",
    "keys.token_hash",
    "schwab.client_secret",
];

/// Development or production. Production refuses every development convenience.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    /// The default: generated keys, file mail and the sandbox are allowed.
    #[default]
    Development,
    /// A real deployment.
    Production,
}

/// The whole configuration.
#[derive(Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `DASHTAM_ENV`.
    pub env: Environment,
    /// `DASHTAM_BIND`: the listen address.
    pub bind: SocketAddr,
    /// `DASHTAM_PUBLIC_URL`: this server's base URL; defaults to `http://<bind>`.
    pub public_url: Option<Url>,
    /// `DASHTAM_APP_URL`: the front end's base URL for email links; defaults to the public URL.
    pub app_url: Option<Url>,
    /// `DASHTAM_DATA_DIR`: SQLite database, mail folder and development keys.
    pub data_dir: PathBuf,
    /// `DASHTAM_DATABASE_URL`: `sqlite://…` or `postgres://…`; defaults to `sqlite://<data_dir>/dashtam.db`.
    #[serde(serialize_with = "serialize_secret_url")]
    pub database_url: Option<SecretString>,
    /// `DASHTAM_REDIS_URL`: unset keeps shared state in-process (one instance).
    #[serde(serialize_with = "serialize_secret_url")]
    pub redis_url: Option<SecretString>,
    /// `DASHTAM_REDIS_TIMEOUT`: bound on every Redis connection attempt and command.
    #[serde(with = "humantime_serde")]
    pub redis_timeout: Duration,
    /// `DASHTAM_TRUSTED_PROXIES`: CIDRs whose `X-Forwarded-For` is believed.
    #[serde(deserialize_with = "deserialize_cidr_list")]
    pub trusted_proxies: Vec<IpNet>,
    /// `[auth]`.
    pub auth: AuthConfig,
    /// `[audit]`.
    pub audit: AuditConfig,
    /// `[geoip]`.
    pub geoip: GeoipConfig,
    /// `[database]`.
    pub database: DatabaseConfig,
    /// `[server]`.
    pub server: ServerConfig,
    /// `[log]`.
    pub log: LogConfig,
    /// `[mail]`.
    pub mail: MailConfig,
    /// `[rate_limit]`.
    pub rate_limit: RateLimitConfig,
    /// `[keys]`.
    pub keys: KeysConfig,
    /// `[sandbox]`.
    pub sandbox: SandboxConfig,
    /// `[schwab]`.
    pub schwab: SchwabConfig,
    /// `[alpaca]`.
    pub alpaca: AlpacaConfig,
    /// `[providers]`.
    pub providers: ProvidersConfig,
    /// `[sync]`: the sync scheduler.
    pub sync: SyncConfig,
    /// `[imports]`: statement uploads.
    pub imports: ImportsConfig,
    /// `[http]`: outbound provider calls.
    pub http: HttpClientConfig,
    /// `[otel]`: OpenTelemetry trace export.
    pub otel: OtelConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            env: Environment::Development,
            bind: SocketAddr::from(([127, 0, 0, 1], 8000)),
            public_url: None,
            app_url: None,
            data_dir: PathBuf::from("./data"),
            database_url: None,
            redis_url: None,
            redis_timeout: Duration::from_secs(1),
            trusted_proxies: Vec::new(),
            auth: AuthConfig::default(),
            audit: AuditConfig::default(),
            geoip: GeoipConfig::default(),
            database: DatabaseConfig::default(),
            server: ServerConfig::default(),
            log: LogConfig::default(),
            mail: MailConfig::default(),
            rate_limit: RateLimitConfig::default(),
            keys: KeysConfig::default(),
            sandbox: SandboxConfig::default(),
            schwab: SchwabConfig::default(),
            alpaca: AlpacaConfig::default(),
            providers: ProvidersConfig::default(),
            sync: SyncConfig::default(),
            imports: ImportsConfig::default(),
            http: HttpClientConfig::default(),
            otel: OtelConfig::default(),
        }
    }
}

/// `[geoip]`: the offline location database sessions are placed with.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct GeoipConfig {
    /// `DASHTAM_GEOIP__DATABASE`: a MaxMind DB file (DB-IP Lite, GeoLite2 City or Country); unset → locations
    /// are `null`.
    pub database: Option<PathBuf>,
}

/// `[audit]`: how long entries are kept and how often the chain head is logged.
#[derive(Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// `DASHTAM_AUDIT__RETENTION`: entries older than this are purged (the chain stays verifiable).
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
    /// `DASHTAM_AUDIT__ANCHOR_INTERVAL`: how often the chain head is written to the log, so an outside log
    /// store holds anchors the database alone cannot rewrite.
    #[serde(with = "humantime_serde")]
    pub anchor_interval: Duration,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self { retention: Duration::from_secs(400 * 24 * 3600), anchor_interval: Duration::from_secs(600) }
    }
}

/// `[auth]`: token lifetimes, lockout, password policy and hashing cost.
#[derive(Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// `DASHTAM_AUTH__ACCESS_TOKEN_LIFETIME`.
    #[serde(with = "humantime_serde")]
    pub access_token_lifetime: Duration,
    /// `DASHTAM_AUTH__SESSION_LIFETIME`: the latest a session lives after login.
    #[serde(with = "humantime_serde")]
    pub session_lifetime: Duration,
    /// `DASHTAM_AUTH__REFRESH_RETRY_GRACE`: how long the previous refresh token counts as a client retry.
    #[serde(with = "humantime_serde")]
    pub refresh_retry_grace: Duration,
    /// `DASHTAM_AUTH__LOCKOUT_THRESHOLD`: consecutive failed logins that lock an account.
    pub lockout_threshold: i32,
    /// `DASHTAM_AUTH__LOCKOUT_DURATION`.
    #[serde(with = "humantime_serde")]
    pub lockout_duration: Duration,
    /// `[auth.password_policy]`: lengths and optional composition rules.
    pub password_policy: dashtam_domain::password::PasswordPolicy,
    /// `DASHTAM_AUTH__ARGON2_MEMORY_KIB`.
    pub argon2_memory_kib: u32,
    /// `DASHTAM_AUTH__ARGON2_ITERATIONS`.
    pub argon2_iterations: u32,
    /// `DASHTAM_AUTH__ARGON2_PARALLELISM`.
    pub argon2_parallelism: u32,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            access_token_lifetime: Duration::from_secs(15 * 60),
            session_lifetime: Duration::from_secs(30 * 24 * 3600),
            refresh_retry_grace: Duration::from_secs(10),
            lockout_threshold: 10,
            lockout_duration: Duration::from_secs(3600),
            password_policy: dashtam_domain::password::PasswordPolicy::default(),
            // OWASP's recommended Argon2id baseline.
            argon2_memory_kib: 19_456,
            argon2_iterations: 2,
            argon2_parallelism: 1,
        }
    }
}

/// `[database]`: connection pool.
#[derive(Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `DASHTAM_DATABASE__MAX_CONNECTIONS`.
    pub max_connections: u32,
    /// `DASHTAM_DATABASE__ACQUIRE_TIMEOUT`: a request waiting longer for a connection fails with 503.
    #[serde(with = "humantime_serde")]
    pub acquire_timeout: Duration,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self { max_connections: 10, acquire_timeout: Duration::from_secs(5) }
    }
}

/// `[server]`: the HTTP server.
#[derive(Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// `DASHTAM_SERVER__REQUEST_TIMEOUT`: requests running longer get `503 request_timeout`.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// `DASHTAM_SERVER__SHUTDOWN_TIMEOUT`: how long in-flight requests may finish after SIGTERM.
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,
    /// `DASHTAM_SERVER__READINESS_TIMEOUT`: how long `/ready` waits for each dependency.
    #[serde(with = "humantime_serde")]
    pub readiness_timeout: Duration,
    /// `DASHTAM_SERVER__JSON_BODY_LIMIT`: the largest JSON body accepted, in bytes.
    pub json_body_limit: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(30),
            shutdown_timeout: Duration::from_secs(30),
            readiness_timeout: Duration::from_secs(2),
            json_body_limit: 64 * 1024,
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// JSON in production, human-readable otherwise.
    #[default]
    Auto,
    /// Human-readable.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// `[log]`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `DASHTAM_LOG__FORMAT`.
    pub format: LogFormat,
    /// `DASHTAM_LOG__FILTER`: a `tracing` filter such as `info,dashtam_api=debug`.
    pub filter: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { format: LogFormat::Auto, filter: "info,sqlx=warn".to_owned() }
    }
}

/// How mail leaves the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MailTransport {
    /// One `.eml` file per message in the mail directory (development).
    #[default]
    File,
    /// An SMTP relay.
    Smtp,
    /// Logged and dropped.
    Log,
}

/// `[mail]`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct MailConfig {
    /// `DASHTAM_MAIL__TRANSPORT`.
    pub transport: MailTransport,
    /// `DASHTAM_MAIL__DIR`: defaults to `<data_dir>/mail`.
    pub dir: Option<PathBuf>,
    /// `DASHTAM_MAIL__SMTP_URL`: `smtp://` or `smtps://`, possibly with credentials.
    #[serde(serialize_with = "serialize_secret_url")]
    pub smtp_url: Option<SecretString>,
    /// `DASHTAM_MAIL__FROM`: the sender address.
    pub from: String,
}

impl Default for MailConfig {
    fn default() -> Self {
        Self {
            transport: MailTransport::File,
            dir: None,
            smtp_url: None,
            from: "Dashtam <no-reply@localhost>".to_owned(),
        }
    }
}

/// `[keys]`: keyrings (`kid:base64key`, comma-separated, the first active) and the token-hash secret.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct KeysConfig {
    /// `DASHTAM_KEYS__SIGNING`.
    #[serde(serialize_with = "serialize_secret")]
    pub signing: Option<SecretString>,
    /// `DASHTAM_KEYS__ENCRYPTION`.
    #[serde(serialize_with = "serialize_secret")]
    pub encryption: Option<SecretString>,
    /// `DASHTAM_KEYS__TOKEN_HASH`.
    #[serde(serialize_with = "serialize_secret")]
    pub token_hash: Option<SecretString>,
}

/// `[sandbox]`.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SandboxConfig {
    /// `DASHTAM_SANDBOX__ENABLED`: defaults to on in development, off in production.
    pub enabled: Option<bool>,
}

/// `[schwab]`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SchwabConfig {
    /// `DASHTAM_SCHWAB__CLIENT_ID`.
    pub client_id: Option<String>,
    /// `DASHTAM_SCHWAB__CLIENT_SECRET`.
    #[serde(serialize_with = "serialize_secret")]
    pub client_secret: Option<SecretString>,
    /// `DASHTAM_SCHWAB__BASE_URL`.
    pub base_url: Url,
}

impl Default for SchwabConfig {
    fn default() -> Self {
        Self {
            client_id: None,
            client_secret: None,
            base_url: Url::parse("https://api.schwabapi.com").unwrap_or_else(|_| unreachable!("constant URL")),
        }
    }
}

/// `[alpaca]`: users bring their own API keys, so only the endpoint is configured.
#[derive(Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlpacaConfig {
    /// `DASHTAM_ALPACA__BASE_URL`: `https://paper-api.alpaca.markets` for paper trading.
    pub base_url: Url,
}

impl Default for AlpacaConfig {
    fn default() -> Self {
        Self { base_url: Url::parse("https://api.alpaca.markets").unwrap_or_else(|_| unreachable!("constant URL")) }
    }
}

/// `[providers]`.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProvidersConfig {
    /// `DASHTAM_PROVIDERS__SUCCESS_REDIRECT_URL`: where a finished OAuth connect flow sends the browser
    /// (`303`, with `provider_id` and `status=connected`); unset, the server shows a small page itself.
    pub success_redirect_url: Option<Url>,
}

/// `[imports]`: statement uploads.
#[derive(Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ImportsConfig {
    /// `DASHTAM_IMPORTS__MAX_FILE_SIZE`: the largest statement file accepted, in bytes (default 10 MiB).
    pub max_file_size: usize,
}

impl Default for ImportsConfig {
    fn default() -> Self {
        Self { max_file_size: 10 * 1024 * 1024 }
    }
}

/// `[sync]`: when connections sync on their own.
#[derive(Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SyncConfig {
    /// `DASHTAM_SYNC__SCHEDULER`: run scheduled syncs on this instance (every instance may; a shared lock
    /// keeps two off one connection).
    pub scheduler: bool,
    /// `DASHTAM_SYNC__INTERVAL`: time between successful syncs of one connection (plus up to 10 % jitter).
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// `DASHTAM_SYNC__RETRY_AFTER`: the first retry after a failed sync; it doubles per failure up to the interval.
    #[serde(with = "humantime_serde")]
    pub retry_after: Duration,
    /// `DASHTAM_SYNC__TICK`: how often the scheduler looks for due connections.
    #[serde(with = "humantime_serde")]
    pub tick: Duration,
}

impl Default for SyncConfig {
    fn default() -> Self {
        Self {
            scheduler: true,
            interval: Duration::from_secs(6 * 3600),
            retry_after: Duration::from_secs(5 * 60),
            tick: Duration::from_secs(60),
        }
    }
}

/// `[http]`: timeouts of every outbound provider call.
#[derive(Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpClientConfig {
    /// `DASHTAM_HTTP__CONNECT_TIMEOUT`.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// `DASHTAM_HTTP__READ_TIMEOUT`.
    #[serde(with = "humantime_serde")]
    pub read_timeout: Duration,
    /// `DASHTAM_HTTP__TOTAL_TIMEOUT`: a hard deadline for the whole call.
    #[serde(with = "humantime_serde")]
    pub total_timeout: Duration,
}

impl Default for HttpClientConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(30),
            total_timeout: Duration::from_secs(30),
        }
    }
}

/// `[otel]`: OpenTelemetry. Request spans are exported over OTLP/HTTP (protobuf) to a collector; only a binary
/// built with the `otel` cargo feature can do it.
#[derive(Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct OtelConfig {
    /// `DASHTAM_OTEL__ENABLED`.
    pub enabled: bool,
    /// `DASHTAM_OTEL__ENDPOINT`: the collector's OTLP/HTTP base URL; spans are posted to `<endpoint>/v1/traces`.
    pub endpoint: Url,
    /// `DASHTAM_OTEL__SERVICE_NAME`: the `service.name` resource attribute.
    pub service_name: String,
    /// `DASHTAM_OTEL__SAMPLE_RATIO`: the share (0–1) of traces started here that are recorded; a caller's
    /// `traceparent` decision is followed.
    pub sample_ratio: f64,
}

impl Default for OtelConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            // The OTLP/HTTP port the OpenTelemetry Collector listens on by default.
            endpoint: Url::parse("http://127.0.0.1:4318").unwrap_or_else(|_| unreachable!("constant URL")),
            service_name: "dashtam".to_owned(),
            sample_ratio: 1.0,
        }
    }
}

impl OtelConfig {
    /// Where spans are posted: the endpoint with the OTLP/HTTP traces path appended to its path.
    pub fn traces_url(&self) -> Url {
        let mut url = self.endpoint.clone();
        let path = format!("{}/v1/traces", url.path().trim_end_matches('/'));
        url.set_path(&path);
        url
    }
}

/// Configuration could not be loaded or broke a rule. Displays as one message listing every problem.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    problems: Vec<String>,
}

impl ConfigError {
    fn single(problem: String) -> Self {
        Self { problems: vec![problem] }
    }

    /// Each problem, naming its setting.
    pub fn problems(&self) -> &[String] {
        &self.problems
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid configuration:")?;
        for problem in &self.problems {
            write!(f, "\n  - {problem}")?;
        }
        Ok(())
    }
}

/// The environment variable that sets a key path (`mail.smtp_url` → `DASHTAM_MAIL__SMTP_URL`).
pub fn env_name(key_path: &str) -> String {
    format!("{ENV_PREFIX}{}", key_path.replace('.', "__").to_ascii_uppercase())
}

/// How a setting is named in messages: its variable and its TOML key.
pub(crate) fn setting(key_path: &str) -> String {
    format!("{} ({key_path})", env_name(key_path))
}

impl Config {
    /// Loads from the TOML file (if any), the process environment and `_FILE` secrets, then validates.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_from(file, std::env::vars())
    }

    /// [`Config::load`] with an explicit environment; `_FILE` variables are read from it too.
    pub fn load_from(
        file: Option<&Path>,
        environment: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let environment: Vec<(String, String)> = environment.into_iter().collect();
        let mut figment = Figment::new();
        if let Some(path) = file {
            if !path.is_file() {
                return Err(ConfigError::single(format!(
                    "DASHTAM_CONFIG / --config: file {} does not exist",
                    path.display()
                )));
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        figment = figment.merge(DictProvider { name: "environment variables", dict: environment_dict(&environment) });
        let mut secrets = figment::value::Dict::new();
        for (key_path, value) in read_secret_files(&environment)? {
            insert_nested(&mut secrets, &key_path, figment::value::Value::from(value));
        }
        figment = figment.merge(DictProvider { name: "a _FILE secret", dict: secrets });
        let config: Config = figment
            .extract()
            .map_err(|error| ConfigError { problems: error.into_iter().map(describe_figment_error).collect() })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks every rule; all broken ones are reported together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        let mut refuse = |key_path: &str, message: String| problems.push(format!("{}: {message}", setting(key_path)));

        for (key_path, url) in [("public_url", &self.public_url), ("app_url", &self.app_url)] {
            if let Some(url) = url {
                if !matches!(url.scheme(), "http" | "https") {
                    refuse(key_path, "must be an http:// or https:// URL".into());
                }
                if url.query().is_some() || url.fragment().is_some() {
                    refuse(key_path, "must not have a query or fragment".into());
                }
            }
        }
        if let Some(url) = &self.database_url {
            let scheme = url_scheme(url.expose_secret());
            if !matches!(scheme, Some("sqlite" | "postgres" | "postgresql")) {
                refuse("database_url", "must start with sqlite:// or postgres://".into());
            }
        }
        if let Some(url) = &self.redis_url
            && !matches!(url_scheme(url.expose_secret()), Some("redis" | "rediss"))
        {
            refuse("redis_url", "must start with redis:// or rediss://".into());
        }
        if self.redis_timeout.is_zero() {
            refuse("redis_timeout", "must be greater than zero".into());
        }
        for (key_path, message) in self.rate_limit.problems() {
            refuse(key_path, message);
        }
        if let Err(error) = self.auth.password_policy.validate() {
            refuse("auth.password_policy", error.to_string());
        }
        if self.auth.lockout_threshold < 1 {
            refuse("auth.lockout_threshold", "must be at least 1".into());
        }
        for (key_path, duration) in [
            ("auth.access_token_lifetime", self.auth.access_token_lifetime),
            ("auth.session_lifetime", self.auth.session_lifetime),
            ("auth.lockout_duration", self.auth.lockout_duration),
            ("audit.retention", self.audit.retention),
            ("audit.anchor_interval", self.audit.anchor_interval),
        ] {
            if duration.is_zero() {
                refuse(key_path, "must be greater than zero".into());
            }
        }
        if self.auth.access_token_lifetime > self.auth.session_lifetime {
            refuse("auth.access_token_lifetime", format!("must not exceed {}", env_name("auth.session_lifetime")));
        }
        if self.database.max_connections == 0 {
            refuse("database.max_connections", "must be at least 1".into());
        }
        for (key_path, duration) in [
            ("database.acquire_timeout", self.database.acquire_timeout),
            ("server.request_timeout", self.server.request_timeout),
            ("server.readiness_timeout", self.server.readiness_timeout),
            ("http.connect_timeout", self.http.connect_timeout),
            ("http.read_timeout", self.http.read_timeout),
            ("http.total_timeout", self.http.total_timeout),
            ("sync.interval", self.sync.interval),
            ("sync.retry_after", self.sync.retry_after),
            ("sync.tick", self.sync.tick),
        ] {
            if duration.is_zero() {
                refuse(key_path, "must be greater than zero".into());
            }
        }
        if !(1024..=1024 * 1024 * 1024).contains(&self.imports.max_file_size) {
            refuse("imports.max_file_size", "must be between 1024 and 1073741824 bytes".into());
        }
        if !(1024..=16 * 1024 * 1024).contains(&self.server.json_body_limit) {
            refuse("server.json_body_limit", "must be between 1024 and 16777216 bytes".into());
        }
        for (key_path, duration) in
            [("http.connect_timeout", self.http.connect_timeout), ("http.read_timeout", self.http.read_timeout)]
        {
            if duration > self.http.total_timeout {
                refuse(key_path, format!("must not exceed {} (the hard deadline)", env_name("http.total_timeout")));
            }
        }
        // A provider token refresh holds a lock that expires after two minutes; a call must end well before.
        if self.http.total_timeout > Duration::from_secs(60) {
            refuse("http.total_timeout", "must be at most 60s".into());
        }
        match (&self.mail.transport, &self.mail.smtp_url) {
            (MailTransport::Smtp, None) => {
                refuse("mail.smtp_url", format!("is required when {} is smtp", env_name("mail.transport")));
            }
            (MailTransport::Smtp, Some(url)) if !matches!(url_scheme(url.expose_secret()), Some("smtp" | "smtps")) => {
                refuse("mail.smtp_url", "must start with smtp:// or smtps://".into());
            }
            _ => {}
        }
        if self.mail.from.parse::<MailboxShape>().is_err() {
            refuse("mail.from", "must be an address such as \"Dashtam <no-reply@example.com>\"".into());
        }
        if self.schwab.client_id.is_some() != self.schwab.client_secret.is_some() {
            refuse("schwab.client_secret", format!("{} and this must be set together", env_name("schwab.client_id")));
        }
        if !matches!(self.schwab.base_url.scheme(), "http" | "https") {
            refuse("schwab.base_url", "must be an http:// or https:// URL".into());
        }
        // Checked with or without the feature, so a configuration is judged the same by every build.
        if self.otel.enabled && !cfg!(feature = "otel") {
            refuse(
                "otel.enabled",
                "this dashtam was built without the `otel` cargo feature, so it cannot export traces: \
                 rebuild with `--features otel` or set it to false"
                    .into(),
            );
        }
        let endpoint = &self.otel.endpoint;
        if !matches!(endpoint.scheme(), "http" | "https") || endpoint.host_str().is_none_or(str::is_empty) {
            refuse("otel.endpoint", "must be an http:// or https:// URL with a host".into());
        }
        if endpoint.query().is_some() || endpoint.fragment().is_some() {
            refuse("otel.endpoint", "must not have a query or fragment".into());
        }
        if !endpoint.username().is_empty() || endpoint.password().is_some() {
            refuse("otel.endpoint", "must not carry credentials: give them in OTEL_EXPORTER_OTLP_HEADERS".into());
        }
        let service_name = self.otel.service_name.trim();
        if service_name.is_empty() || service_name.len() > 255 || service_name != self.otel.service_name {
            refuse("otel.service_name", "must be 1–255 characters without surrounding spaces".into());
        }
        if !(0.0..=1.0).contains(&self.otel.sample_ratio) {
            refuse("otel.sample_ratio", "must be between 0 and 1".into());
        }

        if self.env == Environment::Production {
            let development_only = "is a development-only setting; production refuses it";
            if self.mail.transport == MailTransport::File {
                refuse("mail.transport", format!("file {development_only}: use smtp"));
            }
            if self.sandbox_enabled() {
                refuse("sandbox.enabled", format!("the sandbox brokerage {development_only}: set it to false"));
            }
            for (key_path, key) in [
                ("keys.signing", &self.keys.signing),
                ("keys.encryption", &self.keys.encryption),
                ("keys.token_hash", &self.keys.token_hash),
            ] {
                if key.is_none() {
                    refuse(key_path, "must be configured in production (generated keys are development-only)".into());
                }
            }
            for (key_path, problem) in crate::keys::production_key_problems(&self.keys) {
                refuse(key_path, problem);
            }
            if self.public_url().scheme() != "https" {
                refuse("public_url", "must be an https:// URL in production".into());
            }
            if self.app_url.as_ref().is_some_and(|url| url.scheme() != "https") {
                refuse("app_url", "must be an https:// URL in production".into());
            }
        }

        if problems.is_empty() { Ok(()) } else { Err(ConfigError { problems }) }
    }

    /// The database URL, defaulting to a SQLite file in the data directory.
    pub fn database_url(&self) -> SecretString {
        self.database_url
            .clone()
            .unwrap_or_else(|| SecretString::from(format!("sqlite://{}", self.data_dir.join("dashtam.db").display())))
    }

    /// This server's base URL.
    pub fn public_url(&self) -> Url {
        self.public_url.clone().unwrap_or_else(|| {
            Url::parse(&format!("http://{}", self.bind))
                .unwrap_or_else(|_| unreachable!("a socket address is a valid host"))
        })
    }

    /// The front end's base URL.
    pub fn app_url(&self) -> Url {
        self.app_url.clone().unwrap_or_else(|| self.public_url())
    }

    /// Where `.eml` files go with the file transport.
    pub fn mail_dir(&self) -> PathBuf {
        self.mail.dir.clone().unwrap_or_else(|| self.data_dir.join("mail"))
    }

    /// Whether the sandbox brokerage is served.
    pub fn sandbox_enabled(&self) -> bool {
        self.sandbox.enabled.unwrap_or(self.env == Environment::Development)
    }

    /// Whether logs are JSON.
    pub fn json_logs(&self) -> bool {
        match self.log.format {
            LogFormat::Auto => self.env == Environment::Production,
            LogFormat::Pretty => false,
            LogFormat::Json => true,
        }
    }

    /// The effective configuration as TOML, defaults filled in and every secret redacted.
    pub fn to_redacted_toml(&self) -> String {
        let mut effective = toml::Table::try_from(self).unwrap_or_default();
        let derived = [
            ("public_url", self.public_url().to_string()),
            ("app_url", self.app_url().to_string()),
            ("database_url", redact_url(self.database_url().expose_secret())),
        ];
        for (key, value) in derived {
            effective.insert(key.to_owned(), toml::Value::String(value));
        }
        if let Some(toml::Value::Table(mail)) = effective.get_mut("mail") {
            mail.insert("dir".to_owned(), toml::Value::String(self.mail_dir().display().to_string()));
        }
        if let Some(toml::Value::Table(sandbox)) = effective.get_mut("sandbox") {
            sandbox.insert("enabled".to_owned(), toml::Value::Boolean(self.sandbox_enabled()));
        }
        toml::to_string_pretty(&effective).unwrap_or_default()
    }
}

/// Just enough of RFC 5322 to catch a misconfigured sender: `addr@domain` or `Name <addr@domain>`.
struct MailboxShape;

impl std::str::FromStr for MailboxShape {
    type Err = ();

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let address = match (value.find('<'), value.strip_suffix('>')) {
            (Some(open), Some(without_close)) => &without_close[open + 1..],
            (None, None) => value,
            _ => return Err(()),
        };
        let (local, domain) = address.trim().split_once('@').ok_or(())?;
        if local.is_empty() || domain.is_empty() || address.chars().any(char::is_whitespace) {
            return Err(());
        }
        Ok(Self)
    }
}

fn url_scheme(url: &str) -> Option<&str> {
    url.split_once("://").map(|(scheme, _)| scheme)
}

/// A URL with its password (if any) replaced, so `config check` stays useful without leaking it.
pub fn redact_url(url: &str) -> String {
    match Url::parse(url) {
        Ok(parsed) => match parsed.password() {
            // `Url` would percent-encode a replacement, so the password is cut out of the original text.
            Some(password) => url.replacen(&format!(":{password}@"), ":[redacted]@", 1),
            None => url.to_owned(),
        },
        Err(_) => "[redacted]".to_owned(),
    }
}

/// Settings from one source, named in error messages.
struct DictProvider {
    name: &'static str,
    dict: figment::value::Dict,
}

impl figment::Provider for DictProvider {
    fn metadata(&self) -> figment::Metadata {
        figment::Metadata::named(self.name)
    }

    fn data(&self) -> Result<figment::value::Map<figment::Profile, figment::value::Dict>, figment::Error> {
        Ok(figment::Profile::Default.collect(self.dict.clone()))
    }
}

/// `DASHTAM_*` variables as a nested dictionary. (figment's own `Env` reads only the real process
/// environment; this takes an explicit one so tests need not mutate it, and keeps figment's value parsing
/// of `true`, numbers and `[a, b]`.)
fn environment_dict(environment: &[(String, String)]) -> figment::value::Dict {
    let known: Vec<(String, String)> = environment
        .iter()
        .filter_map(|(name, value)| {
            let key = name.strip_prefix(ENV_PREFIX)?.to_ascii_lowercase().replace("__", ".");
            let top = key.split('.').next().unwrap_or_default();
            (TOP_LEVEL_KEYS.contains(&top) && !key.ends_with("_file")).then(|| (key, value.clone()))
        })
        .collect();
    let mut dict = figment::value::Dict::new();
    for (key, value) in known {
        let parsed: figment::value::Value =
            value.parse().unwrap_or_else(|_| figment::value::Value::from(value.clone()));
        insert_nested(&mut dict, &key, parsed);
    }
    dict
}

fn insert_nested(dict: &mut figment::value::Dict, key_path: &str, value: figment::value::Value) {
    match key_path.split_once('.') {
        None => {
            dict.insert(key_path.to_owned(), value);
        }
        Some((head, rest)) => {
            let entry =
                dict.entry(head.to_owned()).or_insert_with(|| figment::value::Value::from(figment::value::Dict::new()));
            if let figment::value::Value::Dict(_, inner) = entry {
                insert_nested(inner, rest, value);
            } else {
                // `DASHTAM_MAIL=x` and `DASHTAM_MAIL__DIR=y` together: the section wins and extraction
                // reports the scalar as the wrong type for it.
                *entry = figment::value::Value::from(figment::value::Dict::new());
                if let figment::value::Value::Dict(_, inner) = entry {
                    insert_nested(inner, rest, value);
                }
            }
        }
    }
}

/// `DASHTAM_<NAME>_FILE` variables: each must name a secret setting and a readable file, and must not be
/// combined with `DASHTAM_<NAME>` itself.
fn read_secret_files(environment: &[(String, String)]) -> Result<Vec<(String, String)>, ConfigError> {
    let mut secrets = Vec::new();
    let mut problems = Vec::new();
    for (name, path) in environment {
        let Some(base) = name.strip_prefix(ENV_PREFIX).and_then(|rest| rest.strip_suffix("_FILE")) else {
            continue;
        };
        let key_path = base.to_ascii_lowercase().replace("__", ".");
        if !SECRET_KEYS.contains(&key_path.as_str()) {
            if TOP_LEVEL_KEYS.contains(&key_path.split('.').next().unwrap_or_default()) {
                problems.push(format!("{name}: {} is not a secret; set it directly", env_name(&key_path)));
            }
            continue;
        }
        if environment.iter().any(|(other, _)| *other == env_name(&key_path)) {
            problems.push(format!("{name}: {} is also set; use one or the other", env_name(&key_path)));
            continue;
        }
        match std::fs::read_to_string(path) {
            Ok(contents) => secrets.push((key_path, contents.trim_end_matches(['\n', '\r']).to_owned())),
            Err(error) => problems.push(format!("{name}: cannot read {path}: {error}")),
        }
    }
    if problems.is_empty() { Ok(secrets) } else { Err(ConfigError { problems }) }
}

fn describe_figment_error(error: figment::Error) -> String {
    let key_path = error.path.join(".");
    let source = error
        .metadata
        .as_ref()
        .and_then(|metadata| metadata.source.as_ref())
        .map(|source| format!(" (from {source})"))
        .unwrap_or_default();
    let kind = match &error.kind {
        figment::error::Kind::UnknownField(field, _) => {
            // figment's path usually ends with the unknown field already.
            let full = if error.path.last() == Some(field) || key_path.is_empty() {
                if key_path.is_empty() { field.clone() } else { key_path.clone() }
            } else {
                format!("{key_path}.{field}")
            };
            return format!("{}: unknown setting{source}", setting(&full));
        }
        other => other.to_string(),
    };
    if key_path.is_empty() { format!("{kind}{source}") } else { format!("{}: {kind}{source}", setting(&key_path)) }
}

fn serialize_secret<S: Serializer>(secret: &Option<SecretString>, serializer: S) -> Result<S::Ok, S::Error> {
    match secret {
        Some(_) => serializer.serialize_str("[redacted]"),
        None => serializer.serialize_none(),
    }
}

fn serialize_secret_url<S: Serializer>(secret: &Option<SecretString>, serializer: S) -> Result<S::Ok, S::Error> {
    match secret {
        Some(url) => serializer.serialize_str(&redact_url(url.expose_secret())),
        None => serializer.serialize_none(),
    }
}

/// Accepts `"10.0.0.0/8, 192.168.1.1"` (environment) or `["10.0.0.0/8"]` (TOML); a bare address is a /32
/// or /128.
fn deserialize_cidr_list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<IpNet>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ListOrString {
        List(Vec<String>),
        String(String),
    }
    let items = match ListOrString::deserialize(deserializer)? {
        ListOrString::List(items) => items,
        ListOrString::String(joined) => joined.split(',').map(str::to_owned).collect(),
    };
    items
        .iter()
        .map(|item| item.trim())
        .filter(|item| !item.is_empty())
        .map(|item| {
            item.parse::<IpNet>()
                .or_else(|_| item.parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|_| serde::de::Error::custom(format!("{item:?} is not an IP address or CIDR")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(environment: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::load_from(None, environment.iter().map(|(name, value)| (name.to_string(), value.to_string())))
    }

    fn problems(environment: &[(&str, &str)]) -> Vec<String> {
        load(environment).expect_err("configuration must be refused").problems().to_vec()
    }

    #[test]
    fn defaults_are_the_embedded_development_shape() {
        let config = load(&[]).expect("defaults are valid");
        assert_eq!(config.env, Environment::Development);
        assert_eq!(config.bind, SocketAddr::from(([127, 0, 0, 1], 8000)));
        assert_eq!(config.database_url().expose_secret(), "sqlite://./data/dashtam.db");
        assert_eq!(config.public_url().as_str(), "http://127.0.0.1:8000/");
        assert_eq!(config.app_url(), config.public_url());
        assert_eq!(config.mail.transport, MailTransport::File);
        assert_eq!(config.mail_dir(), PathBuf::from("./data/mail"));
        assert!(config.sandbox_enabled());
        assert!(config.rate_limit.enabled);
        assert!(config.redis_url.is_none());
        assert!(!config.json_logs());
        assert_eq!(
            (config.http.connect_timeout, config.http.read_timeout, config.http.total_timeout),
            (Duration::from_secs(10), Duration::from_secs(30), Duration::from_secs(30))
        );
    }

    #[test]
    fn environment_variables_nest_with_double_underscores() {
        let config = load(&[
            ("DASHTAM_BIND", "0.0.0.0:9000"),
            ("DASHTAM_DATA_DIR", "/var/lib/dashtam"),
            ("DASHTAM_MAIL__TRANSPORT", "smtp"),
            ("DASHTAM_MAIL__SMTP_URL", "smtps://user:pw@mail.example.com:465"),
            ("DASHTAM_RATE_LIMIT__ENABLED", "false"),
            ("DASHTAM_HTTP__CONNECT_TIMEOUT", "2s"),
            ("DASHTAM_DATABASE__MAX_CONNECTIONS", "32"),
            ("DASHTAM_TRUSTED_PROXIES", "10.0.0.0/8, 192.168.1.7,::1"),
        ])
        .expect("valid");
        assert_eq!(config.bind, "0.0.0.0:9000".parse().expect("address"));
        assert_eq!(config.database_url().expose_secret(), "sqlite:///var/lib/dashtam/dashtam.db");
        assert_eq!(config.mail.transport, MailTransport::Smtp);
        assert!(!config.rate_limit.enabled);
        assert_eq!(config.http.connect_timeout, Duration::from_secs(2));
        assert_eq!(config.database.max_connections, 32);
        let proxies: Vec<String> = config.trusted_proxies.iter().map(ToString::to_string).collect();
        assert_eq!(proxies, ["10.0.0.0/8", "192.168.1.7/32", "::1/128"]);
    }

    #[test]
    fn variables_that_are_not_settings_are_ignored() {
        let config = load(&[
            ("DASHTAM_TEST_DATABASE_URL", "postgres://elsewhere/db"),
            ("DASHTAM_CONFIG", "/etc/dashtam.toml"),
            ("PATH", "/usr/bin"),
        ])
        .expect("valid");
        assert!(config.database_url.is_none());
    }

    #[test]
    fn a_typo_inside_a_section_is_refused_by_name() {
        let found = problems(&[("DASHTAM_MAIL__TRANSPRT", "smtp")]);
        assert_eq!(found, ["DASHTAM_MAIL__TRANSPRT (mail.transprt): unknown setting"]);
        let found = problems(&[("DASHTAM_MAIL__TRANSPORT", "pigeon")]);
        assert!(found[0].starts_with("DASHTAM_MAIL__TRANSPORT (mail.transport): "), "{found:?}");
        let found = problems(&[("DASHTAM_TRUSTED_PROXIES", "10.0.0.0/8,not-an-ip")]);
        assert!(found[0].contains("not-an-ip"), "{found:?}");
    }

    #[test]
    fn cross_field_rules_are_checked_together() {
        let found = problems(&[
            ("DASHTAM_MAIL__TRANSPORT", "smtp"),
            ("DASHTAM_HTTP__CONNECT_TIMEOUT", "40s"),
            ("DASHTAM_SCHWAB__CLIENT_ID", "abc"),
            ("DASHTAM_DATABASE_URL", "mysql://x/y"),
            ("DASHTAM_PUBLIC_URL", "ftp://example.com"),
        ]);
        let joined = found.join("\n");
        for setting in [
            "DASHTAM_MAIL__SMTP_URL",
            "DASHTAM_HTTP__CONNECT_TIMEOUT",
            "DASHTAM_SCHWAB__CLIENT_SECRET",
            "DASHTAM_DATABASE_URL",
            "DASHTAM_PUBLIC_URL",
        ] {
            assert!(joined.contains(setting), "{setting} missing from:\n{joined}");
        }
        assert_eq!(found.len(), 5, "{joined}");
    }

    #[test]
    fn production_refuses_development_conveniences_and_accepts_a_real_setup() {
        let found = problems(&[("DASHTAM_ENV", "production")]).join("\n");
        for setting in ["DASHTAM_MAIL__TRANSPORT", "DASHTAM_KEYS__SIGNING", "DASHTAM_PUBLIC_URL"] {
            assert!(found.contains(setting), "{setting} missing from:\n{found}");
        }
        let config = load(&[
            ("DASHTAM_ENV", "production"),
            ("DASHTAM_PUBLIC_URL", "https://dashtam.example.com"),
            ("DASHTAM_MAIL__TRANSPORT", "smtp"),
            ("DASHTAM_MAIL__SMTP_URL", "smtps://mail.example.com"),
            ("DASHTAM_KEYS__SIGNING", &format!("k1:{}", random_key())),
            ("DASHTAM_KEYS__ENCRYPTION", &format!("e1:{}", random_key())),
            ("DASHTAM_KEYS__TOKEN_HASH", &random_key()),
        ])
        .expect("a production configuration");
        assert!(!config.sandbox_enabled());
        assert!(config.json_logs());
    }

    fn random_key() -> String {
        dashtam_adapters::opaque_tokens::generate_secret_base64(32).expect("randomness").expose_secret().to_owned()
    }

    #[test]
    fn production_refuses_unsafe_keys_with_every_other_problem() {
        let zeros = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="; // 32 zero bytes
        let found = problems(&[
            ("DASHTAM_ENV", "production"),
            ("DASHTAM_PUBLIC_URL", "https://dashtam.example.com"),
            ("DASHTAM_MAIL__TRANSPORT", "file"),
            ("DASHTAM_KEYS__SIGNING", &format!("k1:{}", random_key())),
            ("DASHTAM_KEYS__ENCRYPTION", &format!("e1:{zeros}")),
            ("DASHTAM_KEYS__TOKEN_HASH", "dG9vLXNob3J0"),
        ]);
        let joined = found.join("\n");
        assert_eq!(found.len(), 3, "{joined}");
        assert!(found.iter().any(|problem| problem.starts_with("DASHTAM_MAIL__TRANSPORT (mail.transport): ")));
        let encryption =
            found.iter().find(|problem| problem.starts_with("DASHTAM_KEYS__ENCRYPTION (keys.encryption): "));
        assert!(encryption.is_some_and(|problem| problem.contains("single byte value")), "{joined}");
        let token_hash =
            found.iter().find(|problem| problem.starts_with("DASHTAM_KEYS__TOKEN_HASH (keys.token_hash): "));
        assert!(token_hash.is_some_and(|problem| problem.contains("at least 32 bytes")), "{joined}");
        assert!(!joined.contains(zeros) && !joined.contains("dG9vLXNob3J0"), "{joined}");
        // The same keys are fine in development, where nothing real is at stake.
        assert!(load(&[("DASHTAM_KEYS__ENCRYPTION", &format!("e1:{zeros}"))]).is_ok());
    }

    #[test]
    fn secret_files_are_read_trimmed_and_exclusive() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("signing");
        std::fs::write(&path, "k1:c2VjcmV0\r\n").expect("write");
        let path = path.display().to_string();
        let config = load(&[("DASHTAM_KEYS__SIGNING_FILE", &path)]).expect("valid");
        assert_eq!(
            config.keys.signing.as_ref().map(|key| key.expose_secret().to_owned()).as_deref(),
            Some("k1:c2VjcmV0")
        );

        let found = problems(&[("DASHTAM_KEYS__SIGNING_FILE", &path), ("DASHTAM_KEYS__SIGNING", "inline")]);
        assert!(found[0].starts_with("DASHTAM_KEYS__SIGNING_FILE: "), "{found:?}");
        let found = problems(&[("DASHTAM_BIND_FILE", &path)]);
        assert!(found[0].contains("not a secret"), "{found:?}");
    }

    #[test]
    fn secrets_never_show_in_debug_or_check_output() {
        let config = load(&[
            ("DASHTAM_KEYS__TOKEN_HASH", "token-hash-secret"),
            ("DASHTAM_REDIS_URL", "redis://:redis-password@cache:6379/0"),
            ("DASHTAM_SCHWAB__CLIENT_ID", "id"),
            ("DASHTAM_SCHWAB__CLIENT_SECRET", "schwab-secret"),
        ])
        .expect("valid");
        for rendered in [format!("{config:?}"), config.to_redacted_toml()] {
            for secret in ["token-hash-secret", "redis-password", "schwab-secret"] {
                assert!(!rendered.contains(secret), "{secret} leaked in:\n{rendered}");
            }
        }
        assert!(config.to_redacted_toml().contains("redis://:[redacted]@cache:6379/0"));
    }

    #[test]
    fn otel_settings_are_read_and_checked() {
        let defaults = load(&[]).expect("defaults are valid");
        assert!(!defaults.otel.enabled);
        assert_eq!((defaults.otel.service_name.as_str(), defaults.otel.sample_ratio), ("dashtam", 1.0));
        assert_eq!(defaults.otel.traces_url().as_str(), "http://127.0.0.1:4318/v1/traces");

        let config = load(&[
            ("DASHTAM_OTEL__ENDPOINT", "https://collector.internal:4318/otlp/"),
            ("DASHTAM_OTEL__SERVICE_NAME", "dashtam-eu"),
            ("DASHTAM_OTEL__SAMPLE_RATIO", "0.25"),
        ])
        .expect("valid");
        assert_eq!(config.otel.traces_url().as_str(), "https://collector.internal:4318/otlp/v1/traces");
        assert_eq!((config.otel.service_name.as_str(), config.otel.sample_ratio), ("dashtam-eu", 0.25));
        assert_eq!(load(&[("DASHTAM_OTEL__SAMPLE_RATIO", "0")]).expect("valid").otel.sample_ratio, 0.0);

        for (name, value) in [
            ("DASHTAM_OTEL__ENDPOINT", "collector:4318"),
            ("DASHTAM_OTEL__ENDPOINT", "grpc://collector:4317"),
            ("DASHTAM_OTEL__ENDPOINT", "http://collector:4318/?token=x"),
            ("DASHTAM_OTEL__ENDPOINT", "http://user:secret@collector:4318"), // pragma: allowlist secret
            ("DASHTAM_OTEL__SERVICE_NAME", " "),
            ("DASHTAM_OTEL__SAMPLE_RATIO", "1.5"),
            ("DASHTAM_OTEL__SAMPLE_RATIO", "-0.1"),
            ("DASHTAM_OTEL__SAMPLE_RATIO", "often"),
            ("DASHTAM_OTEL__EXPORTER", "grpc"),
        ] {
            let found = problems(&[(name, value)]);
            assert_eq!(found.len(), 1, "{name}={value}: {found:?}");
            assert!(found[0].starts_with(&format!("{name} (")), "{name}={value}: {found:?}");
        }

        // A build without the feature cannot do what `enabled` asks, and says so instead of ignoring it.
        let enabled = load(&[("DASHTAM_OTEL__ENABLED", "true")]);
        if cfg!(feature = "otel") {
            assert!(enabled.expect("valid with the feature").otel.enabled);
        } else {
            let found = enabled.expect_err("refused without the feature").problems().to_vec();
            assert_eq!(found.len(), 1, "{found:?}");
            assert!(found[0].starts_with("DASHTAM_OTEL__ENABLED (otel.enabled): "), "{found:?}");
            assert!(found[0].contains("without the `otel` cargo feature"), "{found:?}");
        }
    }

    #[test]
    fn url_redaction_keeps_everything_but_the_password() {
        assert_eq!(
            redact_url("postgres://u:p%40ss@h:5432/d?sslmode=require"),
            "postgres://u:[redacted]@h:5432/d?sslmode=require"
        );
        assert_eq!(redact_url("sqlite://./data/dashtam.db"), "sqlite://./data/dashtam.db");
        assert_eq!(redact_url("not a url with secret"), "[redacted]");
    }
}
