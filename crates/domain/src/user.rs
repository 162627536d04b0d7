//! User accounts and the global security settings that govern their tokens.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::ids::UserId;

/// What a user may do. Admins may additionally use the breach-response and audit endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// An ordinary account holder.
    User,
    /// An operator with access to the admin endpoints.
    Admin,
}

impl Role {
    /// The stable name stored in the database and shown in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Admin => "admin",
        }
    }
}

/// A role name that is neither `user` nor `admin`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {0:?}")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name {
            "user" => Ok(Role::User),
            "admin" => Ok(Role::Admin),
            other => Err(UnknownRole(other.to_owned())),
        }
    }
}

/// An email address, trimmed and lower-cased so that one address maps to one account however it is typed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

/// Why a string is not an acceptable email address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    /// Nothing but whitespace.
    #[error("email is empty")]
    Empty,
    /// Longer than the 254 characters a mail server will accept.
    #[error("email is longer than 254 characters")]
    TooLong,
    /// Not of the form `local@domain`.
    #[error("email is not a valid address")]
    Invalid,
}

impl Email {
    /// The longest address SMTP can carry (RFC 5321 path limit minus the angle brackets).
    pub const MAX_LEN: usize = 254;

    /// Normalises and validates an address typed by a person.
    pub fn parse(raw: &str) -> Result<Self, EmailError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(EmailError::Empty);
        }
        // Measured after lower-casing, which can lengthen text (`İ` becomes two code points), so a stored
        // address always parses again.
        let normalised = trimmed.to_lowercase();
        if normalised.chars().count() > Self::MAX_LEN {
            return Err(EmailError::TooLong);
        }
        let options = email_address::Options::default().without_display_text();
        let parsed =
            email_address::EmailAddress::parse_with_options(&normalised, options).map_err(|_| EmailError::Invalid)?;
        // Addresses without a dot in the domain (`user@localhost`) cannot receive mail from the internet.
        if !parsed.domain().contains('.') {
            return Err(EmailError::Invalid);
        }
        Ok(Self(normalised))
    }

    /// The normalised address.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part before the `@`, which the password policy refuses inside a password. Split at the last `@`:
    /// a domain cannot contain one, a quoted local part can.
    pub fn local_part(&self) -> &str {
        self.0.rsplit_once('@').map_or(self.0.as_str(), |(local, _)| local)
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A person's display name: 1 to 100 characters after trimming, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserName(String);

/// Why a string is not an acceptable display name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserNameError {
    /// Nothing but whitespace.
    #[error("name is empty")]
    Empty,
    /// Over 100 characters.
    #[error("name is longer than 100 characters")]
    TooLong,
    /// Contains a control character such as a newline, which would let it forge lines in emails.
    #[error("name contains a control character")]
    ControlCharacter,
}

impl UserName {
    /// The longest name accepted, in Unicode code points.
    pub const MAX_LEN: usize = 100;

    /// Validates a name typed by a person.
    pub fn parse(raw: &str) -> Result<Self, UserNameError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(UserNameError::Empty);
        }
        if trimmed.chars().count() > Self::MAX_LEN {
            return Err(UserNameError::TooLong);
        }
        if trimmed.chars().any(char::is_control) {
            return Err(UserNameError::ControlCharacter);
        }
        Ok(Self(trimmed.to_owned()))
    }

    /// The validated name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A user account as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    /// The account's id.
    pub id: UserId,
    /// The normalised login address.
    pub email: Email,
    /// Display name.
    pub name: UserName,
    /// The PHC-format password hash (Argon2id, or bcrypt awaiting upgrade).
    pub password_hash: String,
    /// What the user may do.
    pub role: Role,
    /// When the address was proven to belong to the user; login requires it.
    pub email_verified_at: Option<OffsetDateTime>,
    /// When an operator disabled the account; a disabled account cannot log in.
    pub disabled_at: Option<OffsetDateTime>,
    /// Raised by a user-level token rotation; access tokens carrying an older value are refused.
    pub token_version: i64,
    /// Consecutive failed logins since the last success.
    pub failed_login_count: i32,
    /// Logins are refused until this instant.
    pub locked_until: Option<OffsetDateTime>,
    /// When the account was created.
    pub created_at: OffsetDateTime,
    /// When the row last changed.
    pub updated_at: OffsetDateTime,
    /// When the user last logged in successfully.
    pub last_login_at: Option<OffsetDateTime>,
}

