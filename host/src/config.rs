//! The host's manifest: which components it serves under which route
//! prefixes, which databases each may open, and the variables each may read.
//!
//! ```toml
//! [server]
//! listen = "127.0.0.1:8081"
//! identity_key_env = "GATEHOUSE_IDENTITY_KEY"  # the key the proxy signs identity with
//! compile_cache = "../target/compile-cache"   # optional: compiled components kept between starts
//! admin_listen = "127.0.0.1:9081"  # /healthz, /readyz, /metrics
//! drain_seconds = 30                # after SIGTERM, time for requests in flight
//! instance_allocation = "pooling"   # or "on-demand"
//! reload_poll_seconds = 2           # reload on a changed file (0: on SIGHUP only)
//!
//! [limits]
//! memory_bytes = 67108864   # linear memory a single instance may grow to
//! timeout_ms = 10000        # wall-clock budget of one request in a guest
//! max_concurrent_requests = 256
//! db_connections_per_request = 4
//! max_response_bytes = 16777216  # a component's response body, at most
//! warm_instances = 16       # idle WASIp3 instances kept for the next requests
//!
//! [database.app]
//! url_env = "DATABASE_URL"  # the URL stays in the host; guests say "app"
//! max_connections = 16
//! acquire_timeout_ms = 5000  # then 503
//! ssl_mode = "verify-full"   # optional, over the URL's `sslmode`
//! ssl_root_cert = "/etc/gatehouse/db-ca.pem"
//!
//! [key_value_store.default] # Spin's key-value stores, kept in a database
//! database = "app"
//!
//! [component.auth]
//! route = "/auth/..."
//! file = "../target/wasm32-wasip2/release/auth.wasm"
//! databases = ["app"]
//! memory_bytes = 201326592 # optional: this component's own memory cap
//! priority = "low"          # optional: bcrypt at login yields to the others
//! key_value_stores = ["default"]
//! allowed_outbound_hosts = []  # outbound HTTP, Spin's syntax; none by default
//! [component.auth.migrations]   # applied by `gatehouse-setup`, not the host
//! app = "../plugins/migrations"
//! [component.auth.variables]
//! database = "app"
//! jwt_private_key = { env = "JWT_PRIVATE_KEY" }
//! access_token_expire_minutes = "11520"
//! ```
//!
//! Relative paths are taken from the manifest's folder. Unknown keys are
//! errors, so a misspelt setting never passes silently.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use crate::executor::Priority;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read manifest {path}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("invalid manifest {path}")]
    Parse { path: PathBuf, source: Box<toml::de::Error> },
    #[error("component `{component}`: {problem}")]
    Component { component: String, problem: String },
    #[error("database `{database}`: environment variable {env} is not set")]
    MissingDatabaseUrl { database: String, env: String },
    #[error("key-value store `{label}`: {problem}")]
    KeyValueStore { label: String, problem: String },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub limits: Limits,
    /// Databases the host connects to, by the name guests open them with.
    #[serde(default)]
    pub database: BTreeMap<String, DatabaseConfig>,
    /// Key-value stores by the label components open them with.
    #[serde(default)]
    pub key_value_store: BTreeMap<String, KeyValueStoreConfig>,
    /// Components by name.
    #[serde(default)]
    pub component: BTreeMap<String, ComponentConfig>,
}

