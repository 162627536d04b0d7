//! The command line (API.md §8).

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Dashtam: self-hostable financial data aggregation.
#[derive(Debug, Parser)]
#[command(name = "dashtam", version, about)]
pub struct Cli {
    /// A TOML configuration file; environment variables override it.
    #[arg(long, global = true, env = "DASHTAM_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// What to do; serves when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply pending migrations, then serve until SIGINT/SIGTERM.
    Serve {
        /// Do not migrate first (when migrations are run as a separate deployment step).
        #[arg(long)]
        no_migrate: bool,
    },
    /// Manage the database schema.
    #[command(subcommand)]
    Migrate(MigrateCommand),
    /// Inspect the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Manage accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// Inspect the audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Manage keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Breach response.
    #[command(subcommand)]
    Tokens(TokensCommand),
    /// Import a statement file (OFX, QFX or CSV) for a user, as `POST /api/v1/imports` does.
    Import(ImportArgs),
}

/// `dashtam import FILE --user E`.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The statement file.
    pub file: std::path::PathBuf,
    /// The owner's email address.
    #[arg(long, value_name = "EMAIL")]
    pub user: String,
    /// The account to import into (required for CSV files, which do not name one).
    #[arg(long, value_name = "UUID")]
    pub account_id: Option<uuid::Uuid>,
    /// `ofx`, `qfx` or `csv`; detected when left out.
    #[arg(long)]
    pub format: Option<String>,
    /// A JSON column mapping for CSV files (see API.md §6).
    #[arg(long, value_name = "JSON")]
    pub csv_mapping: Option<String>,
}

/// `dashtam tokens …`.
#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Rotate one user's tokens (`--user`) or everyone's (`--global`).
    Rotate {
        /// The user whose tokens to rotate.
        #[arg(long, value_name = "EMAIL", conflicts_with = "global", required_unless_present = "global")]
        user: Option<String>,
        /// Rotate every user's tokens.
        #[arg(long)]
        global: bool,
        /// Why (10–500 characters for a user, 20–1000 for a global rotation); recorded in the audit log.
        #[arg(long)]
        reason: String,
        /// Global only: how long existing tokens keep working (0–3600).
        #[arg(long, default_value_t = 0, requires = "global", value_parser = clap::value_parser!(u64).range(0..=dashtam_domain::sessions::MAX_GRACE_SECONDS))]
        grace_seconds: u64,
    },
}

/// `dashtam audit …`.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the audit hash chain; exits non-zero naming the first bad entry.
    Verify,
}

/// `dashtam keys …`.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Print a new random key (32 bytes from the OS) on one line: `kid:base64key` for a keyring, bare base64
    /// for the token-hash key. Reads no configuration.
    Generate {
        /// The new key's id; defaults to `k` and today's UTC date (`k20250131`).
        #[arg(long)]
        kid: Option<String>,
        /// Which setting the key is for.
        #[arg(long, value_enum, default_value_t = KeyKind::Encryption)]
        kind: KeyKind,
    },
    /// Re-encrypt every stored provider credential under the active encryption key and report the counts;
    /// exits non-zero when a credential does not decrypt. Safe to interrupt and run again.
    Rotate,
}

/// The three kinds of key the server uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KeyKind {
    /// `DASHTAM_KEYS__SIGNING`: signs access tokens.
    Signing,
    /// `DASHTAM_KEYS__ENCRYPTION`: encrypts stored provider credentials.
    Encryption,
    /// `DASHTAM_KEYS__TOKEN_HASH`: keys the hashes of refresh and one-time tokens.
    TokenHash,
}

impl KeyKind {
    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Signing => "signing",
            Self::Encryption => "encryption",
            Self::TokenHash => "token-hash",
        }
    }
}

/// `dashtam user …`.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a verified account; the password is read from standard input (or prompted for on a terminal).
    Create {
        /// Login address.
        #[arg(long)]
        email: String,
        /// Display name.
        #[arg(long)]
        name: String,
        /// Make it an administrator.
        #[arg(long)]
        admin: bool,
    },
    /// Make an account an administrator.
    Promote {
        /// Login address.
        email: String,
    },
    /// Make an administrator an ordinary user.
    Demote {
        /// Login address.
        email: String,
    },
    /// Disable an account and end all its sessions at once.
    Disable {
        /// Login address.
        email: String,
    },
}

impl UserCommand {
    /// The command as typed (`user promote`), as recorded in the audit log.
    pub fn name(&self) -> &'static str {
        match self {
            UserCommand::Create { .. } => "user create",
            UserCommand::Promote { .. } => "user promote",
            UserCommand::Demote { .. } => "user demote",
            UserCommand::Disable { .. } => "user disable",
        }
    }
}

/// `dashtam migrate …`.
#[derive(Debug, Subcommand)]
pub enum MigrateCommand {
    /// Apply every pending migration.
    Up,
    /// Roll back the newest applied migrations.
    Down {
        /// How many to roll back.
        #[arg(long, default_value_t = 1)]
        steps: usize,
    },
    /// List applied and pending migrations.
    Status,
}

/// `dashtam config …`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the configuration and print it with every secret redacted.
    Check,
}
