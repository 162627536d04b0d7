//! Delivers the email outbox: claims due messages, sends them, records each outcome, and retries failures
//! with exponential backoff.
//!
//! Delivery is at least once. A message is claimed under a lease (hidden from other workers until it
//! ends), sent, and then marked sent in its own transaction; if the worker dies between sending and
//! marking, the lease runs out and the message goes out again. The `Message-ID` is derived from the outbox
//! id, so such a duplicate is recognisably the same message, and the file transport simply rewrites it.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use dashtam_domain::Clock;
use dashtam_domain::mail::QueuedEmail;
use dashtam_domain::ports::{Store, StoreError};
use time::OffsetDateTime;
use tokio::sync::Notify;

use super::transport::{MailError, MailTransport};

/// The longest failure text kept in the outbox row.
const MAX_ERROR_CHARS: usize = 1_000;

/// How the worker paces itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxOptions {
    /// How often to look for due mail when nobody wakes the worker (retries and other instances' mail are
    /// found this way).
    pub poll_interval: Duration,
    /// The most messages claimed in one pass.
    pub batch_size: u32,
    /// How long claimed messages stay hidden from other workers. The worker starts no send that could
    /// outlast it, and it is raised to at least twice the transport's send timeout.
    pub lease: Duration,
    /// The wait after the first failed attempt; it doubles with each further failure.
    pub retry_base: Duration,
    /// The longest wait between attempts.
    pub retry_max: Duration,
    /// Attempts before a message is given up.
    pub max_attempts: u32,
}

impl Default for OutboxOptions {
    /// Five-second polls, 20 per pass, two-minute leases, and retries after 30 s, 1, 2, 4, 8, 16 and 32 min
    /// before giving up at the eighth failure (a little over an hour after the first).
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_secs(5),
            batch_size: 20,
            lease: Duration::from_secs(120),
            retry_base: Duration::from_secs(30),
            retry_max: Duration::from_secs(3_600),
            max_attempts: 8,
        }
    }
}

impl OutboxOptions {
    /// When to try again after a failure at `now`, given the attempts made before the failed one; `None`
    /// once `max_attempts` have failed.
    pub fn retry_at(&self, attempts_before: i32, now: OffsetDateTime) -> Option<OffsetDateTime> {
        let attempts_before = u32::try_from(attempts_before).unwrap_or(0);
        if attempts_before.saturating_add(1) >= self.max_attempts {
            return None;
        }
        let factor = 1_u32.checked_shl(attempts_before).unwrap_or(u32::MAX);
        let delay = self.retry_base.saturating_mul(factor).min(self.retry_max);
        // Past the end of time is as good as never: give up rather than overflow.
        now.checked_add(time::Duration::try_from(delay).ok()?)
    }
}

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryReport {
    /// Messages claimed.
    pub claimed: usize,
    /// Delivered and recorded as sent.
    pub sent: usize,
    /// Failed and scheduled for another attempt.
    pub retrying: usize,
    /// Failed for the last time (or for good) and given up.
    pub given_up: usize,
    /// Claimed but not attempted, because the lease was running out or the worker is stopping; they become
    /// due again when the lease ends.
    pub deferred: usize,
    /// Attempted, but the outcome could not be recorded (the database failed); they are sent again when
    /// the lease ends.
    pub unrecorded: usize,
}

/// Wakes an [`OutboxWorker`] so mail queued by a just-committed transaction goes out now rather than at the
/// next poll. Cheap to clone; waking an idle or busy worker is equally fine (a wake during a pass starts
/// another pass right after it).
#[derive(Debug, Clone)]
pub struct OutboxWaker(Arc<Notify>);

impl OutboxWaker {
    /// Asks the worker for a pass. Call it after the commit, never before: a pass that runs before the
    /// commit cannot see the new message.
    pub fn wake(&self) {
        self.0.notify_one();
    }
}

