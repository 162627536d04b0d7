//! The one place where domain and storage errors become problems.

use dashtam_domain::ports::StoreError;

use crate::problem::Problem;

impl From<StoreError> for Problem {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Unavailable(source) => {
                tracing::error!(error = %source, "database unavailable");
                Problem::unavailable()
            }
            other => {
                tracing::error!(error = ?other, "storage failure");
                Problem::internal()
            }
        }
    }
}
