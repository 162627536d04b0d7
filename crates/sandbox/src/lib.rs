//! The sandbox brokerage: a pretend Charles Schwab for development and tests.
//!
//! It answers Schwab's OAuth 2.0 and Trader API request and response shapes (`docs/schwab-wire.md`) over
//! deterministic, realistic data, so the real Schwab connector can be run end to end without a brokerage
//! account. The server nests [`Sandbox::router`] at `/sandbox`:
//!
//! - `GET|POST /v1/oauth/authorize` — the consent page and the user's decision;
//! - `POST /v1/oauth/token` — authorization-code and refresh-token grants (HTTP Basic client authentication);
//! - `GET /trader/v1/...` — account numbers, user preferences, accounts with positions, transactions;
//! - `/control/...` — an unauthenticated JSON API through which tests make a client misbehave and move the
//!   sandbox's calendar. It exists only while the sandbox is switched on, which production deployments don't do.
//!
//! All state (codes, tokens, knobs, the day offset) lives in this process and is lost on restart; the data
//! itself needs no state, since it is a pure function of the customer, the date and the client's volume knob.

mod control;
mod data;
mod faults;
mod oauth;
mod pages;
mod rng;
mod trader;
mod wire;

pub use oauth::{ACCESS_TOKEN_PREFIX, REFRESH_TOKEN_PREFIX};

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
};

use axum::Router;
use dashtam_domain::Clock;
use secrecy::SecretString;
use time::{Date, Duration, OffsetDateTime};

use crate::faults::ClientControl;

/// How the sandbox is set up: the one OAuth client it knows and the clock it tells time by.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// The OAuth client id the connector presents.
    pub client_id: String,
    /// The client's secret, checked with HTTP Basic authentication at the token endpoint.
    pub client_secret: SecretString,
    /// The redirect URIs a consent may send the browser back to; a request must name one of them exactly.
    pub redirect_uris: Vec<String>,
    /// The source of "now": token and code expiry, and "today" for the data (plus the control API's day offset).
    pub clock: Arc<dyn Clock>,
}

/// The sandbox brokerage. Cloning is cheap and every clone shares the same state.
#[derive(Debug, Clone)]
pub struct Sandbox {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: SandboxConfig,
    state: Mutex<State>,
}

/// Everything that changes while the sandbox runs. The lock is never held across an `.await`.
#[derive(Debug, Default)]
struct State {
    oauth: oauth::Store,
    clients: HashMap<String, ClientControl>,
    /// Days added to the clock's date to make the data's "today".
    day_offset: u32,
}

impl Sandbox {
    /// A sandbox with no codes, tokens or knobs yet.
    pub fn new(config: SandboxConfig) -> Self {
        Self { inner: Arc::new(Inner { config, state: Mutex::new(State::default()) }) }
    }

    /// The sandbox's routes, meant to be nested (the server uses `/sandbox`); paths are relative to that base.
    pub fn router(&self) -> Router {
        Router::new().merge(oauth::routes()).merge(trader::routes()).merge(control::routes()).with_state(self.clone())
    }

    fn config(&self) -> &SandboxConfig {
        &self.inner.config
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the maps half-updated in a way that matters to a dev tool.
        self.inner.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn now(&self) -> OffsetDateTime {
        self.inner.config.clock.now()
    }

    /// The data's "today": the clock's UTC date moved by the control API's day offset.
    fn today(&self) -> Date {
        let offset = self.state().day_offset;
        self.now().date().saturating_add(Duration::days(i64::from(offset)))
    }

    /// Runs `f` on a client's knobs and counters (created with defaults on first use).
    fn with_client<R>(&self, client_id: &str, f: impl FnOnce(&mut ClientControl) -> R) -> R {
        let mut state = self.state();
        f(state.clients.entry(client_id.to_owned()).or_default())
    }
}