/// A key-value store (Spin's `key_value_stores`), kept in a table of one
/// of the host's databases.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyValueStoreConfig {
    /// Where the store lives; `postgres` is the only kind.
    #[serde(rename = "type", default)]
    pub kind: KeyValueStoreKind,
    /// The database (a name from `[database]`) holding it.
    pub database: String,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyValueStoreKind {
    #[default]
    Postgres,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address the host listens on; the proxy is its only intended client.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Environment variable holding the key the proxy signs identity with
    /// (32 bytes or more). Unset, no request carries identity to a guest.
    #[serde(default = "default_identity_key_env")]
    pub identity_key_env: String,
    /// Address of the admin listener (`/healthz`, `/readyz`, `/metrics`),
    /// apart from guest traffic; loopback unless set otherwise.
    #[serde(default = "default_admin_listen")]
    pub admin_listen: SocketAddr,
    /// After SIGTERM, how long requests in flight may take to finish
    /// before the host exits anyway.
    #[serde(default = "default_drain_seconds")]
    pub drain_seconds: u64,
    /// Folder where compiled components are kept between starts, keyed by
    /// their bytes and the engine's settings; unset, every start compiles.
    #[serde(default)]
    pub compile_cache: Option<PathBuf>,
    /// How instances get their memory: `pooling` (the default) keeps slots
    /// made ahead of time and starts each memory as a copy-on-write image;
    /// `on-demand` maps memory for each instance.
    #[serde(default)]
    pub instance_allocation: InstanceAllocation,
    /// How often (seconds) the manifest and component files are checked
    /// for changes, which are then loaded and swapped in; 0 leaves it to
    /// SIGHUP alone.
    #[serde(default = "default_reload_poll_seconds")]
    pub reload_poll_seconds: u64,
}

fn default_reload_poll_seconds() -> u64 {
    2
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InstanceAllocation {
    #[default]
    Pooling,
    OnDemand,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            identity_key_env: default_identity_key_env(),
            admin_listen: default_admin_listen(),
            drain_seconds: default_drain_seconds(),
            compile_cache: None,
            instance_allocation: InstanceAllocation::default(),
            reload_poll_seconds: default_reload_poll_seconds(),
        }
    }
}

fn default_drain_seconds() -> u64 {
    30
}

fn default_admin_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9081))
}

fn default_identity_key_env() -> String {
    "GATEHOUSE_IDENTITY_KEY".into()
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8081))
}

/// What one guest may consume: the host stays up whatever a guest does.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Largest linear memory (bytes) an instance may grow to; a guest
    /// allocating past it fails its request, not the host.
    #[serde(default = "default_memory_bytes")]
    pub memory_bytes: usize,
    /// Wall-clock budget (milliseconds) for a request inside a guest; a guest
    /// still running after it is interrupted and the client gets 504.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Requests in guests at once over all components (a component may
    /// have a lower limit of its own); past it, 503 with `Retry-After`.
    #[serde(default = "default_max_concurrent_requests")]
    pub max_concurrent_requests: usize,
    /// Largest request body (bytes) accepted; larger ones get 413.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: u64,
    /// Database connections one request may hold at once, so a single
    /// request cannot take a whole pool.
    #[serde(default = "default_db_connections_per_request")]
    pub db_connections_per_request: u32,
    /// Largest response body (bytes) a component may send: a larger
    /// declared length gets 502, a longer stream is cut there.
    #[serde(default = "default_max_response_bytes")]
    pub max_response_bytes: u64,
    /// Idle instances of a WASIp3 component kept to serve the next
    /// requests instead of instantiating anew; 0 gives every request a
    /// fresh instance (as WASIp2 components always get).
    #[serde(default = "default_warm_instances")]
    pub warm_instances: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_bytes: default_memory_bytes(),
            timeout_ms: default_timeout_ms(),
            max_concurrent_requests: default_max_concurrent_requests(),
            max_body_bytes: default_max_body_bytes(),
            db_connections_per_request: default_db_connections_per_request(),
            max_response_bytes: default_max_response_bytes(),
            warm_instances: default_warm_instances(),
        }
    }
}

