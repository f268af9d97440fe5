//! Spin's key-value stores, kept in PostgreSQL: `fermyon:spin/key-value@2.0.0`
//! (spin-sdk 5) and `spin:key-value/key-value@3.0.0` (spin-sdk 7, async).
//!
//! A store is a label (`default`) the manifest maps to a database; a
//! component opens only the labels its `key_value_stores` grants, as on
//! Spin. All stores of a database share one table, keyed by label:
//!
//! ```toml
//! [key_value_store.default]
//! database = "app"
//!
//! [component.cart]
//! key_value_stores = ["default"]
//! ```
//!
//! Keys are at most 255 bytes and values 1 MiB, Spin's own limits; more is
//! an `other` error for the guest, never a trap.

// Results carry the WIT `error` type, which goes back to the guest as it is.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::sync::Arc;

use sqlx::PgPool;
use wasmtime::component::{Accessor, FutureReader, HasData, Resource, ResourceTable, StreamReader};

use crate::bindings::fermyon::spin::key_value as wit2;
use crate::bindings::spin::key_value::key_value as wit3;
use crate::host_call::traced;

const MAX_KEY_BYTES: usize = 255;
const MAX_VALUE_BYTES: usize = 1 << 20;
/// Stores one request may hold open at once.
const MAX_OPEN_STORES: usize = 16;

/// The table behind every store of a database, created at start-up.
const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS spin_key_value (
    store text NOT NULL,
    key text NOT NULL,
    value bytea NOT NULL,
    PRIMARY KEY (store, key)
)";

/// Creates the store table in a database if it is not there yet; several
/// hosts starting at once take turns.
pub async fn prepare_database(pool: &PgPool) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('spin_key_value'))").execute(&mut *tx).await?;
    sqlx::query(SCHEMA).execute(&mut *tx).await?;
    tx.commit().await
}

/// Why a store operation failed, in both interface versions' terms.
#[derive(Debug)]
enum KvError {
    NoSuchStore,
    AccessDenied,
    TooManyOpen,
    Other(String),
}

impl From<KvError> for wit2::Error {
    fn from(e: KvError) -> Self {
        match e {
            KvError::NoSuchStore => wit2::Error::NoSuchStore,
            KvError::AccessDenied => wit2::Error::AccessDenied,
            KvError::TooManyOpen => wit2::Error::StoreTableFull,
            KvError::Other(m) => wit2::Error::Other(m),
        }
    }
}

impl From<KvError> for wit3::Error {
    fn from(e: KvError) -> Self {
        match e {
            KvError::NoSuchStore => wit3::Error::NoSuchStore,
            KvError::AccessDenied => wit3::Error::AccessDenied,
            KvError::TooManyOpen => wit3::Error::StoreTableFull,
            KvError::Other(m) => wit3::Error::Other(m),
        }
    }
}

fn database_error(e: sqlx::Error) -> KvError {
    tracing::warn!(error = %e, "key-value store unavailable");
    KvError::Other("store unavailable".into())
}

/// The stores one component may open: label to the pool holding it, and
/// every label the host knows (to tell "no such store" from "not yours").
#[derive(Debug, Clone, Default)]
pub struct StoreGrants {
    granted: Arc<BTreeMap<String, PgPool>>,
    known: Arc<Vec<String>>,
}

impl StoreGrants {
    pub fn new(granted: BTreeMap<String, PgPool>, known: Vec<String>) -> Self {
        Self { granted: Arc::new(granted), known: Arc::new(known) }
    }
}

/// An open store: its label and where it lives.
#[derive(Clone)]
pub struct GuestStore {
    label: String,
    pool: PgPool,
}

/// One request's use of the stores: what it may open, and how many it has
/// open.
pub struct RequestStores {
    grants: StoreGrants,
    open: usize,
}

impl RequestStores {
    pub fn new(grants: StoreGrants) -> Self {
        Self { grants, open: 0 }
    }

    /// Whether a store is still open.
    pub fn holds_any(&self) -> bool {
        self.open > 0
    }
}

