//! Test-only helpers. Everything here uses real parts: a real SQLite file, and — when
//! `DASHTAM_TEST_DATABASE_URL` / `DASHTAM_TEST_REDIS_URL` are set, as CI sets them — a real PostgreSQL and
//! Redis. When a variable is set but its service cannot be reached, helpers panic: a test run must never
//! quietly fall back to fewer backends than it was asked for.

pub mod http;
pub mod ledger;
pub mod sandbox;
pub mod services;

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use axum::Router;
use dashtam_api::AppState;
use dashtam_domain::{Clock, SystemClock};
use dashtam_server::Config;
use dashtam_server::app;
use dashtam_store::{Database, PoolOptions};
use secrecy::ExposeSecret;
use sqlx::Connection;
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// PostgreSQL for the suites: a database the tests may create schemas in.
pub const DATABASE_URL_VAR: &str = "DASHTAM_TEST_DATABASE_URL";
/// Redis for the suites.
pub const REDIS_URL_VAR: &str = "DASHTAM_TEST_REDIS_URL";

/// The PostgreSQL URL tests were given, if any.
pub fn postgres_url() -> Option<String> {
    std::env::var(DATABASE_URL_VAR).ok().filter(|url| !url.is_empty())
}

/// The Redis URL tests were given, if any.
pub fn redis_url() -> Option<String> {
    std::env::var(REDIS_URL_VAR).ok().filter(|url| !url.is_empty())
}

/// Which database a [`TestDatabase`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file in a temporary directory.
    Sqlite,
    /// A fresh schema in the PostgreSQL database named by `DASHTAM_TEST_DATABASE_URL`.
    Postgres,
}

/// An empty, isolated database, removed when dropped.
#[derive(Debug)]
pub struct TestDatabase {
    /// Its URL, ready for `DASHTAM_DATABASE_URL`.
    pub url: String,
    /// Its kind.
    pub backend: Backend,
    postgres_schema: Option<(String, String)>,
    _directory: Option<TempDir>,
}

impl TestDatabase {
    /// Reads one integer straight from the database, around the application: for tests of what the store
    /// keeps that its ports do not show.
    pub async fn fetch_i64(&self, sql: &str) -> Result<i64, sqlx::Error> {
        match self.backend {
            Backend::Sqlite => {
                let mut connection = sqlx::SqliteConnection::connect(&self.url).await?;
                let value = sqlx::query_scalar(sql).fetch_one(&mut connection).await?;
                connection.close().await?;
                Ok(value)
            }
            Backend::Postgres => {
                let mut connection = sqlx::PgConnection::connect(&self.url).await?;
                let value = sqlx::query_scalar(sql).fetch_one(&mut connection).await?;
                connection.close().await?;
                Ok(value)
            }
        }
    }

    /// Runs `sql` (one or more statements) straight on the database, around the application: for tests that
    /// play an attacker with database access.
    pub async fn execute_raw_sql(&self, sql: &str) -> Result<(), sqlx::Error> {
        match self.backend {
            Backend::Sqlite => {
                let mut connection = sqlx::SqliteConnection::connect(&self.url).await?;
                sqlx::raw_sql(sql).execute(&mut connection).await?;
                connection.close().await
            }
            Backend::Postgres => {
                let mut connection = sqlx::PgConnection::connect(&self.url).await?;
                sqlx::raw_sql(sql).execute(&mut connection).await?;
                connection.close().await
            }
        }
    }

    /// A new SQLite file.
    pub fn sqlite() -> Self {
        let directory = tempfile::tempdir().expect("create a temporary directory");
        let url = format!("sqlite://{}", directory.path().join("dashtam.db").display());
        Self { url, backend: Backend::Sqlite, postgres_schema: None, _directory: Some(directory) }
    }

    /// A new schema in the test PostgreSQL database, or `None` when none is configured. Each test gets its
    /// own schema (selected through the connection's `search_path`), so tests run in parallel unaware of
    /// each other, and migrations run per schema exactly as on a fresh database.
    pub async fn postgres() -> Option<Self> {
        let base_url = postgres_url()?;
        let schema = format!("t_{}", uuid::Uuid::now_v7().simple());
        let mut connection = sqlx::PgConnection::connect(&base_url)
            .await
            .unwrap_or_else(|error| panic!("{DATABASE_URL_VAR} is set but PostgreSQL is unreachable: {error}"));
        sqlx::query(&format!("CREATE SCHEMA {schema}")).execute(&mut connection).await.expect("create a test schema");
        let _ = connection.close().await;
        let mut url = url::Url::parse(&base_url).expect("DASHTAM_TEST_DATABASE_URL is a URL");
        url.query_pairs_mut().append_pair("options", &format!("-c search_path={schema}"));
        Some(Self {
            url: url.to_string(),
            backend: Backend::Postgres,
            postgres_schema: Some((base_url, schema)),
            _directory: None,
        })
    }

    /// A database the test created itself and is responsible for removing.
    pub fn unmanaged(url: String, backend: Backend) -> Self {
        Self { url, backend, postgres_schema: None, _directory: None }
    }

