//! Schema migrations, brought by components. A component names a folder of
//! SQL files (sqlx's naming, `<version>_<description>.sql`) for each
//! database it opens that needs a schema; several components may migrate
//! one database, each numbering its migrations as it likes.
//!
//! The host never runs them itself: `gatehouse-setup` does, once, before
//! any host starts (the Helm chart's pre-install Job, `cargo xtask run`).
//!
//! What was applied is kept per database in `gatehouse_migrations`, keyed by
//! component and version. Runs on one database are serialised by an
//! advisory lock, so two setup jobs started together apply each migration
//! once. Pending migrations of all components run in version order (the
//! component name breaks ties), so a timestamped migration that references
//! another component's table runs after the one creating it.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use sqlx::migrate::{Migration, Migrator};
use sqlx::{Connection as _, Executor as _, PgConnection};

use crate::Manifest;

/// The advisory lock key taken while migrating ("gatehouse" in ASCII).
const LOCK_KEY: i64 = 0x6761_7465_686f_7573;

const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS gatehouse_migrations (
    component TEXT NOT NULL,
    version BIGINT NOT NULL,
    description TEXT NOT NULL,
    checksum BYTEA NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (component, version)
)";

/// One migration's fate in a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub database: String,
    pub component: String,
    pub version: i64,
    pub description: String,
    pub action: Action,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Run now.
    Applied,
    /// Found applied by sqlx's own runner (`_sqlx_migrations`, how
    /// Gatehouse migrated before) with the same checksum: recorded, not run.
    Adopted,
}

/// The migrations each component brings to `database`, by component.
fn sets_for<'m>(manifest: &'m Manifest, database: &str) -> BTreeMap<&'m str, &'m PathBuf> {
    manifest
        .component
        .iter()
        .filter_map(|(name, c)| c.migrations.get(database).map(|dir| (name.as_str(), dir)))
        .collect()
}

/// Applies every component's pending migrations to the databases whose
/// URLs `urls` gives, and says what it did.
pub async fn apply(manifest: &Manifest, urls: &BTreeMap<String, String>) -> anyhow::Result<Vec<Outcome>> {
    let mut outcomes = Vec::new();
    for database in manifest.database.keys() {
        let sets = sets_for(manifest, database);
        if sets.is_empty() {
            continue;
        }
        let mut loaded = Vec::new();
        for (component, dir) in sets {
            let migrator = Migrator::new(dir.as_path())
                .await
                .with_context(|| format!("component `{component}`: cannot read migrations in {}", dir.display()))?;
            loaded.push((component, migrator));
        }
        let options = crate::pools::connect_options(&urls[database], &manifest.database[database])
            .with_context(|| format!("database `{database}`"))?;
        let mut conn = PgConnection::connect_with(&options)
            .await
            .with_context(|| format!("database `{database}`: cannot connect"))?;
        sqlx::query("SELECT pg_advisory_lock($1)").bind(LOCK_KEY).execute(&mut conn).await?;
        let result = apply_locked(&mut conn, database, &loaded).await;
        // Closing the session releases the lock whatever happened.
        let _ = conn.close().await;
        outcomes.extend(result.with_context(|| format!("database `{database}`: migrations failed"))?);
    }
    Ok(outcomes)
}

async fn apply_locked(
    conn: &mut PgConnection,
    database: &str,
    sets: &[(&str, Migrator)],
) -> anyhow::Result<Vec<Outcome>> {
    conn.execute(CREATE_TABLE).await?;
    let applied: HashMap<(String, i64), Vec<u8>> =
        sqlx::query_as::<_, (String, i64, Vec<u8>)>("SELECT component, version, checksum FROM gatehouse_migrations")
            .fetch_all(&mut *conn)
            .await?
            .into_iter()
            .map(|(c, v, sum)| ((c, v), sum))
            .collect();
    let legacy = legacy_applied(conn).await?;

    let mut pending: Vec<(i64, &str, &Migration)> = Vec::new();
    for (component, migrator) in sets {
        for migration in migrator.iter().filter(|m| !m.migration_type.is_down_migration()) {
            match applied.get(&(component.to_string(), migration.version)) {
                Some(sum) if sum.as_slice() == &*migration.checksum => {}
                Some(_) => bail!(
                    "component `{component}`: migration {} ({}) was changed after it was applied",
                    migration.version,
                    migration.description
                ),
                None => pending.push((migration.version, component, migration)),
            }
        }
    }
    pending.sort_by_key(|(version, component, _)| (*version, *component));

    let mut outcomes = Vec::new();
    for (version, component, migration) in pending {
        let adopted = legacy.get(&version).is_some_and(|sum| sum.as_slice() == &*migration.checksum);
        if adopted {
            record(&mut *conn, component, migration).await?;
        } else {
            run(conn, component, migration)
                .await
                .with_context(|| format!("component `{component}`: migration {version} ({})", migration.description))?;
        }
        let action = if adopted { Action::Adopted } else { Action::Applied };
        tracing::info!(database, component, version, description = %migration.description, ?action, "migration");
        outcomes.push(Outcome {
            database: database.to_owned(),
            component: component.to_owned(),
            version,
            description: migration.description.to_string(),
            action,
        });
    }
    Ok(outcomes)
}

/// Runs one migration and records it, in one transaction unless the file
/// asks for none (`-- no-transaction`, sqlx's marker).
async fn run(conn: &mut PgConnection, component: &str, migration: &Migration) -> anyhow::Result<()> {
    if migration.no_tx {
        conn.execute(sqlx::raw_sql(&migration.sql)).await?;
        record(conn, component, migration).await?;
        return Ok(());
    }
    let mut tx = conn.begin().await?;
    tx.execute(sqlx::raw_sql(&migration.sql)).await?;
    record(&mut tx, component, migration).await?;
    tx.commit().await?;
    Ok(())
}

async fn record(conn: &mut PgConnection, component: &str, migration: &Migration) -> anyhow::Result<()> {
    sqlx::query("INSERT INTO gatehouse_migrations (component, version, description, checksum) VALUES ($1, $2, $3, $4)")
        .bind(component)
        .bind(migration.version)
        .bind(&*migration.description)
        .bind(&*migration.checksum)
        .execute(conn)
        .await?;
    Ok(())
}

/// Versions and checksums sqlx's own runner recorded as applied, if this
/// database was migrated by it.
async fn legacy_applied(conn: &mut PgConnection) -> anyhow::Result<HashMap<i64, Vec<u8>>> {
    let exists: bool =
        sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL").fetch_one(&mut *conn).await?;
    if !exists {
        return Ok(HashMap::new());
    }
    let rows: Vec<(i64, Vec<u8>)> =
        sqlx::query_as("SELECT version, checksum FROM _sqlx_migrations WHERE success").fetch_all(conn).await?;
    Ok(rows.into_iter().collect())
}
