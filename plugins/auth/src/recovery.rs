//! Password recovery: a single-use reset token, kept only as a SHA-256
//! digest, and the mail carrying it, written to the outbox in the same
//! statement so one never exists without the other. The mailer delivers it
//! outside the request.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use service::mail::{self, Mail};
use service::{ApiError, ApiResult, Database};
use sha2::{Digest, Sha256};
use spin_sdk::pg4::ParameterValue;
use uuid::Uuid;

const EXPIRE_HOURS_VARIABLE: &str = "email_reset_token_expire_hours";
const DEFAULT_EXPIRE_HOURS: u32 = 1;

/// The answer to every recovery request, whether or not the email exists.
pub const RECOVERY_SENT: &str = "If that email is registered, we sent a password recovery link";

#[derive(Debug, Deserialize)]
pub struct NewPassword {
    pub token: String,
    pub new_password: String,
}

/// A fresh reset token: 32 random bytes, URL-safe, and the digest stored.
pub struct ResetToken {
    pub token: String,
    pub digest: Vec<u8>,
}

impl ResetToken {
    pub fn generate() -> ApiResult<Self> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| ApiError::internal("generating a reset token", e))?;
        let token = URL_SAFE_NO_PAD.encode(bytes);
        Ok(Self { digest: digest(&token), token })
    }
}

pub fn digest(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// The recovery mail for `email`: its link opens
/// `{frontend_host}/reset-password?token=...`.
pub fn recovery_mail(email: &str, token: &str, hours: u32) -> Mail {
    let (project, host) = mail::project_and_host();
    let link = format!("{host}/reset-password?token={token}");
    let plural = if hours == 1 { "" } else { "s" };
    let request = format!("We received a request to recover the password for {email} on {project}.");
    let validity = format!(
        "The link can be used once and expires in {hours} hour{plural}. If you did not ask for it, you can ignore this mail."
    );
    Mail {
        subject: format!("{project} - Password recovery for user {email}"),
        text: format!("{request}\n\nReset your password: {link}\n\n{validity}"),
        html: mail::html_document(&[&request, &validity], Some(("Reset your password", &link))),
    }
}

pub fn expire_hours() -> ApiResult<u32> {
    match spin_sdk::variables::get(EXPIRE_HOURS_VARIABLE) {
        Ok(v) => v.parse().map_err(|e| ApiError::internal("reading the reset token lifetime", e)),
        Err(_) => Ok(DEFAULT_EXPIRE_HOURS),
    }
}

/// Stores a reset token for `user_id`, valid for `hours`.
pub fn store_token(db: &Database, token: &ResetToken, user_id: Uuid, hours: u32) -> ApiResult<()> {
    db.execute(
        "INSERT INTO password_reset_token (token_hash, user_id, expires_at) \
         VALUES ($1, $2, now() + make_interval(hours => $3))",
        &[ParameterValue::Binary(token.digest.clone()), user_id.into(), (hours as i32).into()],
    )?;
    Ok(())
}

/// Queues a recovery mail to the active user with `email`, if there is one:
/// token and mail in one statement, both or neither.
pub fn queue_recovery(db: &Database, email: &str) -> ApiResult<()> {
    let token = ResetToken::generate()?;
    let hours = expire_hours()?;
    let mail = recovery_mail(email, &token.token, hours);
    db.execute(
        r#"WITH target AS (
               SELECT id, email FROM "user" WHERE lower(email) = $1 AND is_active
           ), token AS (
               INSERT INTO password_reset_token (token_hash, user_id, expires_at)
               SELECT $2, id, now() + make_interval(hours => $3) FROM target
               RETURNING user_id
           )
           INSERT INTO email_outbox (recipient, subject, html_body, text_body)
           SELECT target.email, $4, $5, $6 FROM target JOIN token ON token.user_id = target.id"#,
        &[
            email.to_owned().into(),
            ParameterValue::Binary(token.digest),
            (hours as i32).into(),
            mail.subject.into(),
            mail.html.into(),
            mail.text.into(),
        ],
    )?;
    Ok(())
}

/// The user a still-valid token belongs to, and whether they are active.
pub fn token_owner(db: &Database, token: &str) -> ApiResult<Option<(Uuid, bool)>> {
    let row = db.query_one(
        r#"SELECT u.id, u.is_active FROM password_reset_token t JOIN "user" u ON u.id = t.user_id
           WHERE t.token_hash = $1 AND t.used_at IS NULL AND t.expires_at > now()"#,
        &[ParameterValue::Binary(digest(token))],
    )?;
    row.map(|row| Ok((service::column(&row, 0)?, service::column(&row, 1)?))).transpose()
}

/// Spends the token and sets the password, unless another request spent it
/// first; every other outstanding token of the user is spent too.
pub fn consume_token(db: &Database, token: &str, hashed_password: String) -> ApiResult<bool> {
    db.transaction(|db| {
        let row = db.query_one(
            r#"WITH spent AS (
                   UPDATE password_reset_token SET used_at = now()
                   WHERE token_hash = $1 AND used_at IS NULL AND expires_at > now()
                   RETURNING user_id
               )
               UPDATE "user" u SET hashed_password = $2, updated_at = now()
               FROM spent WHERE u.id = spent.user_id RETURNING u.id"#,
            &[ParameterValue::Binary(digest(token)), hashed_password.into()],
        )?;
        let Some(row) = row else { return Ok(false) };
        let user_id: Uuid = service::column(&row, 0)?;
        db.execute(
            "UPDATE password_reset_token SET used_at = now() WHERE user_id = $1 AND used_at IS NULL",
            &[user_id.into()],
        )?;
        Ok(true)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_is_not_the_token() {
        let token = "abc";
        assert_eq!(digest(token).len(), 32);
        assert_ne!(digest(token), token.as_bytes());
    }
}
