//! The `email_outbox` table the services write to: rows are claimed with a
//! lease (so two mailers, or one restarted mid-send, never lose a mail and
//! rarely send one twice), then marked sent, retried later, or given up.

use std::time::Duration;

use sqlx::PgPool;

/// One mail waiting to be delivered.
#[derive(Debug, Clone)]
pub struct OutboxMail {
    pub id: i64,
    pub recipient: String,
    pub subject: String,
    pub html_body: String,
    pub text_body: String,
    /// Delivery attempts so far, this one included.
    pub attempts: i32,
}

/// How long a claimed mail stays out of other claims: longer than one
/// delivery may take, so a mailer that died mid-send hands it back.
const LEASE: Duration = Duration::from_secs(120);

pub struct Outbox {
    pool: PgPool,
}

impl Outbox {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Up to `batch` mails due now, each counted as one more attempt.
    pub async fn claim(&self, batch: i64) -> Result<Vec<OutboxMail>, sqlx::Error> {
        let rows: Vec<(i64, String, String, String, String, i32)> = sqlx::query_as(
            "UPDATE email_outbox
             SET attempts = attempts + 1, next_attempt_at = now() + make_interval(secs => $2)
             WHERE id IN (
                 SELECT id FROM email_outbox
                 WHERE sent_at IS NULL AND failed_at IS NULL AND next_attempt_at <= now()
                 ORDER BY next_attempt_at, id
                 LIMIT $1
                 FOR UPDATE SKIP LOCKED
             )
             RETURNING id, recipient, subject, html_body, text_body, attempts",
        )
        .bind(batch)
        .bind(LEASE.as_secs_f64())
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, recipient, subject, html_body, text_body, attempts)| OutboxMail {
                id,
                recipient,
                subject,
                html_body,
                text_body,
                attempts,
            })
            .collect())
    }

    pub async fn mark_sent(&self, id: i64) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE email_outbox SET sent_at = now(), last_error = NULL WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records a failed attempt: tried again after `retry_in`, or never
    /// again when `retry_in` is `None`.
    pub async fn mark_failed(&self, id: i64, error: &str, retry_in: Option<Duration>) -> Result<(), sqlx::Error> {
        match retry_in {
            Some(delay) => {
                sqlx::query(
                    "UPDATE email_outbox SET last_error = $2, next_attempt_at = now() + make_interval(secs => $3)
                     WHERE id = $1",
                )
                .bind(id)
                .bind(error)
                .bind(delay.as_secs_f64())
                .execute(&self.pool)
                .await?
            }
            None => {
                sqlx::query("UPDATE email_outbox SET last_error = $2, failed_at = now() WHERE id = $1")
                    .bind(id)
                    .bind(error)
                    .execute(&self.pool)
                    .await?
            }
        };
        Ok(())
    }
}

/// When to try again after `attempts` failed attempts: doubling from
/// `first`, capped at `max`; `None` once `max_attempts` are spent.
pub fn backoff(attempts: i32, max_attempts: i32, first: Duration, max: Duration) -> Option<Duration> {
    if attempts >= max_attempts {
        return None;
    }
    let doublings = attempts.saturating_sub(1).clamp(0, 30) as u32;
    Some(first.saturating_mul(1 << doublings).min(max))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_caps_and_stops() {
        let (first, max) = (Duration::from_secs(10), Duration::from_secs(300));
        let delays: Vec<_> = (1..=7).map(|n| backoff(n, 7, first, max)).collect();
        let secs = |d: Option<Duration>| d.map(|d| d.as_secs());
        assert_eq!(
            delays.into_iter().map(secs).collect::<Vec<_>>(),
            [Some(10), Some(20), Some(40), Some(80), Some(160), Some(300), None]
        );
        assert_eq!(secs(backoff(1000, 2000, first, max)), Some(300), "no overflow");
    }
}
