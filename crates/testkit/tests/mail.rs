//! Outgoing mail end to end: messages queued through a real store transaction (SQLite, and PostgreSQL when
//! `DASHTAM_TEST_DATABASE_URL` is set), delivered by the outbox worker as `.eml` files or over SMTP to a
//! real SMTP listener on 127.0.0.1 started by the test, with retries driven by a clock the test moves.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use dashtam_adapters::mail::{MailError, MailTransport, OutboxOptions, OutboxWorker, TemplateComposer};
use dashtam_domain::Clock;
use dashtam_domain::Email;
use dashtam_domain::mail::{EmailComposer, Notification, OutgoingEmail};
use dashtam_domain::ports::Store;
use dashtam_testkit::{Backend, TestDatabase};
use sqlx::Connection;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use uuid::Uuid;

const T0: OffsetDateTime = datetime!(2025-10-03 10:00:00 UTC);
const FROM: &str = "Dashtam <no-reply@dashtam.example>";
const RESET_TOKEN: &str = "q3Zk-_0aB9cD8eF7gH6iJ5kL4mN3oP2qR1sT0uV9wXy";
const SEND_TIMEOUT: StdDuration = StdDuration::from_secs(10);

// ---------------------------------------------------------------------------------------------------------
// Harness

/// Runs `check` on a freshly migrated store of every configured backend.
async fn on_every_backend<F, Fut>(check: F)
where
    F: Fn(Arc<dyn Store>, Outbox) -> Fut,
    Fut: Future<Output = ()>,
{
    for database in TestDatabase::every_backend().await {
        let opened = database.open().await;
        check(opened.store(), Outbox { backend: database.backend, url: database.url.clone() }).await;
        opened.store().close().await;
    }
}

/// A clock that moves only when told to.
#[derive(Debug)]
struct ManualClock(Mutex<OffsetDateTime>);

impl ManualClock {
    fn at(now: OffsetDateTime) -> Arc<Self> {
        Arc::new(Self(Mutex::new(now)))
    }

    fn set(&self, now: OffsetDateTime) {
        *self.0.lock().expect("clock lock") = now;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *self.0.lock().expect("clock lock")
    }
}

/// Reads the outbox table directly, on a connection of its own, to see what the worker recorded.
#[derive(Debug, Clone)]
struct Outbox {
    backend: Backend,
    url: String,
}

#[derive(Debug)]
struct OutboxRow {
    attempts: i32,
    sent: bool,
    last_error: Option<String>,
    text_body: String,
    html_body: String,
}

impl Outbox {
    async fn row(&self, id: Uuid) -> OutboxRow {
        const QUERY: &str = "SELECT attempts, sent_at IS NOT NULL, last_error, text_body, html_body \
                             FROM email_outbox WHERE id = $1";
        type Row = (i32, bool, Option<String>, String, String);
        let (attempts, sent, last_error, text_body, html_body) = match self.backend {
            Backend::Sqlite => {
                let mut connection = sqlx::SqliteConnection::connect(&self.url).await.expect("connect to SQLite");
                let row: Row = sqlx::query_as(QUERY).bind(id).fetch_one(&mut connection).await.expect("outbox row");
                let _ = connection.close().await;
                row
            }
            Backend::Postgres => {
                let mut connection = sqlx::PgConnection::connect(&self.url).await.expect("connect to PostgreSQL");
                let row: Row = sqlx::query_as(QUERY).bind(id).fetch_one(&mut connection).await.expect("outbox row");
                let _ = connection.close().await;
                row
            }
        };
        OutboxRow { attempts, sent, last_error, text_body, html_body }
    }
}

fn composer() -> TemplateComposer {
    TemplateComposer::new("https://app.example.com/", "Dashtam")
}

fn address(text: &str) -> Email {
    Email::parse(text).expect("valid email")
}

fn password_reset(to: &str, name: &str, now: OffsetDateTime) -> OutgoingEmail {
    composer().compose(
        &address(to),
        &Notification::PasswordReset { name: name.to_owned(), token: RESET_TOKEN.to_owned().into() },
        now,
    )
}

