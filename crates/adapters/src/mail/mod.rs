//! Outgoing email: rendering notifications ([`TemplateComposer`]), handing messages to the outside world
//! ([`MailTransport`]: `.eml` files, SMTP or the log), and delivering the database outbox after commit
//! ([`OutboxWorker`]).
//!
//! Services never send mail themselves: they compose an [`OutgoingEmail`](dashtam_domain::mail::OutgoingEmail)
//! and queue it in the transaction of the change that causes it, then nudge the worker through an
//! [`OutboxWaker`]. The worker claims due messages, sends them, and records each outcome, retrying failures
//! with exponential backoff. See `docs/mail.md`.

mod outbox_worker;
mod templates;
mod transport;

pub use outbox_worker::{DeliveryReport, OutboxOptions, OutboxWaker, OutboxWorker};
pub use templates::TemplateComposer;
pub use transport::{DEFAULT_SEND_TIMEOUT, MailError, MailTransport};

/// `value` on one line: every control character (CR and LF included) becomes a space, runs of whitespace
/// collapse, and the ends are trimmed. Used for anything that lands in a header or a one-line field, so no
/// value can start a new header or fake a line of the message.
pub(crate) fn single_line(value: &str) -> String {
    value
        .split(|c: char| c.is_control() || c.is_whitespace())
        .filter(|word| !word.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::single_line;

    #[test]
    fn single_line_removes_line_breaks_and_control_characters() {
        assert_eq!(single_line("  Ada\r\nBcc: x@example.com\u{0}\t end "), "Ada Bcc: x@example.com end");
        assert_eq!(single_line("Zoë\u{2028}Ng"), "Zoë Ng");
        assert_eq!(single_line("\r\n"), "");
    }
}
