//! Re-encrypting stored provider credentials under the active key (`dashtam keys rotate`), so that an old key
//! can be removed from the keyring.
//!
//! Credentials are walked in id order, a batch at a time. Each secret is written back with a compare-and-swap
//! on its old ciphertext, one transaction per batch: a token refresh that replaced a secret meanwhile wins (it
//! is counted as `changed_meanwhile` and a re-run looks at it again). Nothing is lost when the walk stops
//! half-way, and a re-run only re-encrypts what is still under another key, so it is safe to interrupt and
//! run again.

use serde_json::json;

use crate::audit::{AuditAction, AuditEvent, AuditLog, AuditOutcome};
use crate::context::RequestContext;
use crate::ports::{Store, StoreError};
use crate::providers::model::ProviderId;
use crate::providers::service::credentials_location;
use crate::secrets::{SecretCipher, SecretCipherError};

/// How many credentials one batch (and one transaction) handles.
pub const KEY_ROTATION_BATCH: u32 = 100;

/// What a key rotation did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyRotationReport {
    /// The key every re-encrypted secret is now under.
    pub active_key_id: String,
    /// Stored credentials looked at.
    pub examined: u64,
    /// Secrets that were under another key and are now under the active one.
    pub reencrypted: u64,
    /// Secrets already under the active key (and decrypting under it): nothing to do.
    pub already_current: u64,
    /// Secrets a token refresh (or a reconnection or deletion) replaced while they were being re-encrypted; the
    /// newer value was kept, and a re-run checks it again.
    pub changed_meanwhile: u64,
    /// Connections whose secret does not decrypt (its key is no longer in the keyring, or it was altered),
    /// with why. They are left as they are; such a connection has to be linked again.
    pub failed: Vec<(ProviderId, SecretCipherError)>,
}

impl KeyRotationReport {
    /// Whether nothing is left under another key and everything decrypts: the old keys may be removed.
    pub fn is_complete(&self) -> bool {
        self.failed.is_empty() && self.changed_meanwhile == 0
    }
}

/// Re-encrypts every stored credential that is not under `cipher`'s active key, `batch` at a time, and records
/// one `keys.rotated` audit entry with the counts. A secret that does not decrypt is reported in
/// [`KeyRotationReport::failed`] without stopping the others; only storage errors end the walk early (what was
/// committed by then stays, and a re-run continues).
pub async fn reencrypt_credentials(
    store: &dyn Store,
    audit: &AuditLog,
    cipher: &dyn SecretCipher,
    context: &RequestContext,
    batch: u32,
) -> Result<KeyRotationReport, StoreError> {
    let batch = batch.max(1);
    let mut report = KeyRotationReport { active_key_id: cipher.active_key_id().to_owned(), ..Default::default() };
    let mut after = None;
    loop {
        let page = store.credentials_after(after, batch).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.provider_id);
        let mut replacements = Vec::new();
        for credentials in &page {
            report.examined += 1;
            let row_id = credentials.provider_id.to_string();
            let location = credentials_location(&row_id);
            if cipher.needs_reencryption(&credentials.secret) {
                match cipher.reencrypt(&credentials.secret, &location) {
                    Ok(secret) => replacements.push((credentials.provider_id, &credentials.secret, secret)),
                    Err(error) => report.failed.push((credentials.provider_id, error)),
                }
            } else {
                // Under the active key, or unreadable: decrypting tells which, so `already_current` promises
                // the value is readable with the keyring as it will be once the old keys are gone.
                match cipher.decrypt(&credentials.secret, &location) {
                    Ok(_) => report.already_current += 1,
                    Err(error) => report.failed.push((credentials.provider_id, error)),
                }
            }
        }
        if !replacements.is_empty() {
            let mut tx = store.begin().await?;
            for (id, expected, secret) in &replacements {
                if tx.replace_credentials_secret(*id, expected, secret).await? {
                    report.reencrypted += 1;
                } else {
                    report.changed_meanwhile += 1;
                }
            }
            tx.commit().await?;
        }
        if page.len() < batch as usize {
            break;
        }
    }
    for (id, error) in &report.failed {
        tracing::warn!(provider_id = %id, %error, "stored provider credentials do not decrypt");
    }
    let outcome = if report.failed.is_empty() { AuditOutcome::Success } else { AuditOutcome::Failure };
    let failed_ids: Vec<String> = report.failed.iter().map(|(id, _)| id.to_string()).collect();
    let event = AuditEvent::new(AuditAction::KeysRotated, outcome)
        .detail("active_key_id", report.active_key_id.as_str())
        .detail("examined", report.examined)
        .detail("reencrypted", report.reencrypted)
        .detail("already_current", report.already_current)
        .detail("changed_meanwhile", report.changed_meanwhile)
        .detail("failed", report.failed.len())
        .detail("failed_provider_ids", json!(failed_ids));
    audit.record(context, event).await?;
    Ok(report)
}