async fn queue(store: &Arc<dyn Store>, email: &OutgoingEmail) {
    let mut tx = store.begin().await.expect("begin");
    tx.enqueue_email(email).await.expect("enqueue");
    tx.commit().await.expect("commit");
}

fn worker(store: &Arc<dyn Store>, transport: MailTransport, clock: &Arc<ManualClock>) -> OutboxWorker {
    OutboxWorker::new(Arc::clone(store), transport, Arc::clone(clock) as Arc<dyn Clock>, OutboxOptions::default())
}

fn smtp_transport(url: &str) -> MailTransport {
    MailTransport::smtp(&url.to_owned().into(), FROM, SEND_TIMEOUT).expect("valid SMTP URL")
}

/// A port on 127.0.0.1 that nothing listens on: bound by the OS, then released.
async fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    listener.local_addr().expect("address").port()
}

/// The `.eml` files in `dir` (none when it does not exist), and whether anything else is there.
fn eml_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries.map(|entry| entry.expect("directory entry").path()).collect();
    files.sort();
    assert!(files.iter().all(|path| path.extension().is_some_and(|ext| ext == "eml")), "stray files: {files:?}");
    files
}

async fn wait_for_file(path: &Path) {
    let waited = tokio::time::timeout(StdDuration::from_secs(20), async {
        while !path.exists() {
            tokio::time::sleep(StdDuration::from_millis(20)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "{} never appeared", path.display());
}

// ---------------------------------------------------------------------------------------------------------
// A message as it goes over the wire, taken apart just enough to check it.

#[derive(Debug)]
struct ParsedMessage {
    headers: Vec<(String, String)>,
    parts: Vec<ParsedPart>,
}

#[derive(Debug)]
struct ParsedPart {
    content_type: String,
    body: String,
}

impl ParsedMessage {
    fn parse(raw: &str) -> Self {
        let raw = raw.replace("\r\n", "\n");
        let (head, body) = raw.split_once("\n\n").expect("headers end with a blank line");
        let headers = unfold_headers(head);
        let content_type = header(&headers, "Content-Type");
        assert!(content_type.starts_with("multipart/alternative;"), "{content_type}");
        let boundary = content_type.split("boundary=").nth(1).expect("a boundary").trim_matches('"');
        let delimiter = format!("--{boundary}");
        let mut sections: Vec<&str> = body.split(delimiter.as_str()).collect();
        assert_eq!(sections.pop().map(str::trim), Some("--"), "the closing delimiter ends the body");
        let parts = sections
            .into_iter()
            .skip(1)
            .map(|section| {
                let section = section.strip_prefix('\n').expect("a delimiter ends its line");
                let (head, body) = section.split_once("\n\n").expect("part headers end with a blank line");
                let headers = unfold_headers(head);
                // The line break before a delimiter belongs to the delimiter.
                let body = body.strip_suffix('\n').expect("a part ends with a line break");
                let body = match header(&headers, "Content-Transfer-Encoding").as_str() {
                    "7bit" => body.to_owned(),
                    "quoted-printable" => decode_quoted_printable(body),
                    other => panic!("unexpected transfer encoding {other}"),
                };
                ParsedPart { content_type: header(&headers, "Content-Type"), body }
            })
            .collect();
        Self { headers, parts }
    }

    fn header(&self, name: &str) -> String {
        header(&self.headers, name)
    }

    fn part(&self, content_type: &str) -> &str {
        let matching: Vec<_> = self.parts.iter().filter(|part| part.content_type.starts_with(content_type)).collect();
        assert_eq!(matching.len(), 1, "exactly one {content_type} part in {:?}", self.parts);
        &matching[0].body
    }
}

fn unfold_headers(head: &str) -> Vec<(String, String)> {
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in head.lines() {
        if line.starts_with([' ', '\t']) {
            let (_, value) = headers.last_mut().expect("a continuation follows a header");
            value.push(' ');
            value.push_str(line.trim());
        } else {
            let (name, value) = line.split_once(':').expect("name: value");
            headers.push((name.to_owned(), value.trim().to_owned()));
        }
    }
    headers
}

fn header(headers: &[(String, String)], name: &str) -> String {
    let values: Vec<_> = headers.iter().filter(|(key, _)| key.eq_ignore_ascii_case(name)).collect();
    assert_eq!(values.len(), 1, "exactly one {name} header in {headers:?}");
    values[0].1.clone()
}

/// RFC 2045 quoted-printable, on text whose line breaks are already `\n`.
fn decode_quoted_printable(encoded: &str) -> String {
    let bytes = encoded.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'=' if bytes.get(index + 1) == Some(&b'\n') => index += 2,
            b'=' => {
                let hex = std::str::from_utf8(&bytes[index + 1..index + 3]).expect("ASCII");
                decoded.push(u8::from_str_radix(hex, 16).expect("two hex digits"));
                index += 3;
            }
            byte => {
                decoded.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8(decoded).expect("UTF-8")
}

/// Checks a delivered message against the email it came from.
fn assert_is_message_for(raw: &str, email: &OutgoingEmail) {
    let message = ParsedMessage::parse(raw);
    assert_eq!(message.header("From"), FROM);
    assert_eq!(message.header("To"), email.to.as_str());
    assert_eq!(message.header("Subject"), email.subject);
    assert_eq!(message.header("Message-ID"), format!("<{}@dashtam.example>", email.id.simple()));
    assert_eq!(message.header("MIME-Version"), "1.0");
    assert!(!message.header("Date").is_empty());
    assert_eq!(message.part("text/plain"), email.text_body.as_str());
    assert_eq!(message.part("text/html"), email.html_body.as_str());
    let link = format!("https://app.example.com/reset-password?token={RESET_TOKEN}");
    assert!(message.part("text/plain").contains(&link), "{}", message.part("text/plain"));
}

// ---------------------------------------------------------------------------------------------------------
// A small, real SMTP server: enough of RFC 5321 for one client to deliver to it.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Auth {
    /// AUTH is not offered.
    None,
    /// AUTH PLAIN is offered and any credentials are accepted.
    Accept,
    /// AUTH PLAIN is offered and every attempt is refused.
    Reject,
}

/// One message as the server received it.
#[derive(Debug, Clone, Default)]
struct Received {
    ehlo: String,
    auth: Option<String>,
    mail_from: String,
    rcpt_to: Vec<String>,
    data: String,
}

struct SmtpServer {
    address: SocketAddr,
    received: mpsc::UnboundedReceiver<Received>,
    task: tokio::task::JoinHandle<()>,
}

impl SmtpServer {
    /// Listens on 127.0.0.1; the first `refuse_recipients` RCPT commands are answered `451` (try later).
    async fn start(auth: Auth, refuse_recipients: usize) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the SMTP listener");
        let address = listener.local_addr().expect("address");
        let (sender, received) = mpsc::unbounded_channel();
        let refusals = Arc::new(AtomicUsize::new(refuse_recipients));
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                let (sender, refusals) = (sender.clone(), Arc::clone(&refusals));
                tokio::spawn(async move {
                    // A client hanging up mid-session is its business; the test sees what was received.
                    let _ = smtp_session(stream, auth, &refusals, &sender).await;
                });
            }
        });
        Self { address, received, task }
    }

    fn url(&self) -> String {
        format!("smtp://{}", self.address)
    }

    /// Everything received so far.
    fn take(&mut self) -> Vec<Received> {
        let mut messages = Vec::new();
        while let Ok(message) = self.received.try_recv() {
            messages.push(message);
        }
        messages
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn smtp_session(
    stream: TcpStream,
    auth: Auth,
    refusals: &AtomicUsize,
    sender: &mpsc::UnboundedSender<Received>,
) -> std::io::Result<()> {
    let (reader, mut writer) = stream.into_split();
    let mut reader = BufReader::new(reader);
    writer.write_all(b"220 smtp.test ESMTP ready\r\n").await?;
    let mut session = Received::default();
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let command = line.trim_end_matches(['\r', '\n']);
        let (verb, argument) = command.split_once(' ').unwrap_or((command, ""));
        let reply: &[u8] = match verb.to_ascii_uppercase().as_str() {
            "EHLO" | "HELO" => {
                session = Received { ehlo: argument.to_owned(), ..Received::default() };
                if auth == Auth::None {
                    b"250-smtp.test\r\n250 8BITMIME\r\n"
                } else {
                    b"250-smtp.test\r\n250-8BITMIME\r\n250 AUTH PLAIN\r\n"
                }
            }
            "AUTH" => {
                session.auth = Some(argument.to_owned());
                match auth {
                    Auth::Accept => b"235 2.7.0 Authentication successful\r\n",
                    Auth::Reject => b"535 5.7.8 Authentication credentials invalid\r\n",
                    Auth::None => b"503 5.5.1 AUTH not offered\r\n",
                }
            }
            "MAIL" => {
                session.mail_from = angle_address(argument);
                session.rcpt_to.clear();
                b"250 2.1.0 OK\r\n"
            }
            "RCPT" => {
                let refused = refusals.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
                if refused {
                    b"451 4.3.0 Try again later\r\n"
                } else {
                    session.rcpt_to.push(angle_address(argument));
                    b"250 2.1.5 OK\r\n"
                }
            }
            "DATA" => {
                writer.write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n").await?;
                let mut data = String::new();
                loop {
                    line.clear();
                    if reader.read_line(&mut line).await? == 0 {
                        return Ok(());
                    }
                    if line == ".\r\n" {
                        break;
                    }
                    // Undo dot-stuffing (RFC 5321 section 4.5.2).
                    data.push_str(line.strip_prefix('.').unwrap_or(&line));
                }
                session.data = data;
                let _ = sender.send(session.clone());
                b"250 2.0.0 Queued\r\n"
            }
            "RSET" | "NOOP" => b"250 2.0.0 OK\r\n",
            "QUIT" => {
                writer.write_all(b"221 2.0.0 Bye\r\n").await?;
                return Ok(());
            }
            _ => b"502 5.5.2 Command not recognized\r\n",
        };
        writer.write_all(reply).await?;
    }
}

