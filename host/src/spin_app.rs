//! A Spin application manifest (`spin.toml`, `spin_manifest_version = 2`)
//! run as it is, the way `spin up --from` does, turned into the host's own
//! [`Manifest`]. What Spin does not say comes from a runtime-config file:
//!
//! ```toml
//! [server]
//! listen = "127.0.0.1:3000"
//!
//! [limits]                # as in the host manifest
//! timeout_ms = 10000
//!
//! # The address a component passes to `Connection::open` is looked up
//! # here, never dialled as given (it may even hold a password).
//! [postgres."host=localhost user=postgres dbname=spin_dev"]
//! url_env = "DATABASE_URL"
//!
//! [key_value_store.default]   # Spin's own section, our own store type
//! type = "postgres"
//! url_env = "DATABASE_URL"
//!
//! [component.hello]           # what Spin has no key for
//! memory_bytes = 134217728
//! priority = "low"
//! ```
//!
//! From `spin.toml`: HTTP triggers (routes, with the application's base),
//! components and their sources, application variables (`default`,
//! `required`, `secret`, overridden by `SPIN_VARIABLE_<NAME>`) and the
//! component variables templated from them, `environment`,
//! `allowed_outbound_hosts` and `key_value_stores`. A component may open a
//! PostgreSQL address only if its `allowed_outbound_hosts` allows that
//! address's host, as on Spin. What the host cannot honour (other trigger
//! types, `files`, SQLite, AI models, remote sources, component
//! dependencies) is refused with a line naming the component and the key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::config::{
    ComponentConfig, DatabaseConfig, KeyValueStoreConfig, KeyValueStoreKind, Limits, Manifest, Priority, ServerConfig,
    VariableSource,
};
use crate::outbound_http::AllowedHosts;

