//! How a message leaves the server: as an `.eml` file (development), over SMTP, or only as a log line.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use dashtam_domain::mail::OutgoingEmail;
use lettre::message::header::ContentTransferEncoding;
use lettre::message::{Body, Mailbox, MultiPart};
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::{ExposeSecret, SecretString};
use tokio::io::AsyncWriteExt;

use super::single_line;

/// The longest line SMTP carries (RFC 5321 section 4.5.3.1.6), line break excluded.
const MAX_LINE_OCTETS: usize = 998;

/// How long one delivery may take, connection included, unless the operator chose otherwise.
pub const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a message could not be handed over. The text never holds credentials: SMTP URLs are reduced to
/// `host:port` before they reach an error, and lettre never prints credentials.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// The configured sender is not a mailbox such as `Dashtam <no-reply@example.com>`.
    #[error("the sender address {0:?} is not a valid mailbox")]
    InvalidSender(String),
    /// The configured SMTP URL cannot be used; the reason names the part, never the URL itself.
    #[error("the SMTP URL is invalid: {0}")]
    InvalidSmtpUrl(String),
    /// This message can never be built (for example a recipient SMTP cannot carry); retrying will not help.
    #[error("the message cannot be built: {0}")]
    Message(String),
    /// The SMTP server refused the message or could not be reached.
    #[error("SMTP delivery via {endpoint} failed: {source}")]
    Smtp {
        /// The server, as `host:port`.
        endpoint: String,
        /// What lettre reported.
        #[source]
        source: lettre::transport::smtp::Error,
    },
    /// The `.eml` file could not be written.
    #[error("writing {path}: {source}")]
    File {
        /// The file or directory involved.
        path: PathBuf,
        /// What the file system reported.
        #[source]
        source: std::io::Error,
    },
    /// The delivery did not finish in time.
    #[error("delivery did not finish within {0:?}")]
    Timeout(Duration),
}

impl MailError {
    /// Whether retrying the same message can never succeed, so the outbox should give up at once.
    pub fn is_permanent(&self) -> bool {
        matches!(self, MailError::Message(_))
    }
}

/// Where messages go, chosen by `DASHTAM_MAIL__TRANSPORT`.
pub struct MailTransport {
    from: Mailbox,
    timeout: Duration,
    kind: Kind,
}

enum Kind {
    File { dir: PathBuf },
    Smtp { mailer: AsyncSmtpTransport<Tokio1Executor>, endpoint: String },
    Log,
}

impl fmt::Debug for MailTransport {
    // Written by hand so the SMTP credentials inside lettre's transport can never be printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("MailTransport");
        debug.field("kind", &self.kind_name()).field("from", &self.from.to_string()).field("timeout", &self.timeout);
        match &self.kind {
            Kind::File { dir } => debug.field("dir", dir),
            Kind::Smtp { endpoint, .. } => debug.field("endpoint", endpoint),
            Kind::Log => &mut debug,
        };
        debug.finish()
    }
}

impl MailTransport {
    /// Writes each message to `<dir>/<id>.eml`, creating `dir` when missing. A file appears only once
    /// complete (it is written under a hidden temporary name and renamed), so a reader never sees half a
    /// message; delivering the same message twice overwrites the same file.
    pub fn file(dir: impl Into<PathBuf>, from: &str) -> Result<Self, MailError> {
        Ok(Self { from: parse_sender(from)?, timeout: DEFAULT_SEND_TIMEOUT, kind: Kind::File { dir: dir.into() } })
    }