/// `x@y` from `FROM:<x@y> BODY=8BITMIME` or `TO:<x@y>`.
fn angle_address(argument: &str) -> String {
    let start = argument.find('<').expect("an address in angle brackets") + 1;
    let end = argument[start..].find('>').expect("a closing angle bracket") + start;
    argument[start..end].to_owned()
}

// ---------------------------------------------------------------------------------------------------------
// Tests

#[tokio::test]
async fn committed_mail_is_written_as_one_complete_eml_file_and_marked_sent() {
    on_every_backend(|store, outbox| async move {
        let data_dir = tempfile::tempdir().expect("temporary directory");
        let mail_dir = data_dir.path().join("mail");
        let clock = ManualClock::at(T0);
        let email = password_reset("ada@example.com", "Ada Lovelace", T0);
        queue(&store, &email).await;

        let worker = worker(&store, MailTransport::file(&mail_dir, FROM).expect("file transport"), &clock);
        let report = worker.deliver_due().await.expect("a pass");
        assert_eq!((report.claimed, report.sent, report.retrying, report.given_up), (1, 1, 0, 0), "{report:?}");

        let files = eml_files(&mail_dir);
        assert_eq!(files, [mail_dir.join(format!("{}.eml", email.id))], "one file, named after the message");
        let raw = std::fs::read_to_string(&files[0]).expect("read the .eml");
        assert_is_message_for(&raw, &email);
        assert!(raw.contains("Content-Transfer-Encoding: 7bit"), "an ASCII body keeps its links on one line");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&files[0]).expect("metadata").permissions().mode();
            assert_eq!(mode & 0o077, 0, "mail holds one-time links: owner only ({mode:o})");
        }

        let row = outbox.row(email.id).await;
        assert!(row.sent && row.attempts == 1 && row.last_error.is_none(), "{row:?}");
        assert!(row.text_body.is_empty() && row.html_body.is_empty(), "delivered bodies are dropped");

        assert_eq!(worker.deliver_due().await.expect("a pass").claimed, 0, "sent mail is not sent again");
        clock.set(T0 + Duration::days(1));
        assert_eq!(worker.deliver_due().await.expect("a pass").claimed, 0, "not even once its lease is over");
        assert_eq!(eml_files(&mail_dir).len(), 1);
    })
    .await;
}

