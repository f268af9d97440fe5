//! Where mail goes: an SMTP server, or (for development only) the log.

use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::outbox::OutboxMail;

/// A delivery that did not happen, and whether trying again can help.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct DeliveryError {
    pub message: String,
    /// The server refused for good (a 5xx, a malformed address): no retry.
    pub permanent: bool,
}

impl DeliveryError {
    fn permanent(message: impl Into<String>) -> Self {
        Self { message: message.into(), permanent: true }
    }
}

/// The SMTP settings, named as the original platform named them.
#[derive(Debug, Clone)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub user: Option<String>,
    pub password: Option<String>,
    /// STARTTLS, required (`SMTP_TLS`, on by default).
    pub starttls: bool,
    /// TLS from the first byte (`SMTP_SSL`).
    pub implicit_tls: bool,
    pub from: Mailbox,
}

pub enum Delivery {
    Smtp {
        transport: AsyncSmtpTransport<Tokio1Executor>,
        from: Mailbox,
    },
    /// Writes each mail to the log instead of sending it, links included.
    /// Only for development: chosen explicitly, never by default.
    Log,
}

impl Delivery {
    pub fn smtp(settings: &SmtpSettings) -> anyhow::Result<Self> {
        let builder = if settings.implicit_tls {
            AsyncSmtpTransport::<Tokio1Executor>::relay(&settings.host)?
        } else if settings.starttls {
            AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&settings.host)?
        } else {
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&settings.host)
        };
        let mut builder = builder.port(settings.port).timeout(Some(Duration::from_secs(30)));
        if let (Some(user), Some(password)) = (&settings.user, &settings.password) {
            builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
        }
        Ok(Self::Smtp { transport: builder.build(), from: settings.from.clone() })
    }

    pub async fn deliver(&self, mail: &OutboxMail) -> Result<(), DeliveryError> {
        match self {
            Delivery::Smtp { transport, from } => {
                let message = compose(from, mail)?;
                transport
                    .send(message)
                    .await
                    .map(|_| ())
                    .map_err(|e| DeliveryError { permanent: e.is_permanent(), message: format!("smtp: {e}") })
            }
            Delivery::Log => {
                tracing::info!(id = mail.id, to = %mail.recipient, subject = %mail.subject, "mail (not sent: log-only delivery)\n{}", mail.text_body);
                Ok(())
            }
        }
    }
}

/// The message as sent: a plain-text part and an HTML part.
fn compose(from: &Mailbox, mail: &OutboxMail) -> Result<Message, DeliveryError> {
    let to: Mailbox =
        mail.recipient.parse().map_err(|e| DeliveryError::permanent(format!("recipient address: {e}")))?;
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(&mail.subject)
        .multipart(MultiPart::alternative_plain_html(mail.text_body.clone(), mail.html_body.clone()))
        .map_err(|e| DeliveryError::permanent(format!("composing: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail(recipient: &str) -> OutboxMail {
        OutboxMail {
            id: 1,
            recipient: recipient.into(),
            subject: "Réinitialisation 🔑".into(),
            html_body: "<p>hi</p>".into(),
            text_body: "hi".into(),
            attempts: 1,
        }
    }

    #[test]
    fn messages_carry_both_parts_and_encode_the_subject() {
        let from: Mailbox = "Gatehouse <noreply@example.com>".parse().unwrap();
        let message = compose(&from, &mail("user@example.com")).unwrap();
        let text = String::from_utf8(message.formatted()).unwrap();
        assert!(text.contains("To: user@example.com"), "{text}");
        assert!(text.contains("multipart/alternative"), "{text}");
        assert!(text.contains("=?utf-8?"), "non-ASCII subjects are encoded: {text}");
    }

    #[test]
    fn a_malformed_recipient_is_permanent() {
        let from: Mailbox = "noreply@example.com".parse().unwrap();
        let err = compose(&from, &mail("not an address")).unwrap_err();
        assert!(err.permanent);
    }
}
