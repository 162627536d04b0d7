//! Outgoing email. Messages are queued in the database inside the transaction of the change that causes
//! them (an outbox), and a worker delivers them after commit, so a slow or failing mail server never slows
//! or fails a request, and no email is sent for a change that rolled back.

use time::OffsetDateTime;
use uuid::Uuid;

use crate::user::Email;

/// A rendered message ready to queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingEmail {
    /// Its id.
    pub id: Uuid,
    /// The recipient.
    pub to: Email,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub text_body: String,
    /// HTML body.
    pub html_body: String,
    /// When it was queued.
    pub created_at: OffsetDateTime,
}

/// A queued message claimed by a delivery worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedEmail {
    /// The message.
    pub email: OutgoingEmail,
    /// Delivery attempts made before this one.
    pub attempts: i32,
}

/// Why the product writes to a user. Each is rendered into an [`OutgoingEmail`] by an [`EmailComposer`].
#[derive(Debug, Clone)]
pub enum Notification {
    /// Confirm the address: carries the verification token for the link.
    VerifyEmail {
        /// The account holder's name.
        name: String,
        /// The one-time token (the link is built from `DASHTAM_APP_URL`).
        token: secrecy::SecretString,
    },
    /// The address is verified; welcome.
    Welcome {
        /// The account holder's name.
        name: String,
    },
    /// Someone tried to register this (already registered) address.
    AlreadyRegistered {
        /// The account holder's name.
        name: String,
    },
    /// Set a new password: carries the reset token for the link.
    PasswordReset {
        /// The account holder's name.
        name: String,
        /// The one-time token.
        token: secrecy::SecretString,
    },
    /// The password was changed or reset.
    PasswordChanged {
        /// The account holder's name.
        name: String,
        /// When.
        at: OffsetDateTime,
    },
    /// Too many failed logins locked the account.
    AccountLocked {
        /// The account holder's name.
        name: String,
        /// Until when.
        until: OffsetDateTime,
    },
    /// A rotated refresh token was used again, so the session was ended.
    RefreshTokenReuse {
        /// The account holder's name.
        name: String,
        /// When.
        at: OffsetDateTime,
        /// Where the reuse came from.
        ip_address: Option<String>,
        /// The client that presented it.
        user_agent: Option<String>,
    },
    /// A login from a device and place not seen before for this account.
    NewDeviceLogin {
        /// The account holder's name.
        name: String,
        /// When.
        at: OffsetDateTime,
        /// The device, e.g. "Firefox on Linux".
        device: Option<String>,
        /// Approximate location, when known.
        location: Option<String>,
        /// The address it came from.
        ip_address: Option<String>,
        /// The new session, so the owner can end it.
        session_id: crate::session::SessionId,
    },
}

/// Renders notifications (text and HTML, links from the front end's base URL).
pub trait EmailComposer: Send + Sync + std::fmt::Debug {
    /// The message for `notification`, addressed to `to`, created at `now`.
    fn compose(&self, to: &Email, notification: &Notification, now: OffsetDateTime) -> OutgoingEmail;
}
