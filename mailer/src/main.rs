//! Gatehouse's mailer: delivers the mail the services write to the
//! `email_outbox` table, outside the request path, retrying with backoff.
//!
//! ```sh
//! DATABASE_URL=postgres://... SMTP_HOST=smtp.example.com EMAILS_FROM_EMAIL=noreply@example.com \
//!     gatehouse-mailer
//! ```
//!
//! SMTP settings use the original platform's names: `SMTP_HOST`,
//! `SMTP_PORT` (587), `SMTP_USER`, `SMTP_PASSWORD`, `SMTP_TLS` (STARTTLS,
//! on), `SMTP_SSL` (TLS from the first byte, off), `EMAILS_FROM_EMAIL`,
//! `EMAILS_FROM_NAME`. Without `SMTP_HOST` the mailer refuses to start,
//! unless `--log-only` asks it to write mail to its log (development only:
//! the log then holds password reset links).

mod delivery;
mod outbox;

use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Parser;
use lettre::message::Mailbox;
use sqlx::postgres::PgPoolOptions;

use crate::delivery::{Delivery, SmtpSettings};
use crate::outbox::{Outbox, backoff};

#[derive(Debug, Parser)]
#[command(version, about = "Gatehouse's mailer: delivers the services' outbox over SMTP")]
struct Args {
    /// The database holding `email_outbox`.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: String,
    #[arg(long, env = "SMTP_HOST")]
    smtp_host: Option<String>,
    #[arg(long, env = "SMTP_PORT", default_value_t = 587)]
    smtp_port: u16,
    #[arg(long, env = "SMTP_USER")]
    smtp_user: Option<String>,
    #[arg(long, env = "SMTP_PASSWORD", hide_env_values = true)]
    smtp_password: Option<String>,
    /// Require STARTTLS.
    #[arg(long, env = "SMTP_TLS", default_value_t = true, action = clap::ArgAction::Set)]
    smtp_tls: bool,
    /// TLS from the first byte (usually port 465).
    #[arg(long, env = "SMTP_SSL", default_value_t = false, action = clap::ArgAction::Set)]
    smtp_ssl: bool,
    #[arg(long, env = "EMAILS_FROM_EMAIL")]
    emails_from_email: Option<String>,
    #[arg(long, env = "EMAILS_FROM_NAME", default_value = "Gatehouse")]
    emails_from_name: String,
    /// Write mail to the log instead of sending it (development only).
    #[arg(long)]
    log_only: bool,
    /// How often to look for mail when there is none.
    #[arg(long, env = "MAILER_POLL_MS", default_value_t = 1000)]
    poll_ms: u64,
    /// Attempts before a mail is given up.
    #[arg(long, env = "MAILER_MAX_ATTEMPTS", default_value_t = 8)]
    max_attempts: i32,
    /// Seconds before the first retry; each later one waits twice as long,
    /// up to an hour.
    #[arg(long, env = "MAILER_RETRY_SECONDS", default_value_t = 30)]
    retry_seconds: u64,
    /// Check the settings and exit.
    #[arg(long)]
    check: bool,
}

const MAX_RETRY: Duration = Duration::from_secs(3600);
const BATCH: i64 = 16;

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn delivery(args: &Args) -> anyhow::Result<Delivery> {
    let Some(host) = args.smtp_host.clone().filter(|h| !h.is_empty()) else {
        if args.log_only {
            return Ok(Delivery::Log);
        }
        bail!("SMTP_HOST is not set (pass --log-only to write mail to the log instead, in development)");
    };
    let from_email =
        args.emails_from_email.as_deref().filter(|e| !e.is_empty()).context("EMAILS_FROM_EMAIL is not set")?;
    let from = Mailbox::new(Some(args.emails_from_name.clone()), from_email.parse().context("EMAILS_FROM_EMAIL")?);
    let settings = SmtpSettings {
        host,
        port: args.smtp_port,
        user: args.smtp_user.clone().filter(|u| !u.is_empty()),
        password: args.smtp_password.clone().filter(|p| !p.is_empty()),
        starttls: args.smtp_tls,
        implicit_tls: args.smtp_ssl,
        from,
    };
    Delivery::smtp(&settings)
}

#[tokio::main]
async fn run() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let args = Args::parse();
    let delivery = delivery(&args)?;
    if args.check {
        println!("mailer settings: ok");
        return Ok(());
    }
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .connect(&args.database_url)
        .await
        .context("cannot connect to the database")?;
    let outbox = Outbox::new(pool);
    tracing::info!(smtp = args.smtp_host.as_deref().unwrap_or("none (log only)"), "mailer running");

    let mut stop = Box::pin(shutdown_signal());
    loop {
        let delivered = match deliver_due(&outbox, &delivery, &args).await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the outbox");
                0
            }
        };
        // A full batch means more may be waiting: look again at once.
        if delivered == BATCH as usize {
            continue;
        }
        tokio::select! {
            _ = &mut stop => break,
            _ = tokio::time::sleep(Duration::from_millis(args.poll_ms)) => {}
        }
    }
    tracing::info!("mailer stopped");
    Ok(())
}

/// Delivers every mail due now, one batch; returns how many were claimed.
async fn deliver_due(outbox: &Outbox, delivery: &Delivery, args: &Args) -> Result<usize, sqlx::Error> {
    let batch = outbox.claim(BATCH).await?;
    for mail in &batch {
        match delivery.deliver(mail).await {
            Ok(()) => {
                outbox.mark_sent(mail.id).await?;
                tracing::info!(id = mail.id, attempt = mail.attempts, "mail delivered");
            }
            Err(e) => {
                let first = Duration::from_secs(args.retry_seconds);
                let retry_in =
                    if e.permanent { None } else { backoff(mail.attempts, args.max_attempts, first, MAX_RETRY) };
                tracing::warn!(id = mail.id, attempt = mail.attempts, error = %e, retry_in = ?retry_in, "mail not delivered");
                outbox.mark_failed(mail.id, &e.message, retry_in).await?;
            }
        }
    }
    Ok(batch.len())
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