fn default_memory_bytes() -> usize {
    64 << 20
}
fn default_timeout_ms() -> u64 {
    10_000
}
fn default_max_concurrent_requests() -> usize {
    256
}
fn default_max_body_bytes() -> u64 {
    1 << 20
}
fn default_db_connections_per_request() -> u32 {
    4
}
fn default_max_response_bytes() -> u64 {
    16 << 20
}
fn default_warm_instances() -> usize {
    16
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// Environment variable holding the connection URL. The URL, and any
    /// password in it, never reaches a guest.
    #[serde(default = "default_url_env")]
    pub url_env: String,
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
    /// Connections kept open even when idle.
    #[serde(default)]
    pub min_connections: u32,
    /// How long `connection.open` waits for a free pooled connection
    /// before the guest's request fails with 503.
    #[serde(default = "default_acquire_timeout_ms")]
    pub acquire_timeout_ms: u64,
    /// An idle connection is closed after this long.
    #[serde(default = "default_idle_timeout_seconds")]
    pub idle_timeout_seconds: u64,
    /// Every connection is replaced after this long, so a database
    /// failover or a rotated password is picked up.
    #[serde(default = "default_max_lifetime_seconds")]
    pub max_lifetime_seconds: u64,
    /// TLS to the server, as libpq's `sslmode`; unset, the URL's
    /// `sslmode` (or `prefer`).
    #[serde(default)]
    pub ssl_mode: Option<SslMode>,
    /// The CA certificate(s) (PEM) the server's certificate must chain to,
    /// for `verify-ca` and `verify-full` (a managed database's bundle).
    #[serde(default)]
    pub ssl_root_cert: Option<PathBuf>,
}

/// libpq's `sslmode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl From<SslMode> for sqlx::postgres::PgSslMode {
    fn from(mode: SslMode) -> Self {
        match mode {
            SslMode::Disable => Self::Disable,
            SslMode::Allow => Self::Allow,
            SslMode::Prefer => Self::Prefer,
            SslMode::Require => Self::Require,
            SslMode::VerifyCa => Self::VerifyCa,
            SslMode::VerifyFull => Self::VerifyFull,
        }
    }
}

fn default_url_env() -> String {
    "DATABASE_URL".into()
}
fn default_max_connections() -> u32 {
    16
}
fn default_acquire_timeout_ms() -> u64 {
    5_000
}
fn default_idle_timeout_seconds() -> u64 {
    600
}
fn default_max_lifetime_seconds() -> u64 {
    1800
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComponentConfig {
    /// The component's route in Spin's syntax: `/auth/...` for everything
    /// under `/auth` (the rest reaches the component as `spin-path-info`),
    /// `/hello/:planet` with a parameter, `/exact` for one path.
    pub route: String,
    /// The component file (`.wasm`), exporting `wasi:http/incoming-handler`.
    pub file: PathBuf,
    /// Databases (names from `[database]`) the component may open.
    #[serde(default)]
    pub databases: Vec<String>,
    /// The component's schema migrations: a folder of SQL files for each
    /// database (of `databases`) it needs tables in. `gatehouse-setup`
    /// applies them; the host does not.
    #[serde(default)]
    pub migrations: BTreeMap<String, PathBuf>,
    /// Variables the component may read with `fermyon:spin/variables`.
    #[serde(default)]
    pub variables: BTreeMap<String, VariableSource>,
    /// This component's own `[limits] memory_bytes`, for one that needs
    /// more (or should get less) than the others.
    #[serde(default)]
    pub memory_bytes: Option<usize>,
    /// This component's own `[limits] timeout_ms`.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// This component's own `[limits] db_connections_per_request`.
    #[serde(default)]
    pub db_connections_per_request: Option<u32>,
    /// This component's own `[limits] max_concurrent_requests`: past it, a
    /// request gets 503 with `Retry-After` instead of waiting.
    #[serde(default)]
    pub max_concurrent_requests: Option<usize>,
    /// This component's own `[limits] max_response_bytes`.
    #[serde(default)]
    pub max_response_bytes: Option<u64>,
    /// This component's own `[limits] warm_instances`.
    #[serde(default)]
    pub warm_instances: Option<usize>,
    /// `"low"` runs its guests on threads the kernel serves last, with
    /// database pools of their own (see `executor.rs`): for CPU-heavy work
    /// such as password hashing, which must not delay the other components
    /// when the machine is busy.
    #[serde(default)]
    pub priority: Priority,
    /// Environment variables the component sees (WASI `environ`), as Spin's
    /// `environment`. Nothing of the host's own environment is passed.
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    /// Key-value stores (labels from `[key_value_store]`) the component may
    /// open, as Spin's `key_value_stores`.
    #[serde(default)]
    pub key_value_stores: Vec<String>,
    /// Where the component may send HTTP requests, in Spin's syntax
    /// (`https://api.example.com`, `http://*.internal:8080`, `*://10.0.0.0/8:*`).
    /// Empty, the default, denies all; the host's own port is never allowed.
    #[serde(default)]
    pub allowed_outbound_hosts: Vec<String>,
}

/// A variable's value: written in the manifest, or read from the host's
/// environment at start-up (for secrets), with an optional fallback.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum VariableSource {
    Literal(String),
    Env {
        env: String,
        #[serde(default)]
        default: Option<String>,
    },
}

