//! Gatehouse's runtime host: serves WebAssembly components (the services)
//! over HTTP and lends them PostgreSQL through `spin:postgres`, on pools the
//! host owns. See `ARCHITECTURE.md` for where it sits.

pub mod bindings;
pub mod bootstrap;
pub mod config;
mod guest_log;
pub mod handlers;
pub mod identity;
mod imports;
pub mod key_value;
pub mod metrics;
pub mod outbound_http;
pub mod postgres;
mod postgres_v2;
mod postgres_v3;
pub mod routes;
pub mod runtime;
pub mod server;
pub mod spin_app;
pub mod testing;
pub mod variables;

use std::sync::Arc;

use anyhow::Context as _;

pub use config::Manifest;
pub use runtime::Runtime;

/// Environment variables holding the first superuser, as the original
/// services named them.
pub const FIRST_SUPERUSER_ENV: &str = "FIRST_SUPERUSER";
pub const FIRST_SUPERUSER_PASSWORD_ENV: &str = "FIRST_SUPERUSER_PASSWORD";

/// Connects the databases, applies migrations, creates the first superuser
/// if the manifest asks for it, and compiles the components.
pub async fn prepare(manifest: &Manifest, env: impl Fn(&str) -> Option<String>) -> anyhow::Result<Arc<Runtime>> {
    let urls = manifest.database_urls(&env)?;
    let pools = bootstrap::connect_pools(&manifest.database, &urls, &manifest.limits).await?;
    if let Some(bootstrap) = &manifest.bootstrap {
        match (env(FIRST_SUPERUSER_ENV), env(FIRST_SUPERUSER_PASSWORD_ENV)) {
            (Some(email), Some(password)) => {
                let created = bootstrap::ensure_first_superuser(&pools[&bootstrap.database], &email, &password)
                    .await
                    .context("creating the first superuser")?;
                tracing::info!(%email, created, "first superuser");
            }
            _ => tracing::info!("{FIRST_SUPERUSER_ENV} or {FIRST_SUPERUSER_PASSWORD_ENV} unset: no first superuser"),
        }
    }
    let store_databases: std::collections::BTreeSet<_> =
        manifest.key_value_store.values().map(|s| &s.database).collect();
    for database in store_databases {
        key_value::prepare_database(&pools[database])
            .await
            .with_context(|| format!("database `{database}`: cannot create the key-value table"))?;
    }
    let engine = Runtime::new_engine(manifest.server.compile_cache.as_deref())?;
    let runtime = Runtime::new(engine, manifest, &pools, env)?;
    Ok(Arc::new(runtime))
}