    /// Every configured backend: SQLite always, PostgreSQL when configured.
    pub async fn every_backend() -> Vec<Self> {
        let mut databases = vec![Self::sqlite()];
        databases.extend(Self::postgres().await);
        databases
    }

    /// PostgreSQL when configured, else SQLite: what the HTTP suites run on.
    pub async fn preferred() -> Self {
        match Self::postgres().await {
            Some(database) => database,
            None => Self::sqlite(),
        }
    }

    /// Opens it with the default pool and applies every migration.
    pub async fn open(&self) -> Database {
        self.open_with(&PoolOptions::default()).await
    }

    /// Opens it with the pool `options` and applies every migration.
    pub async fn open_with(&self, options: &PoolOptions) -> Database {
        let database = Database::connect(&self.url, options)
            .await
            .unwrap_or_else(|error| panic!("open {:?} test database: {error}", self.backend));
        database.migrate_up().await.expect("migrate the test database");
        database
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some((base_url, schema)) = self.postgres_schema.take() else {
            return;
        };
        // Best effort, on a detached thread: waiting here would block the test's (single-threaded) runtime,
        // which may still have to finish returning a connection that holds a lock the drop needs. Whatever
        // is left over disappears with the per-run database CI creates.
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            runtime.block_on(async {
                let mut connection = sqlx::PgConnection::connect(&base_url).await.ok()?;
                sqlx::query("SET lock_timeout = '5s'").execute(&mut connection).await.ok()?;
                sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).execute(&mut connection).await.ok()?;
                connection.close().await.ok()
            })
        });
    }
}

/// A `GLOB` pattern for an instant as the store writes it on SQLite: RFC 3339 with all nine fractional digits.
pub const SQLITE_FIXED_WIDTH_INSTANT: &str = "'[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].\
    [0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]Z'";

/// An assignment that rewrites the SQLite instants in `column` as sqlx wrote them before the store fixed their
/// width: the fraction's trailing zeros trimmed (`…:10.85Z`, `…:10Z`).
pub fn sqlite_trimmed_instant(column: &str) -> String {
    format!("{column} = rtrim(rtrim(substr({column}, 1, length({column}) - 1), '0'), '.') || 'Z'")
}

/// A configuration for tests: a temporary data directory, the given database, any port on 127.0.0.1, and
/// Redis when the suites were given one.
pub fn test_config(data_dir: &Path, database: &TestDatabase) -> Config {
    let mut config = Config {
        bind: SocketAddr::from(([127, 0, 0, 1], 0)),
        data_dir: data_dir.to_path_buf(),
        database_url: Some(database.url.clone().into()),
        redis_url: redis_url().map(Into::into),
        ..Config::default()
    };
    config.server.shutdown_timeout = Duration::from_secs(5);
    // Test apps share the test Redis; each gets its own rate-limit buckets.
    config.rate_limit.redis_key_prefix = format!("test-{}", uuid::Uuid::now_v7().simple());
    config
}

/// Configures random keys, as an operator would: instances given the same configuration (see
/// [`TestApp::spawn_peer`]) then accept each other's tokens and read each other's stored secrets, where keys
/// generated per data directory would not.
pub fn random_keys(config: &mut Config) {
    let secret = || dashtam_adapters::opaque_tokens::generate_secret_base64(32).expect("randomness");
    config.keys.signing = Some(format!("k1:{}", secret().expose_secret()).into());
    config.keys.encryption = Some(format!("e1:{}", secret().expose_secret()).into());
    config.keys.token_hash = Some(secret());
}

/// The real server, serving on 127.0.0.1 at an OS-chosen port, stopped when dropped.
#[derive(Debug)]
pub struct TestApp {
    /// Where it listens.
    pub address: SocketAddr,
    /// A client for it.
    pub client: reqwest::Client,
    /// The state its handlers share (for reaching the store directly in assertions).
    pub state: AppState,
    /// The database it runs on.
    pub database: Database,
    /// Its configuration.
    pub config: Config,
    /// Its clock: the system clock, which tests may move forward.
    pub clock: Arc<AdjustableClock>,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<anyhow::Result<()>>>,
    /// The test database it was started on (kept, so that a SQLite directory outlives the app).
    test_database: TestDatabase,
    _data_dir: TempDir,
}

impl TestApp {
    /// The production application on the preferred backend.
    pub async fn spawn() -> Self {
        Self::spawn_with(TestDatabase::preferred().await, |_| {}, dashtam_api::router).await
    }

    /// The production application on `database`, after `configure` adjusted its configuration.
    pub async fn spawn_configured(database: TestDatabase, configure: impl FnOnce(&mut Config)) -> Self {
        Self::spawn_with(database, configure, dashtam_api::router).await
    }

