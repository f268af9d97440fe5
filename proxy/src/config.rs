//! The proxy's configuration file.
//!
//! ```toml
//! listen = "127.0.0.1:8080"
//! trusted_proxies = ["10.0.0.0/8"]   # only these may set X-Forwarded-For
//! identity_key_env = "GATEHOUSE_IDENTITY_KEY"  # the key that signs identity for the host
//!
//! [jwt]
//! algorithm = "EdDSA"              # or "HS256"
//! jwks_env = "JWT_PUBLIC_KEYS"     # EdDSA: a JWKS document of public keys
//! jwks_url = "http://host:8081/auth/api/v1/.well-known/jwks.json"  # and/or fetched
//! secret_env = "SECRET_KEY"        # HS256: the key shared with the auth service
//! issuer = "gatehouse"
//! audience = "gatehouse"
//! leeway_seconds = 0
//! verified_token_cache = 10000     # verified tokens remembered until they expire
//!
//! [limits]                    # all optional; these are the defaults
//! max_headers = 100           # more is a 431
//! max_header_bytes = 16384    # a larger request head is a 431
//! max_body_bytes = 1048576    # a larger body is a 413 (a route may set its own)
//! max_token_bytes = 8192
//! max_connections = 10000     # more are closed unanswered
//! max_connections_per_ip = 256
//! header_timeout_ms = 10000   # a slower request head is disconnected
//! idle_timeout_ms = 60000     # a kept-alive connection's wait for its next request
//! upstream_connect_timeout_ms = 2000
//! upstream_read_timeout_ms = 30000   # a silent upstream is a 504
//! upstream_write_timeout_ms = 30000
//!
//! [rate_limit]                # token buckets, used by name from routes
//! login_account = { per_second = 0.1, burst = 10, key = "username" }  # or "ip", "user"
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
//!
//! [[route]]
//! prefix = "/auth/api/v1/login/access-token"
//! upstream = "runtime"
//! auth = "public"
//! rate_limits = ["login_account"]   # over it: 429 with Retry-After
//! max_body_bytes = 4096
//!
//! [[route]]                   # the template's single-origin layout
//! prefix = "/api/v1/items"
//! rewrite = "/items/api/v1/items"
//! upstream = "runtime"
//! auth = "required"
//! ```
//!
//! The longest matching prefix wins. Unknown keys are errors.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::identity::IdentitySigner;
use crate::ratelimit::{Network, RateRule};
use crate::token::{TokenRules, TokenVerifier};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("invalid config {path}")]
    Parse { path: PathBuf, source: Box<toml::de::Error> },
    #[error("route `{prefix}`: {problem}")]
    Route { prefix: String, problem: String },
    #[error("jwt: jwks_url `{0}` must be an http:// address (inside the cluster) and needs algorithm EdDSA")]
    JwksUrl(String),
    #[error("rate limit `{0}`: per_second must be above 0 and burst at least 1")]
    RateLimit(String),
    #[error("upstream `{name}`: {problem}")]
    Upstream { name: String, problem: String },
    #[error("jwt: environment variable {0} is not set (it holds the token verification key)")]
    MissingKey(String),
    #[error("jwt: the key set in {env} is unusable")]
    KeySet { env: String, source: crate::token::KeySetError },
    #[error("environment variable {0} is not set (it holds the key that signs identity for the host)")]
    MissingIdentityKey(String),
    #[error("the identity key in {0} is shorter than 32 bytes")]
    ShortIdentityKey(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyConfig {
    /// Address the proxy listens on.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// The admin listener (`/healthz`, `/readyz`, `/metrics`), apart from
    /// client traffic; loopback unless set otherwise.
    #[serde(default = "default_admin_listen")]
    pub admin_listen: SocketAddr,
    /// After SIGTERM, how long requests in flight may take to finish
    /// before the proxy exits anyway; below Kubernetes' 30 s grace.
    #[serde(default = "default_drain_seconds")]
    pub drain_seconds: u64,
    /// How often (seconds) this file is checked for changes, which are then
    /// loaded; 0 leaves it to SIGHUP alone.
    #[serde(default = "default_reload_poll_seconds")]
    pub reload_poll_seconds: u64,
    /// Where a new proxy started with `--upgrade` waits for this one's
    /// listening sockets, handed over on SIGQUIT.
    #[serde(default = "default_upgrade_socket")]
    pub upgrade_socket: PathBuf,
    /// HTTP/2 without TLS (prior knowledge) on `listen`, beside HTTP/1.1;
    /// off by default.
    #[serde(default)]
    pub h2c: bool,
    /// TLS termination here (HTTP/2 and HTTP/1.1), for deployments with no
    /// load balancer in front; none by default.
    #[serde(default)]
    pub tls: Option<crate::tls::TlsConfig>,
    /// How bearer tokens are verified at the edge.
    #[serde(default)]
    pub jwt: JwtConfig,
    /// What one request may send, and how long the proxy waits.
    #[serde(default)]
    pub limits: EdgeLimits,
    /// Response compression (gzip, brotli, zstd) by type and size.
    #[serde(default)]
    pub compression: crate::compression::CompressionConfig,
    /// Cross-origin policies by name, which routes name with `cors`.
    #[serde(default)]
    pub cors: BTreeMap<String, crate::cors::CorsPolicy>,
    /// Addresses of the proxies in front (the load balancer): only from
    /// them is `X-Forwarded-For` believed when telling the client's address.
    #[serde(default)]
    pub trusted_proxies: Vec<Network>,
    /// Named rate limits, which routes list by name.
    #[serde(default)]
    pub rate_limit: BTreeMap<String, RateRule>,
    /// Environment variable holding the key shared with the host, with
    /// which each request's identity is signed (32 bytes or more). The host
    /// believes no identity without it.
    #[serde(default = "default_identity_key_env")]
    pub identity_key_env: String,
    /// Named pools of servers a route can send to.
    pub upstream: BTreeMap<String, UpstreamConfig>,
    /// Named folders of static files a route can serve (the frontend).
    #[serde(default)]
    pub files: BTreeMap<String, crate::files::FilesConfig>,
    /// Path prefixes and where they go.
    pub route: Vec<RouteConfig>,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

fn default_admin_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9091))
}