#[tokio::test]
async fn mail_queued_by_a_rolled_back_transaction_is_never_delivered() {
    on_every_backend(|store, _| async move {
        let data_dir = tempfile::tempdir().expect("temporary directory");
        let mail_dir = data_dir.path().join("mail");
        let clock = ManualClock::at(T0);
        let email = password_reset("ada@example.com", "Ada", T0);
        let mut tx = store.begin().await.expect("begin");
        tx.enqueue_email(&email).await.expect("enqueue");
        drop(tx);

        let worker = worker(&store, MailTransport::file(&mail_dir, FROM).expect("file transport"), &clock);
        for now in [T0, T0 + Duration::days(1)] {
            clock.set(now);
            assert_eq!(worker.deliver_due().await.expect("a pass").claimed, 0);
        }
        assert!(eml_files(&mail_dir).is_empty());
    })
    .await;
}

#[tokio::test]
async fn failed_deliveries_back_off_exponentially_and_are_given_up_after_the_last_attempt() {
    on_every_backend(|store, outbox| async move {
        let clock = ManualClock::at(T0);
        let email = password_reset("ada@example.com", "Ada", T0);
        queue(&store, &email).await;
        let dead_server = format!("smtp://127.0.0.1:{}", closed_port().await);
        let worker = worker(&store, smtp_transport(&dead_server), &clock);

        // Attempt n fails at `due` and is next due 30 s × 2^(n-1) later; the eighth failure is the last.
        let mut due = T0;
        for attempt in 1..=8_i32 {
            if attempt > 1 {
                clock.set(due - Duration::seconds(1));
                assert_eq!(worker.deliver_due().await.expect("a pass").claimed, 0, "attempt {attempt} is early");
            }
            clock.set(due);
            let report = worker.deliver_due().await.expect("a pass");
            assert_eq!(report.claimed, 1, "attempt {attempt} at {due}");
            let row = outbox.row(email.id).await;
            assert_eq!(row.attempts, attempt);
            assert!(!row.sent);
            let error = row.last_error.expect("the failure is recorded");
            assert!(error.contains("127.0.0.1"), "{error}");
            if attempt < 8 {
                assert_eq!((report.retrying, report.given_up), (1, 0), "{report:?}");
                due += Duration::seconds(30 * 2_i64.pow(u32::try_from(attempt - 1).expect("small")));
            } else {
                assert_eq!((report.retrying, report.given_up), (0, 1), "{report:?}");
            }
        }
        assert_eq!(due - T0, Duration::seconds(30 + 60 + 120 + 240 + 480 + 960 + 1_920));

        clock.set(T0 + Duration::days(365));
        assert_eq!(worker.deliver_due().await.expect("a pass").claimed, 0, "a given-up message stays given up");
        // Kept for the record: a message that was never delivered is not emptied.
        assert_eq!(outbox.row(email.id).await.text_body, email.text_body);
    })
    .await;
}