/// Delivers queued mail. Build one per process with [`OutboxWorker::new`], hand its [`waker`](Self::waker) to
/// whatever queues mail, and spawn [`run`](Self::run).
#[derive(Debug)]
pub struct OutboxWorker {
    store: Arc<dyn Store>,
    transport: MailTransport,
    clock: Arc<dyn Clock>,
    options: OutboxOptions,
    wake: Arc<Notify>,
}

impl OutboxWorker {
    /// A worker delivering `store`'s outbox through `transport`.
    pub fn new(store: Arc<dyn Store>, transport: MailTransport, clock: Arc<dyn Clock>, options: OutboxOptions) -> Self {
        let mut options = options;
        let least_lease = transport.send_timeout().saturating_mul(2);
        if options.lease < least_lease {
            // With a lease shorter than one send, no send could ever start safely.
            tracing::warn!(
                configured = ?options.lease,
                used = ?least_lease,
                "mail outbox lease raised to twice the send timeout"
            );
            options.lease = least_lease;
        }
        options.batch_size = options.batch_size.max(1);
        options.max_attempts = options.max_attempts.max(1);
        Self { store, transport, clock, options, wake: Arc::new(Notify::new()) }
    }

    /// The handle that triggers a pass.
    pub fn waker(&self) -> OutboxWaker {
        OutboxWaker(Arc::clone(&self.wake))
    }

    /// The options in force (after [`new`](Self::new) adjusted them).
    pub fn options(&self) -> &OutboxOptions {
        &self.options
    }

    /// Delivers until `shutdown` completes: a pass at start, then one whenever woken, every
    /// `poll_interval`, and straight away while full batches keep coming. When `shutdown` completes during
    /// a pass, the message being sent is finished and recorded, the rest of the batch is left for the next
    /// start (its lease expires), and `run` returns.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let mut shutdown = pin!(shutdown);
        let stopping = AtomicBool::new(false);
        tracing::info!(transport = self.transport.kind_name(), "mail outbox worker started");
        loop {
            let outcome = {
                let mut pass = pin!(self.pass(&stopping));
                tokio::select! {
                    outcome = &mut pass => outcome,
                    () = &mut shutdown => {
                        stopping.store(true, Ordering::Relaxed);
                        log_pass(&pass.await);
                        break;
                    }
                }
            };
            log_pass(&outcome);
            let full_batch = matches!(
                &outcome,
                Ok(report) if report.claimed >= self.batch_limit() && report.deferred == 0 && report.unrecorded == 0
            );
            if full_batch {
                continue;
            }
            tokio::select! {
                () = &mut shutdown => break,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(self.options.poll_interval) => {}
            }
        }
        tracing::info!("mail outbox worker stopped");
    }

    /// One pass: claim what is due, send it, record each outcome. Fails only when nothing could be
    /// claimed; per-message failures are recorded and counted in the report.
    pub async fn deliver_due(&self) -> Result<DeliveryReport, StoreError> {
        self.pass(&AtomicBool::new(false)).await
    }

    fn batch_limit(&self) -> usize {
        usize::try_from(self.options.batch_size).unwrap_or(usize::MAX)
    }

    async fn pass(&self, stopping: &AtomicBool) -> Result<DeliveryReport, StoreError> {
        let claimed = self.claim().await?;
        // Measured on the monotonic clock: the lease must hold in real time even if the injected clock is
        // fixed (tests) or jumps.
        let claimed_at = tokio::time::Instant::now();
        let mut report = DeliveryReport { claimed: claimed.len(), ..DeliveryReport::default() };
        for queued in claimed {
            let lease_left = self.options.lease.saturating_sub(claimed_at.elapsed());
            if stopping.load(Ordering::Relaxed) || lease_left <= self.transport.send_timeout() {
                report.deferred += 1;
                continue;
            }
            let outcome = self.transport.send(&queued.email).await;
            match self.record(&queued, outcome).await {
                Ok(Recorded::Sent) => report.sent += 1,
                Ok(Recorded::Retrying) => report.retrying += 1,
                Ok(Recorded::GivenUp) => report.given_up += 1,
                Err(error) => {
                    tracing::error!(
                        email_id = %queued.email.id,
                        error = %error,
                        "could not record a delivery attempt; the email will be tried again when its lease ends"
                    );
                    report.unrecorded += 1;
                }
            }
        }
        Ok(report)
    }

    async fn claim(&self) -> Result<Vec<QueuedEmail>, StoreError> {
        let now = self.clock.now();
        let lease = time::Duration::try_from(self.options.lease).unwrap_or(time::Duration::MAX);
        let lease_until = now.checked_add(lease).unwrap_or(now);
        let mut tx = self.store.begin().await?;
        let claimed = tx.claim_due_emails(now, lease_until, i64::from(self.options.batch_size)).await?;
        tx.commit().await?;
        Ok(claimed)
    }

    async fn record(&self, queued: &QueuedEmail, outcome: Result<(), MailError>) -> Result<Recorded, StoreError> {
        let email = &queued.email;
        let attempt = queued.attempts.saturating_add(1);
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        let recorded = match outcome {
            Ok(()) => {
                tx.mark_email_sent(email.id, now).await?;
                Recorded::Sent
            }
            Err(error) => {
                let retry_at = if error.is_permanent() { None } else { self.options.retry_at(queued.attempts, now) };
                tx.mark_email_failed(email.id, &bounded(&error.to_string()), retry_at).await?;
                match retry_at {
                    Some(retry_at) => {
                        tracing::warn!(email_id = %email.id, attempt, error = %error, %retry_at, "email delivery failed; will retry");
                        Recorded::Retrying
                    }
                    None => {
                        tracing::error!(email_id = %email.id, attempt, error = %error, "email delivery failed; giving up");
                        Recorded::GivenUp
                    }
                }
            }
        };
        tx.commit().await?;
        if matches!(recorded, Recorded::Sent) {
            tracing::info!(email_id = %email.id, attempt, transport = self.transport.kind_name(), "email delivered");
        }
        Ok(recorded)
    }
}