fn default_drain_seconds() -> u64 {
    20
}

fn default_reload_poll_seconds() -> u64 {
    2
}

fn default_upgrade_socket() -> PathBuf {
    std::env::temp_dir().join("gatehouse-proxy-upgrade.sock")
}

fn default_identity_key_env() -> String {
    "GATEHOUSE_IDENTITY_KEY".into()
}

/// Limits on requests and on the wait for upstreams. The header limits are
/// kept no larger than what the host accepts (100 headers).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeLimits {
    /// Most header fields in a request; more is a 431.
    #[serde(default = "default_max_headers")]
    pub max_headers: usize,
    /// Most bytes in a request head (request line and headers); more is a 431.
    #[serde(default = "default_max_header_bytes")]
    pub max_header_bytes: usize,
    /// Largest request body, unless a route sets its own; more is a 413,
    /// chunked bodies included, before anything reaches a component.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: u64,
    /// Largest bearer token accepted; a longer one is invalid.
    #[serde(default = "default_max_token_bytes")]
    pub max_token_bytes: usize,
    /// Connections open at once; more are closed unanswered.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Connections open at once from one client address.
    #[serde(default = "default_max_connections_per_ip")]
    pub max_connections_per_ip: usize,
    /// Milliseconds a client has to send a whole request head, from
    /// connecting or from the end of its previous response (plus the idle
    /// time); a slower client is disconnected.
    #[serde(default = "default_header_timeout_ms")]
    pub header_timeout_ms: u64,
    /// Milliseconds a kept-alive connection may wait for its next request.
    #[serde(default = "default_idle_timeout_ms")]
    pub idle_timeout_ms: u64,
    /// Milliseconds to connect to an upstream server.
    #[serde(default = "default_connect_timeout_ms")]
    pub upstream_connect_timeout_ms: u64,
    /// Milliseconds an upstream may stay silent while answering (a 504 then).
    #[serde(default = "default_upstream_io_timeout_ms")]
    pub upstream_read_timeout_ms: u64,
    /// Milliseconds a write to an upstream may take.
    #[serde(default = "default_upstream_io_timeout_ms")]
    pub upstream_write_timeout_ms: u64,
}

