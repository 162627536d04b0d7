//! Provider connectors: Schwab (OAuth 2.0, also serving the sandbox brokerage) and Alpaca (API keys), over one
//! hardened HTTP client each.

pub mod alpaca;
mod decode;
pub mod http;
pub mod schwab;

pub use alpaca::{AlpacaConnector, AlpacaSettings};
pub use http::{HttpTimeouts, ProviderSetupError};
pub use schwab::{SchwabConnector, SchwabSettings};
