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
/// one backend. The backend module supplies `$store` (with `pool`, `begin_write` and `BACKEND`), `$tx`
/// (holding a `sqlx::Transaction` in `tx`, with `link_audit_entry` and `commit_writes`) and `$wrap`, which
/// makes a `$tx` from what `begin_write` returns.
macro_rules! impl_store_ports {
    ($store:ty, $tx:ident, $wrap:expr) => {
        impl $store {
            async fn begin_boxed(
                &self,
                bulk: bool,
            ) -> Result<Box<dyn dashtam_domain::ports::StoreTx>, dashtam_domain::ports::StoreError> {
                let begun = self.begin_write(bulk).await.map_err($crate::errors::store_error)?;
                let wrap: fn(_) -> $tx = $wrap;
                Ok(Box::new(wrap(begun)))
            }
        }

        #[async_trait::async_trait]
        impl dashtam_domain::ports::Store for $store {
            fn backend(&self) -> dashtam_domain::ports::StoreBackend {
                Self::BACKEND
            }

            async fn ping(&self) -> Result<(), dashtam_domain::ports::StoreError> {
                sqlx::query("SELECT 1").execute(&self.pool).await.map(drop).map_err($crate::errors::store_error)
            }

            fn pool_stats(&self) -> dashtam_domain::ports::PoolStats {
                dashtam_domain::ports::PoolStats {
                    open: self.pool.size(),
                    idle: u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX),
                    max: self.pool.options().get_max_connections(),
                }
            }

            async fn close(&self) {
                self.close_pools().await;
            }

            async fn begin(
                &self,
            ) -> Result<Box<dyn dashtam_domain::ports::StoreTx>, dashtam_domain::ports::StoreError> {
                self.begin_boxed(false).await
            }

            async fn begin_bulk(
                &self,
            ) -> Result<Box<dyn dashtam_domain::ports::StoreTx>, dashtam_domain::ports::StoreError> {
                self.begin_boxed(true).await
            }

            async fn user_by_id(
                &self,
                id: dashtam_domain::UserId,
            ) -> Result<Option<dashtam_domain::User>, dashtam_domain::ports::StoreError> {
                let row =
                    sqlx::query_as(concat!("SELECT ", $crate::queries::user_columns!(), " FROM users WHERE id = $1"))
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
                    "SELECT global_min_token_version, last_rotation_at, last_rotation_reason, last_rotated_by, \
                     global_rotation_enforced_at FROM security_config WHERE id = 1",
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

            async fn session_auth_state(
                &self,
                id: dashtam_domain::SessionId,
            ) -> Result<Option<dashtam_domain::SessionAuthState>, dashtam_domain::ports::StoreError> {
                let row: Option<$crate::rows::SessionAuthStateRow> = sqlx::query_as(concat!(
                    "SELECT ",
                    $crate::queries::session_auth_state_columns!(),
                    " FROM sessions s JOIN users u ON u.id = s.user_id CROSS JOIN security_config c \
                     WHERE s.id = $1 AND c.id = 1"
                ))
                .bind(id.as_uuid())
                .fetch_optional(&self.pool)
                .await
                .map_err($crate::errors::store_error)?;
                row.map(dashtam_domain::SessionAuthState::try_from).transpose()
            }

            async fn refresh_token_by_id(
                &self,
                id: uuid::Uuid,
            ) -> Result<Option<dashtam_domain::RefreshTokenRecord>, dashtam_domain::ports::StoreError> {
                let row: Option<$crate::rows::RefreshTokenRow> = sqlx::query_as(concat!(
                    "SELECT ",
                    $crate::queries::refresh_token_columns!(),
                    " FROM refresh_tokens WHERE id = $1"
                ))
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err($crate::errors::store_error)?;
                Ok(row.map(Into::into))
            }

            async fn refresh_token_by_digest(
                &self,
                digest: &dashtam_domain::TokenDigest,
            ) -> Result<Option<dashtam_domain::RefreshTokenState>, dashtam_domain::ports::StoreError> {
                let row: Option<$crate::rows::RefreshTokenStateRow> = sqlx::query_as(concat!(
                    "SELECT t.id AS token_id, t.created_at AS token_created_at, t.rotated_at AS token_rotated_at, \
                     t.replaced_by AS token_replaced_by, ",
                    $crate::queries::session_auth_state_columns!(),
                    " FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id JOIN users u ON u.id = s.user_id \
                     CROSS JOIN security_config c WHERE t.token_hash = $1 AND c.id = 1"
                ))
                .bind(&digest.0[..])
                .fetch_optional(&self.pool)
                .await
                .map_err($crate::errors::store_error)?;
                row.map(dashtam_domain::RefreshTokenState::try_from).transpose()
            }

            async fn live_sessions(
                &self,
                user_id: dashtam_domain::UserId,
                now: time::OffsetDateTime,
            ) -> Result<Vec<dashtam_domain::Session>, dashtam_domain::ports::StoreError> {
                // Live: not ended, not expired, and not retired by a global rotation whose grace has passed.
                let rows: Vec<$crate::rows::SessionRow> = sqlx::query_as(concat!(
                    "SELECT ",
                    $crate::queries::session_columns!(),
                    " FROM sessions WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2 \
                     AND NOT EXISTS (SELECT 1 FROM security_config c WHERE c.id = 1 \
                       AND sessions.global_token_version < c.global_min_token_version \
                       AND (c.global_rotation_enforced_at IS NULL OR c.global_rotation_enforced_at <= $2)) \
                     ORDER BY last_activity_at DESC, id DESC"
                ))
                .bind(user_id.as_uuid())
                .bind($crate::rows::utc(now))
                .fetch_all(&self.pool)
                .await
                .map_err($crate::errors::store_error)?;
                rows.into_iter().map(dashtam_domain::Session::try_from).collect()
            }

            async fn device_history(
                &self,
                user_id: dashtam_domain::UserId,
                device: &dashtam_domain::device::Device,
            ) -> Result<dashtam_domain::ports::DeviceHistory, dashtam_domain::ports::StoreError> {
                let (sessions, matching): (i64, i64) = sqlx::query_as(
                    "SELECT COUNT(*), COALESCE(SUM(CASE WHEN COALESCE(device_info, '') = COALESCE($2, '') \
                     AND COALESCE(location, '') = COALESCE($3, '') THEN 1 ELSE 0 END), 0) \
                     FROM sessions WHERE user_id = $1",
                )
                .bind(user_id.as_uuid())
                .bind(device.device_info.as_deref())
                .bind(device.location.as_deref())
                .fetch_one(&self.pool)
                .await
                .map_err($crate::errors::store_error)?;
                Ok(dashtam_domain::ports::DeviceHistory { earlier_sessions: sessions, from_this_device: matching })
            }

            async fn usable_one_time_token(
                &self,
                digest: &dashtam_domain::TokenDigest,
                purpose: dashtam_domain::OneTimePurpose,
                now: time::OffsetDateTime,
            ) -> Result<Option<dashtam_domain::OneTimeToken>, dashtam_domain::ports::StoreError> {
                let row: Option<$crate::rows::OneTimeTokenRow> = sqlx::query_as(
                    "SELECT id, user_id, purpose, created_at, expires_at, used_at FROM one_time_tokens \
                     WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > $3",
                )
                .bind(&digest.0[..])
                .bind(purpose.as_str())
                .bind($crate::rows::utc(now))
                .fetch_optional(&self.pool)
                .await
                .map_err($crate::errors::store_error)?;
                row.map(dashtam_domain::OneTimeToken::try_from).transpose()
            }

            async fn audit_chain_states(
                &self,
            ) -> Result<Vec<dashtam_domain::audit::ChainState>, dashtam_domain::ports::StoreError> {
                let rows: Vec<$crate::rows::AuditChainRow> = sqlx::query_as(
                    "SELECT id, head_seq, head_hash, head_seal, checkpoint_seq, checkpoint_hash, checkpoint_seal \
                     FROM audit_chain ORDER BY id",
                )
                .fetch_all(&self.pool)
                .await
                .map_err($crate::errors::store_error)?;
                Ok(rows.into_iter().map(Into::into).collect())
            }

            async fn audit_entries_after(
                &self,
                after_seq: i64,
                limit: u32,
            ) -> Result<Vec<dashtam_domain::audit::AuditEntry>, dashtam_domain::ports::StoreError> {
                let rows = sqlx::query_as(concat!(
                    "SELECT ",
                    $crate::queries::audit_columns!(),
                    " FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2"
                ))
                .bind(after_seq)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await
                .map_err($crate::errors::store_error)?;
                $crate::rows::audit_entries_from_rows(rows)
            }

            async fn last_audit_entry_before(
                &self,
                cutoff: time::OffsetDateTime,
            ) -> Result<Option<dashtam_domain::audit::AuditEntry>, dashtam_domain::ports::StoreError> {
                let newest_before =
                    dashtam_domain::audit::AuditQuery { to: Some(cutoff), limit: 1, ..Default::default() };
                let entries = dashtam_domain::ports::Store::audit_entries(self, &newest_before).await?;
                Ok(entries.into_iter().next())
            }

            async fn audit_chain_points_through(
                &self,
                seq: i64,
            ) -> Result<Vec<dashtam_domain::audit::ChainPoint>, dashtam_domain::ports::StoreError> {
                let points: Vec<(i16, i64, String)> = sqlx::query_as(
                    "SELECT chain, chain_seq, hash FROM audit_log \
                     WHERE seq IN (SELECT MAX(seq) FROM audit_log WHERE seq <= $1 GROUP BY chain) ORDER BY chain",
                )
                .bind(seq)
                .fetch_all(&self.pool)
                .await
                .map_err($crate::errors::store_error)?;
                Ok(points
                    .into_iter()
                    .map(|(chain, seq, hash)| dashtam_domain::audit::ChainPoint::unsealed(chain, seq, hash))
                    .collect())
            }

            async fn audit_entries(
                &self,
                query: &dashtam_domain::audit::AuditQuery,
            ) -> Result<Vec<dashtam_domain::audit::AuditEntry>, dashtam_domain::ports::StoreError> {
                let sql = $crate::rows::audit_query_sql(query, Self::BACKEND);
                let mut statement = sqlx::query_as::<_, $crate::rows::AuditEntryRow>(&sql);
                if let Some(user_id) = query.user_id {
                    statement = statement.bind(user_id.as_uuid());
                }
                if let Some(action) = &query.action {
                    statement = statement.bind(action.clone());
                }
                if let Some(from) = query.from {
                    statement = statement.bind($crate::rows::utc(from));
                }
                if let Some(to) = query.to {
                    statement = statement.bind($crate::rows::utc(to));
                }
                if let Some(request_id) = &query.request_id {
                    statement = statement.bind(request_id.clone());
                }
                if let Some(before_seq) = query.before_seq {
                    statement = statement.bind(before_seq);
                }
                let rows = statement
                    .bind(i64::from(query.limit))
                    .fetch_all(&self.pool)
                    .await
                    .map_err($crate::errors::store_error)?;
                $crate::rows::audit_entries_from_rows(rows)
            }

            async fn recent_rate_limit_violations(
                &self,
                limit: i64,
            ) -> Result<Vec<dashtam_domain::rate_limit::RateLimitViolation>, dashtam_domain::ports::StoreError> {
                // `CAST … AS TEXT` reads PostgreSQL's INET as `addr/prefix`; the row conversion drops the prefix.
                let rows: Vec<$crate::rows::RateLimitViolationRow> = sqlx::query_as(
                    "SELECT id, occurred_at, rule, route, scope, identifier, CAST(ip_address AS TEXT) AS ip_address \
                     FROM rate_limit_violations ORDER BY occurred_at DESC, id DESC LIMIT $1",
                )
                .bind(limit)
                .fetch_all(&self.pool)
                .await
                .map_err($crate::errors::store_error)?;
                rows.into_iter().map(TryFrom::try_from).collect()
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
                    "INSERT INTO sessions (id, user_id, user_agent, ip_address, browser, os, device_type, \
                     device_info, location, global_token_version, created_at, last_activity_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11, $12) RETURNING ",
                    $crate::queries::session_columns!()
                ))
                .bind(session.id.as_uuid())
                .bind(session.user_id.as_uuid())
                .bind(session.user_agent.as_deref())
                .bind(session.ip_address.as_deref())
                .bind(session.device.browser.as_deref())
                .bind(session.device.os.as_deref())
                .bind(session.device.device_type.as_deref())
                .bind(session.device.device_info.as_deref())
                .bind(session.device.location.as_deref())
                .bind(session.global_token_version)
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
                let row: $crate::rows::RefreshTokenRow = sqlx::query_as(concat!(
                    "INSERT INTO refresh_tokens (id, session_id, token_hash, created_at) VALUES ($1, $2, $3, $4) \
                     RETURNING ",
                    $crate::queries::refresh_token_columns!()
                ))
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
                id: uuid::Uuid,
                successor: uuid::Uuid,
                session_id: dashtam_domain::SessionId,
                digest: &dashtam_domain::TokenDigest,
                now: time::OffsetDateTime,
            ) -> Result<bool, dashtam_domain::ports::StoreError> {
                let session_id = session_id.as_uuid();
                if let Some(rotated) =
                    self.rotate_refresh_token_with_audit(id, successor, session_id, &digest.0, now).await?
                {
                    return Ok(rotated);
                }
                // The `rotated_at IS NULL` guard makes this the compare-and-set that lets exactly one of two
                // concurrent refreshes with the same token win. Both writes go in one round trip, as they sit
                // inside the write transaction whose length bounds refresh throughput on SQLite: on SQLite as
                // two statements of one query (each binds `$n` by number), on PostgreSQL as one statement.
                let (statement, rows_written) = match <$store>::BACKEND {
                    dashtam_domain::ports::StoreBackend::Postgres => (
                        "WITH rotated AS (UPDATE refresh_tokens SET rotated_at = $5, replaced_by = $2 \
                           WHERE id = $1 AND rotated_at IS NULL RETURNING id) \
                         INSERT INTO refresh_tokens (id, session_id, token_hash, created_at) \
                         SELECT $2, $3, $4, $5 FROM rotated",
                        1,
                    ),
                    dashtam_domain::ports::StoreBackend::Sqlite => (
                        "UPDATE refresh_tokens SET rotated_at = $5, replaced_by = $2 \
                           WHERE id = $1 AND rotated_at IS NULL; \
                         INSERT INTO refresh_tokens (id, session_id, token_hash, created_at) \
                         SELECT $2, $3, $4, $5 WHERE changes() = 1",
                        2,
                    ),
                };
                let written = $crate::queries::bind_refresh_token_rotation!(
                    sqlx::query(statement),
                    id,
                    successor,
                    session_id,
                    &digest.0[..],
                    now
                )
                .execute(&mut *self.tx)
                .await
                .map_err($crate::errors::store_error)?
                .rows_affected();
                Ok(written == rows_written)
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

            async fn record_login_success(
                &mut self,
                id: dashtam_domain::UserId,
                now: time::OffsetDateTime,
            ) -> Result<(), dashtam_domain::ports::StoreError> {
                sqlx::query(
                    "UPDATE users SET failed_login_count = 0, locked_until = NULL, last_login_at = $2 WHERE id = $1",
                )
                .bind(id.as_uuid())
                .bind($crate::rows::utc(now))
                .execute(&mut *self.tx)
                .await
                .map(drop)
                .map_err($crate::errors::store_error)
            }

            async fn record_login_failure(
                &mut self,
                id: dashtam_domain::UserId,
                lock_threshold: i32,
                lock_until: time::OffsetDateTime,
                now: time::OffsetDateTime,
            ) -> Result<Option<dashtam_domain::User>, dashtam_domain::ports::StoreError> {
                // One statement, so concurrent failures cannot lose a count between a read and a write.
                let row = sqlx::query_as(concat!(
                    "UPDATE users SET failed_login_count = failed_login_count + 1, updated_at = $4, \
                     locked_until = CASE WHEN failed_login_count + 1 >= $2 THEN $3 ELSE locked_until END \
                     WHERE id = $1 RETURNING ",
                    $crate::queries::user_columns!()
                ))
                .bind(id.as_uuid())
                .bind(lock_threshold)
                .bind($crate::rows::utc(lock_until))
                .bind($crate::rows::utc(now))
                .fetch_optional(&mut *self.tx)
                .await
                .map_err($crate::errors::store_error)?;
                $crate::rows::user_from_row(row)
            }

            async fn set_password_hash(
                &mut self,
                id: dashtam_domain::UserId,
                hash: &str,
                now: time::OffsetDateTime,
            ) -> Result<bool, dashtam_domain::ports::StoreError> {
                let result = sqlx::query(
                    "UPDATE users SET password_hash = $2, failed_login_count = 0, locked_until = NULL, \
                     updated_at = $3 WHERE id = $1",
                )
                .bind(id.as_uuid())
                .bind(hash)
                .bind($crate::rows::utc(now))
                .execute(&mut *self.tx)
                .await
                .map_err($crate::errors::store_error)?;
                Ok(result.rows_affected() == 1)
            }

            async fn mark_email_verified(
                &mut self,
                id: dashtam_domain::UserId,
                now: time::OffsetDateTime,
            ) -> Result<bool, dashtam_domain::ports::StoreError> {
                let result = sqlx::query(
                    "UPDATE users SET email_verified_at = COALESCE(email_verified_at, $2), updated_at = $2 \
                     WHERE id = $1",
                )
                .bind(id.as_uuid())
                .bind($crate::rows::utc(now))
                .execute(&mut *self.tx)
                .await
                .map_err($crate::errors::store_error)?;
                Ok(result.rows_affected() == 1)
            }

            async fn disable_user(
                &mut self,
                id: dashtam_domain::UserId,
                now: time::OffsetDateTime,
            ) -> Result<Option<dashtam_domain::User>, dashtam_domain::ports::StoreError> {
                let row = sqlx::query_as(concat!(
                    "UPDATE users SET disabled_at = COALESCE(disabled_at, $2), updated_at = $2 WHERE id = $1 \
                     RETURNING ",
                    $crate::queries::user_columns!()
                ))
                .bind(id.as_uuid())
                .bind($crate::rows::utc(now))
                .fetch_optional(&mut *self.tx)
                .await
                .map_err($crate::errors::store_error)?;
                $crate::rows::user_from_row(row)
            }

            async fn end_user_sessions(
                &mut self,
                user_id: dashtam_domain::UserId,
                keep: Option<dashtam_domain::SessionId>,
                reason: dashtam_domain::SessionEndReason,
                now: time::OffsetDateTime,
            ) -> Result<u64, dashtam_domain::ports::StoreError> {
                let result = sqlx::query(
                    "UPDATE sessions SET revoked_at = $3, revoked_reason = $4 \
                     WHERE user_id = $1 AND revoked_at IS NULL AND ($2 IS NULL OR id <> $2)",
                )
                .bind(user_id.as_uuid())
                .bind(keep.map(|id| id.as_uuid()))
                .bind($crate::rows::utc(now))
                .bind(reason.as_str())
                .execute(&mut *self.tx)
                .await
                .map_err($crate::errors::store_error)?;
                Ok(result.rows_affected())
            }

            async fn touch_session(
                &mut self,
                id: dashtam_domain::SessionId,
                now: time::OffsetDateTime,
            ) -> Result<(), dashtam_domain::ports::StoreError> {
                sqlx::query("UPDATE sessions SET last_activity_at = $2 WHERE id = $1 AND last_activity_at < $2")
                    .bind(id.as_uuid())
                    .bind($crate::rows::utc(now))
                    .execute(&mut *self.tx)
                    .await
                    .map(drop)
                    .map_err($crate::errors::store_error)
            }

            async fn enqueue_email(
                &mut self,
                email: &dashtam_domain::mail::OutgoingEmail,
            ) -> Result<(), dashtam_domain::ports::StoreError> {
                sqlx::query(
                    "INSERT INTO email_outbox (id, recipient, subject, text_body, html_body, created_at, \
                     next_attempt_at) VALUES ($1, $2, $3, $4, $5, $6, $6)",
                )
                .bind(email.id)
                .bind(email.to.as_str())
                .bind(&email.subject)
                .bind(&email.text_body)
                .bind(&email.html_body)
                .bind($crate::rows::utc(email.created_at))
                .execute(&mut *self.tx)
                .await
                .map(drop)
                .map_err($crate::errors::store_error)
            }

            async fn claim_due_emails(
                &mut self,
                now: time::OffsetDateTime,
                lease_until: time::OffsetDateTime,
                limit: i64,
            ) -> Result<Vec<dashtam_domain::mail::QueuedEmail>, dashtam_domain::ports::StoreError> {
                // The outer condition is evaluated again on each locked row, so when two workers pick the
                // same candidates only one of them claims each message.
                let rows: Vec<$crate::rows::QueuedEmailRow> = sqlx::query_as(
                    "UPDATE email_outbox SET next_attempt_at = $2 \
                     WHERE sent_at IS NULL AND next_attempt_at <= $1 AND id IN ( \
                         SELECT id FROM email_outbox WHERE sent_at IS NULL AND next_attempt_at <= $1 \
                         ORDER BY next_attempt_at LIMIT $3) \
                     RETURNING id, recipient, subject, text_body, html_body, created_at, attempts",
                )
                .bind($crate::rows::utc(now))
                .bind($crate::rows::utc(lease_until))
                .bind(limit)
                .fetch_all(&mut *self.tx)
                .await
                .map_err($crate::errors::store_error)?;
                let mut queued: Vec<dashtam_domain::mail::QueuedEmail> =
                    rows.into_iter().map(TryFrom::try_from).collect::<Result<_, _>>()?;
                queued.sort_by_key(|queued| (queued.email.created_at, queued.email.id));
                Ok(queued)
            }

            async fn mark_email_sent(
                &mut self,
                id: uuid::Uuid,
                now: time::OffsetDateTime,
            ) -> Result<(), dashtam_domain::ports::StoreError> {
                sqlx::query(
                    // Bodies can hold live one-time links; once delivered, only the metadata is kept.
                    "UPDATE email_outbox SET sent_at = $2, attempts = attempts + 1, next_attempt_at = NULL, \
                     last_error = NULL, text_body = '', html_body = '' WHERE id = $1",
                )
                .bind(id)
                .bind($crate::rows::utc(now))
                .execute(&mut *self.tx)
                .await
                .map(drop)
                .map_err($crate::errors::store_error)
            }

            async fn mark_email_failed(
                &mut self,
                id: uuid::Uuid,
                error: &str,
                retry_at: Option<time::OffsetDateTime>,
            ) -> Result<(), dashtam_domain::ports::StoreError> {
                sqlx::query(
                    "UPDATE email_outbox SET attempts = attempts + 1, last_error = $2, next_attempt_at = $3 \
                     WHERE id = $1",
                )
                .bind(id)
                .bind(error)
                .bind(retry_at.map($crate::rows::utc))
                .execute(&mut *self.tx)
                .await
                .map(drop)
                .map_err($crate::errors::store_error)
            }

            async fn rotate_user_tokens(
                &mut self,
                user_id: dashtam_domain::UserId,
                now: time::OffsetDateTime,
            ) -> Result<Option<i64>, dashtam_domain::ports::StoreError> {
                let version: Option<(i64,)> = sqlx::query_as(
                    "UPDATE users SET token_version = token_version + 1, updated_at = $2 WHERE id = $1 \
                     RETURNING token_version",
                )
                .bind(user_id.as_uuid())
                .bind($crate::rows::utc(now))
                .fetch_optional(&mut *self.tx)
                .await
                .map_err($crate::errors::store_error)?;
                Ok(version.map(|(version,)| version))
            }

            async fn rotate_global_tokens(
                &mut self,
                rotation: &dashtam_domain::ports::GlobalRotation,
            ) -> Result<dashtam_domain::ports::GlobalRotationCounts, dashtam_domain::ports::StoreError> {
                // A rotation inside an earlier one's grace period keeps the earlier (sooner) deadline: tokens
                // never outlive a deadline already announced.
                let (new_version, enforced_at): (i64, time::OffsetDateTime) = sqlx::query_as(
                    "UPDATE security_config SET global_min_token_version = global_min_token_version + 1, \
                     last_rotation_at = $1, last_rotation_reason = $2, last_rotated_by = $3, \
                     global_rotation_enforced_at = CASE \
                       WHEN global_rotation_enforced_at IS NOT NULL AND global_rotation_enforced_at > $1 \
                        AND global_rotation_enforced_at < $4 THEN global_rotation_enforced_at ELSE $4 END \
                     WHERE id = 1 RETURNING global_min_token_version, global_rotation_enforced_at",
                )
                .bind($crate::rows::utc(rotation.now))
                .bind(&rotation.reason)
                .bind(rotation.initiated_by.map(|id| id.as_uuid()))
                .bind($crate::rows::utc(rotation.enforced_at))
                .fetch_one(&mut *self.tx)
                .await
                .map_err($crate::errors::store_error)?;
                let (sessions, users): (i64, i64) = sqlx::query_as(
                    "SELECT COUNT(*), COUNT(DISTINCT user_id) FROM sessions \
                     WHERE revoked_at IS NULL AND expires_at > $1 AND global_token_version < $2",
                )
                .bind($crate::rows::utc(rotation.now))
                .bind(new_version)
                .fetch_one(&mut *self.tx)
                .await
                .map_err($crate::errors::store_error)?;
                if enforced_at <= rotation.now {
                    // No grace: end them now, so they leave every list at once.
                    sqlx::query(
                        "UPDATE sessions SET revoked_at = $1, revoked_reason = 'token_rotation' \
                         WHERE revoked_at IS NULL AND global_token_version < $2",
                    )
                    .bind($crate::rows::utc(rotation.now))
                    .bind(new_version)
                    .execute(&mut *self.tx)
                    .await
                    .map_err($crate::errors::store_error)?;
                }
                Ok(dashtam_domain::ports::GlobalRotationCounts {
                    new_version,
                    enforced_at,
                    sessions: u64::try_from(sessions).unwrap_or_default(),
                    users: u64::try_from(users).unwrap_or_default(),
                })
            }

            async fn append_audit_entry(
                &mut self,
                entry: dashtam_domain::audit::PendingAuditEntry,
            ) -> Result<(), dashtam_domain::ports::StoreError> {
                self.link_audit_entry(entry).await
            }

            async fn purge_audit_through(
                &mut self,
                through_seq: i64,
                checkpoints: &[dashtam_domain::audit::ChainPoint],
            ) -> Result<u64, dashtam_domain::ports::StoreError> {
                // The checkpoints move first: the append-only trigger only lets through deletions at or before
                // them. In chain order, as every purge locks them, so two purges at once cannot deadlock.
                let mut checkpoints = checkpoints.iter().collect::<Vec<_>>();
                checkpoints.sort_by_key(|point| point.chain);
                for through in checkpoints {
                    sqlx::query(
                        "UPDATE audit_chain SET checkpoint_seq = $1, checkpoint_hash = $2, checkpoint_seal = $3 \
                         WHERE id = $4 AND checkpoint_seq < $1",
                    )
                    .bind(through.seq)
                    .bind(&through.hash)
                    .bind(&through.seal)
                    .bind(through.chain)
                    .execute(&mut *self.tx)
                    .await
                    .map_err($crate::errors::store_error)?;
                }
                if matches!(<$store>::BACKEND, dashtam_domain::ports::StoreBackend::Sqlite) {
                    // On SQLite the lookup columns are a table of their own (migration 000015), and the one
                    // chain's positions are the sequence numbers.
                    sqlx::query("DELETE FROM audit_log_lookup WHERE seq <= $1")
                        .bind(through_seq)
                        .execute(&mut *self.tx)
                        .await
                        .map_err($crate::errors::store_error)?;
                }
                // Only what the checkpoints cover: on PostgreSQL an entry can commit after the checkpoints were
                // read with a `seq` drawn before them, and it is the first entry after its chain's checkpoint.
                sqlx::query(
                    "DELETE FROM audit_log WHERE seq <= $1 \
                     AND chain_seq <= (SELECT checkpoint_seq FROM audit_chain WHERE id = audit_log.chain)",
                )
                .bind(through_seq)
                .execute(&mut *self.tx)
                .await
                .map(|done| done.rows_affected())
                .map_err($crate::errors::store_error)
            }

            async fn commit(self: Box<Self>) -> Result<(), dashtam_domain::ports::StoreError> {
                self.commit_writes().await
            }

            async fn insert_rate_limit_violations(
                &mut self,
                violations: &[dashtam_domain::rate_limit::RateLimitViolation],
            ) -> Result<(), dashtam_domain::ports::StoreError> {
                // PostgreSQL keeps addresses as INET, which a text parameter only reaches through an explicit
                // cast; SQLite keeps text, and would read `CAST(… AS INET)` as an integer conversion.
                let statement = match <$store>::BACKEND {
                    dashtam_domain::ports::StoreBackend::Postgres => {
                        "INSERT INTO rate_limit_violations (id, occurred_at, rule, route, scope, identifier, \
                         ip_address) VALUES ($1, $2, $3, $4, $5, $6, CAST($7 AS INET))"
                    }
                    dashtam_domain::ports::StoreBackend::Sqlite => {
                        "INSERT INTO rate_limit_violations (id, occurred_at, rule, route, scope, identifier, \
                         ip_address) VALUES ($1, $2, $3, $4, $5, $6, $7)"
                    }
                };
                for violation in violations {
                    sqlx::query(statement)
                        .bind(violation.id)
                        .bind($crate::rows::utc(violation.occurred_at))
                        .bind(&violation.rule)
                        .bind(&violation.route)
                        .bind(violation.scope.as_str())
                        .bind(&violation.identifier)
                        .bind(violation.ip_address.map(|address| address.to_string()))
                        .execute(&mut *self.tx)
                        .await
                        .map_err($crate::errors::store_error)?;
                }
                Ok(())
            }
        }
    };
}

