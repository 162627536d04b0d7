//! The sandbox brokerage over real HTTP on 127.0.0.1, as the Schwab connector will meet it.

mod control;
mod oauth;
mod properties;
mod support;
mod trader;