impl Default for EdgeLimits {
    fn default() -> Self {
        Self {
            max_headers: default_max_headers(),
            max_header_bytes: default_max_header_bytes(),
            max_body_bytes: default_max_body_bytes(),
            max_token_bytes: default_max_token_bytes(),
            max_connections: default_max_connections(),
            max_connections_per_ip: default_max_connections_per_ip(),
            header_timeout_ms: default_header_timeout_ms(),
            idle_timeout_ms: default_idle_timeout_ms(),
            upstream_connect_timeout_ms: default_connect_timeout_ms(),
            upstream_read_timeout_ms: default_upstream_io_timeout_ms(),
            upstream_write_timeout_ms: default_upstream_io_timeout_ms(),
        }
    }
}

fn default_max_headers() -> usize {
    100
}
fn default_max_header_bytes() -> usize {
    16 * 1024
}
fn default_max_body_bytes() -> u64 {
    1 << 20
}
fn default_max_token_bytes() -> usize {
    8 * 1024
}
fn default_max_connections() -> usize {
    10_000
}
fn default_max_connections_per_ip() -> usize {
    256
}
fn default_header_timeout_ms() -> u64 {
    10_000
}
fn default_idle_timeout_ms() -> u64 {
    60_000
}
fn default_connect_timeout_ms() -> u64 {
    2_000
}
fn default_upstream_io_timeout_ms() -> u64 {
    30_000
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum JwtAlgorithm {
    /// Ed25519 signatures, checked with public keys: the proxy holds
    /// nothing that can sign.
    EdDSA,
    /// HMAC-SHA256 with a secret shared with the auth service.
    HS256,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    /// The one algorithm tokens must use; a token naming another is refused.
    #[serde(default = "default_algorithm")]
    pub algorithm: JwtAlgorithm,
    /// EdDSA: environment variable holding the public keys as a JWKS
    /// document (`{"keys": [{"kty": "OKP", "crv": "Ed25519", "kid", "x"}]}`).
    /// A retired key stays listed until tokens signed with it have expired.
    #[serde(default = "default_jwks_env")]
    pub jwks_env: String,
    /// EdDSA: the auth service's JWKS (`http://.../auth/api/v1/.well-known/jwks.json`),
    /// fetched at start, every `jwks_refresh_seconds`, and when a token names
    /// an unknown `kid` (at most every `jwks_refetch_min_seconds`). With it,
    /// `jwks_env` may be left unset.
    #[serde(default)]
    pub jwks_url: Option<String>,
    #[serde(default = "default_jwks_refresh_seconds")]
    pub jwks_refresh_seconds: u64,
    #[serde(default = "default_jwks_refetch_min_seconds")]
    pub jwks_refetch_min_seconds: u64,
    /// HS256: environment variable holding the shared key. Keys never sit
    /// in the file.
    #[serde(default = "default_secret_env")]
    pub secret_env: String,
    /// The `iss` every token must carry.
    #[serde(default = "default_issuer")]
    pub issuer: String,
    /// The `aud` every token must carry.
    #[serde(default = "default_audience")]
    pub audience: String,
    /// Tokens remembered once verified, until they expire, so a client's
    /// next request skips the signature check (0: no cache). A key
    /// withdrawn from the fetched key set empties it.
    #[serde(default = "default_verified_token_cache")]
    pub verified_token_cache: usize,
    /// Seconds of clock skew tolerated on `exp` and `nbf`.
    #[serde(default)]
    pub leeway_seconds: u64,
}

impl Default for JwtConfig {
    fn default() -> Self {
        Self {
            algorithm: default_algorithm(),
            jwks_env: default_jwks_env(),
            jwks_url: None,
            jwks_refresh_seconds: default_jwks_refresh_seconds(),
            jwks_refetch_min_seconds: default_jwks_refetch_min_seconds(),
            secret_env: default_secret_env(),
            issuer: default_issuer(),
            audience: default_audience(),
            leeway_seconds: 0,
            verified_token_cache: default_verified_token_cache(),
        }
    }
}

fn default_verified_token_cache() -> usize {
    10_000
}

fn default_algorithm() -> JwtAlgorithm {
    JwtAlgorithm::EdDSA
}
fn default_jwks_env() -> String {
    "JWT_PUBLIC_KEYS".into()
}
fn default_jwks_refresh_seconds() -> u64 {
    300
}
fn default_jwks_refetch_min_seconds() -> u64 {
    30
}
fn default_secret_env() -> String {
    "SECRET_KEY".into()
}
fn default_issuer() -> String {
    "gatehouse".into()
}
fn default_audience() -> String {
    "gatehouse".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// `host:port` of each server, or a name every address of which is a
    /// server (a headless Kubernetes Service); requests are spread over
    /// those passing the health check (see `balance`).
    pub addresses: Vec<String>,
    /// How often (seconds) names are resolved again; 0 resolves them once.
    #[serde(default = "default_resolve_seconds")]
    pub resolve_seconds: u64,
    /// How a server is chosen: `round_robin` (default) or
    /// `least_connections` (fewest requests in flight from this proxy).
    #[serde(default)]
    pub balance: crate::balance::Balance,
    /// Seconds between health checks of each address.
    #[serde(default = "default_health_check_seconds")]
    pub health_check_seconds: u64,
    /// An HTTP health check: `GET` this path must answer 200 (the host's
    /// `/readyz`). Unset, a TCP connect is the check.
    #[serde(default)]
    pub health_check_path: Option<String>,
    /// The port the HTTP health check goes to, if not the address's own
    /// (the host's admin port).
    #[serde(default)]
    pub health_check_port: Option<u16>,
    /// Times one request may be tried again on another server: when no
    /// connection could be made (nothing was sent), or for an idempotent
    /// method when the server failed before answering.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// A server that failed a request is passed over for this long (or
    /// until no other is left), without waiting for its health check.
    #[serde(default = "default_eject_seconds")]
    pub eject_seconds: u64,
}

fn default_eject_seconds() -> u64 {
    5
}

fn default_resolve_seconds() -> u64 {
    10
}

fn default_retries() -> u32 {
    2
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
    /// What replaces the matched prefix in the path sent upstream:
    /// `prefix = "/api/v1/items"` with `rewrite = "/items/api/v1/items"`
    /// sends `/api/v1/items/x` on as `/items/api/v1/items/x`. The policy is
    /// the one of this route, decided on the path as the client sent it.
    #[serde(default)]
    pub rewrite: Option<String>,
    /// Name of an `[upstream.*]` pool the route sends to...
    #[serde(default)]
    pub upstream: Option<String>,
    /// ... or of a `[files.*]` folder it serves (one of the two).
    #[serde(default)]
    pub files: Option<String>,
    pub auth: AuthPolicy,
    /// This route's largest request body, instead of `[limits]`'s.
    #[serde(default)]
    pub max_body_bytes: Option<u64>,
    /// Whether `Upgrade` (WebSocket) requests are passed on; otherwise the
    /// `Upgrade` header is removed and the request served as a plain one.
    #[serde(default)]
    pub upgrade: bool,
    /// Names of `[rate_limit]` entries a request on this route counts against.
    #[serde(default)]
    pub rate_limits: Vec<String>,
    /// Name of a `[cors]` policy: preflights answered at the edge, and the
    /// `Access-Control-*` headers for allowed origins. None by default.
    #[serde(default)]
    pub cors: Option<String>,
}

impl EdgeLimits {
    pub fn connections(&self) -> crate::connections::ConnectionLimits {
        crate::connections::ConnectionLimits {
            max_connections: self.max_connections,
            max_connections_per_ip: self.max_connections_per_ip,
            header_timeout: std::time::Duration::from_millis(self.header_timeout_ms),
            idle_timeout: std::time::Duration::from_millis(self.idle_timeout_ms),
            head: self.head(),
        }
    }

    /// What one request head may hold.
    pub fn head(&self) -> crate::framing::HeadLimits {
        crate::framing::HeadLimits { max_headers: self.max_headers, max_head_bytes: self.max_header_bytes }
    }
}

impl ProxyConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
        let mut config = Self::parse(&text).map_err(|e| match e {
            ConfigError::Parse { source, .. } => ConfigError::Parse { path: path.into(), source },
            other => other,
        })?;
        // Folders are named relative to this file.
        let folder = path.parent().unwrap_or(Path::new("."));
        for files in config.files.values_mut() {
            files.root = folder.join(&files.root);
        }
        if let Some(tls) = config.tls.as_mut() {
            tls.certificate = folder.join(&tls.certificate);
            tls.private_key = folder.join(&tls.private_key);
        }
        Ok(config)
    }

    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let config: ProxyConfig =
            toml::from_str(text).map_err(|e| ConfigError::Parse { path: PathBuf::new(), source: Box::new(e) })?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if let Some(url) = &self.jwt.jwks_url
            && (!url.starts_with("http://") || self.jwt.algorithm != JwtAlgorithm::EdDSA)
        {
            return Err(ConfigError::JwksUrl(url.clone()));
        }
        for (name, rule) in &self.rate_limit {
            if !(rule.per_second > 0.0 && rule.burst >= 1.0) {
                return Err(ConfigError::RateLimit(name.clone()));
            }
        }
        for (name, upstream) in &self.upstream {
            if upstream.addresses.is_empty() {
                return Err(ConfigError::Upstream { name: name.clone(), problem: "no addresses".into() });
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for route in &self.route {
            let problem = |problem: &str| ConfigError::Route { prefix: route.prefix.clone(), problem: problem.into() };
            let well_formed = |p: &str| p.starts_with('/') && (p.len() == 1 || !p.ends_with('/'));
            if !well_formed(&route.prefix) {
                return Err(problem("must start with `/` and not end with one"));
            }
            if route.rewrite.as_deref().is_some_and(|r| !well_formed(r)) {
                return Err(problem("`rewrite` must start with `/` and not end with one"));
            }
            match (&route.upstream, &route.files) {
                (Some(upstream), None) if !self.upstream.contains_key(upstream) => {
                    return Err(problem(&format!("no upstream named `{upstream}`")));
                }
                (None, Some(files)) if !self.files.contains_key(files) => {
                    return Err(problem(&format!("no files named `{files}`")));
                }
                (Some(_), None) | (None, Some(_)) => {}
                _ => return Err(problem("needs either `upstream` or `files`")),
            }
            if route.files.is_some() && route.rewrite.is_some() {
                return Err(problem("`rewrite` applies to upstreams only"));
            }
            if !seen.insert(&route.prefix) {
                return Err(problem("listed twice"));
            }
            if let Some(name) = route.rate_limits.iter().find(|n| !self.rate_limit.contains_key(*n)) {
                return Err(problem(&format!("no rate limit named `{name}`")));
            }
            if let Some(name) = route.cors.as_ref().filter(|n| !self.cors.contains_key(*n)) {
                return Err(problem(&format!("no CORS policy named `{name}`")));
            }
        }
        for (name, policy) in &self.cors {
            policy.validate().map_err(|p| ConfigError::Route { prefix: format!("[cors.{name}]"), problem: p })?;
        }
        Ok(())
    }

    /// The token verifier, with its keys read from the environment.
    /// The signer of the identity the host is sent, from its key.
    pub fn identity_signer(&self, env: impl Fn(&str) -> Option<String>) -> Result<IdentitySigner, ConfigError> {
        let key = env(&self.identity_key_env)
            .ok_or_else(|| ConfigError::MissingIdentityKey(self.identity_key_env.clone()))?;
        IdentitySigner::new(key.as_bytes()).ok_or_else(|| ConfigError::ShortIdentityKey(self.identity_key_env.clone()))
    }

    pub fn token_verifier(&self, env: impl Fn(&str) -> Option<String>) -> Result<TokenVerifier, ConfigError> {
        let jwt = &self.jwt;
        let rules = TokenRules {
            issuer: jwt.issuer.clone(),
            audience: jwt.audience.clone(),
            leeway_seconds: jwt.leeway_seconds,
        };
        let var = match jwt.algorithm {
            JwtAlgorithm::EdDSA => &jwt.jwks_env,
            JwtAlgorithm::HS256 => &jwt.secret_env,
        };
        let value = env(var).filter(|s| !s.is_empty());
        let verifier = match (jwt.algorithm, value) {
            (JwtAlgorithm::EdDSA, Some(jwks)) => TokenVerifier::eddsa(&jwks, &rules)
                .map_err(|source| ConfigError::KeySet { env: var.clone(), source })?,
            (JwtAlgorithm::EdDSA, None) if jwt.jwks_url.is_some() => TokenVerifier::eddsa_fetched(&rules),
            (JwtAlgorithm::HS256, Some(secret)) => TokenVerifier::hs256(secret.as_bytes(), &rules),
            (_, None) => return Err(ConfigError::MissingKey(var.clone())),
        };
        Ok(verifier.with_max_token_bytes(self.limits.max_token_bytes).with_cache(jwt.verified_token_cache))
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
        assert_eq!(c.jwt.algorithm, JwtAlgorithm::EdDSA);
        assert_eq!(c.jwt.jwks_env, "JWT_PUBLIC_KEYS");
        assert_eq!(c.route[0].auth, AuthPolicy::Required);
        assert_eq!(c.route[0].rewrite, None);
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
    fn keys_must_be_set_non_empty_and_usable() {
        let c = ProxyConfig::parse(CONFIG).unwrap();
        assert!(matches!(c.token_verifier(|_| None), Err(ConfigError::MissingKey(_))));
        assert!(matches!(c.token_verifier(|_| Some(String::new())), Err(ConfigError::MissingKey(_))));
        assert!(matches!(c.token_verifier(|_| Some("not json".into())), Err(ConfigError::KeySet { .. })));
        let hs = ProxyConfig::parse(&format!("[jwt]\nalgorithm = \"HS256\"\n{CONFIG}")).unwrap();
        assert!(hs.token_verifier(|var| (var == "SECRET_KEY").then(|| "k".into())).is_ok());
    }

    #[test]
    fn rate_limits_are_named_and_sane() {
        let with = |limits: &str, route_line: &str| {
            let routed = CONFIG.replace("auth = \"required\"", &format!("auth = \"required\"\n{route_line}"));
            ProxyConfig::parse(&format!("{limits}\n{routed}"))
        };
        let ok = with(
            "[rate_limit]\nlogin = { per_second = 0.5, burst = 5, key = \"username\" }",
            "rate_limits = [\"login\"]",
        );
        assert_eq!(ok.unwrap().route[0].rate_limits, ["login"]);
        assert!(with("", "rate_limits = [\"nope\"]").is_err());
        assert!(with("[rate_limit]\nx = { per_second = 0, burst = 5, key = \"ip\" }", "").is_err());
        assert!(with("[rate_limit]\nx = { per_second = 1, burst = 5, key = \"cookie\" }", "").is_err());
        assert!(ProxyConfig::parse(&format!("trusted_proxies = [\"10.0.0.0/8\"]\n{CONFIG}")).is_ok());
        assert!(ProxyConfig::parse(&format!("trusted_proxies = [\"10.0.0.0/99\"]\n{CONFIG}")).is_err());
    }

    #[test]
    fn rewrites_must_be_well_formed() {
        let with = |rewrite: &str| {
            CONFIG.replace("auth = \"required\"", &format!("auth = \"required\"\nrewrite = \"{rewrite}\""))
        };
        assert_eq!(ProxyConfig::parse(&with("/items/api")).unwrap().route[0].rewrite.as_deref(), Some("/items/api"));
        assert!(ProxyConfig::parse(&with("items")).is_err());
        assert!(ProxyConfig::parse(&with("/items/")).is_err());
    }
}
