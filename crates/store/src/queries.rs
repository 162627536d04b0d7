//! The SQL both backends share, written once. SQLite and PostgreSQL agree on `$n` placeholders,
//! `RETURNING`, and (through sqlx) on how UUIDs and timestamps are bound, so each statement below serves
//! both; the macro stamps out the trait implementations for each backend's store and transaction types.

/// The `users` columns in [`UserRow`](crate::rows::UserRow) order, as a literal so statements can be built
/// with `concat!` at compile time.
macro_rules! user_columns {
    () => {
        "id, email, name, password_hash, role, email_verified_at, disabled_at, token_version, \
         failed_login_count, locked_until, created_at, updated_at, last_login_at"
    };
}

/// Implements [`Store`](dashtam_domain::ports::Store) and [`StoreTx`](dashtam_domain::ports::StoreTx) for
/// one backend. The backend module supplies `$store` (with `pool`, `begin_write` and `backend`) and `$tx`
/// (wrapping a `sqlx::Transaction`).
macro_rules! impl_store_ports {
    ($store:ty, $tx:ident) => {
        #[async_trait::async_trait]
        impl dashtam_domain::ports::Store for $store {
            fn backend(&self) -> dashtam_domain::ports::StoreBackend {
                Self::BACKEND
            }

            async fn ping(&self) -> Result<(), dashtam_domain::ports::StoreError> {
                sqlx::query("SELECT 1")
                    .execute(&self.pool)
                    .await
                    .map(drop)
                    .map_err($crate::errors::store_error)
            }

            fn pool_stats(&self) -> dashtam_domain::ports::PoolStats {
                dashtam_domain::ports::PoolStats {
                    open: self.pool.size(),
                    idle: u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX),
                    max: self.pool.options().get_max_connections(),
                }
            }

            async fn close(&self) {
                self.pool.close().await;
            }

            async fn begin(
                &self,
            ) -> Result<Box<dyn dashtam_domain::ports::StoreTx>, dashtam_domain::ports::StoreError> {
                let tx = self.begin_write().await.map_err($crate::errors::store_error)?;
                Ok(Box::new($tx { tx }))
            }

            async fn user_by_id(
                &self,
                id: dashtam_domain::UserId,
            ) -> Result<Option<dashtam_domain::User>, dashtam_domain::ports::StoreError> {
                let row = sqlx::query_as(concat!(
                    "SELECT ",
                    $crate::queries::user_columns!(),
                    " FROM users WHERE id = $1"
                ))
                    .bind(id.as_uuid())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err($crate::errors::store_error)?;
                $crate::rows::user_from_row(row)
            }

            async fn user_by_email(
                &self,
                email: &dashtam_domain::Email,
            ) -> Result<Option<dashtam_domain::User>, dashtam_domain::ports::StoreError> {
                let row = sqlx::query_as(concat!(
                    "SELECT ",
                    $crate::queries::user_columns!(),
                    " FROM users WHERE email = $1"
                ))
                    .bind(email.as_str())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err($crate::errors::store_error)?;
                $crate::rows::user_from_row(row)
            }

            async fn security_config(
                &self,
            ) -> Result<dashtam_domain::SecurityConfig, dashtam_domain::ports::StoreError> {
                let row: $crate::rows::SecurityConfigRow = sqlx::query_as(
                    "SELECT global_min_token_version, last_rotation_at, last_rotation_reason, last_rotated_by \
                     FROM security_config WHERE id = 1",
                )
                .fetch_one(&self.pool)
                .await
                .map_err($crate::errors::store_error)?;
                Ok(row.into())
            }
        }

        #[async_trait::async_trait]
        impl dashtam_domain::ports::StoreTx for $tx {
            async fn insert_user(
                &mut self,
                user: &dashtam_domain::NewUser,
            ) -> Result<dashtam_domain::User, dashtam_domain::ports::StoreError> {
                let row: $crate::rows::UserRow = sqlx::query_as(concat!(
                    "INSERT INTO users (id, email, name, password_hash, role, email_verified_at, created_at, \
                     updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING ",
                    $crate::queries::user_columns!()
                ))
                    .bind(user.id.as_uuid())
                    .bind(user.email.as_str())
                    .bind(user.name.as_str())
                    .bind(&user.password_hash)
                    .bind(user.role.as_str())
                    .bind(user.email_verified_at.map($crate::rows::utc))
                    .bind($crate::rows::utc(user.created_at))
                    .fetch_one(&mut *self.tx)
                    .await
                    .map_err($crate::errors::store_error)?;
                dashtam_domain::User::try_from(row)
            }

            async fn update_user_name(
                &mut self,
                id: dashtam_domain::UserId,
                name: &dashtam_domain::UserName,
                now: time::OffsetDateTime,
            ) -> Result<Option<dashtam_domain::User>, dashtam_domain::ports::StoreError> {
                let row = sqlx::query_as(concat!(
                    "UPDATE users SET name = $2, updated_at = $3 WHERE id = $1 RETURNING ",
                    $crate::queries::user_columns!()
                ))
                    .bind(id.as_uuid())
                    .bind(name.as_str())
                    .bind($crate::rows::utc(now))
                    .fetch_optional(&mut *self.tx)
                    .await
                    .map_err($crate::errors::store_error)?;
                $crate::rows::user_from_row(row)
            }

            async fn set_user_role(
                &mut self,
                id: dashtam_domain::UserId,
                role: dashtam_domain::Role,
                now: time::OffsetDateTime,
            ) -> Result<Option<dashtam_domain::User>, dashtam_domain::ports::StoreError> {
                let row = sqlx::query_as(concat!(
                    "UPDATE users SET role = $2, updated_at = $3 WHERE id = $1 RETURNING ",
                    $crate::queries::user_columns!()
                ))
                    .bind(id.as_uuid())
                    .bind(role.as_str())
                    .bind($crate::rows::utc(now))
                    .fetch_optional(&mut *self.tx)
                    .await
                    .map_err($crate::errors::store_error)?;
                $crate::rows::user_from_row(row)
            }

            async fn commit(self: Box<Self>) -> Result<(), dashtam_domain::ports::StoreError> {
                self.tx.commit().await.map_err($crate::errors::store_error)
            }
        }
    };
}

pub(crate) use {impl_store_ports, user_columns};
