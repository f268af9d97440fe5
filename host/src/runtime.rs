//! Components compiled once and pre-instantiated; each request runs in a
//! fresh instance with its own store, memory cap and time budget, so what one
//! guest does (trap, loop, exhaust memory) ends its own request only.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use tracing::Instrument;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::config::{ComponentConfig, Limits};
use crate::guest_log::GuestLog;
use crate::postgres::{self, DatabaseGrants, PostgresView, RequestDatabases};
use crate::variables::{self, VariablesView};

/// How often the epoch advances; a guest's time budget is counted in ticks.
const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Everything one request's store holds.
pub struct RequestState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    limits: StoreLimits,
    databases: RequestDatabases,
    variables: Arc<BTreeMap<String, String>>,
}

impl WasiView for RequestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl WasiHttpView for RequestState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { ctx: &mut self.http, table: &mut self.table, hooks: Default::default() }
    }
}

/// A component ready to serve: compiled, linked and pre-instantiated.
struct Service {
    name: Arc<str>,
    route: String,
    pre: ProxyPre<RequestState>,
    grants: DatabaseGrants,
    variables: Arc<BTreeMap<String, String>>,
    /// Linear memory one instance may grow to.
    memory_bytes: usize,
}

/// The engine and the services it runs.
pub struct Runtime {
    engine: Engine,
    /// Longest route first, so `/items/x` never falls to `/`.
    services: Vec<Service>,
    limits: Limits,
    slots: tokio::sync::Semaphore,
    /// Requests received, answered by a guest or by the host itself.
    received: AtomicU64,
}

/// Why the host, not the guest, answered a request.
#[derive(Debug, thiserror::Error)]
enum HostError {
    #[error("no component serves this path")]
    NoRoute,
    #[error("request body larger than {0} bytes")]
    BodyTooLarge(u64),
    #[error("cannot read request body")]
    BadBody,
    #[error("component ran past its time budget")]
    Timeout,
    #[error("component failed")]
    GuestFailed,
}

impl HostError {
    fn status(&self) -> StatusCode {
        match self {
            HostError::NoRoute => StatusCode::NOT_FOUND,
            HostError::BodyTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            HostError::BadBody => StatusCode::BAD_REQUEST,
            HostError::Timeout => StatusCode::GATEWAY_TIMEOUT,
            HostError::GuestFailed => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn into_response(self) -> Response<HyperOutgoingBody> {
        let body = serde_json::json!({ "detail": self.to_string() }).to_string();
        let mut response = Response::new(full_body(Bytes::from(body)));
        *response.status_mut() = self.status();
        response.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        response
    }
}

fn full_body(bytes: Bytes) -> HyperOutgoingBody {
    Full::new(bytes).map_err(|never: Infallible| match never {}).boxed_unsync()
}

impl Runtime {
    pub fn new_engine() -> wasmtime::Result<Engine> {
        let mut config = Config::new();
        config.epoch_interruption(true);
        let engine = Engine::new(&config)?;
        // One ticker per engine. It holds only a weak reference, so it stops
        // when the engine goes away.
        let weak = engine.weak();
        std::thread::Builder::new().name("epoch-ticker".into()).spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })?;
        Ok(engine)
    }