#[tokio::test]
async fn smtp_delivery_reaches_a_real_smtp_server_with_envelope_headers_and_both_parts() {
    on_every_backend(|store, outbox| async move {
        let mut server = SmtpServer::start(Auth::None, 0).await;
        let clock = ManualClock::at(T0);
        // A name outside ASCII makes the bodies quoted-printable, which the check decodes.
        let email = password_reset("zoe@example.com", "Zoë Ng", T0);
        queue(&store, &email).await;

        let worker = worker(&store, smtp_transport(&server.url()), &clock);
        let report = worker.deliver_due().await.expect("a pass");
        assert_eq!((report.claimed, report.sent), (1, 1), "{report:?}");

        let received = server.take();
        assert_eq!(received.len(), 1, "{received:?}");
        let message = &received[0];
        assert!(!message.ehlo.is_empty());
        assert_eq!(message.auth, None);
        assert_eq!(message.mail_from, "no-reply@dashtam.example");
        assert_eq!(message.rcpt_to, ["zoe@example.com"]);
        assert_is_message_for(&message.data, &email);
        assert!(ParsedMessage::parse(&message.data).part("text/plain").starts_with("Hello Zoë Ng,\n"));
        assert!(outbox.row(email.id).await.sent);
    })
    .await;
}

#[tokio::test]
async fn a_temporary_smtp_refusal_is_retried_and_then_delivered() {
    on_every_backend(|store, outbox| async move {
        let mut server = SmtpServer::start(Auth::None, 1).await;
        let clock = ManualClock::at(T0);
        let email = password_reset("ada@example.com", "Ada", T0);
        queue(&store, &email).await;
        let worker = worker(&store, smtp_transport(&server.url()), &clock);

        let first = worker.deliver_due().await.expect("a pass");
        assert_eq!((first.claimed, first.retrying), (1, 1), "{first:?}");
        assert!(server.take().is_empty());
        let error = outbox.row(email.id).await.last_error.expect("recorded");
        assert!(error.contains("451"), "{error}");

        clock.set(T0 + Duration::seconds(30));
        let second = worker.deliver_due().await.expect("a pass");
        assert_eq!((second.claimed, second.sent), (1, 1), "{second:?}");
        let received = server.take();
        assert_eq!(received.len(), 1);
        assert_is_message_for(&received[0].data, &email);
        let row = outbox.row(email.id).await;
        assert!(row.sent && row.attempts == 2 && row.last_error.is_none(), "{row:?}");
    })
    .await;
}