enum Recorded {
    Sent,
    Retrying,
    GivenUp,
}

fn log_pass(outcome: &Result<DeliveryReport, StoreError>) {
    match outcome {
        Ok(report) if report.claimed > 0 => tracing::debug!(?report, "mail outbox pass"),
        Ok(_) => {}
        Err(error) => tracing::error!(error = %error, "mail outbox pass failed; trying again at the next poll"),
    }
}

/// `text` cut to [`MAX_ERROR_CHARS`] characters.
fn bounded(text: &str) -> String {
    match text.char_indices().nth(MAX_ERROR_CHARS) {
        Some((cut, _)) => text[..cut].to_owned(),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    const NOW: OffsetDateTime = datetime!(2025-10-03 10:00:00 UTC);

    #[test]
    fn retries_back_off_exponentially_and_give_up_at_the_last_attempt() {
        let options = OutboxOptions::default();
        let delays: Vec<_> =
            (0..8).map(|before| options.retry_at(before, NOW).map(|at| (at - NOW).whole_seconds())).collect();
        assert_eq!(delays, [Some(30), Some(60), Some(120), Some(240), Some(480), Some(960), Some(1_920), None],);
        assert_eq!(options.retry_at(100, NOW), None);
    }

    #[test]
    fn backoff_is_capped() {
        let options = OutboxOptions { max_attempts: 40, ..OutboxOptions::default() };
        assert_eq!(options.retry_at(7, NOW), Some(NOW + time::Duration::hours(1)));
        assert_eq!(options.retry_at(35, NOW), Some(NOW + time::Duration::hours(1)));
        // A corrupt negative count counts as none.
        assert_eq!(options.retry_at(-3, NOW), Some(NOW + time::Duration::seconds(30)));
    }

    #[test]
    fn stored_errors_are_bounded() {
        assert_eq!(bounded("short"), "short");
        assert_eq!(bounded(&"é".repeat(5_000)).chars().count(), MAX_ERROR_CHARS);
    }
}
