//! Provider connections and their credentials: the SQL both backends share (see [`crate::queries`] for why one
//! text serves both).

/// The `providers` columns in [`ProviderRow`](crate::provider_rows::ProviderRow) order, qualified by `p.`.
macro_rules! provider_columns {
    () => {
        "p.id, p.user_id, p.provider_key, p.alias, p.status, p.connected_at, p.last_sync_at, p.last_sync_error, \
         p.refresh_failures, p.created_at, p.updated_at, \
         (SELECT CAST(COUNT(*) AS BIGINT) FROM accounts a WHERE a.provider_id = p.id) AS accounts_count"
    };
}

/// One user's connection by id (binds: user id, connection id), for reads on the pool and inside a transaction.
macro_rules! provider_by_owner {
    () => {
        concat!(
            "SELECT ",
            $crate::provider_queries::provider_columns!(),
            " FROM providers p WHERE p.user_id = $1 AND p.id = $2"
        )
    };
}

/// The `provider_credentials` columns in [`CredentialsRow`](crate::provider_rows::CredentialsRow) order.
macro_rules! credentials_columns {
    () => {
        "provider_id, kind, secret, access_expires_at, has_refresh_token, scope, connected_at, updated_at"
    };
}

/// Implements the provider ports for one backend's store and transaction types (see `impl_store_ports`).
macro_rules! impl_provider_ports {
    ($store:ty, $tx:ident) => {
        #[async_trait::async_trait]
        impl dashtam_domain::providers::store::ProviderReads for $store {
            async fn provider(
                &self,
                user_id: dashtam_domain::UserId,
                id: dashtam_domain::providers::ProviderId,
            ) -> Result<Option<dashtam_domain::providers::Provider>, dashtam_domain::ports::StoreError> {
                let row: Option<$crate::provider_rows::ProviderRow> =
                    sqlx::query_as($crate::provider_queries::provider_by_owner!())
                        .bind(user_id.as_uuid())
                        .bind(id.as_uuid())
                        .fetch_optional(&self.pool)
                        .await
                        .map_err($crate::errors::store_error)?;
                row.map(TryInto::try_into).transpose()
            }

            async fn providers(
                &self,
                query: &dashtam_domain::providers::ProviderListQuery,
            ) -> Result<dashtam_domain::providers::ProviderPage, dashtam_domain::ports::StoreError> {
                // The filters are bound; the order comes from a closed list, never from the request's text.
                let filter = "p.user_id = $1 AND ($2 IS NULL OR p.status = $2) AND ($3 IS NULL OR p.provider_key = $3)";
                let sql = format!(
                    "SELECT {} FROM providers p WHERE {filter} ORDER BY {} LIMIT $4 OFFSET $5",
                    $crate::provider_queries::provider_columns!(),
                    $crate::provider_rows::provider_order(query.sort, query.descending),
                );
                let limit = i64::from(query.limit);
                let offset = i64::try_from(query.offset).unwrap_or(i64::MAX);
                let status = query.status.map(|status| status.as_str());
                let key = query.provider_key.map(|key| key.as_str());
                let rows: Vec<$crate::provider_rows::ProviderRow> = sqlx::query_as(&sql)
                    .bind(query.user_id.as_uuid())
                    .bind(status)
                    .bind(key)
                    .bind(limit)
                    .bind(offset)
                    .fetch_all(&self.pool)
                    .await
                    .map_err($crate::errors::store_error)?;
                let total: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM providers p WHERE {filter}"))
                    .bind(query.user_id.as_uuid())
                    .bind(status)
                    .bind(key)
                    .fetch_one(&self.pool)
                    .await
                    .map_err($crate::errors::store_error)?;
                Ok(dashtam_domain::providers::ProviderPage {
                    items: rows.into_iter().map(TryInto::try_into).collect::<Result<_, _>>()?,
                    total: u64::try_from(total).unwrap_or(0),
                })
            }

            async fn provider_credentials(
                &self,
                id: dashtam_domain::providers::ProviderId,
            ) -> Result<Option<dashtam_domain::providers::StoredCredentials>, dashtam_domain::ports::StoreError> {
                let row: Option<$crate::provider_rows::CredentialsRow> = sqlx::query_as(concat!(
                    "SELECT ",
                    $crate::provider_queries::credentials_columns!(),
                    " FROM provider_credentials WHERE provider_id = $1"
                ))
                .bind(id.as_uuid())
                .fetch_optional(&self.pool)
                .await
                .map_err($crate::errors::store_error)?;
                row.map(TryInto::try_into).transpose()
            }

            async fn providers_due_for_sync(
                &self,
                now: time::OffsetDateTime,
                limit: u32,
            ) -> Result<Vec<dashtam_domain::providers::Provider>, dashtam_domain::ports::StoreError> {
                // Never-scheduled connections first (`IS NOT NULL` is false for them, and false sorts first on
                // both backends), then the most overdue.
                let rows: Vec<$crate::provider_rows::ProviderRow> = sqlx::query_as(concat!(
                    "SELECT ",
                    $crate::provider_queries::provider_columns!(),
                    " FROM providers p WHERE p.status = 'active' AND (p.next_sync_at IS NULL OR p.next_sync_at <= $1) \
                      ORDER BY p.next_sync_at IS NOT NULL, p.next_sync_at, p.id LIMIT $2"
                ))
                .bind($crate::rows::utc(now))
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await
                .map_err($crate::errors::store_error)?;
                rows.into_iter().map(TryInto::try_into).collect()
            }

            async fn credentials_after(
                &self,
                after: Option<dashtam_domain::providers::ProviderId>,
                limit: u32,
            ) -> Result<Vec<dashtam_domain::providers::StoredCredentials>, dashtam_domain::ports::StoreError> {
                let rows: Vec<$crate::provider_rows::CredentialsRow> = sqlx::query_as(concat!(
                    "SELECT ",
                    $crate::provider_queries::credentials_columns!(),
                    " FROM provider_credentials WHERE ($1 IS NULL OR provider_id > $1) ORDER BY provider_id LIMIT $2"
                ))
                .bind(after.map(|id| id.as_uuid()))
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await
                .map_err($crate::errors::store_error)?;
                rows.into_iter().map(TryInto::try_into).collect()
            }
        }

        #[async_trait::async_trait]
        impl dashtam_domain::providers::store::ProviderWrites for $tx {
            async fn insert_provider(
                &mut self,
                provider: &dashtam_domain::providers::NewProvider,
            ) -> Result<dashtam_domain::providers::Provider, dashtam_domain::ports::StoreError> {
                let now = $crate::rows::utc(provider.created_at);
                sqlx::query(
                    "INSERT INTO providers (id, user_id, provider_key, alias, status, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, 'pending', $5, $5)",
                )
                .bind(provider.id.as_uuid())
                .bind(provider.user_id.as_uuid())
                .bind(provider.provider_key.as_str())
                .bind(provider.alias.as_str())
                .bind(now)
                .execute(&mut *self.tx)
                .await
                .map_err($crate::errors::store_error)?;
                self.provider_in_tx(provider.user_id, provider.id)
                    .await?
                    .ok_or_else(|| dashtam_domain::ports::StoreError::Corrupt("inserted provider vanished".into()))
            }

            async fn rename_provider(
                &mut self,
                user_id: dashtam_domain::UserId,
                id: dashtam_domain::providers::ProviderId,
                alias: &dashtam_domain::providers::Alias,
                now: time::OffsetDateTime,
            ) -> Result<Option<dashtam_domain::providers::Provider>, dashtam_domain::ports::StoreError> {
                let result =
                    sqlx::query("UPDATE providers SET alias = $3, updated_at = $4 WHERE user_id = $1 AND id = $2")
                        .bind(user_id.as_uuid())
                        .bind(id.as_uuid())
                        .bind(alias.as_str())
                        .bind($crate::rows::utc(now))
                        .execute(&mut *self.tx)
                        .await
                        .map_err($crate::errors::store_error)?;
                if result.rows_affected() == 0 {
                    return Ok(None);
                }
                self.provider_in_tx(user_id, id).await
            }

            async fn delete_provider(
                &mut self,
                user_id: dashtam_domain::UserId,
                id: dashtam_domain::providers::ProviderId,
            ) -> Result<bool, dashtam_domain::ports::StoreError> {
                let result = sqlx::query("DELETE FROM providers WHERE user_id = $1 AND id = $2")
                    .bind(user_id.as_uuid())
                    .bind(id.as_uuid())
                    .execute(&mut *self.tx)
                    .await
                    .map_err($crate::errors::store_error)?;
                Ok(result.rows_affected() == 1)
            }

            async fn set_provider_status(
                &mut self,
                id: dashtam_domain::providers::ProviderId,
                status: dashtam_domain::providers::ProviderStatus,
                connected: bool,
                now: time::OffsetDateTime,
            ) -> Result<(), dashtam_domain::ports::StoreError> {
                sqlx::query(
                    "UPDATE providers SET status = $2, updated_at = $3, \
                       connected_at = CASE WHEN $4 THEN $3 ELSE connected_at END, \
                       refresh_failures = CASE WHEN $4 THEN 0 ELSE refresh_failures END \
                     WHERE id = $1",
                )
                .bind(id.as_uuid())
                .bind(status.as_str())
                .bind($crate::rows::utc(now))
                .bind(connected)
                .execute(&mut *self.tx)
                .await
                .map_err($crate::errors::store_error)?;
                Ok(())
            }

            async fn count_refresh_failure(
                &mut self,
                id: dashtam_domain::providers::ProviderId,
                now: time::OffsetDateTime,
            ) -> Result<i32, dashtam_domain::ports::StoreError> {
                let count: Option<i32> = sqlx::query_scalar(
                    "UPDATE providers SET refresh_failures = refresh_failures + 1, updated_at = $2 WHERE id = $1 \
                     RETURNING refresh_failures",
                )
                .bind(id.as_uuid())
                .bind($crate::rows::utc(now))
                .fetch_optional(&mut *self.tx)
                .await
                .map_err($crate::errors::store_error)?;
                Ok(count.unwrap_or(0))
            }

            async fn clear_refresh_failures(
                &mut self,
                id: dashtam_domain::providers::ProviderId,
                now: time::OffsetDateTime,
            ) -> Result<(), dashtam_domain::ports::StoreError> {
                sqlx::query("UPDATE providers SET refresh_failures = 0, updated_at = $2 WHERE id = $1")
                    .bind(id.as_uuid())
                    .bind($crate::rows::utc(now))
                    .execute(&mut *self.tx)
                    .await
                    .map_err($crate::errors::store_error)?;
                Ok(())
            }

            async fn put_credentials(
                &mut self,
                credentials: &dashtam_domain::providers::StoredCredentials,
            ) -> Result<(), dashtam_domain::ports::StoreError> {
                sqlx::query(concat!(
                    "INSERT INTO provider_credentials (",
                    $crate::provider_queries::credentials_columns!(),
                    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                     ON CONFLICT (provider_id) DO UPDATE SET kind = excluded.kind, secret = excluded.secret, \
                       access_expires_at = excluded.access_expires_at, \
                       has_refresh_token = excluded.has_refresh_token, scope = excluded.scope, \
                       connected_at = excluded.connected_at, updated_at = excluded.updated_at"
                ))
                .bind(credentials.provider_id.as_uuid())
                .bind(credentials.kind.as_str())
                .bind(credentials.secret.as_slice())
                .bind(credentials.access_expires_at.map($crate::rows::utc))
                .bind(credentials.has_refresh_token)
                .bind(credentials.scope.as_deref())
                .bind($crate::rows::utc(credentials.connected_at))
                .bind($crate::rows::utc(credentials.updated_at))
                .execute(&mut *self.tx)
                .await
                .map_err($crate::errors::store_error)?;
                Ok(())
            }

            async fn replace_credentials_secret(
                &mut self,
                id: dashtam_domain::providers::ProviderId,
                expected: &[u8],
                secret: &[u8],
            ) -> Result<bool, dashtam_domain::ports::StoreError> {
                let result =
                    sqlx::query("UPDATE provider_credentials SET secret = $3 WHERE provider_id = $1 AND secret = $2")
                        .bind(id.as_uuid())
                        .bind(expected)
                        .bind(secret)
                        .execute(&mut *self.tx)
                        .await
                        .map_err($crate::errors::store_error)?;
                Ok(result.rows_affected() == 1)
            }

            async fn record_sync_success(
                &mut self,
                id: dashtam_domain::providers::ProviderId,
                now: time::OffsetDateTime,
                next_sync_at: time::OffsetDateTime,
            ) -> Result<(), dashtam_domain::ports::StoreError> {
                sqlx::query(
                    "UPDATE providers SET last_sync_at = $2, last_sync_error = NULL, sync_failures = 0, \
                       next_sync_at = $3, updated_at = $2 WHERE id = $1",
                )
                .bind(id.as_uuid())
                .bind($crate::rows::utc(now))
                .bind($crate::rows::utc(next_sync_at))
                .execute(&mut *self.tx)
                .await
                .map_err($crate::errors::store_error)?;
                Ok(())
            }

            async fn record_sync_failure(
                &mut self,
                id: dashtam_domain::providers::ProviderId,
                error: &str,
                now: time::OffsetDateTime,
            ) -> Result<i32, dashtam_domain::ports::StoreError> {
                let count: Option<i32> = sqlx::query_scalar(
                    "UPDATE providers SET last_sync_error = $2, sync_failures = sync_failures + 1, updated_at = $3 \
                     WHERE id = $1 RETURNING sync_failures",
                )
                .bind(id.as_uuid())
                .bind(error)
                .bind($crate::rows::utc(now))
                .fetch_optional(&mut *self.tx)
                .await
                .map_err($crate::errors::store_error)?;
                Ok(count.unwrap_or(0))
            }

            async fn schedule_sync(
                &mut self,
                id: dashtam_domain::providers::ProviderId,
                next_sync_at: time::OffsetDateTime,
            ) -> Result<(), dashtam_domain::ports::StoreError> {
                sqlx::query("UPDATE providers SET next_sync_at = $2 WHERE id = $1")
                    .bind(id.as_uuid())
                    .bind($crate::rows::utc(next_sync_at))
                    .execute(&mut *self.tx)
                    .await
                    .map_err($crate::errors::store_error)?;
                Ok(())
            }

            async fn delete_credentials(
                &mut self,
                id: dashtam_domain::providers::ProviderId,
            ) -> Result<bool, dashtam_domain::ports::StoreError> {
                let result = sqlx::query("DELETE FROM provider_credentials WHERE provider_id = $1")
                    .bind(id.as_uuid())
                    .execute(&mut *self.tx)
                    .await
                    .map_err($crate::errors::store_error)?;
                Ok(result.rows_affected() == 1)
            }
        }

        impl $tx {
            async fn provider_in_tx(
                &mut self,
                user_id: dashtam_domain::UserId,
                id: dashtam_domain::providers::ProviderId,
            ) -> Result<Option<dashtam_domain::providers::Provider>, dashtam_domain::ports::StoreError> {
                let row: Option<$crate::provider_rows::ProviderRow> =
                    sqlx::query_as($crate::provider_queries::provider_by_owner!())
                        .bind(user_id.as_uuid())
                        .bind(id.as_uuid())
                        .fetch_optional(&mut *self.tx)
                        .await
                        .map_err($crate::errors::store_error)?;
                row.map(TryInto::try_into).transpose()
            }
        }
    };
}

pub(crate) use {credentials_columns, impl_provider_ports, provider_by_owner, provider_columns};