#[tokio::test]
async fn smtp_credentials_from_the_url_are_used_and_never_disclosed() {
    const PASSWORD: &str = "p@ss w0rd/?";
    const ENCODED: &str = "p%40ss%20w0rd%2F%3F";
    let leaks = |text: &str| text.contains("w0rd") || text.contains(ENCODED) || text.contains(PASSWORD);

    on_every_backend(|store, outbox| async move {
        let clock = ManualClock::at(T0);

        // Accepted: lettre percent-decodes the URL's user information and authenticates with it.
        let mut accepting = SmtpServer::start(Auth::Accept, 0).await;
        let url = format!("smtp://alice:{ENCODED}@{}", accepting.address);
        let transport = smtp_transport(&url);
        assert!(!leaks(&format!("{transport:?}")), "{transport:?}");
        let email = password_reset("ada@example.com", "Ada", T0);
        transport.send(&email).await.expect("delivered");
        let received = accepting.take();
        assert_eq!(received.len(), 1);
        // AUTH PLAIN's initial response is base64("\0alice\0p@ss w0rd/?").
        assert_eq!(received[0].auth.as_deref(), Some("PLAIN AGFsaWNlAHBAc3MgdzByZC8/"));

        // Refused, or unreachable: neither the error nor what the outbox records mentions the password.
        let rejecting = SmtpServer::start(Auth::Reject, 0).await;
        let unreachable = format!("smtp://alice:{ENCODED}@127.0.0.1:{}", closed_port().await);
        for url in [format!("smtp://alice:{ENCODED}@{}", rejecting.address), unreachable] {
            let transport = smtp_transport(&url);
            let error: MailError = transport.send(&email).await.expect_err("refused");
            let shown = format!("{error} | {error:?} | {:?}", std::error::Error::source(&error));
            assert!(!leaks(&shown), "{shown}");
            assert!(shown.contains("127.0.0.1"), "the error still says where: {shown}");

            let queued = password_reset("ada@example.com", "Ada", T0);
            queue(&store, &queued).await;
            let worker = worker(&store, transport, &clock);
            assert!(!leaks(&format!("{worker:?}")));
            let report = worker.deliver_due().await.expect("a pass");
            assert_eq!(report.retrying, 1, "{report:?}");
            let recorded = outbox.row(queued.id).await.last_error.expect("recorded");
            assert!(!leaks(&recorded), "{recorded}");
        }
    })
    .await;
}