impl fmt::Debug for User {
    // The hash is left out so that a logged `User` never helps an offline cracking attempt.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("email", &self.email)
            .field("name", &self.name)
            .field("password_hash", &"[redacted]")
            .field("role", &self.role)
            .field("email_verified_at", &self.email_verified_at)
            .field("disabled_at", &self.disabled_at)
            .field("token_version", &self.token_version)
            .field("failed_login_count", &self.failed_login_count)
            .field("locked_until", &self.locked_until)
            .field("created_at", &self.created_at)
            .field("updated_at", &self.updated_at)
            .field("last_login_at", &self.last_login_at)
            .finish()
    }
}

/// What is needed to create an account.
#[derive(Clone)]
pub struct NewUser {
    /// The id to create the account under.
    pub id: UserId,
    /// The normalised login address.
    pub email: Email,
    /// Display name.
    pub name: UserName,
    /// The PHC-format password hash.
    pub password_hash: String,
    /// Initial role.
    pub role: Role,
    /// Set when the account is created already verified (by an operator on the command line).
    pub email_verified_at: Option<OffsetDateTime>,
    /// Creation time, also the first `updated_at`.
    pub created_at: OffsetDateTime,
}

impl fmt::Debug for NewUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewUser")
            .field("id", &self.id)
            .field("email", &self.email)
            .field("name", &self.name)
            .field("password_hash", &"[redacted]")
            .field("role", &self.role)
            .field("email_verified_at", &self.email_verified_at)
            .field("created_at", &self.created_at)
            .finish()
    }
}

/// Installation-wide token settings, changed by a global token rotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityConfig {
    /// Access tokens whose global version is below this are refused.
    pub global_min_token_version: i64,
    /// When the last global rotation happened.
    pub last_rotation_at: Option<OffsetDateTime>,
    /// Why it happened.
    pub last_rotation_reason: Option<String>,
    /// Who started it.
    pub last_rotated_by: Option<UserId>,
    /// When it takes effect (its time plus its grace period).
    pub global_rotation_enforced_at: Option<OffsetDateTime>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_is_trimmed_and_lowercased() {
        let email = Email::parse("  Alice.Smith@Example.COM ").expect("valid");
        assert_eq!(email.as_str(), "alice.smith@example.com");
        assert_eq!(email.local_part(), "alice.smith");
    }

    #[test]
    fn email_rejects_bad_shapes() {
        assert_eq!(Email::parse("   "), Err(EmailError::Empty));
        assert_eq!(Email::parse("no-at-sign"), Err(EmailError::Invalid));
        assert_eq!(Email::parse("a@localhost"), Err(EmailError::Invalid));
        assert_eq!(Email::parse("Alice <a@example.com>"), Err(EmailError::Invalid));
        let long = format!("{}@example.com", "a".repeat(250));
        assert_eq!(Email::parse(&long), Err(EmailError::TooLong));
    }

    #[test]
    fn user_name_bounds() {
        assert_eq!(UserName::parse(" Ada ").expect("valid").as_str(), "Ada");
        assert_eq!(UserName::parse(""), Err(UserNameError::Empty));
        assert_eq!(UserName::parse(&"é".repeat(100)).map(|n| n.as_str().chars().count()), Ok(100));
        assert_eq!(UserName::parse(&"é".repeat(101)), Err(UserNameError::TooLong));
        assert_eq!(UserName::parse("Ada\nBcc: x"), Err(UserNameError::ControlCharacter));
    }

    #[test]
    fn role_round_trips() {
        for role in [Role::User, Role::Admin] {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        }
        assert!("root".parse::<Role>().is_err());
    }

    #[test]
    fn debug_never_shows_the_hash() {
        let user = NewUser {
            id: UserId::generate(),
            email: Email::parse("a@example.com").expect("valid"),
            name: UserName::parse("A").expect("valid"),
            password_hash: "$argon2id$secret".into(),
            role: Role::User,
            email_verified_at: None,
            created_at: OffsetDateTime::UNIX_EPOCH,
        };
        assert!(!format!("{user:?}").contains("argon2id"));
    }
}
