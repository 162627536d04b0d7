//! The words of every notification, in plain text and HTML.
//!
//! Each message is described once as a short list of blocks (paragraphs, a call to action, a few facts) and
//! rendered twice, so the two bodies never drift apart and every interpolated value passes through the one
//! HTML escape in [`render_html`]. Template text is ASCII only: a body that is pure ASCII is sent as `7bit`,
//! which keeps links intact on one line instead of being folded by quoted-printable encoding.

use dashtam_domain::Email;
use dashtam_domain::mail::{EmailComposer, Notification, OutgoingEmail};
use secrecy::{ExposeSecret, SecretString};
use time::format_description::FormatItem;
use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};
use uuid::Uuid;

use super::single_line;

/// How instants appear in mail: unambiguous for a reader anywhere, e.g. `Friday, 3 October 2025 at 10:00:00 UTC`.
const READABLE_UTC: &[FormatItem<'static>] =
    format_description!("[weekday], [day padding:none] [month repr:long] [year] at [hour]:[minute]:[second] UTC");

/// Values taken from request headers (user agent, client address) are cut to this many characters: they are
/// attacker-chosen and only need to be recognisable.
const MAX_CLIENT_DETAIL_CHARS: usize = 200;

/// Renders every [`Notification`] into a subject, a plain-text body and an HTML body, with links into the
/// front end at `app_url`.
#[derive(Debug, Clone)]
pub struct TemplateComposer {
    /// The front end's base URL without a trailing slash, so paths can be appended as `/…`.
    app_url: String,
    product_name: String,
}

impl TemplateComposer {
    /// The product name used when none is configured.
    pub const DEFAULT_PRODUCT_NAME: &'static str = "Dashtam";

    /// A composer linking to `app_url` (the front end's base URL, `DASHTAM_APP_URL`; a trailing slash is
    /// fine) and naming the product `product_name` in subjects and bodies.
    pub fn new(app_url: impl Into<String>, product_name: impl Into<String>) -> Self {
        let app_url = app_url.into().trim().trim_end_matches('/').to_owned();
        let product_name = single_line(&product_name.into());
        let product_name = if product_name.is_empty() { Self::DEFAULT_PRODUCT_NAME.to_owned() } else { product_name };
        Self { app_url, product_name }
    }

    /// `<app_url><path>`, with `?token=…` when a token is given.
    fn link(&self, path: &str, token: Option<&SecretString>) -> String {
        match token {
            Some(token) => format!("{}{path}?token={}", self.app_url, query_value(token.expose_secret())),
            None => format!("{}{path}", self.app_url),
        }
    }

    /// The subject and blocks of a notification.
    fn letter(&self, notification: &Notification) -> Letter {
        let product = &self.product_name;
        let reset_page = self.link("/reset-password", None);
        match notification {
            // The address is not proven to belong to whoever typed the name, so the name is left out: an
            // attacker registering someone else's address must not be able to put words in our mail.
            Notification::VerifyEmail { name: _, token } => Letter {
                subject: format!("Confirm your email address for {product}"),
                greeting: None,
                blocks: vec![
                    Block::Paragraph(format!(
                        "Someone, hopefully you, created a {product} account with this email address. To finish, \
                         confirm the address with the link below. The link works once and expires in 24 hours."
                    )),
                    Block::Action {
                        label: "Confirm email address".to_owned(),
                        url: self.link("/verify-email", Some(token)),
                    },
                    Block::Note(
                        "If you did not create an account, ignore this email; without confirmation the account \
                         cannot be used."
                            .to_owned(),
                    ),
                ],
            },
            Notification::Welcome { name } => Letter {
                subject: format!("Welcome to {product}"),
                greeting: Some(name.clone()),
                blocks: vec![
                    Block::Paragraph(format!("Your email address is confirmed and your {product} account is ready.")),
                    Block::Action { label: format!("Open {product}"), url: self.link("", None) },
                ],
            },
            Notification::AlreadyRegistered { name } => Letter {
                subject: format!("Sign-up attempt with your {product} address"),
                greeting: Some(name.clone()),
                blocks: vec![
                    Block::Paragraph(format!(
                        "Someone tried to create a new {product} account with this email address. You already \
                         have an account, so nothing was changed."
                    )),
                    Block::Paragraph(
                        "If it was you and you have forgotten your password, you can set a new one:".to_owned(),
                    ),
                    Block::Action { label: "Reset password".to_owned(), url: reset_page },
                    Block::Note("If it was not you, ignore this email. Your account is unaffected.".to_owned()),
                ],
            },
            Notification::PasswordReset { name, token } => Letter {
                subject: format!("Reset your {product} password"),
                greeting: Some(name.clone()),
                blocks: vec![
                    Block::Paragraph(
                        "We received a request to reset your password. Choose a new one with the link below. \
                         The link works once and expires in 15 minutes."
                            .to_owned(),
                    ),
                    Block::Action {
                        label: "Choose a new password".to_owned(),
                        url: self.link("/reset-password", Some(token)),
                    },
                    Block::Note(
                        "If you did not ask for this, ignore this email; your password stays as it is.".to_owned(),
                    ),
                ],
            },
            Notification::PasswordChanged { name, at } => Letter {
                subject: format!("Your {product} password was changed"),
                greeting: Some(name.clone()),
                blocks: vec![
                    Block::Paragraph(format!(
                        "The password of your {product} account was changed. Other signed-in sessions were \
                         signed out."
                    )),
                    Block::Facts(vec![("When", readable_utc(*at))]),
                    Block::Paragraph(
                        "If you did not do this, reset your password now and tell your administrator:".to_owned(),
                    ),
                    Block::Action { label: "Reset password".to_owned(), url: reset_page },
                ],
            },
            Notification::AccountLocked { name, until } => Letter {
                subject: format!("Your {product} account is locked"),
                greeting: Some(name.clone()),
                blocks: vec![
                    Block::Paragraph(format!(
                        "After too many failed sign-in attempts, your {product} account is locked until {}.",
                        readable_utc(*until)
                    )),
                    Block::Paragraph(
                        "To unlock it, wait until then and sign in again, or reset your password now, which \
                         lifts the lock at once:"
                            .to_owned(),
                    ),
                    Block::Action { label: "Reset password".to_owned(), url: reset_page },
                    Block::Note(
                        "If the failed attempts were not yours, someone may be guessing your password; choosing \
                         a new, unique one is a good idea."
                            .to_owned(),
                    ),
                ],
            },
            Notification::RefreshTokenReuse { name, at, ip_address, user_agent } => Letter {
                subject: format!("Security alert: a {product} session was ended"),
                greeting: Some(name.clone()),
                blocks: vec![
                    Block::Paragraph(format!(
                        "An old sign-in token of your {product} account was used again. This can mean that it \
                         was copied from one of your devices, so we ended that session; the device has to sign \
                         in again."
                    )),
                    Block::Facts(vec![
                        ("When", readable_utc(*at)),
                        ("IP address", client_detail(ip_address.as_deref())),
                        ("Client", client_detail(user_agent.as_deref())),
                    ]),
                    Block::Paragraph(
                        "If this was not you, or you do not recognise it, change your password now:".to_owned(),
                    ),
                    Block::Action { label: "Reset password".to_owned(), url: reset_page },
                ],
            },
            Notification::NewDeviceLogin { name, at, device, location, ip_address, session_id } => Letter {
                subject: format!("New sign-in to your {product} account"),
                greeting: Some(name.clone()),
                blocks: vec![
                    Block::Paragraph(format!(
                        "Your {product} account was just signed in to from a device or place it has not been \
                         used from before."
                    )),
                    Block::Facts(vec![
                        ("When", readable_utc(*at)),
                        ("Device", client_detail(device.as_deref())),
                        ("Location", client_detail(location.as_deref())),
                        ("IP address", client_detail(ip_address.as_deref())),
                    ]),
                    Block::Paragraph(
                        "If this was you, there is nothing to do. If it was not, end that session now and change \
                         your password:"
                            .to_owned(),
                    ),
                    Block::Action {
                        label: "Review and end this session".to_owned(),
                        url: format!("{}?end={session_id}", self.link("/settings/sessions", None)),
                    },
                    Block::Action { label: "Reset password".to_owned(), url: reset_page },
                ],
            },
        }
    }
}

impl EmailComposer for TemplateComposer {
    fn compose(&self, to: &Email, notification: &Notification, now: OffsetDateTime) -> OutgoingEmail {
        let letter = self.letter(notification);
        let subject = single_line(&letter.subject);
        OutgoingEmail {
            id: Uuid::now_v7(),
            to: to.clone(),
            text_body: render_text(&letter, &self.product_name),
            html_body: render_html(&letter, &subject, &self.product_name),
            subject,
            created_at: now,
        }
    }
}

/// One notification, before rendering.
struct Letter {
    subject: String,
    /// The recipient's name for "Hello …,"; `None` for a nameless greeting.
    greeting: Option<String>,
    blocks: Vec<Block>,
}

/// A piece of a message body. Every `String` in here is plain text; the HTML renderer escapes it.
enum Block {
    /// A paragraph.
    Paragraph(String),
    /// The one thing to click.
    Action { label: String, url: String },
    /// Labelled details (when, where from).
    Facts(Vec<(&'static str, String)>),
    /// Small print.
    Note(String),
}

fn greeting_line(letter: &Letter) -> String {
    match letter.greeting.as_deref().map(single_line).filter(|name| !name.is_empty()) {
        Some(name) => format!("Hello {name},"),
        None => "Hello,".to_owned(),
    }
}

fn render_text(letter: &Letter, product: &str) -> String {
    let mut parts = vec![greeting_line(letter)];
    for block in &letter.blocks {
        parts.push(match block {
            Block::Paragraph(text) | Block::Note(text) => text.clone(),
            // The URL sits alone on its line so mail clients make it clickable and nothing glues onto it.
            Block::Action { label, url } => format!("{label}:\n{url}"),
            Block::Facts(facts) => {
                facts.iter().map(|(label, value)| format!("  {label}: {value}")).collect::<Vec<_>>().join("\n")
            }
        });
    }
    parts.push(format!("The {product} team"));
    let mut text = parts.join("\n\n");
    text.push('\n');
    text
}

fn render_html(letter: &Letter, subject: &str, product: &str) -> String {
    const LINK: &str = "color:#1d4ed8;word-break:break-all;";
    let mut html = String::new();
    html.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    html.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    html.push_str(&format!("<title>{}</title>\n</head>\n", escape_html(subject)));
    html.push_str("<body style=\"margin:0;padding:0;background:#f5f5f4;\">\n");
    html.push_str(
        "<div style=\"max-width:560px;margin:0 auto;padding:32px 24px;background:#ffffff;\
         font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;font-size:16px;line-height:1.5;\
         color:#1c1917;\">\n",
    );
    html.push_str(&format!("<p>{}</p>\n", escape_html(&greeting_line(letter))));
    for block in &letter.blocks {
        match block {
            Block::Paragraph(text) => html.push_str(&format!("<p>{}</p>\n", escape_html(text))),
            Block::Note(text) => {
                html.push_str(&format!("<p style=\"font-size:14px;color:#57534e;\">{}</p>\n", escape_html(text)));
            }
            Block::Action { label, url } => {
                let (label, url) = (escape_html(label), escape_html(url));
                html.push_str(&format!(
                    "<p style=\"margin:24px 0;\"><a href=\"{url}\" style=\"display:inline-block;padding:12px 20px;\
                     background:#1d4ed8;color:#ffffff;text-decoration:none;border-radius:6px;\">{label}</a></p>\n"
                ));
                html.push_str(&format!(
                    "<p style=\"font-size:14px;color:#57534e;\">If the button does not work, copy this link into \
                     your browser:<br>\n<a href=\"{url}\" style=\"{LINK}\">{url}</a></p>\n"
                ));
            }
            Block::Facts(facts) => {
                html.push_str("<table role=\"presentation\" style=\"border-collapse:collapse;margin:16px 0;\">\n");
                for (label, value) in facts {
                    html.push_str(&format!(
                        "<tr><td style=\"padding:4px 16px 4px 0;color:#57534e;vertical-align:top;\">{}</td>\
                         <td style=\"padding:4px 0;\">{}</td></tr>\n",
                        escape_html(label),
                        escape_html(value)
                    ));
                }
                html.push_str("</table>\n");
            }
        }
    }
    html.push_str(&format!("<p>The {} team</p>\n</div>\n</body>\n</html>\n", escape_html(product)));
    html
}

/// Escapes the five characters that matter in HTML text and attribute values.
fn escape_html(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            _ => escaped.push(c),
        }
    }
    escaped
}

/// Percent-encodes everything outside RFC 3986's unreserved set. Tokens are base64url and pass unchanged;
/// this only guarantees that nothing else could ever break out of the query value.
fn query_value(value: &str) -> String {
    let mut encoded = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// An instant in UTC, for people.
fn readable_utc(instant: OffsetDateTime) -> String {
    let utc = instant.to_offset(UtcOffset::UTC);
    utc.format(READABLE_UTC).unwrap_or_else(|_| utc.to_string())
}

/// A client-supplied detail on one line and of bounded length, or "unknown".
fn client_detail(value: Option<&str>) -> String {
    let cleaned = value.map(single_line).unwrap_or_default();
    if cleaned.is_empty() {
        return "unknown".to_owned();
    }
    match cleaned.char_indices().nth(MAX_CLIENT_DETAIL_CHARS) {
        Some((cut, _)) => format!("{}...", &cleaned[..cut]),
        None => cleaned,
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    const NOW: OffsetDateTime = datetime!(2025-10-03 10:00:00 UTC);
    const TOKEN: &str = "q3Zk-_0aB9cD8eF7gH6iJ5kL4mN3oP2qR1sT0uV9wXy";

    fn composer() -> TemplateComposer {
        TemplateComposer::new("https://app.example.com", "Dashtam")
    }

    fn to() -> Email {
        Email::parse("ada@example.com").expect("valid email")
    }

    fn token() -> SecretString {
        SecretString::from(TOKEN)
    }

    fn every_kind(name: &str) -> Vec<Notification> {
        let name = name.to_owned();
        vec![
            Notification::VerifyEmail { name: name.clone(), token: token() },
            Notification::Welcome { name: name.clone() },
            Notification::AlreadyRegistered { name: name.clone() },
            Notification::PasswordReset { name: name.clone(), token: token() },
            Notification::PasswordChanged { name: name.clone(), at: NOW },
            Notification::AccountLocked { name: name.clone(), until: datetime!(2025-10-03 11:00:00 UTC) },
            Notification::RefreshTokenReuse {
                name: name.clone(),
                at: NOW,
                ip_address: Some("203.0.113.7".to_owned()),
                user_agent: Some("Mozilla/5.0 (X11; Linux x86_64) Firefox/143.0".to_owned()),
            },
            Notification::NewDeviceLogin {
                name,
                at: NOW,
                device: Some("Firefox on Linux".to_owned()),
                location: Some("Berlin, Germany".to_owned()),
                ip_address: Some("203.0.113.7".to_owned()),
                session_id: dashtam_domain::SessionId::from_uuid(Uuid::nil()),
            },
        ]
    }

    fn compose(notification: &Notification) -> OutgoingEmail {
        composer().compose(&to(), notification, NOW)
    }

    #[test]
    fn every_kind_renders_both_bodies_with_a_short_subject() {
        let mut subjects = Vec::new();
        for notification in every_kind("Ada Lovelace") {
            let email = compose(&notification);
            assert_eq!(email.to, to());
            assert_eq!(email.created_at, NOW);
            assert_eq!(email.id.get_version_num(), 7, "{notification:?}");
            assert!(!email.subject.is_empty() && email.subject.len() <= 78, "{:?}", email.subject);
            assert!(email.text_body.starts_with("Hello"), "{notification:?}");
            assert!(email.text_body.contains("The Dashtam team"));
            assert!(email.html_body.starts_with("<!DOCTYPE html>"));
            assert!(email.html_body.contains("</html>"));
            assert!(email.text_body.is_ascii() && email.html_body.is_ascii(), "templates stay 7bit");
            assert!(email.text_body.lines().chain(email.html_body.lines()).all(|line| line.len() < 998));
            subjects.push(email.subject);
        }
        subjects.sort();
        subjects.dedup();
        assert_eq!(subjects.len(), every_kind("Ada").len(), "every kind has its own subject");
    }

    #[test]
    fn ids_are_fresh_for_every_message() {
        let notification = Notification::Welcome { name: "Ada".to_owned() };
        assert_ne!(compose(&notification).id, compose(&notification).id);
    }

    #[test]
    fn tokens_appear_only_inside_their_own_link() {
        for (notification, path) in [
            (Notification::VerifyEmail { name: "Ada".to_owned(), token: token() }, "/verify-email"),
            (Notification::PasswordReset { name: "Ada".to_owned(), token: token() }, "/reset-password"),
        ] {
            let email = compose(&notification);
            let link = format!("https://app.example.com{path}?token={TOKEN}");
            assert_eq!(email.text_body.matches(TOKEN).count(), 1, "{}", email.text_body);
            assert_eq!(email.text_body.matches(&link).count(), 1, "{}", email.text_body);
            assert!(email.text_body.lines().any(|line| line == link), "the link has a line of its own");
            // The button and the copyable fallback.
            assert_eq!(email.html_body.matches(TOKEN).count(), 3, "{}", email.html_body);
            assert_eq!(email.html_body.matches(&link).count(), 3);
            assert!(!email.subject.contains(TOKEN));
        }
        for notification in every_kind("Ada") {
            if matches!(notification, Notification::VerifyEmail { .. } | Notification::PasswordReset { .. }) {
                continue;
            }
            let email = compose(&notification);
            assert!(!email.text_body.contains("token=") && !email.html_body.contains("token="), "{notification:?}");
        }
    }

    #[test]
    fn the_verification_mail_does_not_repeat_the_unverified_name() {
        let email = compose(&Notification::VerifyEmail { name: "Visit evil.example".to_owned(), token: token() });
        assert!(!email.text_body.contains("evil") && !email.html_body.contains("evil"));
    }

    #[test]
    fn already_registered_points_to_the_reset_request_page_only() {
        let email = compose(&Notification::AlreadyRegistered { name: "Ada".to_owned() });
        assert!(email.text_body.lines().any(|line| line == "https://app.example.com/reset-password"));
        assert!(email.html_body.contains("href=\"https://app.example.com/reset-password\""));
        assert!(!email.text_body.contains("verify-email"));
    }

    #[test]
    fn names_are_escaped_in_html_and_kept_verbatim_in_text() {
        let name = "<script>&\"'";
        for notification in every_kind(name) {
            if matches!(notification, Notification::VerifyEmail { .. }) {
                continue;
            }
            let email = compose(&notification);
            assert!(email.text_body.starts_with(&format!("Hello {name},")), "{}", email.text_body);
            assert!(!email.html_body.contains("<script>"), "{}", email.html_body);
            assert!(email.html_body.contains("Hello &lt;script&gt;&amp;&quot;&#39;,"), "{}", email.html_body);
        }
    }

    #[test]
    fn client_details_are_escaped_bounded_and_single_line() {
        let email = compose(&Notification::RefreshTokenReuse {
            name: "Ada".to_owned(),
            at: NOW,
            ip_address: Some("<b>1.2.3.4</b>".to_owned()),
            user_agent: Some(format!("evil\r\nBcc: x{}", "A".repeat(500))),
        });
        assert!(email.html_body.contains("&lt;b&gt;1.2.3.4&lt;/b&gt;"));
        assert!(!email.html_body.contains("<b>"));
        assert!(email.text_body.contains("  Client: evil Bcc: xAAA"));
        assert!(!email.text_body.contains(&"A".repeat(MAX_CLIENT_DETAIL_CHARS)));
        assert!(email.text_body.contains("..."));

        let unknown = compose(&Notification::RefreshTokenReuse {
            name: "Ada".to_owned(),
            at: NOW,
            ip_address: None,
            user_agent: Some(" \n".to_owned()),
        });
        assert!(unknown.text_body.contains("  IP address: unknown"));
        assert!(unknown.text_body.contains("  Client: unknown"));
    }

    #[test]
    fn the_reuse_alert_says_when_where_and_what_to_do() {
        let email = compose(&every_kind("Ada")[6]);
        assert!(email.text_body.contains("  When: Friday, 3 October 2025 at 10:00:00 UTC"), "{}", email.text_body);
        assert!(email.text_body.contains("  IP address: 203.0.113.7"));
        assert!(email.text_body.contains("Firefox/143.0"));
        assert!(email.text_body.contains("ended that session"));
        assert!(email.text_body.contains("change your password"));
    }

    #[test]
    fn the_new_device_alert_names_device_place_and_a_way_to_end_the_session() {
        let email = compose(&every_kind("Ada")[7]);
        assert!(email.text_body.contains("  Device: Firefox on Linux"), "{}", email.text_body);
        assert!(email.text_body.contains("  Location: Berlin, Germany"));
        assert!(email.text_body.contains("  IP address: 203.0.113.7"));
        assert!(
            email
                .text_body
                .contains("https://app.example.com/settings/sessions?end=00000000-0000-0000-0000-000000000000")
        );
    }

    #[test]
    fn times_are_shown_in_utc_whatever_their_offset() {
        let until = datetime!(2025-10-03 13:30:00 +02:00);
        let email = compose(&Notification::AccountLocked { name: "Ada".to_owned(), until });
        assert!(
            email.text_body.contains("locked until Friday, 3 October 2025 at 11:30:00 UTC."),
            "{}",
            email.text_body
        );
        assert!(email.text_body.contains("reset your password"));
        assert!(email.text_body.lines().any(|line| line == "https://app.example.com/reset-password"));
    }

    #[test]
    fn a_trailing_slash_on_the_app_url_does_not_double() {
        for app_url in ["https://app.example.com/", "https://app.example.com//", " https://app.example.com "] {
            let email = TemplateComposer::new(app_url, "Dashtam").compose(
                &to(),
                &Notification::PasswordReset { name: "Ada".to_owned(), token: token() },
                NOW,
            );
            assert!(email.text_body.contains(&format!("\nhttps://app.example.com/reset-password?token={TOKEN}\n")));
        }
        let under_a_path = TemplateComposer::new("https://example.com/app/", "Dashtam").compose(
            &to(),
            &Notification::VerifyEmail { name: "Ada".to_owned(), token: token() },
            NOW,
        );
        assert!(under_a_path.text_body.contains(&format!("\nhttps://example.com/app/verify-email?token={TOKEN}\n")));
    }

    #[test]
    fn subjects_stay_on_one_line() {
        let composer = TemplateComposer::new("https://app.example.com", "Evil\r\nBcc: victim@example.com");
        for notification in every_kind("Ada\r\nBcc: victim@example.com") {
            let email = composer.compose(&to(), &notification, NOW);
            assert!(!email.subject.contains(['\r', '\n']), "{:?}", email.subject);
            assert!(email.subject.chars().all(|c| !c.is_control()));
        }
        // A name with a line break cannot fake a line of the text body either.
        let email = compose(&Notification::Welcome { name: "Ada\nVisit evil.example".to_owned() });
        assert!(email.text_body.starts_with("Hello Ada Visit evil.example,\n"));
    }

    #[test]
    fn an_empty_product_name_falls_back_to_the_default() {
        let email = TemplateComposer::new("https://app.example.com", " \n ").compose(
            &to(),
            &Notification::Welcome { name: "Ada".to_owned() },
            NOW,
        );
        assert_eq!(email.subject, "Welcome to Dashtam");
    }

    #[test]
    fn unexpected_token_characters_are_percent_encoded() {
        assert_eq!(query_value("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
        assert_eq!(query_value(TOKEN), TOKEN);
    }
}
