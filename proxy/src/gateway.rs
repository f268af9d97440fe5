//! The Pingora side: one small `impl ProxyHttp`. Checks and authentication
//! happen in `request_filter`, the choice of upstream in `upstream_peer`,
//! response hygiene in `response_filter`, the access log in `logging`; the
//! decisions themselves live in `path`, `framing`, `routing` and `token`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::lb::selection::RoundRobin;
use pingora::lb::{Backend, LoadBalancer};
use pingora::modules::http::compression::ResponseCompression;
use pingora::prelude::{HttpPeer, ProxyHttp, Session};
use pingora::protocols::http::ServerSession;
use pingora::protocols::http::compression::Algorithm;
use pingora::proxy::FailToProxy;
use pingora::upstreams::peer::Peer as _;
use pingora::{Error, ErrorSource, ErrorType, Result};

use crate::balance::{Balance, InFlight};
use crate::compression::CompressionConfig;
use crate::config::{AuthPolicy, EdgeLimits};
use crate::connections::ConnectionRegistry;
use crate::cors::{CorsPolicy, Preflight};
use crate::files::{Site, not_modified};
use crate::framing::{check_fields, check_head};
use crate::identity::{Claim, IdentitySigner, REQUEST_ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use crate::jwks::JwksFetcher;
use crate::metrics::{NO_ROUTE, ProxyMetrics};
use crate::path::{normalise_path, query_is_valid};
use crate::ratelimit::{Network, RateKey, RateLimiter, client_ip};
use crate::routing::RouteTable;
use crate::token::{AuthError, Identity, TokenVerifier};

/// Headers that carry identity from the proxy to the services. A client's
/// copies are always removed: only the proxy may set them.
pub const IDENTITY_HEADER_PREFIX: &str = "x-gatehouse-";
pub const USER_ID_HEADER: &str = "x-gatehouse-user-id";

pub struct Gateway {
    /// What a configuration reload may change, swapped whole; each request
    /// takes the one current when it arrives and keeps it to its end.
    pub policy: PolicyCell,
    pub upstreams: BTreeMap<String, Arc<LoadBalancer<RoundRobin>>>,
    pub verifier: TokenVerifier,
    /// Signs what the host is told about each request.
    pub identity: IdentitySigner,
    pub connections: Arc<ConnectionRegistry>,
    /// Fetches the auth service's keys when a token names an unknown one.
    pub jwks: Option<Arc<JwksFetcher>>,
    pub metrics: Arc<ProxyMetrics>,
    pub retry_budget: RetryBudget,
    /// Requests in flight, by server (for `least_connections`).
    pub in_flight: InFlight,
    /// Servers passed over, until when.
    pub ejected: std::sync::Mutex<std::collections::HashMap<std::net::SocketAddr, Instant>>,
}

/// The routes and everything decided per request from configuration,
/// compiled once per (re)load and shared by the requests that use it.
pub struct Policy {
    pub routes: RouteTable,
    pub limits: EdgeLimits,
    pub trusted_proxies: Vec<Network>,
    pub rate_limiters: BTreeMap<String, RateLimiter>,
    pub compression: CompressionConfig,
    pub cors: BTreeMap<String, CorsPolicy>,
    /// Tries again allowed per request, by upstream.
    pub retries: BTreeMap<String, u32>,
    /// How long a server that failed is passed over, by upstream.
    pub eject_for: BTreeMap<String, Duration>,
    /// Static file folders, by name.
    pub files: BTreeMap<String, Site>,
    /// How each upstream's server is chosen.
    pub balance: BTreeMap<String, Balance>,
}

impl Policy {
    pub fn new(config: &crate::config::ProxyConfig) -> Self {
        Self {
            routes: RouteTable::new(config.route.clone()),
            limits: config.limits.clone(),
            trusted_proxies: config.trusted_proxies.clone(),
            rate_limiters: config
                .rate_limit
                .iter()
                .map(|(name, rule)| (name.clone(), RateLimiter::new(rule.clone())))
                .collect(),
            compression: config.compression.clone(),
            cors: config.cors.clone(),
            retries: config.upstream.iter().map(|(name, u)| (name.clone(), u.retries)).collect(),
            eject_for: config
                .upstream
                .iter()
                .map(|(name, u)| (name.clone(), Duration::from_secs(u.eject_seconds)))
                .collect(),
            files: config.files.iter().map(|(name, f)| (name.clone(), Site::new(f.clone()))).collect(),
            balance: config.upstream.iter().map(|(name, u)| (name.clone(), u.balance)).collect(),
        }
    }
}

/// The current [`Policy`], shared by the gateway and whatever reloads it.
#[derive(Clone)]
pub struct PolicyCell(Arc<std::sync::RwLock<Arc<Policy>>>);

impl PolicyCell {
    pub fn new(policy: Policy) -> Self {
        Self(Arc::new(std::sync::RwLock::new(Arc::new(policy))))
    }

    pub fn current(&self) -> Arc<Policy> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Makes `policy` the one new requests take; those under way keep theirs.
    pub fn replace(&self, policy: Policy) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(policy);
    }
}

/// Retries over all requests are kept to a fifth of the requests (plus a
/// small reserve), so a failing upstream is not sent a storm of them.
pub struct RetryBudget(std::sync::Mutex<f64>);

impl Default for RetryBudget {
    fn default() -> Self {
        Self(std::sync::Mutex::new(RETRY_RESERVE))
    }
}

