//! Mail the services send: written to the `email_outbox` table in the
//! caller's statement or transaction, delivered later by the mailer.

use crate::{ApiResult, Database};

/// Names the platform in mail (`PROJECT_NAME`).
pub const PROJECT_NAME_VARIABLE: &str = "project_name";
/// Where the web pages are, for links in mail (`FRONTEND_HOST`).
pub const FRONTEND_HOST_VARIABLE: &str = "frontend_host";

/// One mail, in plain text and HTML.
pub struct Mail {
    pub subject: String,
    pub html: String,
    pub text: String,
}

/// The project's name and the address of its pages, without a trailing `/`.
pub fn project_and_host() -> (String, String) {
    let project = crate::variable_or(PROJECT_NAME_VARIABLE, "Gatehouse");
    let host = crate::variable_or(FRONTEND_HOST_VARIABLE, "http://localhost:8080");
    (project, host.trim_end_matches('/').to_owned())
}

/// Queues `mail` to `recipient`; it is sent only if the surrounding
/// transaction commits.
pub fn queue(db: &Database, recipient: &str, mail: Mail) -> ApiResult<()> {
    db.execute(
        "INSERT INTO email_outbox (recipient, subject, html_body, text_body) VALUES ($1, $2, $3, $4)",
        &[recipient.to_owned().into(), mail.subject.into(), mail.html.into(), mail.text.into()],
    )?;
    Ok(())
}

/// Text made safe to place in HTML.
pub fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Paragraphs of plain text as a minimal HTML document; `link` becomes an
/// anchor after them.
pub fn html_document(paragraphs: &[&str], link: Option<(&str, &str)>) -> String {
    let mut html = String::from("<!DOCTYPE html><html><body style=\"font-family: sans-serif\">");
    for paragraph in paragraphs {
        html.push_str(&format!("<p>{}</p>", html_escape(paragraph)));
    }
    if let Some((label, href)) = link {
        html.push_str(&format!("<p><a href=\"{}\">{}</a></p>", html_escape(href), html_escape(label)));
    }
    html.push_str("</body></html>");
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_is_escaped() {
        assert_eq!(html_escape(r#"<a href="x">&"#), "&lt;a href=&quot;x&quot;&gt;&amp;");
        let doc = html_document(&["<b>hi</b>"], Some(("go", "https://x/?a=1&b=\"2\"")));
        assert!(doc.contains("<p>&lt;b&gt;hi&lt;/b&gt;</p>"), "{doc}");
        assert!(doc.contains(r#"<a href="https://x/?a=1&amp;b=&quot;2&quot;">go</a>"#), "{doc}");
    }
}