    /// Sends through the SMTP server at `url`, with lettre's URL rules:
    ///
    /// - `smtps://[user:password@]host[:port]` — TLS from the first byte (port 465 by default);
    /// - `smtp://…?tls=required` — STARTTLS, refusing a server without it (port 587 by default);
    /// - `smtp://…?tls=opportunistic` — STARTTLS when offered (port 587 by default);
    /// - `smtp://host[:port]` — no TLS at all (port 25 by default): only for a relay on the same host or
    ///   network, and a warning is logged when such a URL carries credentials for another host.
    ///
    /// User name and password are percent-decoded. `timeout` bounds each delivery as a whole and each
    /// network step in it.
    pub fn smtp(url: &SecretString, from: &str, timeout: Duration) -> Result<Self, MailError> {
        let from = parse_sender(from)?;
        let url = url.expose_secret().trim();
        let parts = SmtpUrlParts::of(url)?;
        // lettre's errors for a URL describe the part at fault (scheme, host, port) without echoing the URL.
        let mailer = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|error| MailError::InvalidSmtpUrl(error.to_string()))?
            .timeout(Some(timeout))
            .build();
        if parts.plaintext_credentials_leave_host() {
            tracing::warn!(
                endpoint = %parts.endpoint,
                "the SMTP URL sends credentials without TLS; use smtps:// or smtp://…?tls=required"
            );
        }
        Ok(Self { from, timeout, kind: Kind::Smtp { mailer, endpoint: parts.endpoint } })
    }

    /// Logs each message's recipient and subject at `info` and delivers nothing. Bodies are never logged:
    /// they hold one-time links.
    pub fn log(from: &str) -> Result<Self, MailError> {
        Ok(Self { from: parse_sender(from)?, timeout: DEFAULT_SEND_TIMEOUT, kind: Kind::Log })
    }

    /// `file`, `smtp` or `log`, for logs and metrics.
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            Kind::File { .. } => "file",
            Kind::Smtp { .. } => "smtp",
            Kind::Log => "log",
        }
    }

    /// The longest one [`send`](Self::send) can take before it gives up.
    pub fn send_timeout(&self) -> Duration {
        self.timeout
    }

    /// Hands one message over: written, accepted by the SMTP server, or logged.
    pub async fn send(&self, email: &OutgoingEmail) -> Result<(), MailError> {
        let message = self.message(email)?;
        let delivery = async {
            match &self.kind {
                Kind::File { dir } => write_eml(dir, email, &message.formatted()).await,
                Kind::Smtp { mailer, endpoint } => mailer
                    .send(message)
                    .await
                    .map(drop)
                    .map_err(|source| MailError::Smtp { endpoint: endpoint.clone(), source }),
                Kind::Log => {
                    tracing::info!(
                        email_id = %email.id,
                        to = email.to.as_str(),
                        subject = %single_line(&email.subject),
                        "email not delivered (log transport)"
                    );
                    Ok(())
                }
            }
        };
        tokio::time::timeout(self.timeout, delivery).await.map_err(|_| MailError::Timeout(self.timeout))?
    }

    /// The MIME message for `email`: `multipart/alternative` with the text part first (so clients without
    /// HTML show it), a `Message-ID` derived from the outbox id (so a retried delivery is recognisably the
    /// same message), and `Date` set to when the message was composed. ASCII bodies go as `7bit`, so their
    /// links stay whole on one line (see [`encode_body`]).
    pub fn message(&self, email: &OutgoingEmail) -> Result<Message, MailError> {
        let to: Address =
            email.to.as_str().parse().map_err(|error| MailError::Message(format!("recipient: {error}")))?;
        Message::builder()
            .from(self.from.clone())
            .to(Mailbox::new(None, to))
            .subject(single_line(&email.subject))
            .message_id(Some(format!("<{}@{}>", email.id.simple(), self.from.email.domain())))
            .date(SystemTime::from(email.created_at))
            .multipart(MultiPart::alternative_plain_html(encode_body(&email.text_body), encode_body(&email.html_body)))
            .map_err(|error| MailError::Message(error.to_string()))
    }
}

/// `text` as a MIME body. lettre would pick quoted-printable for any line of 76 characters or more, which
/// folds every link (they run longer) with `=` soft breaks: unclickable in a raw `.eml`, and no longer
/// greppable by a test looking for a token. An ASCII body whose lines fit SMTP's 998-octet limit is valid
/// `7bit` as it is, so it is passed through pre-encoded; anything else (a name outside ASCII) is left to
/// lettre's choice.
fn encode_body(text: &str) -> Body {
    // One line-break convention, CRLF, as the wire format requires; lone CRs and LFs become line breaks.
    let crlf = text.replace("\r\n", "\n").replace('\r', "\n").replace('\n', "\r\n");
    let seven_bit = crlf.bytes().all(|byte| byte.is_ascii() && byte != 0)
        && crlf.split("\r\n").all(|line| line.len() <= MAX_LINE_OCTETS);
    if seven_bit {
        Body::dangerous_pre_encoded(crlf.into_bytes(), ContentTransferEncoding::SevenBit)
    } else {
        Body::new(text.to_owned())
    }
}

fn parse_sender(from: &str) -> Result<Mailbox, MailError> {
    from.trim().parse::<Mailbox>().map_err(|_| MailError::InvalidSender(from.to_owned()))
}

