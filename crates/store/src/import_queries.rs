//! Import records: the SQL both backends share (see [`crate::queries`]).

/// Implements the import ports for one backend's store and transaction types.
macro_rules! impl_import_ports {
    ($store:ty, $tx:ident) => {
        #[async_trait::async_trait]
        impl dashtam_domain::imports::ImportReads for $store {
            async fn imports(
                &self,
                user_id: dashtam_domain::UserId,
                limit: u32,
            ) -> Result<Vec<dashtam_domain::imports::ImportRecord>, dashtam_domain::ports::StoreError> {
                let rows: Vec<$crate::import_rows::ImportRow> = sqlx::query_as(
                    "SELECT id, user_id, file_name, format, accounts_created, accounts_updated, \
                       transactions_created, transactions_duplicate, holdings_created, holdings_updated, warnings, \
                       created_at \
                     FROM imports WHERE user_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2",
                )
                .bind(user_id.as_uuid())
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await
                .map_err($crate::errors::store_error)?;
                rows.into_iter().map(TryInto::try_into).collect()
            }
        }

        #[async_trait::async_trait]
        impl dashtam_domain::imports::ImportWrites for $tx {
            async fn insert_import(
                &mut self,
                record: &dashtam_domain::imports::ImportRecord,
            ) -> Result<(), dashtam_domain::ports::StoreError> {
                let count = |value: u64| i64::try_from(value).unwrap_or(i64::MAX);
                let warnings = serde_json::to_string(&record.warnings)
                    .map_err(|error| dashtam_domain::ports::StoreError::Other(error.into()))?;
                sqlx::query(
                    "INSERT INTO imports (id, user_id, file_name, format, accounts_created, accounts_updated, \
                       transactions_created, transactions_duplicate, holdings_created, holdings_updated, warnings, \
                       created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                )
                .bind(record.id.as_uuid())
                .bind(record.user_id.as_uuid())
                .bind(&record.file_name)
                .bind(record.format.as_str())
                .bind(count(record.accounts_created))
                .bind(count(record.accounts_updated))
                .bind(count(record.transactions_created))
                .bind(count(record.transactions_duplicate))
                .bind(count(record.holdings_created))
                .bind(count(record.holdings_updated))
                .bind(warnings)
                .bind($crate::rows::utc(record.created_at))
                .execute(&mut *self.tx)
                .await
                .map_err($crate::errors::store_error)?;
                Ok(())
            }
        }
    };
}

pub(crate) use impl_import_ports;
