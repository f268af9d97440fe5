//! What the platform needs done once before any host serves, and again on
//! every upgrade: every component's schema migrations (see
//! `host::migrations`), then the application's first superuser. This is the
//! application's knowledge, kept out of the runtime: the host never sees a
//! password or a `user` table.
//!
//! Both steps can run any number of times and from several jobs at once:
//! migrations are serialised by the database, and the superuser is created
//! only if no user has that email.

use anyhow::Context as _;
use sqlx::{Connection as _, PgConnection};

use host::Manifest;
use host::migrations::Outcome;

/// Cost of the bcrypt hash stored for passwords (the original's default).
pub const BCRYPT_COST: u32 = 12;

/// Environment variables holding the first superuser, as the original
/// services named them.
pub const FIRST_SUPERUSER_ENV: &str = "FIRST_SUPERUSER";
pub const FIRST_SUPERUSER_PASSWORD_ENV: &str = "FIRST_SUPERUSER_PASSWORD";

/// What a run did.
#[derive(Debug)]
pub struct Report {
    pub migrations: Vec<Outcome>,
    /// The first superuser's email, and whether it was created now.
    pub superuser: Option<(String, bool)>,
}

/// Applies the migrations of every component in `manifest`, then creates
/// the first superuser in `users_database` when `FIRST_SUPERUSER` and
/// `FIRST_SUPERUSER_PASSWORD` are both set.
pub async fn run(
    manifest: &Manifest,
    env: impl Fn(&str) -> Option<String>,
    users_database: &str,
) -> anyhow::Result<Report> {
    let urls = manifest.database_urls(&env)?;
    let migrations = host::migrations::apply(manifest, &urls).await?;
    let superuser = match (env(FIRST_SUPERUSER_ENV), env(FIRST_SUPERUSER_PASSWORD_ENV)) {
        (Some(email), Some(password)) => {
            let config = manifest
                .database
                .get(users_database)
                .with_context(|| format!("the users' database `{users_database}` is not in the manifest"))?;
            let options = host::pools::connect_options(&urls[users_database], config)
                .with_context(|| format!("database `{users_database}`"))?;
            let mut conn = PgConnection::connect_with(&options)
                .await
                .with_context(|| format!("database `{users_database}`: cannot connect"))?;
            let created =
                ensure_first_superuser(&mut conn, &email, &password).await.context("creating the first superuser")?;
            let _ = conn.close().await;
            Some((email.to_lowercase(), created))
        }
        _ => None,
    };
    Ok(Report { migrations, superuser })
}

/// Creates the superuser `email` with `password` unless a user with that
/// email exists. Returns whether it was created.
pub async fn ensure_first_superuser(conn: &mut PgConnection, email: &str, password: &str) -> anyhow::Result<bool> {
    // The services store and match emails in lower case.
    let email = email.to_lowercase();
    let exists: bool = sqlx::query_scalar(r#"SELECT EXISTS (SELECT 1 FROM "user" WHERE lower(email) = $1)"#)
        .bind(&email)
        .fetch_one(&mut *conn)
        .await?;
    if exists {
        return Ok(false);
    }
    let password = password.to_owned();
    let hash = tokio::task::spawn_blocking(move || bcrypt::hash(password, BCRYPT_COST)).await??;
    let inserted = sqlx::query(
        r#"INSERT INTO "user" (email, hashed_password, is_active, is_superuser)
           VALUES ($1, $2, true, true) ON CONFLICT DO NOTHING"#,
    )
    .bind(email)
    .bind(hash)
    .execute(conn)
    .await?;
    Ok(inserted.rows_affected() == 1)
}