#[derive(Debug, thiserror::Error)]
pub enum SpinAppError {
    #[error("cannot read {path}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("invalid {path}")]
    Parse { path: PathBuf, source: Box<toml::de::Error> },
    #[error("{path}: {problem}")]
    Invalid { path: PathBuf, problem: String },
    #[error(transparent)]
    Manifest(#[from] crate::config::ConfigError),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SpinManifest {
    spin_manifest_version: u32,
    application: Application,
    #[serde(default)]
    variables: BTreeMap<String, AppVariable>,
    #[serde(default)]
    trigger: BTreeMap<String, Vec<toml::Value>>,
    #[serde(default)]
    component: BTreeMap<String, SpinComponent>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // metadata, read for strictness only
struct Application {
    name: String,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    authors: Vec<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    targets: Vec<String>,
    #[serde(default)]
    trigger: BTreeMap<String, toml::Table>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // `secret` and `description` only shape how a value is shown
struct AppVariable {
    #[serde(default)]
    default: Option<String>,
    #[serde(default)]
    required: bool,
    #[serde(default)]
    secret: bool,
    #[serde(default)]
    description: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpTrigger {
    route: HttpRoute,
    component: toml::Value,
    #[serde(default)]
    executor: Option<toml::Table>,
    #[serde(default)]
    #[allow(dead_code)]
    id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum HttpRoute {
    Path(String),
    Private { private: bool },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // build-time keys, read for strictness only
struct SpinComponent {
    source: toml::Value,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    variables: BTreeMap<String, String>,
    #[serde(default)]
    environment: BTreeMap<String, String>,
    #[serde(default)]
    files: Vec<toml::Value>,
    #[serde(default)]
    exclude_files: Vec<String>,
    #[serde(default)]
    allowed_outbound_hosts: Vec<String>,
    #[serde(default)]
    allowed_http_hosts: Vec<String>,
    #[serde(default)]
    key_value_stores: Vec<String>,
    #[serde(default)]
    sqlite_databases: Vec<String>,
    #[serde(default)]
    ai_models: Vec<String>,
    #[serde(default)]
    build: Option<toml::Table>,
    #[serde(default)]
    tool: Option<toml::Table>,
    #[serde(default)]
    dependencies_inherit_configuration: bool,
    #[serde(default)]
    dependencies: BTreeMap<String, toml::Value>,
}

/// The runtime-config file: what `spin.toml` leaves to the platform.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfig {
    #[serde(default)]
    server: ServerConfig,
    #[serde(default)]
    limits: Limits,
    /// PostgreSQL addresses as components write them, to host databases.
    #[serde(default)]
    postgres: BTreeMap<String, DatabaseConfig>,
    #[serde(default)]
    key_value_store: BTreeMap<String, RuntimeStore>,
    #[serde(default)]
    component: BTreeMap<String, ComponentLimits>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuntimeStore {
    #[serde(rename = "type")]
    kind: KeyValueStoreKind,
    /// Environment variable holding the database URL.
    url_env: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ComponentLimits {
    memory_bytes: Option<usize>,
    max_concurrent_requests: Option<usize>,
    timeout_ms: Option<u64>,
    db_connections_per_request: Option<u32>,
    max_response_bytes: Option<u64>,
    warm_instances: Option<usize>,
    priority: Option<Priority>,
}

fn read<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, SpinAppError> {
    let text = std::fs::read_to_string(path).map_err(|source| SpinAppError::Read { path: path.into(), source })?;
    toml::from_str(&text).map_err(|e| SpinAppError::Parse { path: path.into(), source: Box::new(e) })
}

/// Reads a Spin application and its runtime config into a host manifest.
pub fn load(
    spin_toml: &Path,
    runtime_config: Option<&Path>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Manifest, SpinAppError> {
    let app: SpinManifest = read(spin_toml)?;
    let runtime: RuntimeConfig = match runtime_config {
        Some(path) => read(path)?,
        None => RuntimeConfig::default(),
    };
    let base = spin_toml.parent().unwrap_or(Path::new("."));
    to_manifest(app, runtime, base, env).map_err(|problem| SpinAppError::Invalid { path: spin_toml.into(), problem })
}

fn to_manifest(
    app: SpinManifest,
    runtime: RuntimeConfig,
    base: &Path,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Manifest, String> {
    if app.spin_manifest_version != 2 {
        return Err(format!("spin_manifest_version {} is not supported; write version 2", app.spin_manifest_version));
    }
    let variables = resolve_app_variables(&app.variables, &env)?;
    let http_base = match app.application.trigger.get("http").and_then(|t| t.get("base")) {
        Some(toml::Value::String(b)) => b.trim_end_matches('/').to_owned(),
        Some(_) => return Err("application.trigger.http.base must be a string".into()),
        None => String::new(),
    };
    if let Some(kind) = app.trigger.keys().find(|k| *k != "http") {
        return Err(format!("`{kind}` triggers are not supported: only HTTP triggers run here"));
    }

    let mut manifest = Manifest {
        server: runtime.server,
        limits: runtime.limits,
        database: BTreeMap::new(),
        key_value_store: BTreeMap::new(),
        component: BTreeMap::new(),
    };
    for (address, db) in runtime.postgres {
        manifest.database.insert(address, db);
    }
    for (label, store) in runtime.key_value_store {
        let KeyValueStoreKind::Postgres = store.kind;
        // A store on a database already declared shares its pool.
        let existing =
            manifest.database.iter().find(|(_, db)| db.url_env == store.url_env).map(|(name, _)| name.clone());
        let database = existing.unwrap_or_else(|| {
            let name = format!("key-value store {label}");
            manifest.database.insert(name.clone(), database_from_env(&store.url_env));
            name
        });
        manifest.key_value_store.insert(label, KeyValueStoreConfig { kind: store.kind, database });
    }
    let addresses: Vec<String> =
        manifest.database.keys().filter(|n| !n.starts_with("key-value store ")).cloned().collect();

    let triggers = app.trigger.get("http").map(Vec::as_slice).unwrap_or_default();
    let mut routed: BTreeMap<String, usize> = BTreeMap::new();
    for trigger in triggers {
        let trigger: HttpTrigger = trigger.clone().try_into().map_err(|e| format!("an HTTP trigger: {e}"))?;
        let toml::Value::String(id) = &trigger.component else {
            return Err("inline components in a trigger are not supported: name it under [component.<id>]".into());
        };
        if let Some(executor) = &trigger.executor
            && executor.get("type").and_then(|t| t.as_str()) != Some("spin")
        {
            return Err(format!("component `{id}`: only the `spin` executor is supported"));
        }
        let route = match &trigger.route {
            HttpRoute::Path(route) => {
                format!("{http_base}{}", if route.starts_with('/') { route.clone() } else { format!("/{route}") })
            }
            HttpRoute::Private { private: true } => continue,
            HttpRoute::Private { private: false } => {
                return Err(format!("component `{id}`: a route is a path or `{{ private = true }}`"));
            }
        };
        let spin =
            app.component.get(id).ok_or_else(|| format!("a trigger names component `{id}`, which is not defined"))?;
        let count = routed.entry(id.clone()).or_default();
        *count += 1;
        let name = if *count == 1 { id.clone() } else { format!("{id}#{count}") };
        let limits = runtime.component.get(id);
        let component = to_component(id, spin, route, base, &variables, &addresses, limits)?;
        manifest.component.insert(name, component);
    }
    if manifest.component.is_empty() {
        return Err("no component has an HTTP route".into());
    }
    manifest.validate().map_err(|e| e.to_string())?;
    Ok(manifest)
}

fn database_from_env(url_env: &str) -> DatabaseConfig {
    // The same defaults as a `[database]` entry that names only its URL.
    let text = format!("url_env = {url_env:?}");
    toml::from_str(&text).expect("a database entry with only `url_env` is valid")
}

/// The application variables' values: `SPIN_VARIABLE_<NAME>`, else the
/// default; a required one without either stops start-up.
fn resolve_app_variables(
    variables: &BTreeMap<String, AppVariable>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<BTreeMap<String, String>, String> {
    let mut values = BTreeMap::new();
    for (name, variable) in variables {
        let valid = name.starts_with(|c: char| c.is_ascii_lowercase())
            && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !valid {
            return Err(format!("variable `{name}`: names are lower-case letters, digits and `_`"));
        }
        if variable.required && variable.default.is_some() {
            return Err(format!("variable `{name}` cannot be both required and have a default"));
        }
        let from_env = format!("SPIN_VARIABLE_{}", name.to_ascii_uppercase());
        match env(&from_env).or_else(|| variable.default.clone()) {
            Some(value) => {
                values.insert(name.clone(), value);
            }
            None => return Err(format!("variable `{name}` is required: set {from_env}")),
        }
    }
    Ok(values)
}

/// Expands `{{ name }}` references to application variables.
fn render(template: &str, variables: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or_else(|| format!("unclosed `{{{{` in `{template}`"))?;
        let name = after[..end].trim();
        let value =
            variables.get(name).ok_or_else(|| format!("`{template}` names variable `{name}`, which is not defined"))?;
        out.push_str(value);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

fn to_component(
    id: &str,
    spin: &SpinComponent,
    route: String,
    base: &Path,
    variables: &BTreeMap<String, String>,
    addresses: &[String],
    limits: Option<&ComponentLimits>,
) -> Result<ComponentConfig, String> {
    let problem = |what: &str| format!("component `{id}`: {what}");
    let refused = [
        (!spin.files.is_empty(), "`files` (mounted static files) are not supported"),
        (!spin.sqlite_databases.is_empty(), "`sqlite_databases`: SQLite is not provided"),
        (!spin.ai_models.is_empty(), "`ai_models`: LLM inferencing is not provided"),
        (!spin.dependencies.is_empty(), "`dependencies` (component composition) are not supported"),
        (!spin.allowed_http_hosts.is_empty(), "`allowed_http_hosts` is Spin 1 syntax: use `allowed_outbound_hosts`"),
    ];
    if let Some((_, why)) = refused.iter().find(|(yes, _)| *yes) {
        return Err(problem(why));
    }
    let toml::Value::String(source) = &spin.source else {
        return Err(problem("a remote `source` ({ url, digest }) is not fetched here: give a path"));
    };
    let allowed_outbound_hosts = spin
        .allowed_outbound_hosts
        .iter()
        .map(|host| render(host, variables))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| problem(&e))?;
    let allowed = AllowedHosts::parse(&allowed_outbound_hosts).map_err(|e| problem(&e))?;
    let databases = addresses.iter().filter(|a| postgres_allowed(&allowed, a)).cloned().collect();
    let component_variables = spin
        .variables
        .iter()
        .map(|(name, template)| Ok((name.clone(), VariableSource::Literal(render(template, variables)?))))
        .collect::<Result<_, String>>()
        .map_err(|e| problem(&e))?;
    Ok(ComponentConfig {
        route,
        file: base.join(source),
        databases,
        migrations: BTreeMap::new(),
        variables: component_variables,
        memory_bytes: limits.and_then(|l| l.memory_bytes),
        max_concurrent_requests: limits.and_then(|l| l.max_concurrent_requests),
        timeout_ms: limits.and_then(|l| l.timeout_ms),
        db_connections_per_request: limits.and_then(|l| l.db_connections_per_request),
        max_response_bytes: limits.and_then(|l| l.max_response_bytes),
        warm_instances: limits.and_then(|l| l.warm_instances),
        priority: limits.and_then(|l| l.priority).unwrap_or_default(),
        environment: spin.environment.clone(),
        key_value_stores: spin.key_value_stores.clone(),
        allowed_outbound_hosts,
    })
}

/// Whether a component's allow-list lets it reach a PostgreSQL address, a
/// URL (`postgres://user@host:5432/db`) or key=value pairs (`host=h port=5432`).
fn postgres_allowed(allowed: &AllowedHosts, address: &str) -> bool {
    let (host, port) = match address.split_once("://") {
        Some((_, rest)) => {
            let authority = rest.split(['/', '?']).next().unwrap_or_default();
            let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
            match host_port.rsplit_once(':') {
                Some((host, port)) if !host.ends_with(']') || host_port.starts_with('[') => {
                    (host.trim_matches(['[', ']']).to_owned(), port.parse().unwrap_or(5432))
                }
                _ => (host_port.trim_matches(['[', ']']).to_owned(), 5432),
            }
        }
        None => {
            let pairs: BTreeMap<&str, &str> = address.split_whitespace().filter_map(|kv| kv.split_once('=')).collect();
            let host = pairs.get("host").copied().unwrap_or("localhost").to_owned();
            (host, pairs.get("port").and_then(|p| p.parse().ok()).unwrap_or(5432))
        }
    };
    let ip: Vec<std::net::IpAddr> = host.parse().into_iter().collect();
    allowed.allows_connection("postgres", &host.to_ascii_lowercase(), port, &ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPIN_TOML: &str = r#"
        spin_manifest_version = 2

        [application]
        name = "hello"
        version = "0.1.0"
        authors = ["someone"]

        [variables]
        greeting = { default = "hello" }
        api_key = { required = true, secret = true }
        db_host = { default = "localhost" }

        [[trigger.http]]
        route = "/hello/:planet"
        component = "hello"

        [[trigger.http]]
        route = "/..."
        component = "hello"

        [[trigger.http]]
        route = { private = true }
        component = "internal"

        [component.hello]
        source = "target/hello.wasm"
        allowed_outbound_hosts = ["postgres://{{ db_host }}:5432", "https://api.example.com"]
        key_value_stores = ["default"]
        environment = { DB_URL = "host=localhost user=postgres dbname=spin_dev" }
        [component.hello.variables]
        message = "{{ greeting }}, world"
        key = "{{api_key}}"
        [component.hello.build]
        command = "cargo build --target wasm32-wasip2 --release"

        [component.internal]
        source = "internal.wasm"
    "#;

    const RUNTIME: &str = r#"
        [postgres."host=localhost user=postgres dbname=spin_dev"]
        url_env = "DATABASE_URL"
        [postgres."postgres://elsewhere:5432/db"]
        url_env = "OTHER_URL"
        [key_value_store.default]
        type = "postgres"
        url_env = "DATABASE_URL"
        [component.hello]
        memory_bytes = 1048576
        priority = "low"
    "#;

    fn manifest(spin: &str, runtime: &str, env: &[(&str, &str)]) -> Result<Manifest, String> {
        let app: SpinManifest = toml::from_str(spin).map_err(|e| e.to_string())?;
        let runtime: RuntimeConfig = toml::from_str(runtime).map_err(|e| e.to_string())?;
        let env: BTreeMap<String, String> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        to_manifest(app, runtime, Path::new("/apps/hello"), |k| env.get(k).cloned())
    }

    #[test]
    fn a_spin_app_becomes_components_routes_and_grants() {
        let m = manifest(SPIN_TOML, RUNTIME, &[("SPIN_VARIABLE_API_KEY", "k3y")]).unwrap();
        assert_eq!(
            m.component.keys().collect::<Vec<_>>(),
            ["hello", "hello#2"],
            "one entry per route; private ones are not served"
        );
        let hello = &m.component["hello"];
        assert_eq!(hello.route, "/hello/:planet");
        assert_eq!(m.component["hello#2"].route, "/...");
        assert_eq!(hello.file, Path::new("/apps/hello/target/hello.wasm"));
        assert_eq!(
            hello.databases,
            ["host=localhost user=postgres dbname=spin_dev"],
            "only the address its allow-list reaches"
        );
        assert_eq!(hello.memory_bytes, Some(1 << 20));
        assert_eq!(hello.priority, Priority::Low);
        assert_eq!(m.component["hello#2"].priority, Priority::Low, "each route of the component");
        assert_eq!(hello.environment["DB_URL"], "host=localhost user=postgres dbname=spin_dev");
        assert!(matches!(&hello.variables["message"], VariableSource::Literal(v) if v == "hello, world"));
        assert!(matches!(&hello.variables["key"], VariableSource::Literal(v) if v == "k3y"));
        assert_eq!(hello.allowed_outbound_hosts[0], "postgres://localhost:5432");
        assert_eq!(
            m.key_value_store["default"].database, "host=localhost user=postgres dbname=spin_dev",
            "the store shares the pool"
        );
    }

    #[test]
    fn variables_come_from_the_environment_first_and_required_ones_must_be_set() {
        let err = manifest(SPIN_TOML, RUNTIME, &[]).unwrap_err();
        assert!(err.contains("SPIN_VARIABLE_API_KEY"), "{err}");
        let m =
            manifest(SPIN_TOML, RUNTIME, &[("SPIN_VARIABLE_API_KEY", "k"), ("SPIN_VARIABLE_GREETING", "hi")]).unwrap();
        assert!(matches!(&m.component["hello"].variables["message"], VariableSource::Literal(v) if v == "hi, world"));
    }

    #[test]
    fn what_the_host_cannot_honour_is_refused_by_name() {
        let env = [("SPIN_VARIABLE_API_KEY", "k")];
        let cases = [
            ("[component.hello]", "[component.hello]\nfiles = [\"static/**\"]", "`files`"),
            ("[component.hello]", "[component.hello]\nsqlite_databases = [\"default\"]", "SQLite"),
            (
                "source = \"target/hello.wasm\"",
                "source = { url = \"https://x/y.wasm\", digest = \"sha256:0\" }",
                "remote `source`",
            ),
            ("spin_manifest_version = 2", "spin_manifest_version = 1", "version 2"),
            (
                "[[trigger.http]]\n        route = \"/...\"",
                "[[trigger.redis]]\n        channel = \"x\"",
                "`redis` triggers",
            ),
            ("message = \"{{ greeting }}, world\"", "message = \"{{ nope }}\"", "variable `nope`"),
        ];
        for (from, to, expected) in cases {
            let spin = SPIN_TOML.replacen(from, to, 1);
            assert_ne!(spin, SPIN_TOML, "{from}");
            let err = manifest(&spin, RUNTIME, &env).unwrap_err();
            assert!(err.contains(expected), "{expected}: {err}");
        }
        let err =
            manifest(SPIN_TOML, "[key_value_store.default]\ntype = \"redis\"\nurl_env = \"X\"", &env).unwrap_err();
        assert!(err.contains("redis"), "{err}");
        let err = manifest(SPIN_TOML, "", &env).unwrap_err();
        assert!(err.contains("key-value store `default`"), "a store the runtime config does not define: {err}");
    }

    #[test]
    fn postgres_addresses_are_matched_against_the_allow_list() {
        let allowed =
            AllowedHosts::parse(&["postgres://db.internal:5432".into(), "postgres://localhost:*".into()]).unwrap();
        assert!(postgres_allowed(&allowed, "postgres://user:secret@db.internal/app"));
        assert!(postgres_allowed(&allowed, "postgresql://db.internal:5432/app?sslmode=require"));
        assert!(!postgres_allowed(&allowed, "postgres://db.internal:6543/app"));
        assert!(postgres_allowed(&allowed, "host=localhost port=6000 user=postgres"));
        assert!(postgres_allowed(&allowed, "user=postgres dbname=x"), "libpq defaults: localhost:5432");
        assert!(!postgres_allowed(&allowed, "host=elsewhere user=postgres"));
    }
}