    /// Compiles and links every component; fails on the first that does not
    /// export `wasi:http/incoming-handler` or imports what the host lacks.
    pub fn new(
        engine: Engine,
        components: &BTreeMap<String, ComponentConfig>,
        pools: &BTreeMap<String, sqlx::PgPool>,
        limits: Limits,
        env: impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Self> {
        let mut linker = Linker::<RequestState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        postgres::add_to_linker(&mut linker, |s| PostgresView { table: &mut s.table, databases: &mut s.databases })?;
        variables::add_to_linker(&mut linker, |s| VariablesView { values: &s.variables })?;

        let mut services = Vec::new();
        for (name, config) in components {
            use anyhow::Context as _;
            let started = std::time::Instant::now();
            let component = Component::from_file(&engine, &config.file)
                .map_err(anyhow::Error::from)
                .with_context(|| format!("component `{name}`: cannot load {}", config.file.display()))?;
            let pre = linker
                .instantiate_pre(&component)
                .and_then(ProxyPre::new)
                .map_err(anyhow::Error::from)
                .with_context(|| format!("component `{name}` cannot be linked"))?;
            let grants =
                DatabaseGrants::new(config.databases.iter().map(|db| (db.clone(), pools[db].clone())).collect());
            let variables = Arc::new(config.resolve_variables(name, &env)?);
            tracing::info!(component = %name, route = %config.route, elapsed = ?started.elapsed(), "component ready");
            services.push(Service {
                name: name.as_str().into(),
                route: config.route.clone(),
                pre,
                grants,
                variables,
                memory_bytes: config.memory_bytes.unwrap_or(limits.memory_bytes),
            });
        }
        services.sort_by_key(|s| std::cmp::Reverse(s.route.len()));
        let slots = tokio::sync::Semaphore::new(limits.max_concurrent_requests);
        Ok(Self { engine, services, limits, slots, received: AtomicU64::new(0) })
    }

    /// How many requests reached this runtime.
    pub fn requests_received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// Serves one request: the host's own answers (no route, body too large,
    /// guest failure) are JSON `{"detail": ...}` like the services' own.
    pub async fn handle<B>(&self, req: Request<B>) -> Response<HyperOutgoingBody>
    where
        B: hyper::body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        self.received.fetch_add(1, Ordering::Relaxed);
        match self.try_handle(req).await {
            Ok(response) => response,
            Err(e) => e.into_response(),
        }
    }

    async fn try_handle<B>(&self, req: Request<B>) -> Result<Response<HyperOutgoingBody>, HostError>
    where
        B: hyper::body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let (service, service_path) = self.route(req.uri().path()).ok_or(HostError::NoRoute)?;
        let (mut parts, body) = req.into_parts();
        let body = Limited::new(body, self.limits.max_body_bytes as usize).collect().await.map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                HostError::BodyTooLarge(self.limits.max_body_bytes)
            } else {
                HostError::BadBody
            }
        })?;
        parts.uri = service_uri(&parts.uri, &service_path);
        set_spin_headers(&mut parts.headers, &service.route, &service_path);
        let req = Request::from_parts(parts, Full::new(body.to_bytes()).map_err(|n: Infallible| match n {}));

        let _slot = self.slots.acquire().await.expect("the semaphore is never closed");
        let span = tracing::info_span!("guest", component = %service.name);
        self.run_guest(service, req).instrument(span).await
    }

    /// The service mounted at the longest prefix of `path`, and the path
    /// with that prefix removed.
    fn route(&self, path: &str) -> Option<(&Service, String)> {
        self.services.iter().find_map(|s| strip_route(&s.route, path).map(|rest| (s, rest)))
    }

    async fn run_guest(
        &self,
        service: &Service,
        req: Request<impl hyper::body::Body<Data = Bytes, Error = wasmtime_wasi_http::Error> + Send + 'static>,
    ) -> Result<Response<HyperOutgoingBody>, HostError> {
        let state = RequestState {
            wasi: WasiCtx::builder()
                .stdout(GuestLog::new(service.name.clone(), "stdout"))
                .stderr(GuestLog::new(service.name.clone(), "stderr"))
                .build(),
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            limits: StoreLimitsBuilder::new().memory_size(service.memory_bytes).trap_on_grow_failure(true).build(),
            databases: RequestDatabases::new(service.grants.clone(), self.limits.db_connections_per_request),
            variables: service.variables.clone(),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        let budget = Duration::from_millis(self.limits.timeout_ms);
        // Every tick a running guest yields to the executor, so a guest that
        // spins shares its thread instead of holding it; the budget below
        // then ends it at a yield point.
        store.set_epoch_deadline(1);
        store.epoch_deadline_async_yield_and_update(1);

        let (sender, receiver) = tokio::sync::oneshot::channel();
        let guest_req = store.data_mut().http().new_incoming_request(Scheme::Http, req).map_err(|e| {
            tracing::error!(error = %e, "cannot hand the request to the guest");
            HostError::GuestFailed
        })?;
        let out = store.data_mut().http().new_response_outparam(sender).map_err(|e| {
            tracing::error!(error = %e, "cannot create the response slot");
            HostError::GuestFailed
        })?;
        let pre = service.pre.clone();
        // The guest runs in its own task so it can keep streaming a body after
        // the head of the response is sent. The budget covers all of it,
        // guest code and host calls (a slow query) alike; when it runs out
        // the store is dropped, which also ends a response body mid-stream.
        let task = tokio::spawn(async move {
            let run = async {
                let proxy = pre.instantiate_async(&mut store).await?;
                proxy.wasi_http_incoming_handler().call_handle(&mut store, guest_req, out).await
            };
            match tokio::time::timeout(budget, run).await {
                Ok(result) => result,
                Err(_) => Err(wasmtime::Trap::Interrupt.into()),
            }
        });

        match receiver.await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(code)) => {
                tracing::warn!(error = ?code, "guest answered with an error code");
                Err(HostError::GuestFailed)
            }
            Err(_) => Err(self.guest_failure(task.await)),
        }
    }

    /// Explains why a guest dropped its response slot without answering.
    fn guest_failure(&self, joined: Result<wasmtime::Result<()>, tokio::task::JoinError>) -> HostError {
        match joined {
            Ok(Ok(())) => {
                tracing::error!("guest returned without setting a response");
                HostError::GuestFailed
            }
            Ok(Err(e)) => {
                if let Some(wasmtime::Trap::Interrupt) = e.downcast_ref::<wasmtime::Trap>() {
                    tracing::warn!(budget_ms = self.limits.timeout_ms, "guest stopped at the end of its time budget");
                    return HostError::Timeout;
                }
                tracing::error!(error = ?e, "guest trapped");
                HostError::GuestFailed
            }
            Err(e) => {
                tracing::error!(error = %e, "guest task failed");
                HostError::GuestFailed
            }
        }
    }
}

