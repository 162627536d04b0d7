//! Writes refused requests to the violations table without slowing the refusal: the `429` path only puts
//! the record on a bounded queue (never waiting), and one background task writes what has queued up in a
//! single transaction. When the queue is full — the database is slow while a flood is refused — records are
//! dropped and counted, because refusing requests quickly matters more than recording every one. Each record
//! is also a `rate_limit.denied` audit entry with its request's context, written in the same transaction.

use std::sync::Arc;

use dashtam_domain::RequestContext;
use dashtam_domain::audit::{AuditAction, AuditEvent, AuditLog, AuditOutcome};
use dashtam_domain::ports::{Store, StoreError};
use dashtam_domain::rate_limit::RateLimitViolation;
use tokio::sync::mpsc;

use crate::metrics::Metrics;

/// Records waiting to be written, at most.
pub const DEFAULT_QUEUE_CAPACITY: usize = 4_096;
/// Records written per transaction, at most.
const BATCH: usize = 256;

/// The sending half; see the module documentation.
#[derive(Debug)]
pub(crate) struct ViolationRecorder {
    queue: Option<mpsc::Sender<(RateLimitViolation, RequestContext)>>,
    metrics: Arc<Metrics>,
}

impl ViolationRecorder {
    /// Starts the writer on the current Tokio runtime. Outside one (a command that never serves) nothing is
    /// written and every record counts as dropped.
    pub(crate) fn start(store: Arc<dyn Store>, audit: Arc<AuditLog>, metrics: Arc<Metrics>, capacity: usize) -> Self {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!("no async runtime: rate-limit violations will not be recorded");
            return Self { queue: None, metrics };
        };
        let (queue, pending) = mpsc::channel(capacity.max(1));
        runtime.spawn(write_batches(pending, store, audit, metrics.clone()));
        Self { queue: Some(queue), metrics }
    }

    /// Queues a record and the context of the refused request, or drops and counts it when the queue is full.
    pub(crate) fn record(&self, violation: RateLimitViolation, context: RequestContext) {
        let queued = self.queue.as_ref().is_some_and(|queue| queue.try_send((violation, context)).is_ok());
        if !queued {
            self.metrics.rate_limit_violation_dropped(1);
        }
    }
}

/// Runs until every sender is gone (the application was dropped).
async fn write_batches(
    mut pending: mpsc::Receiver<(RateLimitViolation, RequestContext)>,
    store: Arc<dyn Store>,
    audit: Arc<AuditLog>,
    metrics: Arc<Metrics>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    while pending.recv_many(&mut batch, BATCH).await > 0 {
        let count = u64::try_from(batch.len()).unwrap_or(u64::MAX);
        match write(store.as_ref(), &audit, &batch).await {
            Ok(()) => metrics.rate_limit_violation_recorded(count),
            Err(error) => {
                tracing::warn!(%error, count, "could not record rate-limit violations");
                metrics.rate_limit_violation_dropped(count);
            }
        }
        batch.clear();
    }
}

async fn write(
    store: &dyn Store,
    audit: &AuditLog,
    batch: &[(RateLimitViolation, RequestContext)],
) -> Result<(), StoreError> {
    let violations: Vec<RateLimitViolation> = batch.iter().map(|(violation, _)| violation.clone()).collect();
    let mut tx = store.begin().await?;
    tx.insert_rate_limit_violations(&violations).await?;
    for (violation, context) in batch {
        let event = AuditEvent::new(AuditAction::RateLimitDenied, AuditOutcome::Denied)
            .resource("rate_limit_violation", violation.id)
            .detail("rule", violation.rule.as_str())
            .detail("scope", violation.scope.as_str());
        audit.append(&mut tx, context, event).await?;
    }
    tx.commit().await
}
