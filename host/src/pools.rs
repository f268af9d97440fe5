//! The host's database pools: how a connection is made (TLS, timeouts,
//! session defaults) and what a session is put through when a guest gives
//! it back.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context as _;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::config::{DatabaseConfig, Limits};

/// What a returned session is put through, whatever the guest did, in one
/// round trip: any transaction ends (`ROLLBACK` only warns when there is
/// none, and ends an aborted one too), then settings, listeners, advisory
/// locks and temporary tables go.
const RESET_SESSION: &str = "ROLLBACK; RESET ALL; UNLISTEN *; SELECT pg_advisory_unlock_all(); DISCARD TEMP";

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
        let options = connect_options(&urls[name], config).with_context(|| format!("database `{name}`"))?;
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
            .min_connections(config.min_connections)
            .acquire_timeout(Duration::from_millis(config.acquire_timeout_ms))
            .idle_timeout(Some(Duration::from_secs(config.idle_timeout_seconds)))
            .max_lifetime(Some(Duration::from_secs(config.max_lifetime_seconds)))
            .after_release(|conn, _| Box::pin(reset_session(conn)))
            .connect_with(options)
            .await
            .with_context(|| format!("database `{name}`: cannot connect"))?;
        pools.insert(name.clone(), pool);
    }
    Ok(pools)
}

/// How to reach one database: its URL, with the manifest's TLS settings
/// (`ssl_mode`, `ssl_root_cert`) over whatever the URL says, so the URL can
/// stay a plain secret while the CA file ships with the deployment.
pub fn connect_options(url: &str, config: &DatabaseConfig) -> anyhow::Result<PgConnectOptions> {
    // The URL may hold a password: never echo it in the error.
    let mut options: PgConnectOptions = url.parse().map_err(|_| anyhow::anyhow!("invalid URL"))?;
    // sqlx would log each statement's text, a guest's SQL included.
    options = sqlx::ConnectOptions::disable_statement_logging(options);
    if let Some(mode) = config.ssl_mode {
        options = options.ssl_mode(mode.into());
    }
    if let Some(ca) = &config.ssl_root_cert {
        anyhow::ensure!(ca.is_file(), "ssl_root_cert {} is not a readable file", ca.display());
        options = options.ssl_root_cert(ca);
    }
    Ok(options)
}

/// Undoes a guest's session changes; `Ok(true)` keeps the connection.
async fn reset_session(conn: &mut sqlx::PgConnection) -> Result<bool, sqlx::Error> {
    // Without arguments sqlx sends the simple query protocol, which takes
    // several statements at once.
    sqlx::Executor::execute(conn, RESET_SESSION).await?;
    Ok(true)
}
