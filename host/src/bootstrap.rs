//! Start-up work on the databases: connecting the pools, applying each
//! database's migrations, and creating the first superuser.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context as _;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::config::{DatabaseConfig, Limits};

/// Cost of the bcrypt hash stored for passwords (the original's default).
pub const BCRYPT_COST: u32 = 12;

/// What a guest may have changed in a session, undone before the pooled
/// connection serves anyone else. `RESET ALL` returns settings to their
/// connection-time values, `statement_timeout` included.
/// What a returned session is put through, whatever the guest did: any
/// transaction ends (the statement only warns when there is none), then
/// settings, listeners, advisory locks and temporary tables go.
const END_TRANSACTION: &str = "ROLLBACK";
const RESET_SESSION: &str = "RESET ALL; UNLISTEN *; SELECT pg_advisory_unlock_all(); DISCARD TEMP";

/// Connects one pool per database. A statement never outlives a request's
/// time budget (a session default set at connection time), and sessions are
/// reset when returned to the pool, so one request's `SET` never leaks
/// into the next.
pub async fn connect_pools(
    databases: &BTreeMap<String, DatabaseConfig>,
    urls: &BTreeMap<String, String>,
    limits: &Limits,
) -> anyhow::Result<BTreeMap<String, PgPool>> {
    let mut pools = BTreeMap::new();
    for (name, config) in databases {
        let options: PgConnectOptions =
            urls[name].parse().with_context(|| format!("database `{name}`: invalid URL"))?;
        // A statement never outlives a request's budget, unless the guest
        // raises the limit; then its connection is closed when the budget
        // ends, and the server, checking every second that its client is
        // still there, stops the statement (PostgreSQL 14 or later).
        let options = options.options([
            ("statement_timeout", limits.timeout_ms.to_string()),
            ("client_connection_check_interval", "1000".to_owned()),
            // Guests cannot read notices; the unconditional `ROLLBACK` on
            // release would otherwise warn in the log each time.
            ("client_min_messages", "error".to_owned()),
        ]);
        let pool = PgPoolOptions::new()
            .max_connections(config.max_connections)
            .acquire_timeout(Duration::from_millis(config.acquire_timeout_ms))
            .after_release(|conn, _| Box::pin(reset_session(conn)))
            .connect_with(options)
            .await
            .with_context(|| format!("database `{name}`: cannot connect"))?;
        if let Some(dir) = &config.migrations {
            let migrator = sqlx::migrate::Migrator::new(dir.as_path())
                .await
                .with_context(|| format!("database `{name}`: cannot read migrations in {}", dir.display()))?;
            migrator.run(&pool).await.with_context(|| format!("database `{name}`: migrations failed"))?;
            tracing::info!(database = %name, migrations = migrator.iter().count(), "schema up to date");
        }
        pools.insert(name.clone(), pool);
    }
    Ok(pools)
}

/// Undoes a guest's session changes; `Ok(true)` keeps the connection.
async fn reset_session(conn: &mut sqlx::PgConnection) -> Result<bool, sqlx::Error> {
    // Without arguments sqlx sends the simple query protocol, which takes
    // several statements at once.
    sqlx::Executor::execute(&mut *conn, END_TRANSACTION).await?;
    sqlx::Executor::execute(conn, RESET_SESSION).await?;
    Ok(true)
}

/// Creates the superuser `email` with `password` unless a user with that
/// email exists. Returns whether it was created.
pub async fn ensure_first_superuser(pool: &PgPool, email: &str, password: &str) -> anyhow::Result<bool> {
    // The services store and match emails in lower case.
    let email = email.to_lowercase();
    let exists: bool = sqlx::query_scalar(r#"SELECT EXISTS (SELECT 1 FROM "user" WHERE lower(email) = $1)"#)
        .bind(&email)
        .fetch_one(pool)
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
    .execute(pool)
    .await?;
    Ok(inserted.rows_affected() == 1)
}