#[tokio::test]
async fn two_workers_on_one_outbox_deliver_each_message_exactly_once() {
    on_every_backend(|store, _| async move {
        let mut server = SmtpServer::start(Auth::None, 0).await;
        let clock = ManualClock::at(T0);
        let mut queued = HashSet::new();
        for n in 0..12 {
            let email = password_reset(&format!("user{n}@example.com"), "Ada", T0);
            queued.insert(email.to.as_str().to_owned());
            queue(&store, &email).await;
        }
        let options = OutboxOptions { batch_size: 5, ..OutboxOptions::default() };
        let first =
            OutboxWorker::new(Arc::clone(&store), smtp_transport(&server.url()), clock.clone(), options.clone());
        let second = OutboxWorker::new(Arc::clone(&store), smtp_transport(&server.url()), clock.clone(), options);
        let mut sent = 0;
        loop {
            let (a, b) = tokio::join!(first.deliver_due(), second.deliver_due());
            let (a, b) = (a.expect("a pass"), b.expect("a pass"));
            if a.claimed + b.claimed == 0 {
                break;
            }
            sent += a.sent + b.sent;
        }
        assert_eq!(sent, 12);
        let recipients: Vec<String> = server.take().into_iter().flat_map(|message| message.rcpt_to).collect();
        assert_eq!(recipients.len(), 12, "no message went out twice: {recipients:?}");
        assert_eq!(recipients.into_iter().collect::<HashSet<_>>(), queued);
    })
    .await;
}

#[tokio::test]
async fn the_running_worker_delivers_when_woken_and_stops_on_shutdown() {
    on_every_backend(|store, _| async move {
        let data_dir = tempfile::tempdir().expect("temporary directory");
        let mail_dir = data_dir.path().join("mail");
        let clock = ManualClock::at(T0);
        // Polling so rarely that only the start-up pass and the waker can explain a delivery.
        let options = OutboxOptions { poll_interval: StdDuration::from_secs(3_600), ..OutboxOptions::default() };
        let transport = MailTransport::file(&mail_dir, FROM).expect("file transport");
        let worker = OutboxWorker::new(Arc::clone(&store), transport, clock.clone(), options);
        let waker = worker.waker();

        let before_start = password_reset("ada@example.com", "Ada", T0);
        queue(&store, &before_start).await;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let running = tokio::spawn(worker.run(async move {
            let _ = stopped.await;
        }));
        wait_for_file(&mail_dir.join(format!("{}.eml", before_start.id))).await;

        let after_start = password_reset("grace@example.com", "Grace", T0);
        queue(&store, &after_start).await;
        waker.wake();
        wait_for_file(&mail_dir.join(format!("{}.eml", after_start.id))).await;

        stop.send(()).expect("the worker is running");
        tokio::time::timeout(StdDuration::from_secs(20), running)
            .await
            .expect("the worker stops promptly")
            .expect("the worker did not panic");
        assert_eq!(eml_files(&mail_dir).len(), 2);
    })
    .await;
}

#[tokio::test]
async fn the_log_transport_marks_mail_sent_without_writing_anything() {
    on_every_backend(|store, outbox| async move {
        let clock = ManualClock::at(T0);
        let email = password_reset("ada@example.com", "Ada", T0);
        queue(&store, &email).await;
        let worker = worker(&store, MailTransport::log(FROM).expect("log transport"), &clock);
        assert_eq!(worker.deliver_due().await.expect("a pass").sent, 1);
        assert!(outbox.row(email.id).await.sent);
    })
    .await;
}