/// The `sessions` columns in [`SessionRow`](crate::rows::SessionRow) order.
macro_rules! session_columns {
    () => {
        "id, user_id, user_agent, ip_address, browser, os, device_type, device_info, location, global_token_version, \
         created_at, last_activity_at, expires_at, revoked_at, revoked_reason"
    };
}

/// What [`SessionAuthStateRow`](crate::rows::SessionAuthStateRow) reads, from `sessions s`, `users u` and
/// `security_config c`.
macro_rules! session_auth_state_columns {
    () => {
        "s.id AS session_id, s.revoked_at AS session_revoked_at, s.expires_at AS session_expires_at, \
         s.last_activity_at AS session_last_activity_at, s.global_token_version AS session_global_token_version, \
         c.global_min_token_version, c.global_rotation_enforced_at, u.*"
    };
}

/// The `refresh_tokens` columns in [`RefreshTokenRow`](crate::rows::RefreshTokenRow) order.
macro_rules! refresh_token_columns {
    () => {
        "id, session_id, created_at, rotated_at, replaced_by"
    };
}

/// The `audit_log` columns in [`AuditEntryRow`](crate::rows::AuditEntryRow) order: where the entry is, then
/// what it says ([`audit_content_columns`]).
macro_rules! audit_columns {
    () => {
        concat!("seq, chain, chain_seq, ", $crate::queries::audit_content_columns!())
    };
}