/// What the key-value interfaces need from a request's store.
pub struct KeyValueView<'a> {
    pub table: &'a mut ResourceTable,
    pub stores: &'a mut RequestStores,
}

pub struct HasKeyValue;

impl HasData for HasKeyValue {
    type Data<'a> = KeyValueView<'a>;
}

pub fn add_to_linker<T: Send + 'static>(
    linker: &mut wasmtime::component::Linker<T>,
    view: fn(&mut T) -> KeyValueView<'_>,
) -> wasmtime::Result<()> {
    wit2::add_to_linker::<T, HasKeyValue>(linker, view)?;
    wit3::add_to_linker::<T, HasKeyValue>(linker, view)
}

impl KeyValueView<'_> {
    fn open(&mut self, label: &str) -> wasmtime::Result<Result<Resource<GuestStore>, KvError>> {
        let Some(pool) = self.stores.grants.granted.get(label) else {
            let known = self.stores.grants.known.iter().any(|k| k == label);
            return Ok(Err(if known { KvError::AccessDenied } else { KvError::NoSuchStore }));
        };
        if self.stores.open >= MAX_OPEN_STORES {
            return Ok(Err(KvError::TooManyOpen));
        }
        let store = self.table.push(GuestStore { label: label.to_owned(), pool: pool.clone() })?;
        self.stores.open += 1;
        Ok(Ok(store))
    }

    fn store(&self, store: &Resource<GuestStore>) -> wasmtime::Result<GuestStore> {
        Ok(self.table.get(store)?.clone())
    }

    fn close(&mut self, store: Resource<GuestStore>) -> wasmtime::Result<()> {
        self.table.delete(store)?;
        self.stores.open = self.stores.open.saturating_sub(1);
        Ok(())
    }
}

impl wit2::Host for KeyValueView<'_> {}

impl wit2::HostStore for KeyValueView<'_> {
    async fn open(&mut self, label: String) -> wasmtime::Result<Result<Resource<GuestStore>, wit2::Error>> {
        Ok(KeyValueView::open(self, &label)?.map_err(Into::into))
    }

    async fn get(
        &mut self,
        store: Resource<GuestStore>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, wit2::Error>> {
        Ok(self.store(&store)?.get(&key).await.map_err(Into::into))
    }

    async fn set(
        &mut self,
        store: Resource<GuestStore>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), wit2::Error>> {
        Ok(self.store(&store)?.set(&key, &value).await.map_err(Into::into))
    }

    async fn delete(&mut self, store: Resource<GuestStore>, key: String) -> wasmtime::Result<Result<(), wit2::Error>> {
        Ok(self.store(&store)?.delete(&key).await.map_err(Into::into))
    }

    async fn exists(
        &mut self,
        store: Resource<GuestStore>,
        key: String,
    ) -> wasmtime::Result<Result<bool, wit2::Error>> {
        Ok(self.store(&store)?.exists(&key).await.map_err(Into::into))
    }

    async fn get_keys(&mut self, store: Resource<GuestStore>) -> wasmtime::Result<Result<Vec<String>, wit2::Error>> {
        Ok(self.store(&store)?.keys().await.map_err(Into::into))
    }

    async fn drop(&mut self, store: Resource<GuestStore>) -> wasmtime::Result<()> {
        self.close(store)
    }
}

impl wit3::Host for KeyValueView<'_> {}

impl wit3::HostStore for KeyValueView<'_> {
    async fn drop(&mut self, store: Resource<GuestStore>) -> wasmtime::Result<()> {
        self.close(store)
    }
}

/// The async functions of 3.0.0: the store is read out of the table, then
/// used with nothing of the guest's store held across the query.
impl<T: Send> wit3::HostStoreWithStore<T> for HasKeyValue {
    async fn open(
        accessor: &Accessor<T, Self>,
        label: String,
    ) -> wasmtime::Result<Result<Resource<GuestStore>, wit3::Error>> {
        Ok(accessor.with(|mut access| access.get().open(&label))?.map_err(Into::into))
    }

