//! The `dashtam` binary's library half: configuration, composition root and serving, reusable by the test
//! kit so tests start exactly what production starts.

pub mod app;
pub mod cli;
pub mod config;
pub mod import;
pub mod keys;
pub mod logging;
pub mod rate_limit_config;
pub mod telemetry;
pub mod tokens;
pub mod users;

pub use config::Config;