    /// Serves the router `build` makes from the application state, for tests that put extra routes behind
    /// the production middleware.
    pub async fn spawn_with(
        database: TestDatabase,
        configure: impl FnOnce(&mut Config),
        build: impl FnOnce(AppState) -> Router,
    ) -> Self {
        let data_dir = tempfile::tempdir().expect("create a temporary data directory");
        let mut config = test_config(data_dir.path(), &database);
        configure(&mut config);
        config.validate().expect("test configuration is valid");
        // Bound first, so the public URL (OAuth redirect URIs, the sandbox's address) names the real port.
        let listener = tokio::net::TcpListener::bind(config.bind).await.expect("bind 127.0.0.1:0");
        let address = listener.local_addr().expect("read the bound address");
        config.bind = address;
        // The configured pool, so tests of an unreachable database see its real acquire timeout.
        let pool = PoolOptions {
            max_connections: config.database.max_connections,
            acquire_timeout: config.database.acquire_timeout,
        };
        let opened = database.open_with(&pool).await;
        let clock = Arc::new(AdjustableClock::default());
        let application = app::build_with_clock(&config, &opened, clock.clone()).expect("build the application");
        let state = application.state.clone();
        let router = application.router(build(state.clone()));
        let (stop_outbox, outbox_stopped) = oneshot::channel::<()>();
        tokio::spawn(application.outbox.run(async move {
            let _ = outbox_stopped.await;
        }));
        let (shutdown, shutdown_received) = oneshot::channel::<()>();
        let server = tokio::spawn(app::serve(listener, router, config.server.shutdown_timeout, async move {
            let _ = shutdown_received.await;
            let _ = stop_outbox.send(());
        }));
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("build an HTTP client");
        Self {
            address,
            client,
            state,
            database: opened,
            config,
            clock,
            shutdown: Some(shutdown),
            server: Some(server),
            test_database: database,
            _data_dir: data_dir,
        }
    }

    /// Another instance beside this one, as behind one load balancer: the same database, Redis (and rate-limit
    /// buckets), keys and public URL (the tokens' issuer, and the sandbox's address); `configure` adjusts the
    /// rest. This instance must have been spawned with configured keys ([`random_keys`]).
    pub async fn spawn_peer(&self, configure: impl FnOnce(&mut Config)) -> Self {
        assert!(self.config.keys.signing.is_some(), "spawn the first instance with configured keys (random_keys)");
        let database = TestDatabase::unmanaged(self.test_database.url.clone(), self.test_database.backend);
        let keys = &self.config.keys;
        let keys = dashtam_server::config::KeysConfig {
            signing: keys.signing.clone(),
            encryption: keys.encryption.clone(),
            token_hash: keys.token_hash.clone(),
        };
        let public_url = self.config.public_url();
        let (redis_url, key_prefix) = (self.config.redis_url.clone(), self.config.rate_limit.redis_key_prefix.clone());
        Self::spawn_configured(database, move |config| {
            config.keys = keys;
            config.public_url = Some(public_url);
            config.redis_url = redis_url;
            config.rate_limit.redis_key_prefix = key_prefix;
            configure(config);
        })
        .await
    }

    /// The `.eml` files the file mail transport has written so far, oldest first.
    pub fn sent_mail(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.config.mail_dir()) else { return Vec::new() };
        let mut files: Vec<_> = entries
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| path.extension().is_some_and(|extension| extension == "eml"))
            .collect();
        // Files are named after the message's UUIDv7 id, so name order is queue order.
        files.sort();
        files.iter().filter_map(|path| std::fs::read_to_string(path).ok()).collect()
    }

    /// Waits (up to 10 s) until at least `count` emails have been written, and returns them all.
    pub async fn wait_for_mail(&self, count: usize) -> Vec<String> {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let mail = self.sent_mail();
            if mail.len() >= count || std::time::Instant::now() > deadline {
                return mail;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Runs `sql` (one or more statements) straight on the database, around the application: for tests that
    /// play an attacker with database access.
    pub async fn execute_raw_sql(&self, sql: &str) -> Result<(), sqlx::Error> {
        self.test_database.execute_raw_sql(sql).await
    }

    /// The absolute URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// Starts a graceful shutdown and returns a future that completes when the server has stopped.
    pub fn begin_shutdown(&mut self) -> impl Future<Output = anyhow::Result<()>> + use<> {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        let server = self.server.take();
        async move {
            match server {
                Some(server) => server.await.map_err(anyhow::Error::from)?,
                None => Ok(()),
            }
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

/// The system clock moved forward by however much a test asks, so time-based rules (rate-limit refill,
/// expiry) can be tested without sleeping.
#[derive(Debug, Default)]
pub struct AdjustableClock {
    offset_micros: AtomicI64,
}

impl AdjustableClock {
    /// Moves "now" forward by `by` for every later reading.
    pub fn advance(&self, by: Duration) {
        let micros = i64::try_from(by.as_micros()).expect("a test advances by less than 292 000 years");
        self.offset_micros.fetch_add(micros, Ordering::SeqCst);
    }
}

impl Clock for AdjustableClock {
    fn now(&self) -> time::OffsetDateTime {
        SystemClock.now() + time::Duration::microseconds(self.offset_micros.load(Ordering::SeqCst))
    }
}
