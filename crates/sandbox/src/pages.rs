//! The HTML the browser sees: the consent page and the error page. Everything echoed is escaped.

use std::fmt::Write;

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{Html, IntoResponse, Response},
};

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:34rem;margin:3rem auto;padding:0 1rem;color:#222}\
h1{font-size:1.4rem}.box{border:1px solid #ccc;border-radius:8px;padding:1rem 1.25rem}\
button{font-size:1rem;padding:.5rem 1.25rem;margin-right:.5rem;border-radius:6px;border:1px solid #888}\
button[value=approve]{background:#1a7f37;color:#fff;border-color:#1a7f37}code{word-break:break-all}";

/// The consent page: one form posting every request parameter back to `action`, with approve and deny buttons.
pub(crate) fn consent(
    action: &str,
    client_id: &str,
    customer: &str,
    redirect_uri: &str,
    params: &[(String, String)],
) -> Response {
    let mut hidden = String::new();
    for (name, value) in params {
        // Writing to a String cannot fail.
        let _ = writeln!(hidden, r#"<input type="hidden" name="{}" value="{}">"#, escape(name), escape(value));
    }
    let body = format!(
        r#"<h1>Sandbox Brokerage</h1>
<div class="box">
<p><strong>{client}</strong> asks to read the accounts, positions and transactions of sandbox customer
<strong>{customer}</strong>.</p>
<p>You will be sent back to <code>{redirect}</code>.</p>
<form method="post" action="{action}">
{hidden}<button type="submit" name="decision" value="approve">Allow</button>
<button type="submit" name="decision" value="deny">Deny</button>
</form>
</div>
<p><small>This is Dashtam's sandbox brokerage: the accounts and money are made up.</small></p>"#,
        client = escape(client_id),
        customer = escape(customer),
        redirect = escape(redirect_uri),
        action = escape(action),
    );
    page(StatusCode::OK, "Sandbox Brokerage — allow access?", &body)
}

/// A `400` page for an authorization request that cannot be honoured; it never redirects, since the redirect
/// URI itself may be what is wrong.
pub(crate) fn error(message: &str) -> Response {
    let body = format!(
        "<h1>Sandbox Brokerage</h1>\n<div class=\"box\"><p>This authorization request is invalid: {}</p></div>",
        escape(message)
    );
    page(StatusCode::BAD_REQUEST, "Sandbox Brokerage — invalid request", &body)
}

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"referrer\" content=\"no-referrer\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>{}</title><style>{STYLE}</style></head>\
<body>\n{body}\n</body></html>\n",
        escape(title)
    );
    let mut response = (status, Html(html)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // The page runs no script and loads nothing; framing it is the classic consent-page attack.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

/// Escapes text for HTML element content and double- or single-quoted attribute values.
pub(crate) fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            escape(r#"<script>alert("x&y")</script>'"#),
            "&lt;script&gt;alert(&quot;x&amp;y&quot;)&lt;/script&gt;&#39;"
        );
    }
}