impl Manifest {
    /// Reads and checks a manifest, resolving relative paths against its
    /// folder.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, base).map_err(|e| match e {
            ConfigError::Parse { source, .. } => ConfigError::Parse { path: path.into(), source },
            other => other,
        })
    }

    pub fn parse(text: &str, base: &Path) -> Result<Self, ConfigError> {
        let mut manifest: Manifest =
            toml::from_str(text).map_err(|e| ConfigError::Parse { path: PathBuf::new(), source: Box::new(e) })?;
        for db in manifest.database.values_mut() {
            if let Some(ca) = &mut db.ssl_root_cert {
                *ca = base.join(&*ca);
            }
        }
        for component in manifest.component.values_mut() {
            component.file = base.join(&component.file);
            for dir in component.migrations.values_mut() {
                *dir = base.join(&*dir);
            }
        }
        if let Some(dir) = &mut manifest.server.compile_cache {
            *dir = base.join(&*dir);
        }
        manifest.validate()?;
        Ok(manifest)
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let mut routes = BTreeMap::new();
        for (name, component) in &self.component {
            let problem = |problem: String| ConfigError::Component { component: name.clone(), problem };
            let route = &component.route;
            crate::routes::RoutePattern::parse(route).map_err(&problem)?;
            crate::outbound_http::AllowedHosts::parse(&component.allowed_outbound_hosts).map_err(&problem)?;
            if let Some(other) = routes.insert(route.clone(), name.clone()) {
                return Err(problem(format!("route `{route}` is already taken by `{other}`")));
            }
            for db in &component.databases {
                if !self.database.contains_key(db) {
                    return Err(problem(format!("database `{db}` is not declared under [database]")));
                }
            }
            for db in component.migrations.keys() {
                if !component.databases.contains(db) {
                    return Err(problem(format!("migrations for database `{db}`, which is not in its `databases`")));
                }
            }
            for label in &component.key_value_stores {
                if !self.key_value_store.contains_key(label) {
                    return Err(problem(format!("key-value store `{label}` is not declared under [key_value_store]")));
                }
            }
        }
        for (label, store) in &self.key_value_store {
            if !self.database.contains_key(&store.database) {
                return Err(ConfigError::KeyValueStore {
                    label: label.clone(),
                    problem: format!("database `{}` is not declared under [database]", store.database),
                });
            }
        }
        Ok(())
    }

    /// The URL of each database, read from the environment.
    pub fn database_urls(&self, env: impl Fn(&str) -> Option<String>) -> Result<BTreeMap<String, String>, ConfigError> {
        self.database
            .iter()
            .map(|(name, db)| {
                env(&db.url_env)
                    .map(|url| (name.clone(), url))
                    .ok_or_else(|| ConfigError::MissingDatabaseUrl { database: name.clone(), env: db.url_env.clone() })
            })
            .collect()
    }
}