const RETRY_RESERVE: f64 = 10.0;
const RETRIES_PER_REQUEST: f64 = 0.2;

impl RetryBudget {
    fn deposit(&self) {
        let mut tokens = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *tokens = (*tokens + RETRIES_PER_REQUEST).min(RETRY_RESERVE + 100.0);
    }

    fn withdraw(&self) -> bool {
        let mut tokens = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// What `admit` decided for a request it let through.
enum Admitted {
    /// Pass it on.
    Proxy,
    /// A CORS preflight, answered here with these headers.
    Preflight(Vec<(&'static str, String)>),
    /// Served from the `[files]` folder of this name.
    Files(String),
}

/// Pingora's compression of the answer to `session`, set to `levels`
/// (gzip, brotli, zstd), or off with zeros.
fn set_compression(session: &mut Session, levels: [u32; 3]) {
    if let Some(c) = session.downstream_modules_ctx.get_mut::<ResponseCompression>() {
        for (algorithm, level) in [Algorithm::Gzip, Algorithm::Brotli, Algorithm::Zstd].into_iter().zip(levels) {
            c.adjust_algorithm_level(algorithm, level);
        }
    }
}

/// The request id header clients, the proxy and upstreams share.
pub const X_REQUEST_ID: &str = "x-request-id";

/// The client's request id if it is one we pass on (1 to 128 letters,
/// digits and `-_.:`), else a new one.
fn request_id(sent: Option<&[u8]>) -> String {
    let valid = |id: &&[u8]| {
        (1..=128).contains(&id.len()) && id.iter().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(b))
    };
    match sent.filter(valid) {
        Some(id) => String::from_utf8_lossy(id).into_owned(),
        None => uuid::Uuid::new_v4().to_string(),
    }
}

/// Per-request state, filled in by `request_filter`.
pub struct RequestCtx {
    /// The policy current when the request arrived.
    policy: Arc<Policy>,
    started: Instant,
    /// Kept from the client or made here; sent upstream and back.
    request_id: String,
    /// The prefix of the route taken, and the normalised path.
    route: Option<String>,
    path: Option<String>,
    /// The upstream server chosen.
    upstream_addr: Option<String>,
    /// The server this request is counted in flight to.
    in_flight_to: Option<std::net::SocketAddr>,
    /// The route's CORS headers for this request's origin.
    cors: Vec<(&'static str, String)>,
    /// Servers that failed this request, not chosen again for it.
    failed: Vec<std::net::SocketAddr>,
    retried: u32,
    upstream: Option<String>,
    /// The normalised path plus the query: what the upstream is sent.
    upstream_target: Option<String>,
    identity: Option<Identity>,
    /// The route's body limit, and how much body has passed so far.
    max_body_bytes: u64,
    body_bytes: u64,
    /// The client's address (see [`client_ip`]).
    client_ip: Option<std::net::IpAddr>,
    /// Limits keyed by the account a form names, checked once the body is
    /// read; the body read so far for that.
    username_limits: Vec<String>,
    form: Vec<u8>,
    /// Seconds to wait, when a limit refused the request.
    retry_after: Option<u64>,
    /// The client came over TLS: here, or to a trusted proxy in front, which
    /// said so with `X-Forwarded-Proto: https`.
    over_tls: bool,
    /// The connection is from a trusted proxy, whose `X-Forwarded-*` are believed.
    from_trusted_proxy: bool,
    /// The client's `Accept-Encoding`, before it is narrowed to the coding
    /// chosen for compressing here (static files may be stored in others).
    accept_encoding: Option<String>,
}

/// The most of a body read to find the account a login names.
const MAX_FORM_BYTES: usize = 4096;

/// A refusal by the proxy itself, answered as `{"detail": ...}`.
struct Refusal {
    status: u16,
    detail: String,
    retry_after: Option<u64>,
    /// A 401 for a token signed with a key the proxy does not hold.
    unknown_key: bool,
}

fn refuse(status: u16, detail: impl Into<String>) -> Refusal {
    Refusal { status, detail: detail.into(), retry_after: None, unknown_key: false }
}

fn too_many(wait: Duration) -> Refusal {
    let seconds = wait.as_secs_f64().ceil() as u64;
    Refusal { retry_after: Some(seconds), ..refuse(429, "Too many requests") }
}

impl Gateway {
    /// Answers from the static files of `site`: GET and HEAD only, with
    /// validators, a precompressed form the client accepts, and the site's
    /// content policy.
    async fn serve_file(&self, session: &mut Session, ctx: &mut RequestCtx, site: &str) -> Result<()> {
        use tokio::io::AsyncReadExt as _;
        let policy = ctx.policy.clone();
        let site = &policy.files[site];
        let method = session.req_header().method.clone();
        let mut headers: Vec<(&str, &str)> = vec![(X_REQUEST_ID, ctx.request_id.as_str())];
        headers.extend(ctx.over_tls.then_some(HSTS));
        if method != http::Method::GET && method != http::Method::HEAD {
            set_compression(session, [0; 3]);
            headers.push(("allow", "GET, HEAD"));
            return respond_json(session, 405, "Method Not Allowed", &headers).await;
        }
        let wants_html = session
            .req_header()
            .headers
            .get(http::header::ACCEPT)
            .is_some_and(|v| v.to_str().is_ok_and(|v| v.contains("text/html")));
        // The not-found page is for browsers; an API client gets the usual shape.
        let found = site.resolve(ctx.path.as_deref().unwrap_or("/")).filter(|f| f.status != 404 || wants_html);
        let Some((found, stored)) =
            found.and_then(|f| f.representation(ctx.accept_encoding.as_deref()).ok().map(|r| (f, r)))
        else {
            set_compression(session, [0; 3]);
            return respond_json(session, 404, "Not Found", &headers).await;
        };
        let if_none_match = session.req_header().headers.get(http::header::IF_NONE_MATCH).and_then(|v| v.to_str().ok());
        let status = if found.status == 200 && not_modified(if_none_match, &stored.etag) { 304 } else { found.status };
        let compress_here =
            stored.encoding.is_none() && policy.compression.worth_it(Some(found.content_type), Some(stored.len));
        if !compress_here || status == 304 {
            set_compression(session, [0; 3]);
        }
        let mut response = ResponseHeader::build(status, Some(16))?;
        response.insert_header(http::header::CONTENT_TYPE, found.content_type)?;
        response.insert_header(http::header::CACHE_CONTROL, found.cache_control.as_str())?;
        response.insert_header(http::header::ETAG, stored.etag.as_str())?;
        if stored.varies || compress_here {
            response.insert_header(http::header::VARY, "accept-encoding")?;
        }
        if let Some(encoding) = stored.encoding {
            response.insert_header(http::header::CONTENT_ENCODING, encoding)?;
        }
        if status != 304 {
            response.insert_header(http::header::CONTENT_LENGTH, stored.len.to_string())?;
        }
        response.insert_header(CSP, site.content_security_policy())?;
        for (name, value) in headers.into_iter().chain(ctx.cors.iter().map(|(n, v)| (*n, v.as_str()))) {
            response.append_header(name.to_owned(), value)?;
        }
        add_security_headers(&mut response)?;
        let body_follows = status != 304 && method != http::Method::HEAD && stored.len > 0;
        session.write_response_header(Box::new(response), !body_follows).await?;
        if !body_follows {
            return Ok(());
        }
        let read_error = |e| Error::because(ErrorType::InternalError, "reading a static file", e);
        let mut file = tokio::fs::File::open(&stored.file).await.map_err(read_error)?;
        let mut left = stored.len;
        while left > 0 {
            let mut chunk = bytes::BytesMut::with_capacity(left.min(64 * 1024) as usize);
            let read = file.read_buf(&mut chunk).await.map_err(read_error)? as u64;
            if read == 0 {
                return Err(Error::explain(ErrorType::InternalError, "a static file shrank while sent"));
            }
            let read = read.min(left);
            chunk.truncate(read as usize);
            left -= read;
            session.write_response_body(Some(chunk.freeze()), left == 0).await?;
        }
        Ok(())
    }

    /// Whether a request that failed on `peer` may be tried once more
    /// elsewhere: within its upstream's retries and the overall budget.
    fn may_retry(&self, peer: &HttpPeer, ctx: &mut RequestCtx) -> bool {
        let policy = ctx.policy.clone();
        if let Some(addr) = peer.address().as_inet() {
            ctx.failed.push(*addr);
            let eject_for = ctx.upstream.as_ref().and_then(|u| policy.eject_for.get(u)).copied().unwrap_or_default();
            self.ejected.lock().unwrap_or_else(|e| e.into_inner()).insert(*addr, Instant::now() + eject_for);
        }
        let allowed = ctx.upstream.as_ref().and_then(|u| policy.retries.get(u)).copied().unwrap_or(0);
        if ctx.retried >= allowed || !self.retry_budget.withdraw() {
            return false;
        }
        ctx.retried += 1;
        self.metrics.retried(ctx.upstream.as_deref().unwrap_or_default());
        true
    }

    /// Everything decided about a request before any upstream is chosen:
    /// its framing, its one normalised path, its route, its identity.
    fn admit(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<Admitted, Refusal> {
        let policy = ctx.policy.clone();
        match session.as_downstream() {
            // The head gate checked the head as it arrived; this checks what
            // the parser took, whatever path it came by.
            ServerSession::H1(h1) => check_head(&h1.get_headers_raw_bytes(), &policy.limits.head()),
            other => check_fields(&other.req_header().headers, &policy.limits.head()),
        }
        .map_err(|e| refuse(e.status, e.detail))?;
        let req = session.req_header();
        check_host(req)?;
        let path = normalise_path(req.uri.path()).map_err(|e| refuse(e.status(), e.to_string()))?;
        let query = req.uri.query().map(str::to_owned);
        if query.as_deref().is_some_and(|q| !query_is_valid(q)) {
            return Err(refuse(400, "Invalid query string"));
        }
        let route = policy.routes.find(&path).ok_or_else(|| refuse(404, "Not Found"))?;
        if let Some(policy) = route.cors.as_ref().and_then(|name| policy.cors.get(name)) {
            let header = |name: &str| req.headers.get(name).and_then(|v| v.to_str().ok());
            if let Some(origin) = header("origin") {
                // A preflight carries no token: it is answered before any check.
                if req.method == http::Method::OPTIONS
                    && let Some(method) = header("access-control-request-method")
                {
                    return match policy.preflight(origin, method, header("access-control-request-headers")) {
                        Preflight::Allowed(headers) => Ok(Admitted::Preflight(headers)),
                        Preflight::Refused(why) => Err(refuse(403, why)),
                    };
                }
                ctx.cors = policy.response_headers(origin);
            }
        }
        ctx.route = Some(route.prefix.clone());
        ctx.path = Some(path.clone());
        ctx.upstream = route.upstream.clone();
        let files = route.files.clone();
        ctx.max_body_bytes = route.max_body_bytes.unwrap_or(policy.limits.max_body_bytes);
        let upstream_path = route.upstream_path(&path);
        ctx.upstream_target = Some(match query {
            Some(q) => format!("{upstream_path}?{q}"),
            None => upstream_path,
        });
        let declared_body = req.headers.get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse().ok());
        if declared_body.is_some_and(|n: u64| n > ctx.max_body_bytes) {
            return Err(refuse(413, "Request body too large"));
        }
        let allow_upgrade = route.upgrade;
        let auth = route.auth;
        let rate_limits = route.rate_limits.clone();
        let req = session.req_header_mut();
        remove_hop_by_hop_and_identity(req, allow_upgrade);
        if auth == AuthPolicy::Required {
            let mut values = req.headers.get_all(http::header::AUTHORIZATION).iter();
            let authorization = match (values.next(), values.next()) {
                (Some(_), Some(_)) => return Err(unauthorized(AuthError::Invalid)),
                (one, None) => one.map(|v| v.as_bytes()),
                (None, Some(_)) => None,
            };
            ctx.identity = Some(self.verifier.verify_bearer_token(authorization).map_err(unauthorized)?);
        }
        self.count_request(session, ctx, &path, &rate_limits)?;
        Ok(files.map_or(Admitted::Proxy, Admitted::Files))
    }

    /// Counts the request against its route's limits. A limit keyed by
    /// account is checked here when the path names one (an email), else once
    /// the form body is read.
    fn count_request(
        &self,
        session: &Session,
        ctx: &mut RequestCtx,
        path: &str,
        names: &[String],
    ) -> Result<(), Refusal> {
        let policy = ctx.policy.clone();
        let Some(peer) = session.client_addr().and_then(|a| a.as_inet()).map(|a| a.ip()) else { return Ok(()) };
        let forwarded: Vec<&str> =
            session.req_header().headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok()).collect();
        let ip = client_ip(peer, &forwarded, &policy.trusted_proxies);
        ctx.client_ip = Some(ip);
        let now = Instant::now();
        for name in names {
            let limiter = &policy.rate_limiters[name];
            let key = match limiter.rule.key {
                RateKey::Ip => ip.to_string(),
                RateKey::User => ctx.identity.as_ref().map_or_else(|| ip.to_string(), |i| i.user_id.clone()),
                RateKey::Username => {
                    match path.rsplit('/').find(|s| !s.is_empty()).filter(|s| s.contains("%40") || s.contains('@')) {
                        Some(email) => email.replace("%40", "@").to_lowercase(),
                        None => {
                            ctx.username_limits.push(name.clone());
                            continue;
                        }
                    }
                }
            };
            limiter.check(&format!("{name}:{key}"), now).map_err(|wait| {
                self.metrics.rate_limited(name);
                too_many(wait)
            })?;
        }
        Ok(())
    }

    /// The account-keyed limits, once the form naming the account is read;
    /// a body naming none is counted by address.
    fn count_form(&self, ctx: &mut RequestCtx) -> Result<(), Refusal> {
        let policy = ctx.policy.clone();
        let username = named_account(&ctx.form).map(|u| u.to_lowercase());
        let key = username.or_else(|| ctx.client_ip.map(|ip| ip.to_string())).unwrap_or_default();
        let now = Instant::now();
        for name in std::mem::take(&mut ctx.username_limits) {
            policy.rate_limiters[&name].check(&format!("{name}:{key}"), now).map_err(|wait| {
                self.metrics.rate_limited(&name);
                too_many(wait)
            })?;
        }
        Ok(())
    }
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        let policy = self.policy.current();
        RequestCtx {
            started: Instant::now(),
            request_id: String::new(),
            route: None,
            path: None,
            upstream_addr: None,
            in_flight_to: None,
            cors: Vec::new(),
            failed: Vec::new(),
            retried: 0,
            upstream: None,
            upstream_target: None,
            identity: None,
            max_body_bytes: policy.limits.max_body_bytes,
            policy,
            body_bytes: 0,
            client_ip: None,
            username_limits: Vec::new(),
            form: Vec::new(),
            retry_after: None,
            over_tls: false,
            from_trusted_proxy: false,
            accept_encoding: None,
        }
    }

    async fn early_request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<()> {
        let policy = ctx.policy.clone();
        ctx.request_id = request_id(session.req_header().headers.get(X_REQUEST_ID).map(|v| v.as_bytes()));
        // On now, so the module reads `Accept-Encoding`, narrowed to the one
        // coding we chose by the client's q-values (the module itself takes
        // the first listed); the answer's type and size decide in
        // `response_filter`.
        let accept = session.req_header().headers.get(http::header::ACCEPT_ENCODING);
        ctx.accept_encoding = accept.and_then(|v| v.to_str().ok()).map(str::to_owned);
        if policy.compression.enabled {
            let chosen = policy.compression.negotiate(accept.and_then(|v| v.to_str().ok()));
            let req = session.req_header_mut();
            match chosen {
                Some(coding) => {
                    req.insert_header(http::header::ACCEPT_ENCODING, coding)?;
                    let c = &policy.compression;
                    set_compression(session, [c.gzip_level, c.brotli_level, c.zstd_level]);
                }
                None => {
                    req.remove_header(&http::header::ACCEPT_ENCODING);
                }
            }
        }
        if let Some(client) = session.client_addr().and_then(|a| a.as_inet()) {
            self.connections.head_received(*client);
            let proto = session.req_header().headers.get_all("x-forwarded-proto").iter().next_back();
            ctx.from_trusted_proxy = policy.trusted_proxies.iter().any(|n| n.contains(client.ip()));
            ctx.over_tls = ctx.from_trusted_proxy && proto.is_some_and(|p| p.as_bytes().eq_ignore_ascii_case(b"https"));
        }
        ctx.over_tls |= session.digest().is_some_and(|d| d.ssl_digest.is_some());
        Ok(())
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let mut admitted = self.admit(session, ctx);
        // A token signed with a key not held yet: look at the auth
        // service's key set once (rate-limited), then decide again.
        if admitted.as_ref().is_err_and(|r| r.unknown_key)
            && let Some(jwks) = &self.jwks
            && jwks.refresh().await
        {
            admitted = self.admit(session, ctx);
        }
        match admitted {
            Ok(Admitted::Proxy) => Ok(false),
            Ok(Admitted::Files(site)) => match self.serve_file(session, ctx, &site).await {
                // A client that went away mid-file (a browser cancelling a
                // download) is no error of ours.
                Err(e) if matches!(e.etype(), ErrorType::WriteError | ErrorType::ConnectionClosed) => {
                    tracing::debug!(error = %e, "client left during a static file");
                    session.set_keepalive(None);
                    Ok(true)
                }
                other => other.map(|()| true),
            },
            Ok(Admitted::Preflight(headers)) => {
                let mut response = ResponseHeader::build(204, Some(headers.len() + 8))?;
                for (name, value) in headers {
                    response.insert_header(name, value)?;
                }
                response.insert_header(X_REQUEST_ID, ctx.request_id.as_str())?;
                add_security_headers(&mut response)?;
                session.write_response_header(Box::new(response), true).await?;
                Ok(true)
            }
            Err(refusal) => {
                // The proxy's own answers are a few bytes.
                set_compression(session, [0; 3]);
                if refusal.status == 400 || refusal.status == 431 || refusal.status == 413 {
                    // What follows on this connection cannot be trusted to be
                    // framed as we think: close it after answering.
                    session.set_keepalive(None);
                }
                let missing = refusal.detail == AuthError::Missing.to_string();
                let challenge = match refusal.status {
                    401 if missing => Some("Bearer"),
                    401 => Some(r#"Bearer error="invalid_token""#),
                    _ => None,
                };
                if refusal.status == 401 {
                    let reason = match (missing, refusal.unknown_key) {
                        (true, _) => "missing",
                        (_, true) => "unknown_key",
                        _ => "invalid",
                    };
                    self.metrics.auth_failed(reason);
                }
                let retry_after = refusal.retry_after.map(|s| s.to_string());
                let headers: Vec<(&str, &str)> = challenge
                    .map(|c| ("www-authenticate", c))
                    .into_iter()
                    .chain(retry_after.as_deref().map(|s| ("retry-after", s)))
                    .chain(ctx.over_tls.then_some(HSTS))
                    .chain([(X_REQUEST_ID, ctx.request_id.as_str())])
                    .collect();
                respond_json(session, refusal.status, &refusal.detail, &headers).await?;
                Ok(true)
            }
        }
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        // Chunked bodies declare no length: count them as they pass.
        ctx.body_bytes += body.as_ref().map_or(0, |b| b.len() as u64);
        if ctx.body_bytes > ctx.max_body_bytes {
            return Err(Error::explain(ErrorType::HTTPStatus(413), "request body over the route's limit"));
        }
        if !ctx.username_limits.is_empty() {
            if let Some(chunk) = body {
                let room = MAX_FORM_BYTES.saturating_sub(ctx.form.len());
                ctx.form.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            if (end_of_stream || ctx.form.len() >= MAX_FORM_BYTES)
                && let Err(refusal) = self.count_form(ctx)
            {
                ctx.retry_after = refusal.retry_after;
                return Err(Error::explain(ErrorType::HTTPStatus(429), "rate limited"));
            }
        }
        Ok(())
    }

    async fn upstream_peer(&self, _session: &mut Session, ctx: &mut RequestCtx) -> Result<Box<HttpPeer>> {
        let policy = ctx.policy.clone();
        let name = ctx.upstream.as_deref().unwrap_or_default();
        if ctx.retried == 0 {
            self.retry_budget.deposit();
        }
        // A retry goes to another server than the ones that failed it, and
        // a server that failed lately is passed over while others are left.
        let now = Instant::now();
        let ejected: Vec<std::net::SocketAddr> = {
            let mut ejected = self.ejected.lock().unwrap_or_else(|e| e.into_inner());
            ejected.retain(|_, until| *until > now);
            ejected.keys().copied().collect()
        };
        let lb = self.upstreams.get(name);
        let usable = |b: &Backend, healthy: bool, skip_ejected: bool| {
            let addr = b.addr.as_inet();
            healthy
                && !addr.is_some_and(|a| ctx.failed.contains(a))
                && !(skip_ejected && addr.is_some_and(|a| ejected.contains(a)))
        };
        let balance = policy.balance.get(name).copied().unwrap_or_default();
        let pick = |skip_ejected: bool| {
            let lb = lb?;
            match balance {
                Balance::RoundRobin => lb.select_with(b"", 256, |b, healthy| usable(b, healthy, skip_ejected)),
                Balance::LeastConnections => {
                    let backends = lb.backends();
                    let candidates = backends
                        .get_backend()
                        .iter()
                        .filter(|b| usable(b, backends.ready(b), skip_ejected))
                        .filter_map(|b| Some((*b.addr.as_inet()?, b.clone())))
                        .collect();
                    self.in_flight.least(candidates)
                }
            }
        };
        let backend = pick(true).or_else(|| pick(false)).ok_or_else(|| {
            Error::explain(ErrorType::ConnectNoRoute, format!("no healthy server in upstream `{name}`"))
        })?;
        ctx.upstream_addr = Some(backend.addr.to_string());
        if let Some(earlier) = ctx.in_flight_to.take() {
            self.in_flight.end(earlier);
        }
        if let Some(addr) = backend.addr.as_inet() {
            self.in_flight.start(*addr);
            ctx.in_flight_to = Some(*addr);
        }
        let mut peer = HttpPeer::new(backend, false, String::new());
        let ms = Duration::from_millis;
        peer.options.connection_timeout = Some(ms(policy.limits.upstream_connect_timeout_ms));
        peer.options.read_timeout = Some(ms(policy.limits.upstream_read_timeout_ms));
        peer.options.write_timeout = Some(ms(policy.limits.upstream_write_timeout_ms));
        Ok(Box::new(peer))
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let policy = ctx.policy.clone();
        // Upstream gets the origin form of the one normalised path.
        if let Some(target) = &ctx.upstream_target {
            let uri = http::Uri::try_from(target.as_str())
                .map_err(|e| Error::explain(ErrorType::InternalError, format!("normalised path: {e}")))?;
            upstream_request.set_uri(uri);
        }
        // The host believes the identity only with the proof that it came
        // from here (client copies of these headers are already gone).
        let user_id = ctx.identity.as_ref().map_or("", |i| i.user_id.as_str());
        if !user_id.is_empty() {
            upstream_request.insert_header(USER_ID_HEADER, user_id)?;
        }
        // The request id, under the name upstreams read, and inside the
        // signed identity, so the host's log lines carry it.
        let request_id = ctx.request_id.clone();
        upstream_request.insert_header(X_REQUEST_ID, request_id.as_str())?;
        let timestamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let signature = self.identity.sign(&Claim {
            method: upstream_request.method.as_str(),
            path_and_query: upstream_request.uri.path_and_query().map_or("/", |p| p.as_str()),
            user_id,
            request_id: &request_id,
            timestamp,
        });
        upstream_request.insert_header(REQUEST_ID_HEADER, request_id)?;
        upstream_request.insert_header(TIMESTAMP_HEADER, timestamp.to_string())?;
        upstream_request.insert_header(SIGNATURE_HEADER, signature)?;
        if let Some(addr) = session.client_addr().and_then(|a| a.as_inet()) {
            // A chain is passed on only from a trusted proxy; anyone else's
            // is replaced by the address the connection came from.
            let peer = addr.ip();
            let earlier = upstream_request.headers.get("x-forwarded-for").and_then(|v| v.to_str().ok());
            let forwarded = match earlier {
                Some(earlier) if policy.trusted_proxies.iter().any(|n| n.contains(peer)) => {
                    format!("{earlier}, {peer}")
                }
                _ => peer.to_string(),
            };
            upstream_request.insert_header("x-forwarded-for", forwarded)?;
        }
        // What the client asked for: the scheme and host a trusted proxy
        // in front saw, or those seen here; never a client's own claim.
        let forwarded_host = ctx
            .from_trusted_proxy
            .then(|| session.req_header().headers.get_all("x-forwarded-host").iter().next_back().cloned())
            .flatten()
            .or_else(|| session.req_header().headers.get(http::header::HOST).cloned())
            .or_else(|| {
                let authority = session.req_header().uri.authority()?;
                http::HeaderValue::from_str(authority.as_str()).ok()
            });
        upstream_request.insert_header("x-forwarded-proto", if ctx.over_tls { "https" } else { "http" })?;
        match forwarded_host {
            Some(host) => upstream_request.insert_header("x-forwarded-host", host)?,
            None => {
                upstream_request.remove_header("x-forwarded-host");
            }
        }
        Ok(())
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let policy = ctx.policy.clone();
        let header = |name| upstream_response.headers.get(name).and_then(|v: &http::HeaderValue| v.to_str().ok());
        let content_type = header(http::header::CONTENT_TYPE);
        let length = header(http::header::CONTENT_LENGTH).and_then(|v| v.parse().ok());
        if !policy.compression.worth_it(content_type, length) {
            set_compression(session, [0; 3]);
        }
        if ctx.over_tls {
            upstream_response.insert_header(HSTS.0, HSTS.1)?;
        }
        upstream_response.insert_header(X_REQUEST_ID, ctx.request_id.as_str())?;
        for (name, value) in &ctx.cors {
            if *name == "vary" {
                upstream_response.append_header(*name, value.as_str())?;
            } else {
                upstream_response.insert_header(*name, value.as_str())?;
            }
        }
        add_security_headers(upstream_response)
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        peer: &HttpPeer,
        ctx: &mut RequestCtx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        // Nothing was sent: safe to try another server, whatever the method.
        e.set_retry(self.may_retry(peer, ctx));
        e
    }

    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut RequestCtx,
        _client_reused: bool,
    ) -> Box<Error> {
        let mut e = e.more_context(format!("upstream {}", peer.address()));
        // Sent, but no answer yet: again only if the method says so, and
        // the whole body is still at hand. Not after a timeout: the server
        // may still be at it, and another would only double the work.
        let timed_out = matches!(e.etype(), ErrorType::ReadTimedout | ErrorType::WriteTimedout);
        let again = !timed_out
            && session.req_header().method.is_idempotent()
            && !session.as_ref().retry_buffer_truncated()
            && session.response_written().is_none()
            && self.may_retry(peer, ctx);
        e.set_retry(again);
        e
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut RequestCtx) -> FailToProxy {
        let code = match (e.etype(), e.esource()) {
            (ErrorType::HTTPStatus(code), _) => *code,
            (
                ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout,
                ErrorSource::Upstream,
            ) => 504,
            (ErrorType::ConnectNoRoute, _) | (_, ErrorSource::Upstream) => 502,
            (ErrorType::ReadError | ErrorType::WriteError | ErrorType::ConnectionClosed, ErrorSource::Downstream) => 0,
            (_, ErrorSource::Downstream) => 400,
            _ => 500,
        };
        // The connection is not reused after a failure (below): say so in
        // the answer, or a client may send its next request on it and meet
        // a reset.
        session.set_keepalive(None);
        if code > 0 {
            set_compression(session, [0; 3]);
            let detail = match code {
                400 => "Bad request",
                413 => "Request body too large",
                429 => "Too many requests",
                502 => "Upstream unavailable",
                504 => "Upstream timed out",
                _ => "Internal error",
            };
            let retry_after = ctx.retry_after.map(|s| s.to_string());
            let headers: Vec<(&str, &str)> = retry_after
                .as_deref()
                .map(|s| ("retry-after", s))
                .into_iter()
                .chain(ctx.over_tls.then_some(HSTS))
                .chain([(X_REQUEST_ID, ctx.request_id.as_str())])
                .collect();
            if let Err(write_error) = respond_json(session, code, detail, &headers).await {
                tracing::debug!(error = %write_error, "could not send the error response");
            }
        }
        FailToProxy { error_code: code, can_reuse_downstream: false }
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut RequestCtx) {
        let policy = ctx.policy.clone();
        if let Some(server) = ctx.in_flight_to.take() {
            self.in_flight.end(server);
        }
        if let Some(client) = session.client_addr().and_then(|a| a.as_inet()) {
            let limits = policy.limits.connections();
            self.connections.response_done(*client, limits.idle_timeout + limits.header_timeout);
        }
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        let elapsed = ctx.started.elapsed();
        let route = ctx.route.as_deref().unwrap_or(NO_ROUTE);
        self.metrics.answered(route, status, elapsed);
        // One line a request. The path is the normalised one (the client's
        // spelling only when it was refused before that), never the query
        // or a header: no token reaches the log.
        let req = session.req_header();
        tracing::info!(
            target: "gatehouse::access",
            request_id = %ctx.request_id,
            method = %req.method,
            path = ctx.path.as_deref().unwrap_or("-"),
            route,
            status,
            bytes = session.body_bytes_sent() as u64,
            latency_ms = elapsed.as_secs_f64() * 1e3,
            upstream = ctx.upstream_addr.as_deref().unwrap_or("-"),
            user_id = ctx.identity.as_ref().map_or("-", |i| i.user_id.as_str()),
            error = e.map(|e| e.to_string()),
            "request"
        );
    }
}

/// The account a login body names: `username` (or `email`) of a JSON
/// object, or `username` of an urlencoded form, as the auth service reads them.
fn named_account(body: &[u8]) -> Option<String> {
    if body.trim_ascii_start().starts_with(b"{") {
        let value: serde_json::Value = serde_json::from_slice(body).ok()?;
        return ["username", "email"].iter().find_map(|k| value[k].as_str().map(str::to_owned));
    }
    form_urlencoded_value(body, "username")
}

/// The first value of `field` in an urlencoded form.
fn form_urlencoded_value(form: &[u8], field: &str) -> Option<String> {
    form.split(|b| *b == b'&').find_map(|pair| {
        let (key, value) = match pair.iter().position(|b| *b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &[][..]),
        };
        (percent_decode_form(key) == field).then(|| percent_decode_form(value))
    })
}

/// `+` as space and `%XX` escapes, lossy on bad UTF-8.
fn percent_decode_form(bytes: &[u8]) -> String {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: Option<&u8>| b.and_then(|b| (*b as char).to_digit(16));
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if hex(bytes.get(i + 1)).is_some() && hex(bytes.get(i + 2)).is_some() => {
                out.push((hex(bytes.get(i + 1)).unwrap() * 16 + hex(bytes.get(i + 2)).unwrap()) as u8);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// RFC 9112 §3.2: an HTTP/1.1 request has exactly one `Host`; with an
/// absolute-form target the target's authority wins and `Host` is set to it.
fn check_host(req: &RequestHeader) -> Result<(), Refusal> {
    let hosts = req.headers.get_all(http::header::HOST).iter().count();
    if hosts > 1 || (hosts == 0 && req.version == http::Version::HTTP_11) {
        return Err(refuse(400, "A request must have exactly one Host header"));
    }
    Ok(())
}

fn unauthorized(e: AuthError) -> Refusal {
    Refusal { unknown_key: e == AuthError::UnknownKey, ..refuse(401, e.to_string()) }
}

/// Removes every `x-gatehouse-*` header, whatever its case, every header
/// the client's `Connection` names (hop-by-hop, RFC 9110 §7.6.1), and
/// `Upgrade` unless the route allows it. With an absolute-form target, the
/// `Host` header becomes the target's authority.
pub fn remove_hop_by_hop_and_identity(req: &mut RequestHeader, allow_upgrade: bool) {
    let named: Vec<String> = req
        .headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|token| token.trim().to_ascii_lowercase())
        .filter(|token| !token.is_empty() && token != "close" && token != "keep-alive" && token != "upgrade")
        .collect();
    for name in named {
        req.remove_header(&name);
    }
    let identity: Vec<_> =
        req.headers.keys().filter(|name| name.as_str().starts_with(IDENTITY_HEADER_PREFIX)).cloned().collect();
    for name in identity {
        req.remove_header(&name);
    }
    if !allow_upgrade {
        req.remove_header(&http::header::UPGRADE);
    }
    if let Some(authority) = req.uri.authority().map(|a| a.as_str().to_owned()) {
        let _ = req.insert_header(http::header::HOST, authority);
    }
}

/// Headers on every answer: no sniffing, no framing, no referrer, a
/// restrictive content policy unless the service set its own, and no
/// `Server` version. HSTS is added only for clients that came over TLS.
fn add_security_headers(response: &mut ResponseHeader) -> Result<()> {
    response.remove_header("server");
    for (name, value) in SECURITY_HEADERS {
        if name != CSP || response.headers.get(CSP).is_none() {
            response.insert_header(name, value)?;
        }
    }
    Ok(())
}

const CSP: &str = "content-security-policy";

/// Sent on answers to clients that came over TLS (through a trusted proxy
/// that terminated it): browsers keep to HTTPS for a year.
const HSTS: (&str, &str) = ("strict-transport-security", "max-age=31536000");

/// The security headers of every answer; a service may set its own CSP.
pub const SECURITY_HEADERS: [(&str, &str); 4] = [
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    (CSP, "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'"),
];

/// Answers from the proxy itself with the services' `{"detail": ...}` shape.
async fn respond_json(session: &mut Session, status: u16, detail: &str, headers: &[(&str, &str)]) -> Result<()> {
    let body = Bytes::from(serde_json::json!({ "detail": detail }).to_string());
    let mut response = ResponseHeader::build(status, Some(8 + headers.len()))?;
    response.insert_header("content-type", "application/json")?;
    response.insert_header("content-length", body.len().to_string())?;
    for (name, value) in headers {
        response.insert_header(name.to_string(), *value)?;
    }
    add_security_headers(&mut response)?;
    session.write_response_header(Box::new(response), false).await?;
    session.write_response_body(Some(body), true).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_and_connection_named_headers_are_removed_in_any_case() {
        let mut req = RequestHeader::build("GET", b"/items", None).unwrap();
        req.insert_header("X-Gatehouse-User-Id", "forged").unwrap();
        req.append_header("x-gatehouse-user-id", "forged again").unwrap();
        req.insert_header("x-gatehouse-superuser", "true").unwrap();
        req.insert_header("x-other", "kept").unwrap();
        req.insert_header("x-hop", "dropped").unwrap();
        req.insert_header("connection", "keep-alive, X-Hop").unwrap();
        req.insert_header("upgrade", "websocket").unwrap();
        remove_hop_by_hop_and_identity(&mut req, false);
        assert!(req.headers.get(USER_ID_HEADER).is_none());
        assert!(req.headers.get("x-gatehouse-superuser").is_none());
        assert!(req.headers.get("x-hop").is_none());
        assert!(req.headers.get("upgrade").is_none());
        assert_eq!(req.headers.get("x-other").unwrap(), "kept");
    }

    #[test]
    fn absolute_form_targets_set_the_host() {
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        req.set_uri(http::Uri::from_static("http://example.com:8080/items?x=1"));
        req.insert_header("host", "evil.example").unwrap();
        remove_hop_by_hop_and_identity(&mut req, false);
        assert_eq!(req.headers.get("host").unwrap(), "example.com:8080");
    }

    #[test]
    fn one_host_is_required_on_http_1_1() {
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        assert!(check_host(&req).is_err());
        req.insert_header("host", "a").unwrap();
        assert!(check_host(&req).is_ok());
        req.append_header("host", "b").unwrap();
        assert!(check_host(&req).is_err());
    }

    #[test]
    fn the_account_a_json_login_names_is_read_too() {
        assert_eq!(named_account(br#" {"username": "A@b.co", "password": "x"}"#).as_deref(), Some("A@b.co"));
        assert_eq!(named_account(br#"{"email": "c@d.co"}"#).as_deref(), Some("c@d.co"));
        assert_eq!(named_account(b"username=e%40f.co").as_deref(), Some("e@f.co"));
        assert_eq!(named_account(b"{broken"), None);
    }

    #[test]
    fn the_account_a_form_names_is_read() {
        assert_eq!(form_urlencoded_value(b"username=A%40b.co&password=x", "username").as_deref(), Some("A@b.co"));
        assert_eq!(form_urlencoded_value(b"password=x&username=a+b", "username").as_deref(), Some("a b"));
        assert_eq!(form_urlencoded_value(b"password=x", "username"), None);
    }

    #[test]
    fn every_answer_gets_the_security_headers() {
        let mut response = ResponseHeader::build(200, None).unwrap();
        response.insert_header("server", "leaky/1.2.3").unwrap();
        add_security_headers(&mut response).unwrap();
        assert!(response.headers.get("server").is_none());
        assert_eq!(response.headers.get("x-content-type-options").unwrap(), "nosniff");
        assert!(response.headers.get("content-security-policy").is_some());
    }
}
