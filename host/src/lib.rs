//! Gatehouse's runtime host: serves WebAssembly components (the services)
//! over HTTP and lends them PostgreSQL through `spin:postgres`, on pools the
//! host owns. See `ARCHITECTURE.md` for where it sits.

pub mod bindings;
pub mod config;
pub mod executor;
mod guest_log;
pub mod handlers;
mod host_call;
pub mod identity;
mod imports;
pub mod key_value;
pub mod live;
pub mod metrics;
pub mod migrations;
pub mod outbound_http;
pub mod pools;
pub mod postgres;
mod postgres_v2;
mod postgres_v3;
pub mod routes;
pub mod runtime;
pub mod server;
pub mod spin_app;
pub mod variables;

use std::sync::Arc;

use anyhow::Context as _;

pub use config::Manifest;
pub use runtime::Runtime;

/// Connects the databases and compiles the components. Schema migrations
/// are not the host's business: `gatehouse-setup` applies them first.
pub async fn prepare(manifest: &Manifest, env: impl Fn(&str) -> Option<String>) -> anyhow::Result<Arc<Runtime>> {
    let urls = manifest.database_urls(&env)?;
    let pools = pools::connect_pools(&manifest.database, &urls, &manifest.limits).await?;
    let store_databases: std::collections::BTreeSet<_> =
        manifest.key_value_store.values().map(|s| &s.database).collect();
    for database in store_databases {
        key_value::prepare_database(&pools[database])
            .await
            .with_context(|| format!("database `{database}`: cannot create the key-value table"))?;
    }
    let engine = Runtime::new_engine(manifest)?;
    let runtime = Runtime::new(engine, manifest, &pools, env)?;
    Ok(Arc::new(runtime))
}