/// Writes `<dir>/<id>.eml` atomically, readable by the owner only (it may hold a live one-time link).
async fn write_eml(dir: &Path, email: &OutgoingEmail, content: &[u8]) -> Result<(), MailError> {
    let fail = |path: &Path| {
        let path = path.to_path_buf();
        move |source| MailError::File { path, source }
    };
    let mut builder = tokio::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    builder.mode(0o700);
    builder.create(dir).await.map_err(fail(dir))?;

    let path = dir.join(format!("{}.eml", email.id));
    // Hidden and without the `.eml` suffix, so nothing watching for messages picks it up half-written.
    let temporary = dir.join(format!(".{}.eml.tmp", email.id));
    let written = async {
        let mut options = tokio::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        options.mode(0o600);
        let mut file = options.open(&temporary).await?;
        file.write_all(content).await?;
        file.sync_all().await?;
        drop(file);
        tokio::fs::rename(&temporary, &path).await
    }
    .await;
    if let Err(source) = written {
        let _ = tokio::fs::remove_file(&temporary).await;
        return Err(MailError::File { path, source });
    }
    Ok(())
}

/// What is safe to know about an SMTP URL: where it points and whether it is encrypted.
struct SmtpUrlParts {
    /// `host[:port]`, without credentials.
    endpoint: String,
    has_credentials: bool,
    tls: bool,
}

impl SmtpUrlParts {
    /// Splits `scheme://[userinfo@]host[:port][/…][?…]` as the URL standard does for a non-special scheme:
    /// the authority ends at the first `/`, `?` or `#`, and the user information at its last `@`.
    fn of(url: &str) -> Result<Self, MailError> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| MailError::InvalidSmtpUrl("it must start with smtp:// or smtps://".into()))?;
        if !matches!(scheme, "smtp" | "smtps") {
            return Err(MailError::InvalidSmtpUrl("it must start with smtp:// or smtps://".into()));
        }
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(authority_end);
        let (has_credentials, endpoint) = match authority.rsplit_once('@') {
            Some((_, host)) => (true, host),
            None => (false, authority),
        };
        if endpoint.is_empty() {
            return Err(MailError::InvalidSmtpUrl("it names no host".into()));
        }
        let query = tail.split_once('?').map(|(_, query)| query.split('#').next().unwrap_or_default());
        let starttls = query
            .is_some_and(|query| query.split('&').any(|pair| matches!(pair, "tls=required" | "tls=opportunistic")));
        Ok(Self { endpoint: endpoint.to_owned(), has_credentials, tls: scheme == "smtps" || starttls })
    }

    /// Credentials in clear text to anything but this machine.
    fn plaintext_credentials_leave_host(&self) -> bool {
        let host = match self.endpoint.strip_prefix('[') {
            Some(bracketed) => bracketed.split(']').next().unwrap_or_default(),
            None => self.endpoint.split(':').next().unwrap_or_default(),
        };
        let loopback = host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
        self.has_credentials && !self.tls && !loopback
    }
}

#[cfg(test)]
mod tests {
    use dashtam_domain::Email;
    use time::macros::datetime;
    use uuid::Uuid;

    use super::*;

    fn email() -> OutgoingEmail {
        OutgoingEmail {
            id: Uuid::now_v7(),
            to: Email::parse("ada@example.com").expect("valid"),
            subject: "Reset your password\r\nBcc: eve@example.com".to_owned(),
            text_body: "Hello Ada,\n\nhttps://app.example.com/reset-password?token=abc\n".to_owned(),
            html_body: "<p>Hello Ada,</p>".to_owned(),
            created_at: datetime!(2025-10-03 10:00:00 UTC),
        }
    }

    #[test]
    fn messages_carry_sender_recipient_ids_date_and_both_parts() {
        let transport = MailTransport::log("Dashtam <no-reply@dashtam.example>").expect("valid sender");
        let email = email();
        let message = transport.message(&email).expect("build");
        let envelope = message.envelope();
        assert_eq!(envelope.to().iter().map(ToString::to_string).collect::<Vec<_>>(), ["ada@example.com"]);
        assert_eq!(envelope.from().map(ToString::to_string).as_deref(), Some("no-reply@dashtam.example"));
        let text = String::from_utf8(message.formatted()).expect("ASCII");
        assert!(text.contains("From: Dashtam <no-reply@dashtam.example>\r\n"), "{text}");
        assert!(text.contains("To: ada@example.com\r\n"), "{text}");
        // The line break in the subject cannot start a header of its own.
        assert!(text.contains("Subject: Reset your password Bcc: eve@example.com\r\n"), "{text}");
        assert!(!text.contains("\r\nBcc:"), "{text}");
        assert!(text.contains(&format!("Message-ID: <{}@dashtam.example>\r\n", email.id.simple())), "{text}");
        assert!(text.contains("Date: Fri, 03 Oct 2025 10:00:00 +0000\r\n"), "{text}");
        assert!(text.contains("Content-Type: multipart/alternative;"), "{text}");
        let plain = text.find("Content-Type: text/plain").expect("a text part");
        let html = text.find("Content-Type: text/html").expect("an HTML part");
        assert!(plain < html, "the richer part comes last");
        assert!(text.contains("https://app.example.com/reset-password?token=abc\r\n"));
    }