impl ComponentConfig {
    /// Resolves every variable to its value now, so a missing secret stops
    /// start-up instead of failing a request later.
    pub fn resolve_variables(
        &self,
        name: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<BTreeMap<String, String>, ConfigError> {
        self.variables
            .iter()
            .map(|(key, source)| {
                let value = match source {
                    VariableSource::Literal(value) => Some(value.clone()),
                    VariableSource::Env { env: var, default } => env(var).or_else(|| default.clone()),
                };
                value.map(|v| (key.clone(), v)).ok_or_else(|| ConfigError::Component {
                    component: name.into(),
                    problem: format!("variable `{key}` needs an environment variable that is not set"),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = r#"
        [database.app]
        ssl_mode = "verify-full"
        ssl_root_cert = "db-ca.pem"
        [component.items]
        route = "/items/..."
        file = "items.wasm"
        databases = ["app"]
        [component.items.migrations]
        app = "migrations"
        [component.items.variables]
        database = "app"
        secret = { env = "ITEMS_SECRET" }
        fallback = { env = "UNSET_FOR_TEST", default = "d" }
    "#;

    #[test]
    fn relative_paths_follow_the_manifest() {
        let m = Manifest::parse(MANIFEST, Path::new("/etc/gatehouse")).unwrap();
        assert_eq!(m.component["items"].file, Path::new("/etc/gatehouse/items.wasm"));
        assert_eq!(m.component["items"].migrations["app"], Path::new("/etc/gatehouse/migrations"));
        assert_eq!(m.database["app"].ssl_root_cert.as_deref(), Some(Path::new("/etc/gatehouse/db-ca.pem")));
        assert_eq!(m.database["app"].ssl_mode, Some(SslMode::VerifyFull));
        assert_eq!(m.server.listen.port(), 8081);
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let text = MANIFEST.replace("route = \"/items/...\"", "route = \"/items/...\"\nrotue = \"/x\"");
        let err = Manifest::parse(&text, Path::new(".")).unwrap_err();
        let cause = std::error::Error::source(&err).map(ToString::to_string).unwrap_or_default();
        assert!(cause.contains("rotue"), "{cause}");
    }

    #[test]
    fn undeclared_database_is_rejected() {
        let text = MANIFEST.replace("databases = [\"app\"]", "databases = [\"other\"]");
        let err = Manifest::parse(&text, Path::new(".")).unwrap_err().to_string();
        assert!(err.contains("database `other`"), "{err}");
    }

    #[test]
    fn migrations_only_for_databases_the_component_opens() {
        let text = MANIFEST
            .replace("[component.items.migrations]\n        app =", "[component.items.migrations]\n        other =");
        let err = Manifest::parse(&text, Path::new(".")).unwrap_err().to_string();
        assert!(err.contains("migrations for database `other`"), "{err}");
        let text = MANIFEST.replace("ssl_mode = \"verify-full\"", "ssl_mode = \"verify_full\"");
        assert!(Manifest::parse(&text, Path::new(".")).is_err(), "libpq's spelling only");
    }

    #[test]
    fn duplicate_and_malformed_routes_are_rejected() {
        let dup = format!("{MANIFEST}\n[component.again]\nroute = \"/items/...\"\nfile = \"x.wasm\"\n");
        assert!(Manifest::parse(&dup, Path::new(".")).unwrap_err().to_string().contains("already taken"));
        let bad = MANIFEST.replace("route = \"/items/...\"", "route = \"items/\"");
        assert!(Manifest::parse(&bad, Path::new(".")).is_err());
    }

    #[test]
    fn variables_resolve_from_env_then_default() {
        let m = Manifest::parse(MANIFEST, Path::new(".")).unwrap();
        let items = &m.component["items"];
        let env = |k: &str| (k == "ITEMS_SECRET").then(|| "s3cret".to_string());
        let vars = items.resolve_variables("items", env).unwrap();
        assert_eq!(vars["secret"], "s3cret");
        assert_eq!(vars["fallback"], "d");
        assert_eq!(vars["database"], "app");
        let err = items.resolve_variables("items", |_| None).unwrap_err().to_string();
        assert!(err.contains("variable `secret`"), "{err}");
    }
}
