//! Typed identifiers. Every id is a UUIDv7, so ids sort by creation time and index well.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Declares a UUIDv7 identifier newtype: generated time-ordered, wrapped from storage, serialised as the bare
/// UUID.
macro_rules! uuid_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A new, time-ordered id.
            pub fn generate() -> Self {
                Self(Uuid::now_v7())
            }

            /// Wraps an id read from storage or parsed from a request.
            pub fn from_uuid(id: Uuid) -> Self {
                Self(id)
            }

            /// The underlying UUID.
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

uuid_id!(
    /// Identifies a user account.
    UserId
);

uuid_id!(
    /// Identifies a session; it is the `sid` claim of access tokens.
    SessionId
);

uuid_id!(
    /// Identifies a user's connection to a provider.
    ProviderId
);

uuid_id!(
    /// Identifies an account.
    AccountId
);

uuid_id!(
    /// Identifies a holding.
    HoldingId
);

uuid_id!(
    /// Identifies a transaction.
    TransactionId
);

uuid_id!(
    /// Identifies a statement import.
    ImportId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_version_7_and_increase() {
        let first = UserId::generate();
        let second = UserId::generate();
        assert_eq!(first.as_uuid().get_version_num(), 7);
        assert!(second > first);
    }
}
