//! Dashtam's domain: entities, the rules that govern them, and the ports (traits) through which the rules
//! reach storage and the outside world. Nothing here knows about HTTP, SQL, Redis or any network client.

pub mod audit;
pub mod auth;
pub mod clock;
pub mod connector;
pub mod context;
pub mod device;
pub mod finance;
pub mod ids;
pub mod imports;
pub mod ledger;
pub mod ledger_service;
pub mod mail;
pub mod money;
pub mod password;
pub mod ports;
pub mod providers;
pub mod rate_limit;
pub mod secrets;
pub mod session;
pub mod sessions;
pub mod statement;
pub mod sync;
pub mod tokens;
pub mod user;

pub use clock::{Clock, SystemClock};
pub use context::{Actor, RequestContext};
pub use ids::UserId;
pub use session::{
    NewSession, OneTimePurpose, OneTimeToken, RefreshTokenRecord, RefreshTokenState, Session, SessionAuthState,
    SessionEndReason, SessionId, TokenDigest,
};
pub use user::{Email, EmailError, NewUser, Role, SecurityConfig, User, UserName, UserNameError};
