//! `dashtam`: one binary that serves, migrates and administers.

use std::process::ExitCode;

/// glibc's allocator keeps freed 19 MiB Argon2 work areas in its per-thread arenas (its mmap threshold grows
/// after the first large free), so a login burst left the process at ~500 MiB; mimalloc returns them. With
/// its `override` feature mimalloc also serves C's malloc, i.e. SQLite's: every column value sqlx copies out of
/// a row is allocated on a connection's thread and freed on a runtime thread, which glibc handled slowly
/// (listing 50 sessions spent a sixth of its time in glibc's malloc and free).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::Context;
use clap::Parser;
use dashtam_domain::RequestContext;
use dashtam_domain::audit::FIRST_CHAIN;
use dashtam_server::cli::{AuditCommand, Cli, Command, ConfigCommand, KeysCommand, MigrateCommand};
use dashtam_server::{Config, app, import, keys, logging, tokens, users};
use dashtam_store::Database;
use secrecy::ExposeSecret;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Generating a key reads no configuration: it makes the keys a valid production configuration needs.
    if let Some(Command::Keys(command @ KeysCommand::Generate { .. })) = &cli.command {
        return match keys_command(command) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("dashtam: {error:#}");
                ExitCode::FAILURE
            }
        };
    }
    // Configuration problems are reported before logging exists, as one plain message.
    let config = match Config::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("dashtam: {error}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("dashtam: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command, config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            eprintln!("dashtam: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Option<Command>, config: Config) -> anyhow::Result<()> {
    match command.unwrap_or(Command::Serve { no_migrate: false }) {
        Command::Serve { no_migrate } => serve(config, no_migrate).await,
        Command::Migrate(migrate) => {
            logging::init(&config)?;
            let database = app::open_database(&config).await?;
            match migrate {
                MigrateCommand::Up => {
                    let applied = database.migrate_up().await?;
                    println!("applied {} migration(s){}", applied.len(), list_versions(&applied));
                }
                MigrateCommand::Down { steps } => {
                    let reverted = database.migrate_down(steps).await?;
                    println!("reverted {} migration(s){}", reverted.len(), list_versions(&reverted));
                }
                MigrateCommand::Status => {
                    for line in database.migration_status().await? {
                        println!("{:<16} {:<9} {}", line.version, line.state.as_str(), line.description);
                    }
                }
            }
            database.store().close().await;
            Ok(())
        }
        Command::User(user) => {
            let (database, application) = open_application(&config, Migrate::First).await?;
            let outcome = users::run(&application.state.auth, user).await;
            database.store().close().await;
            println!("{}", outcome?);
            Ok(())
        }
        Command::Tokens(command) => {
            let (database, application) = open_application(&config, Migrate::First).await?;
            let state = &application.state;
            let outcome = tokens::run(&state.sessions, &state.auth, command).await;
            database.store().close().await;
            println!("{}", outcome?);
            Ok(())
        }
        Command::Audit(AuditCommand::Verify) => {
            // Read-only: verifying must not change the schema it is checking.
            let (database, application) = open_application(&config, Migrate::No).await?;
            let verified = application.state.audit.verify().await;
            database.store().close().await;
            let report = verified.context("the audit log does not verify")?;
            let entries = |count: u64| format!("{count} {}", if count == 1 { "entry" } else { "entries" });
            println!("audit log verified: {}", entries(report.entries));
            // Then each chain that has had entries (PostgreSQL writes several side by side), the first always.
            for state in report.chains.iter().filter(|state| state.head.chain == FIRST_CHAIN || state.head.seq > 0) {
                let (checkpoint, head) = (&state.checkpoint, &state.head);
                let on_chain = u64::try_from(head.seq - checkpoint.seq).unwrap_or_default();
                println!(
                    "  chain {}: {}, #{} to #{} (head hash {})",
                    head.chain,
                    entries(on_chain),
                    checkpoint.seq + 1,
                    head.seq,
                    head.hash
                );
            }
            Ok(())
        }
        Command::Import(args) => {
            let (database, application) = open_application(&config, Migrate::First).await?;
            let state = &application.state;
            let outcome = import::run(&state.imports, &state.auth, args, config.imports.max_file_size).await;
            database.store().close().await;
            println!("{}", outcome?);
            Ok(())
        }
        Command::Keys(KeysCommand::Rotate) => {
            let (database, application) = open_application(&config, Migrate::First).await?;
            let context = RequestContext::command_line("keys rotate");
            let outcome = application.state.providers.reencrypt_credentials(&context).await;
            database.store().close().await;
            keys::print_rotation(&outcome?)
        }
        Command::Keys(command) => keys_command(&command),
        Command::Config(ConfigCommand::Check) => {
            println!("# configuration is valid\n{}", config.to_redacted_toml());
            Ok(())
        }
    }
}

/// Whether an administration command migrates the database before it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Migrate {
    First,
    No,
}

