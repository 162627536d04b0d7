//! Log output: human-readable in development, one JSON object per line in production. Handlers never log
//! headers or bodies, so `Authorization`, cookies and tokens cannot reach the log.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::FmtSpan;

use crate::config::Config;

/// Installs the global subscriber. Logs go to standard error so that command output on standard output
/// (`config check`, `migrate status`) stays clean for scripts.
pub fn init(config: &Config) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(&config.log.filter)
        .map_err(|error| anyhow::anyhow!("DASHTAM_LOG__FILTER (log.filter) is not a valid filter: {error}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_span_events(FmtSpan::NONE)
        // Colour codes help a person at a terminal; in files and log collectors they are noise.
        .with_ansi(std::io::stderr().is_terminal());
    let installed = if config.json_logs() {
        builder.json().flatten_event(true).with_current_span(true).with_span_list(false).try_init()
    } else {
        builder.compact().try_init()
    };
    installed.map_err(|error| anyhow::anyhow!("cannot install the logger: {error}"))
}
