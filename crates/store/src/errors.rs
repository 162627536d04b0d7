//! Translation of driver errors into the domain's [`StoreError`].

use dashtam_domain::ports::StoreError;

/// Classifies a sqlx error by what a service can do about it.
pub(crate) fn store_error(error: sqlx::Error) -> StoreError {
    match error {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(db.into()),
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(error.into()),
        // A server that is shutting down or restarting reports itself through the database error channel.
        sqlx::Error::Database(db) if is_server_going_away(db.code().as_deref()) => StoreError::Unavailable(db.into()),
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => StoreError::Corrupt(error.to_string()),
        other => StoreError::Other(other.into()),
    }
}

/// PostgreSQL SQLSTATEs of class 57P (operator intervention: admin shutdown, crash shutdown, cannot connect
/// now) and 08 (connection exception).
fn is_server_going_away(code: Option<&str>) -> bool {
    code.is_some_and(|code| code.starts_with("57P") || code.starts_with("08"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shutdown_codes_are_unavailability() {
        assert!(is_server_going_away(Some("57P01")));
        assert!(is_server_going_away(Some("08006")));
        assert!(!is_server_going_away(Some("23505")));
        assert!(!is_server_going_away(None));
    }

    #[test]
    fn pool_exhaustion_is_unavailability() {
        assert!(matches!(store_error(sqlx::Error::PoolTimedOut), StoreError::Unavailable(_)));
        assert!(matches!(store_error(sqlx::Error::RowNotFound), StoreError::Other(_)));
    }
}
