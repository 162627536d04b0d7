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

            async fn session_by_id(
                &self,
                id: dashtam_domain::SessionId,
            ) -> Result<Option<dashtam_domain::Session>, dashtam_domain::ports::StoreError> {
                let row: Option<$crate::rows::SessionRow> = sqlx::query_as(concat!(
                    "SELECT ",
                    $crate::queries::session_columns!(),
                    " FROM sessions WHERE id = $1"
                ))
                .bind(id.as_uuid())
                .fetch_optional(&self.pool)
                .await
                .map_err($crate::errors::store_error)?;
                row.map(dashtam_domain::Session::try_from).transpose()
            }

            async fn refresh_token_by_digest(
                &self,
                digest: &dashtam_domain::TokenDigest,
            ) -> Result<Option<dashtam_domain::RefreshTokenRecord>, dashtam_domain::ports::StoreError> {
                let row: Option<$crate::rows::RefreshTokenRow> = sqlx::query_as(
                    "SELECT id, session_id, created_at, rotated_at, replaced_by FROM refresh_tokens \
                     WHERE token_hash = $1",
                )
                .bind(&digest.0[..])
                .fetch_optional(&self.pool)
                .await
                .map_err($crate::errors::store_error)?;
                Ok(row.map(Into::into))
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

            async fn insert_session(
                &mut self,
                session: &dashtam_domain::NewSession,
            ) -> Result<dashtam_domain::Session, dashtam_domain::ports::StoreError> {
                let row: $crate::rows::SessionRow = sqlx::query_as(concat!(
                    "INSERT INTO sessions (id, user_id, user_agent, ip_address, created_at, last_activity_at, \
                     expires_at) VALUES ($1, $2, $3, $4, $5, $5, $6) RETURNING ",
                    $crate::queries::session_columns!()
                ))
                .bind(session.id.as_uuid())
                .bind(session.user_id.as_uuid())
                .bind(session.user_agent.as_deref())
                .bind(session.ip_address.as_deref())
                .bind($crate::rows::utc(session.created_at))
                .bind($crate::rows::utc(session.expires_at))
                .fetch_one(&mut *self.tx)
                .await
                .map_err($crate::errors::store_error)?;
                dashtam_domain::Session::try_from(row)
            }

            async fn end_session(
                &mut self,
                id: dashtam_domain::SessionId,
                reason: dashtam_domain::SessionEndReason,
                now: time::OffsetDateTime,
            ) -> Result<bool, dashtam_domain::ports::StoreError> {
                let result = sqlx::query(
                    "UPDATE sessions SET revoked_at = $2, revoked_reason = $3 WHERE id = $1 AND revoked_at IS NULL",
                )
                .bind(id.as_uuid())
                .bind($crate::rows::utc(now))
                .bind(reason.as_str())
                .execute(&mut *self.tx)
                .await
                .map_err($crate::errors::store_error)?;
                Ok(result.rows_affected() == 1)
            }

            async fn insert_refresh_token(
                &mut self,
                id: uuid::Uuid,
                session_id: dashtam_domain::SessionId,
                digest: &dashtam_domain::TokenDigest,
                now: time::OffsetDateTime,
            ) -> Result<dashtam_domain::RefreshTokenRecord, dashtam_domain::ports::StoreError> {
                let row: $crate::rows::RefreshTokenRow = sqlx::query_as(
                    "INSERT INTO refresh_tokens (id, session_id, token_hash, created_at) VALUES ($1, $2, $3, $4) \
                     RETURNING id, session_id, created_at, rotated_at, replaced_by",
                )
                .bind(id)
                .bind(session_id.as_uuid())
                .bind(&digest.0[..])
                .bind($crate::rows::utc(now))
                .fetch_one(&mut *self.tx)
                .await
                .map_err($crate::errors::store_error)?;
                Ok(row.into())
            }

            async fn rotate_refresh_token(
                &mut self,
                digest: &dashtam_domain::TokenDigest,
                replaced_by: uuid::Uuid,
                now: time::OffsetDateTime,
            ) -> Result<Option<dashtam_domain::RefreshTokenRecord>, dashtam_domain::ports::StoreError> {
                // The `rotated_at IS NULL` guard makes this the compare-and-set that lets exactly one of two
                // concurrent refreshes with the same token win.
                let row: Option<$crate::rows::RefreshTokenRow> = sqlx::query_as(
                    "UPDATE refresh_tokens SET rotated_at = $2, replaced_by = $3 \
                     WHERE token_hash = $1 AND rotated_at IS NULL \
                     RETURNING id, session_id, created_at, rotated_at, replaced_by",
                )
                .bind(&digest.0[..])
                .bind($crate::rows::utc(now))
                .bind(replaced_by)
                .fetch_optional(&mut *self.tx)
                .await
                .map_err($crate::errors::store_error)?;
                Ok(row.map(Into::into))
            }

            async fn insert_one_time_token(
                &mut self,
                token: &dashtam_domain::OneTimeToken,
                digest: &dashtam_domain::TokenDigest,
            ) -> Result<(), dashtam_domain::ports::StoreError> {
                sqlx::query(
                    "UPDATE one_time_tokens SET used_at = $3 WHERE user_id = $1 AND purpose = $2 AND used_at IS NULL",
                )
                .bind(token.user_id.as_uuid())
                .bind(token.purpose.as_str())
                .bind($crate::rows::utc(token.created_at))
                .execute(&mut *self.tx)
                .await
                .map_err($crate::errors::store_error)?;
                sqlx::query(
                    "INSERT INTO one_time_tokens (id, user_id, purpose, token_hash, created_at, expires_at, used_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(token.id)
                .bind(token.user_id.as_uuid())
                .bind(token.purpose.as_str())
                .bind(&digest.0[..])
                .bind($crate::rows::utc(token.created_at))
                .bind($crate::rows::utc(token.expires_at))
                .bind(token.used_at.map($crate::rows::utc))
                .execute(&mut *self.tx)
                .await
                .map_err($crate::errors::store_error)?;
                Ok(())
            }

            async fn consume_one_time_token(
                &mut self,
                digest: &dashtam_domain::TokenDigest,
                purpose: dashtam_domain::OneTimePurpose,
                now: time::OffsetDateTime,
            ) -> Result<Option<dashtam_domain::OneTimeToken>, dashtam_domain::ports::StoreError> {
                let row: Option<$crate::rows::OneTimeTokenRow> = sqlx::query_as(
                    "UPDATE one_time_tokens SET used_at = $3 \
                     WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > $3 \
                     RETURNING id, user_id, purpose, created_at, expires_at, used_at",
                )
                .bind(&digest.0[..])
                .bind(purpose.as_str())
                .bind($crate::rows::utc(now))
                .fetch_optional(&mut *self.tx)
                .await
                .map_err($crate::errors::store_error)?;
                row.map(dashtam_domain::OneTimeToken::try_from).transpose()
            }

            async fn commit(self: Box<Self>) -> Result<(), dashtam_domain::ports::StoreError> {
                self.tx.commit().await.map_err($crate::errors::store_error)
            }
        }
    };
}

/// The `sessions` columns in [`SessionRow`](crate::rows::SessionRow) order.
macro_rules! session_columns {
    () => {
        "id, user_id, user_agent, ip_address, created_at, last_activity_at, expires_at, revoked_at, revoked_reason"
    };
}

pub(crate) use {impl_store_ports, session_columns, user_columns};
