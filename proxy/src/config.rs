//! The proxy's configuration file.
//!
//! ```toml
//! listen = "127.0.0.1:8080"
//!
//! [jwt]
//! secret_env = "SECRET_KEY"   # HS256 key, shared with the auth service
//! leeway_seconds = 0
//!
//! [upstream.runtime]          # a pool of hosts, balanced round-robin
//! addresses = ["127.0.0.1:8081"]
//!
//! [[route]]
//! prefix = "/auth"
//! upstream = "runtime"
//! auth = "public"
//!
//! [[route]]
//! prefix = "/items"
//! upstream = "runtime"
//! auth = "required"
//! ```
//!
//! The longest matching prefix wins. Unknown keys are errors.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("invalid config {path}")]
    Parse { path: PathBuf, source: Box<toml::de::Error> },
    #[error("route `{prefix}`: {problem}")]
    Route { prefix: String, problem: String },
    #[error("upstream `{name}`: {problem}")]
    Upstream { name: String, problem: String },
    #[error("jwt: environment variable {0} is not set (it holds the token signing key)")]
    MissingSecret(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyConfig {
    /// Address the proxy listens on.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// How bearer tokens are verified at the edge.
    #[serde(default)]
    pub jwt: JwtConfig,
    /// Named pools of servers a route can send to.
    pub upstream: BTreeMap<String, UpstreamConfig>,
    /// Path prefixes and where they go.
    pub route: Vec<RouteConfig>,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    /// Environment variable holding the HS256 signing key. The key never
    /// sits in the file.
    #[serde(default = "default_secret_env")]
    pub secret_env: String,
    /// Seconds of clock skew tolerated on `exp`.
    #[serde(default)]
    pub leeway_seconds: u64,
}

impl Default for JwtConfig {
    fn default() -> Self {
        Self { secret_env: default_secret_env(), leeway_seconds: 0 }
    }
}

fn default_secret_env() -> String {
    "SECRET_KEY".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// `host:port` of each server; requests are spread round-robin over
    /// those passing the health check.
    pub addresses: Vec<String>,
    /// Seconds between TCP health checks of each address.
    #[serde(default = "default_health_check_seconds")]
    pub health_check_seconds: u64,
}

fn default_health_check_seconds() -> u64 {
    2
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthPolicy {
    /// A valid bearer token is needed; without one the proxy answers 401
    /// and the upstream is never contacted.
    Required,
    /// No token needed; any identity headers a client sent are still removed.
    Public,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Path prefix, matched on whole segments: `/items` matches `/items`
    /// and `/items/x`, not `/itemsx`.
    pub prefix: String,
    /// Name of an `[upstream.*]` pool.
    pub upstream: String,
    pub auth: AuthPolicy,
}

impl ProxyConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
        Self::parse(&text).map_err(|e| match e {
            ConfigError::Parse { source, .. } => ConfigError::Parse { path: path.into(), source },
            other => other,
        })
    }

    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let config: ProxyConfig =
            toml::from_str(text).map_err(|e| ConfigError::Parse { path: PathBuf::new(), source: Box::new(e) })?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        for (name, upstream) in &self.upstream {
            if upstream.addresses.is_empty() {
                return Err(ConfigError::Upstream { name: name.clone(), problem: "no addresses".into() });
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for route in &self.route {
            let problem = |problem: &str| ConfigError::Route { prefix: route.prefix.clone(), problem: problem.into() };
            if !route.prefix.starts_with('/') || (route.prefix.len() > 1 && route.prefix.ends_with('/')) {
                return Err(problem("must start with `/` and not end with one"));
            }
            if !self.upstream.contains_key(&route.upstream) {
                return Err(problem(&format!("no upstream named `{}`", route.upstream)));
            }
            if !seen.insert(&route.prefix) {
                return Err(problem("listed twice"));
            }
        }
        Ok(())
    }

    /// The signing key, read from the environment.
    pub fn jwt_secret(&self, env: impl Fn(&str) -> Option<String>) -> Result<String, ConfigError> {
        env(&self.jwt.secret_env)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| ConfigError::MissingSecret(self.jwt.secret_env.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"
        [upstream.runtime]
        addresses = ["127.0.0.1:8081"]
        [[route]]
        prefix = "/items"
        upstream = "runtime"
        auth = "required"
    "#;

    #[test]
    fn parses_with_defaults() {
        let c = ProxyConfig::parse(CONFIG).unwrap();
        assert_eq!(c.listen.port(), 8080);
        assert_eq!(c.jwt.secret_env, "SECRET_KEY");
        assert_eq!(c.route[0].auth, AuthPolicy::Required);
    }

    #[test]
    fn rejects_unknown_keys_and_policies() {
        assert!(ProxyConfig::parse(&format!("{CONFIG}\nlisten_port = 1\n")).is_err());
        assert!(ProxyConfig::parse(&CONFIG.replace("\"required\"", "\"maybe\"")).is_err());
    }

    #[test]
    fn rejects_routes_to_unknown_upstreams() {
        let err = ProxyConfig::parse(&CONFIG.replace("upstream = \"runtime\"", "upstream = \"nope\"")).unwrap_err();
        assert!(err.to_string().contains("no upstream named `nope`"), "{err}");
    }

    #[test]
    fn secret_must_be_set_and_non_empty() {
        let c = ProxyConfig::parse(CONFIG).unwrap();
        assert!(c.jwt_secret(|_| None).is_err());
        assert!(c.jwt_secret(|_| Some(String::new())).is_err());
        assert_eq!(c.jwt_secret(|_| Some("k".into())).unwrap(), "k");
    }
}