/// Logging, the database and the application, for commands that act through the same services as the API.
/// The caller closes the database when done.
async fn open_application(config: &Config, migrate: Migrate) -> anyhow::Result<(Database, app::Application)> {
    logging::init(config)?;
    let database = app::open_database(config).await?;
    if migrate == Migrate::First {
        database.migrate_up().await.context("migrating the database")?;
    }
    let application = app::build(config, &database)?;
    Ok((database, application))
}

fn keys_command(command: &KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::Generate { kid, kind } => {
            let key = keys::generate(*kind, kid.as_deref(), time::OffsetDateTime::now_utc().date())?;
            println!("{}", key.expose_secret());
            Ok(())
        }
        KeysCommand::Rotate => anyhow::bail!("keys rotate needs the application"),
    }
}

async fn serve(config: Config, no_migrate: bool) -> anyhow::Result<()> {
    let telemetry = logging::init_serving(&config)?;
    let database = app::open_database(&config).await?;
    if !no_migrate {
        let applied = database.migrate_up().await.context("migrating the database")?;
        if !applied.is_empty() {
            tracing::info!(count = applied.len(), "applied migrations");
        }
    }
    let application = app::build(&config, &database)?;
    let router = application.router(dashtam_api::router(application.state.clone()));
    let state = application.state;
    let listener = tokio::net::TcpListener::bind(config.bind)
        .await
        .with_context(|| format!("DASHTAM_BIND: cannot listen on {}", config.bind))?;
    let address = listener.local_addr().context("reading the bound address")?;
    tracing::info!(
        backend = state.store.backend().as_str(),
        shared_state = state.shared_state.kind(),
        "dashtam {} listening on http://{address}",
        env!("CARGO_PKG_VERSION")
    );
    if cfg!(feature = "benchmark-without-audit") {
        tracing::error!("built with the benchmark-without-audit feature: NOTHING IS WRITTEN TO THE AUDIT LOG");
    }
    let store = state.store.clone();
    // One signal stops the HTTP server, the mail worker and audit maintenance.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let stop_signal = move || {
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        }
    };
    let outbox = tokio::spawn(application.outbox.run(stop_signal()));
    let scheduler = config
        .sync
        .scheduler
        .then(|| tokio::spawn(app::schedule_syncs(state.sync.clone(), config.sync.tick, stop_signal())));
    let audit_maintenance = tokio::spawn({
        let (audit, clock, stopped) = (state.audit.clone(), state.clock.clone(), stop_signal());
        async move { app::maintain_audit_log(audit, clock, &config.audit, stopped).await }
    });
    let served = app::serve(listener, router, config.server.shutdown_timeout, async move {
        app::shutdown_signal().await;
        let _ = stop.send(true);
    })
    .await;
    if let Err(error) = outbox.await {
        tracing::error!(%error, "mail worker ended abnormally");
    }
    if let Some(Err(error)) = match scheduler {
        Some(scheduler) => Some(scheduler.await),
        None => None,
    } {
        tracing::error!(%error, "sync scheduler ended abnormally");
    }
    if let Err(error) = audit_maintenance.await {
        tracing::error!(%error, "audit maintenance ended abnormally");
    }
    store.close().await;
    // The spans of the last requests are still buffered; exporting them blocks, so off the async workers.
    if let Err(error) = tokio::task::spawn_blocking(move || telemetry.shutdown()).await {
        tracing::error!(%error, "flushing OpenTelemetry ended abnormally");
    }
    tracing::info!("stopped");
    served
}

fn list_versions(versions: &[i64]) -> String {
    if versions.is_empty() {
        String::new()
    } else {
        let joined: Vec<String> = versions.iter().map(i64::to_string).collect();
        format!(": {}", joined.join(", "))
    }
}