/// `Some(rest)` if `path` is under `route` (at a segment boundary), with the
/// route removed: `/auth` + `/auth/api/v1` gives `/api/v1`.
fn strip_route(route: &str, path: &str) -> Option<String> {
    if route == "/" {
        return Some(path.to_owned());
    }
    let rest = path.strip_prefix(route)?;
    match rest {
        "" => Some("/".to_owned()),
        _ if rest.starts_with('/') => Some(rest.to_owned()),
        _ => None,
    }
}

/// The request URI as the component sees it: its own path, same query.
fn service_uri(original: &Uri, service_path: &str) -> Uri {
    let path_and_query = match original.query() {
        Some(query) => format!("{service_path}?{query}"),
        None => service_path.to_owned(),
    };
    // The path came from a valid URI, so the rebuilt one is valid too.
    Uri::builder().path_and_query(path_and_query).build().unwrap_or_else(|_| original.clone())
}

/// Sets the headers Spin gives a component about its route, replacing any a
/// client sent, so a component routes the same way here and on Spin.
fn set_spin_headers(headers: &mut http::HeaderMap, route: &str, service_path: &str) {
    let client_sent: Vec<_> = headers.keys().filter(|k| k.as_str().starts_with("spin-")).cloned().collect();
    for name in client_sent {
        headers.remove(name);
    }
    let base = if route == "/" { "" } else { route };
    if let Ok(v) = HeaderValue::from_str(service_path) {
        headers.insert("spin-path-info", v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("{base}/...")) {
        headers.insert("spin-component-route", v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_match_whole_segments() {
        assert_eq!(strip_route("/auth", "/auth/api/v1/login").as_deref(), Some("/api/v1/login"));
        assert_eq!(strip_route("/auth", "/auth").as_deref(), Some("/"));
        assert_eq!(strip_route("/auth", "/authx/y"), None);
        assert_eq!(strip_route("/", "/anything").as_deref(), Some("/anything"));
    }

    #[test]
    fn service_uri_keeps_the_query() {
        let uri: Uri = "/items/api/v1/items/?skip=1&limit=2".parse().unwrap();
        assert_eq!(service_uri(&uri, "/api/v1/items/").to_string(), "/api/v1/items/?skip=1&limit=2");
    }

    #[test]
    fn client_spin_headers_are_replaced() {
        let mut headers = http::HeaderMap::new();
        headers.insert("spin-path-info", HeaderValue::from_static("/forged"));
        headers.insert("spin-anything", HeaderValue::from_static("x"));
        set_spin_headers(&mut headers, "/items", "/api/v1/items");
        assert_eq!(headers["spin-path-info"], "/api/v1/items");
        assert!(!headers.contains_key("spin-anything"));
    }
}