    async fn get(
        accessor: &Accessor<T, Self>,
        store: Resource<GuestStore>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, wit3::Error>> {
        let store = accessor.with(|mut access| access.get().store(&store))?;
        Ok(store.get(&key).await.map_err(Into::into))
    }

    async fn set(
        accessor: &Accessor<T, Self>,
        store: Resource<GuestStore>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), wit3::Error>> {
        let store = accessor.with(|mut access| access.get().store(&store))?;
        Ok(store.set(&key, &value).await.map_err(Into::into))
    }

    async fn delete(
        accessor: &Accessor<T, Self>,
        store: Resource<GuestStore>,
        key: String,
    ) -> wasmtime::Result<Result<(), wit3::Error>> {
        let store = accessor.with(|mut access| access.get().store(&store))?;
        Ok(store.delete(&key).await.map_err(Into::into))
    }

    async fn exists(
        accessor: &Accessor<T, Self>,
        store: Resource<GuestStore>,
        key: String,
    ) -> wasmtime::Result<Result<bool, wit3::Error>> {
        let store = accessor.with(|mut access| access.get().store(&store))?;
        Ok(store.exists(&key).await.map_err(Into::into))
    }

    async fn get_keys(
        accessor: &Accessor<T, Self>,
        store: Resource<GuestStore>,
    ) -> wasmtime::Result<(StreamReader<String>, FutureReader<Result<(), wit3::Error>>)> {
        let store = accessor.with(|mut access| access.get().store(&store))?;
        let (keys, outcome) = match store.keys().await {
            Ok(keys) => (keys, Ok(())),
            Err(e) => (Vec::new(), Err(wit3::Error::from(e))),
        };
        accessor.with(|mut access| {
            let keys = StreamReader::new(&mut access, keys)?;
            let outcome = FutureReader::new(&mut access, async move { Ok::<_, wasmtime::Error>(outcome) })?;
            Ok((keys, outcome))
        })
    }
}

fn check_key(key: &str) -> Result<(), KvError> {
    if key.len() > MAX_KEY_BYTES {
        return Err(KvError::Other(format!("keys are at most {MAX_KEY_BYTES} bytes")));
    }
    Ok(())
}

impl GuestStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        traced("key-value", "get", async {
            check_key(key)?;
            sqlx::query_scalar("SELECT value FROM spin_key_value WHERE store = $1 AND key = $2")
                .bind(&self.label)
                .bind(key)
                .fetch_optional(&self.pool)
                .await
                .map_err(database_error)
        })
        .await
    }

    async fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        traced("key-value", "set", async {
            check_key(key)?;
            if value.len() > MAX_VALUE_BYTES {
                return Err(KvError::Other(format!("values are at most {MAX_VALUE_BYTES} bytes")));
            }
            sqlx::query(
                "INSERT INTO spin_key_value (store, key, value) VALUES ($1, $2, $3) \
                 ON CONFLICT (store, key) DO UPDATE SET value = EXCLUDED.value",
            )
            .bind(&self.label)
            .bind(key)
            .bind(value)
            .execute(&self.pool)
            .await
            .map(drop)
            .map_err(database_error)
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<(), KvError> {
        traced("key-value", "delete", async {
            check_key(key)?;
            sqlx::query("DELETE FROM spin_key_value WHERE store = $1 AND key = $2")
                .bind(&self.label)
                .bind(key)
                .execute(&self.pool)
                .await
                .map(drop)
                .map_err(database_error)
        })
        .await
    }

    async fn exists(&self, key: &str) -> Result<bool, KvError> {
        traced("key-value", "exists", async {
            check_key(key)?;
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM spin_key_value WHERE store = $1 AND key = $2)")
                .bind(&self.label)
                .bind(key)
                .fetch_one(&self.pool)
                .await
                .map_err(database_error)
        })
        .await
    }

    async fn keys(&self) -> Result<Vec<String>, KvError> {
        let keys = sqlx::query_scalar("SELECT key FROM spin_key_value WHERE store = $1 ORDER BY key")
            .bind(&self.label)
            .fetch_all(&self.pool);
        traced("key-value", "get-keys", async { keys.await.map_err(database_error) }).await
    }
}