/// The columns of what an entry says, as [`bind_audit_entry`] binds them. Where it is (`seq`, `chain`,
/// `chain_seq`) is the backend's to write: SQLite has one chain, PostgreSQL draws `seq` as it inserts.
macro_rules! audit_content_columns {
    () => {
        "id, occurred_at, action, outcome, user_id, actor, resource_type, resource_id, request_id, \
         session_id, method, route, path, ip_address, user_agent, trace_id, details, hash"
    };
}

/// Binds what an audit entry says, in [`audit_content_columns`] order.
macro_rules! bind_audit_entry {
    ($query:expr, $entry:expr) => {
        $query
            .bind($entry.id)
            .bind($crate::rows::utc($entry.occurred_at))
            .bind(&$entry.action)
            .bind($entry.outcome.as_str())
            .bind($entry.user_id)
            .bind(&$entry.actor)
            .bind(&$entry.resource_type)
            .bind(&$entry.resource_id)
            .bind(&$entry.request_id)
            .bind($entry.session_id)
            .bind(&$entry.method)
            .bind(&$entry.route)
            .bind(&$entry.path)
            .bind(&$entry.ip_address)
            .bind(&$entry.user_agent)
            .bind(&$entry.trace_id)
            .bind(&$entry.details)
            .bind(&$entry.hash)
    };
}

/// Binds a refresh-token rotation's values in the order the rotation statements number them: the token, its
/// successor, the session, the successor's digest and the instant.
macro_rules! bind_refresh_token_rotation {
    ($query:expr, $id:expr, $successor:expr, $session_id:expr, $digest:expr, $now:expr) => {
        $query.bind($id).bind($successor).bind($session_id).bind($digest).bind($crate::rows::utc($now))
    };
}

pub(crate) use {
    audit_columns, audit_content_columns, bind_audit_entry, bind_refresh_token_rotation, impl_store_ports,
    refresh_token_columns, session_auth_state_columns, session_columns, user_columns,
};