    #[test]
    fn ascii_bodies_keep_long_lines_whole_and_others_are_encoded() {
        let link = format!("https://app.example.com/reset-password?token={}", "x".repeat(43));
        let ascii = encode_body(&format!("Hello,\n\n{link}\r\nbye\rend\n"));
        assert_eq!(ascii.encoding(), ContentTransferEncoding::SevenBit);
        assert_eq!(ascii.into_vec(), format!("Hello,\r\n\r\n{link}\r\nbye\r\nend\r\n").into_bytes());
        assert_eq!(encode_body("Hello Zo\u{eb},\n").encoding(), ContentTransferEncoding::QuotedPrintable);
        assert_ne!(encode_body(&"a".repeat(MAX_LINE_OCTETS + 1)).encoding(), ContentTransferEncoding::SevenBit);
        assert_eq!(encode_body(&"a".repeat(MAX_LINE_OCTETS)).encoding(), ContentTransferEncoding::SevenBit);
    }

    #[test]
    fn bad_senders_are_refused() {
        for from in ["", "not an address", "Dashtam <no-reply>x"] {
            assert!(matches!(MailTransport::log(from), Err(MailError::InvalidSender(_))), "{from:?}");
        }
        assert!(MailTransport::file("/tmp/x", "no-reply@localhost").is_ok());
    }

    #[tokio::test]
    async fn smtp_urls_are_checked_without_echoing_them() {
        let from = "no-reply@dashtam.example";
        let timeout = Duration::from_secs(5);
        for url in [
            "smtpx://alice:hunter2-secret@mail.example.com",
            "alice:hunter2-secret@mail.example.com",
            "smtp://alice:hunter2-secret@",
            "smtp://alice:hunter2-secret@mail.example.com:notaport",
            "smtp://alice:hunter2-secret@mail.example.com?tls=sometimes",
        ] {
            let error = MailTransport::smtp(&SecretString::from(url), from, timeout).expect_err(url);
            assert!(matches!(error, MailError::InvalidSmtpUrl(_)), "{url}: {error:?}");
            assert!(!format!("{error} {error:?}").contains("hunter2"), "{url}: {error} {error:?}");
        }
        let transport =
            MailTransport::smtp(&SecretString::from("smtps://alice:hunter2-secret@mail.example.com"), from, timeout)
                .expect("valid");
        let debug = format!("{transport:?}");
        assert!(!debug.contains("hunter2") && !debug.contains("alice"), "{debug}");
        assert!(debug.contains("mail.example.com"), "{debug}");
        assert_eq!(transport.kind_name(), "smtp");
        assert_eq!(transport.send_timeout(), timeout);
    }

    #[test]
    fn smtp_url_parts_know_endpoint_and_encryption() {
        let parts = |url: &str| SmtpUrlParts::of(url).expect(url);
        let plain = parts("smtp://u:p@ss@mail.example.com:25/ehlo.example?x=1");
        assert_eq!(plain.endpoint, "mail.example.com:25");
        assert!(plain.has_credentials && !plain.tls && plain.plaintext_credentials_leave_host());
        assert!(parts("smtps://u:p@mail.example.com").tls);
        assert!(parts("smtp://u:p@mail.example.com:587?tls=required").tls);
        assert!(!parts("smtp://u:p@127.0.0.1:2525").plaintext_credentials_leave_host());
        assert!(!parts("smtp://u:p@[::1]:2525").plaintext_credentials_leave_host());
        assert!(!parts("smtp://localhost").plaintext_credentials_leave_host());
        assert!(!parts("smtp://mail.example.com").plaintext_credentials_leave_host());
    }

    #[tokio::test]
    async fn the_log_transport_accepts_everything() {
        let transport = MailTransport::log("no-reply@dashtam.example").expect("valid");
        transport.send(&email()).await.expect("logged");
        assert_eq!(transport.kind_name(), "log");
    }
}
