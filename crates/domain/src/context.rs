//! Where a use case was asked for: the request's id, route and client, or the operator's command line. Carried
//! into sessions (device and address) and into every audit entry.

use crate::ids::UserId;
use crate::session::SessionId;

/// Who asked for a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    /// A signed-in user (their session is in the context).
    User(UserId),
    /// Someone not signed in (registering, logging in, following an email link).
    Anonymous,
    /// An operator at the command line.
    Operator,
    /// The server itself (scheduled work).
    System,
}

impl Actor {
    /// The stored form: the user's id, or `anonymous`, `operator`, `system`.
    pub fn to_stored(self) -> String {
        match self {
            Actor::User(id) => id.to_string(),
            Actor::Anonymous => "anonymous".to_owned(),
            Actor::Operator => "operator".to_owned(),
            Actor::System => "system".to_owned(),
        }
    }
}

/// The context of one use case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestContext {
    /// Who is acting.
    pub actor: Actor,
    /// The caller's session, when signed in.
    pub session_id: Option<SessionId>,
    /// The id the response carries in `X-Request-ID`.
    pub request_id: Option<String>,
    /// HTTP method, or `CLI` for operator commands.
    pub method: Option<String>,
    /// The route template (`/api/v1/auth/sessions/{id}`) or the command (`user promote`).
    pub route: Option<String>,
    /// The concrete path requested.
    pub path: Option<String>,
    /// The client's address (see the trusted-proxy rule in the HTTP layer).
    pub ip_address: Option<String>,
    /// The client's `User-Agent`, truncated to [`MAX_USER_AGENT_CHARS`](crate::device::MAX_USER_AGENT_CHARS).
    pub user_agent: Option<String>,
    /// The OpenTelemetry trace id, when tracing is on.
    pub trace_id: Option<String>,
}

impl RequestContext {
    /// A context with nothing known: for tests and internal calls.
    pub fn empty(actor: Actor) -> Self {
        Self {
            actor,
            session_id: None,
            request_id: None,
            method: None,
            route: None,
            path: None,
            ip_address: None,
            user_agent: None,
            trace_id: None,
        }
    }

    /// An operator command such as `user promote`.
    pub fn command_line(command: &str) -> Self {
        Self { method: Some("CLI".to_owned()), route: Some(command.to_owned()), ..Self::empty(Actor::Operator) }
    }

    /// The same request, now known to come from `user` in `session`.
    pub fn signed_in(self, user: UserId, session: SessionId) -> Self {
        Self { actor: Actor::User(user), session_id: Some(session), ..self }
    }

    /// The user the context acts for, when signed in.
    pub fn user_id(&self) -> Option<UserId> {
        match self.actor {
            Actor::User(id) => Some(id),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actors_have_stable_stored_forms() {
        let id = UserId::generate();
        assert_eq!(Actor::User(id).to_stored(), id.to_string());
        assert_eq!(Actor::Operator.to_stored(), "operator");
        assert_eq!(RequestContext::command_line("user promote").route.as_deref(), Some("user promote"));
    }
}
