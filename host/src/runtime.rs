//! Components compiled once and pre-instantiated; each request runs in a
//! fresh instance with its own store, memory cap and time budget, so what one
//! guest does (trap, loop, exhaust memory) ends its own request only.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use tracing::Instrument;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::config::{ComponentConfig, InstanceAllocation, Limits, Manifest};
use crate::executor::{self, Priority};
use crate::guest_log::GuestLog;
use crate::handlers::{CompletedBody, GuestBody, GuestOutcome, GuestRequestBody, Handler};
use crate::identity::{IdentityVerifier, Verdict};
use crate::key_value::{self, KeyValueView, RequestStores, StoreGrants};
use crate::metrics::{Failure, Metrics, PoolGauge};
use crate::outbound_http::{AllowedHosts, OutboundHttp, OwnListeners};
use crate::postgres::{self, DatabaseGrants, PostgresView, RequestDatabases};
use crate::routes::{self, RequestFacts, RoutePattern};
use crate::variables::{self, VariablesView};

/// How often the epoch advances; a guest's time budget is counted in ticks.
const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Everything one request's store holds.
pub struct RequestState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    pub(crate) outbound: OutboundHttp,
    table: ResourceTable,
    limits: StoreLimits,
    databases: RequestDatabases,
    stores: RequestStores,
    variables: Arc<BTreeMap<String, String>>,
}

impl RequestState {
    /// Whether the guest still holds a database connection or a key-value
    /// store: such an instance is not handed to another request.
    pub(crate) fn holds_host_resources(&self) -> bool {
        self.databases.holds_any() || self.stores.holds_any()
    }
}

impl WasiView for RequestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl WasiHttpView for RequestState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { ctx: &mut self.http, table: &mut self.table, hooks: &mut self.outbound }
    }
}

/// A component ready to serve: compiled, linked and pre-instantiated.
struct Service {
    name: Arc<str>,
    route: RoutePattern,
    handler: Handler,
    grants: DatabaseGrants,
    stores: StoreGrants,
    variables: Arc<BTreeMap<String, String>>,
    environment: Vec<(String, String)>,
    allowed_hosts: Arc<AllowedHosts>,
    /// Linear memory one instance may grow to.
    memory_bytes: usize,
    /// Requests in this component at once.
    slots: Arc<tokio::sync::Semaphore>,
    /// Wall-clock budget of one request, in milliseconds.
    timeout_ms: u64,
    /// Database connections one request may hold at once.
    db_connections: u32,
    /// Largest response body this component may send.
    max_response_bytes: u64,
    /// Where its guests run: the low-priority runtime, or (`None`) the one
    /// serving the request.
    executor: Option<tokio::runtime::Handle>,
}

impl Service {
    /// A store for one new instance: the component's grants and limits,
    /// and nothing lent yet.
    fn new_store(&self, engine: &Engine, own: Arc<OwnListeners>) -> Store<RequestState> {
        let state = RequestState {
            wasi: WasiCtx::builder()
                .stdout(GuestLog::new(self.name.clone(), "stdout"))
                .stderr(GuestLog::new(self.name.clone(), "stderr"))
                .envs(&self.environment)
                .build(),
            http: WasiHttpCtx::new(),
            outbound: OutboundHttp { component: self.name.clone(), allowed: self.allowed_hosts.clone(), own },
            table: ResourceTable::new(),
            limits: StoreLimitsBuilder::new().memory_size(self.memory_bytes).trap_on_grow_failure(true).build(),
            // No result set larger than the guest's memory is read for it.
            databases: RequestDatabases::new(self.grants.clone(), self.db_connections, self.memory_bytes),
            stores: RequestStores::new(self.stores.clone()),
            variables: self.variables.clone(),
        };
        let mut store = Store::new(engine, state);
        store.limiter(|s| &mut s.limits);
        // Every tick a running guest yields to the executor, so a guest that
        // spins shares its thread instead of holding it; the budget then
        // ends it at a yield point. The budget covers all of the guest's
        // run, body included: when it ends the store is dropped, which also
        // ends a response body mid-stream.
        store.set_epoch_deadline(1);
        store.epoch_deadline_async_yield_and_update(1);
        store
    }
}

/// The engine and the services it runs.
pub struct Runtime {
    engine: Engine,
    services: Vec<Arc<Service>>,
    limits: Limits,
    /// Requests in guests at once, over all components.
    slots: Arc<tokio::sync::Semaphore>,
    /// Requests received, answered by a guest or by the host itself.
    received: AtomicU64,
    /// Where the host listens: never reachable by a guest's requests.
    own_listeners: Arc<OwnListeners>,
    /// Checks that identity headers come from the proxy.
    identity: IdentityVerifier,
    metrics: Arc<Metrics>,
    /// The databases, for readiness and the pool gauges.
    pools: BTreeMap<String, sqlx::PgPool>,
    /// The low-priority components' own pools (empty if there are none):
    /// in the gauges, never in readiness, which must not wait on a runtime
    /// that is starved by design.
    low_priority_pools: BTreeMap<String, sqlx::PgPool>,
    /// Set once shutdown has begun: not ready for new traffic.
    draining: std::sync::atomic::AtomicBool,
}

/// Why the host, not the guest, answered a request.
#[derive(Debug, thiserror::Error)]
enum HostError {
    #[error("no component serves this path")]
    NoRoute,
    #[error("request body larger than {0} bytes")]
    BodyTooLarge(u64),
    #[error("component ran past its time budget")]
    Timeout,
    #[error("component failed")]
    GuestFailed,
    #[error("component response larger than {0} bytes")]
    ResponseTooLarge(u64),
    #[error("component busy, retry shortly")]
    Busy,
}

impl HostError {
    fn status(&self) -> StatusCode {
        match self {
            HostError::NoRoute => StatusCode::NOT_FOUND,
            HostError::BodyTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            HostError::Timeout => StatusCode::GATEWAY_TIMEOUT,
            HostError::GuestFailed => StatusCode::INTERNAL_SERVER_ERROR,
            HostError::Busy => StatusCode::SERVICE_UNAVAILABLE,
            HostError::ResponseTooLarge(_) => StatusCode::BAD_GATEWAY,
        }
    }

    fn into_response(self) -> Response<GuestBody> {
        let body = serde_json::json!({ "detail": self.to_string() }).to_string();
        let mut response = Response::new(full_body(Bytes::from(body)));
        *response.status_mut() = self.status();
        response.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if matches!(self, HostError::Busy) {
            response.headers_mut().insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

fn full_body(bytes: Bytes) -> GuestBody {
    Full::new(bytes).map_err(|never: Infallible| match never {}).boxed_unsync()
}

/// Every component compiled and linked, or every problem found doing so,
/// one line each naming the component, its file and the cause.
pub fn link_components(
    engine: &Engine,
    components: &BTreeMap<String, ComponentConfig>,
) -> Result<BTreeMap<String, Handler>, Vec<String>> {
    let linker = match new_linker(engine) {
        Ok(linker) => linker,
        Err(e) => return Err(vec![format!("the host's own interfaces do not link: {e:#}")]),
    };
    let mut handlers = BTreeMap::new();
    let mut problems = Vec::new();
    for (name, config) in components {
        let started = std::time::Instant::now();
        match link_component(engine, &linker, config) {
            Ok(handler) => {
                tracing::info!(component = %name, generation = handler.generation(), elapsed = ?started.elapsed(), "component compiled");
                handlers.insert(name.clone(), handler);
            }
            Err(problem) => problems.push(format!("component `{name}` ({}): {problem}", config.file.display())),
        }
    }
    if problems.is_empty() { Ok(handlers) } else { Err(problems) }
}

fn new_linker(engine: &Engine) -> wasmtime::Result<Linker<RequestState>> {
    let mut linker = Linker::<RequestState>::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    wasmtime_wasi::p3::add_to_linker(&mut linker)?;
    wasmtime_wasi_http::p3::add_to_linker(&mut linker)?;
    postgres::add_to_linker(&mut linker, |s| PostgresView { table: &mut s.table, databases: &mut s.databases })?;
    variables::add_to_linker(&mut linker, |s| VariablesView { values: &s.variables })?;
    key_value::add_to_linker(&mut linker, |s| KeyValueView { table: &mut s.table, stores: &mut s.stores })?;
    Ok(linker)
}

fn link_component(engine: &Engine, linker: &Linker<RequestState>, config: &ComponentConfig) -> Result<Handler, String> {
    let bytes = std::fs::read(&config.file).map_err(|e| format!("cannot read the file: {e}"))?;
    match bytes.get(..8) {
        Some([0, b'a', b's', b'm', 1, 0, 0, 0]) => {
            return Err("a core WebAssembly module, not a component: build it for wasm32-wasip2".into());
        }
        Some([0, b'a', b's', b'm', ..]) => {}
        _ => return Err("not a WebAssembly file".into()),
    }
    let component = Component::new(engine, &bytes).map_err(|e| format!("cannot compile: {e}"))?;
    let missing = crate::imports::unprovided_imports(engine, &component);
    if !missing.is_empty() {
        return Err(missing.join("; "));
    }
    let pre = linker.instantiate_pre(&component).map_err(|e| format!("cannot be linked: {e:#}"))?;
    Handler::new(&component, pre)
}

impl Runtime {
    /// The engine every component runs on. With `compile_cache`, compiled
    /// code is kept on disk, keyed by the component's bytes and the engine's
    /// settings, so a restart with unchanged components compiles nothing.
    pub fn new_engine(manifest: &Manifest) -> wasmtime::Result<Engine> {
        let mut config = Config::new();
        config.epoch_interruption(true);
        config.wasm_component_model_async(true);
        if manifest.server.instance_allocation == InstanceAllocation::Pooling {
            config.allocation_strategy(pooling(manifest));
        }
        if let Some(dir) = manifest.server.compile_cache.as_deref() {
            std::fs::create_dir_all(dir)?;
            let dir = std::path::absolute(dir)?;
            let mut cache = wasmtime::CacheConfig::new();
            cache.with_directory(dir);
            config.cache(Some(wasmtime::Cache::new(cache)?));
        }
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

    /// Compiles and links every component; fails listing every component
    /// that does not export an HTTP handler or imports what the host lacks.
    pub fn new(
        engine: Engine,
        manifest: &Manifest,
        pools: &BTreeMap<String, sqlx::PgPool>,
        env: impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Self> {
        let limits = manifest.limits.clone();
        let handlers =
            link_components(&engine, &manifest.component).map_err(|problems| anyhow::anyhow!(problems.join("\n")))?;
        let known_stores: Vec<String> = manifest.key_value_store.keys().cloned().collect();
        let any_low = manifest.component.values().any(|c| c.priority == Priority::Low);
        let low_priority_pools = if any_low { executor::low_priority_pools(pools) } else { BTreeMap::new() };
        let mut services = Vec::new();
        for (name, config) in &manifest.component {
            let (pools, executor) = match config.priority {
                Priority::Normal => (pools, None),
                Priority::Low => (&low_priority_pools, Some(executor::low_priority().clone())),
            };
            let grants =
                DatabaseGrants::new(config.databases.iter().map(|db| (db.clone(), pools[db].clone())).collect());
            let stores = config
                .key_value_stores
                .iter()
                .map(|label| (label.clone(), pools[&manifest.key_value_store[label].database].clone()))
                .collect();
            let stores = StoreGrants::new(stores, known_stores.clone());
            let variables = Arc::new(config.resolve_variables(name, &env)?);
            let route = RoutePattern::parse(&config.route).map_err(|e| anyhow::anyhow!("component `{name}`: {e}"))?;
            let allowed_hosts = AllowedHosts::parse(&config.allowed_outbound_hosts)
                .map_err(|e| anyhow::anyhow!("component `{name}`: {e}"))?;
            tracing::info!(component = %name, route = %config.route, "component ready");
            services.push(Arc::new(Service {
                name: name.as_str().into(),
                route,
                handler: handlers[name].reusing(config.warm_instances.unwrap_or(limits.warm_instances)),
                grants,
                stores,
                variables,
                environment: config.environment.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                allowed_hosts: Arc::new(allowed_hosts),
                memory_bytes: config.memory_bytes.unwrap_or(limits.memory_bytes),
                slots: Arc::new(tokio::sync::Semaphore::new(
                    config.max_concurrent_requests.unwrap_or(limits.max_concurrent_requests),
                )),
                timeout_ms: config.timeout_ms.unwrap_or(limits.timeout_ms),
                db_connections: config.db_connections_per_request.unwrap_or(limits.db_connections_per_request),
                max_response_bytes: config.max_response_bytes.unwrap_or(limits.max_response_bytes),
                executor,
            }));
        }
        let key_env = &manifest.server.identity_key_env;
        let key = env(key_env);
        let identity = IdentityVerifier::new(key.as_deref().map(str::as_bytes))
            .ok_or_else(|| anyhow::anyhow!("the identity key in {key_env} is shorter than 32 bytes"))?;
        if !identity.has_key() {
            tracing::warn!("{key_env} is not set: no request will carry a user's identity to a component");
        }
        let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_concurrent_requests));
        let metrics = Arc::new(Metrics::new(manifest.component.keys().map(String::as_str)));
        Ok(Self {
            identity,
            metrics,
            pools: pools.clone(),
            low_priority_pools,
            draining: Default::default(),
            engine,
            services,
            limits,
            slots,
            received: AtomicU64::new(0),
            own_listeners: Arc::default(),
        })
    }

    /// How many requests reached this runtime.
    pub fn requests_received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// Ready for traffic: not shutting down, and every database answers
    /// within a second (components are loaded before the runtime exists).
    pub async fn ready(&self) -> Result<(), String> {
        if self.draining.load(Ordering::Relaxed) {
            return Err("shutting down".into());
        }
        for (name, pool) in &self.pools {
            let ping = sqlx::query("SELECT 1").execute(pool);
            match tokio::time::timeout(Duration::from_secs(1), ping).await {
                Ok(Ok(_)) => {}
                _ => return Err(format!("database `{name}` does not answer")),
            }
        }
        Ok(())
    }

    /// From now on, say not ready (requests in flight still finish).
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// The counters in Prometheus' text format.
    pub fn metrics_text(&self) -> String {
        let pools = [(Priority::Normal, &self.pools), (Priority::Low, &self.low_priority_pools)];
        let gauges: Vec<_> = pools
            .into_iter()
            .flat_map(|(priority, pools)| {
                pools.iter().map(move |(name, p)| PoolGauge {
                    database: name.clone(),
                    priority,
                    size: p.size(),
                    idle: p.num_idle(),
                })
            })
            .collect();
        self.metrics.render(&gauges)
    }

    /// Closes the database pools, once no request uses this runtime.
    pub async fn close_pools(&self) {
        for pool in self.pools.values().chain(self.low_priority_pools.values()) {
            pool.close().await;
        }
    }

    /// Records an address the host listens on, which guests may not call.
    pub fn add_own_listener(&self, addr: SocketAddr) {
        self.own_listeners.add(addr);
    }

    /// Serves one request: the host's own answers (no route, body too large,
    /// guest failure) are JSON `{"detail": ...}` like the services' own.
    pub async fn handle<B>(&self, req: Request<B>, client: Option<SocketAddr>) -> Response<GuestBody>
    where
        B: hyper::body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        self.received.fetch_add(1, Ordering::Relaxed);
        let started = std::time::Instant::now();
        let Some((service, matched)) =
            routes::best_match(self.services.iter().map(|s| (&s.route, s)), req.uri().path())
                .map(|(_, service, matched)| (service, matched))
        else {
            self.metrics.unrouted();
            return HostError::NoRoute.into_response();
        };
        let response = match self.try_handle(service, matched, req, client).await {
            Ok(response) => response,
            Err(e) => e.into_response(),
        };
        self.metrics.observe(&service.name, response.status().as_u16(), started.elapsed());
        response
    }

    async fn try_handle<B>(
        &self,
        service: &Arc<Service>,
        matched: routes::RouteMatch,
        req: Request<B>,
        client: Option<SocketAddr>,
    ) -> Result<Response<GuestBody>, HostError>
    where
        B: hyper::body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let limit = self.limits.max_body_bytes;
        let declared =
            req.headers().get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit) {
            return Err(HostError::BodyTooLarge(limit));
        }
        let (mut parts, body) = req.into_parts();
        let path_and_query = parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
        if self.identity.admit(parts.method.as_str(), &path_and_query, &mut parts.headers) == Verdict::Refused {
            tracing::warn!(method = %parts.method, path = %parts.uri.path(), "identity headers without a valid proof removed");
        }
        let host =
            parts.headers.get(http::header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("localhost").to_owned();
        let full_url = format!("http://{host}{path_and_query}");
        routes::set_spin_headers(
            &mut parts.headers,
            &service.route,
            &matched,
            &RequestFacts { full_url: &full_url, client_addr: client },
        );
        // WASIp3 takes the authority from the URI only; WASIp2 from `Host`.
        if let Ok(uri) = full_url.parse() {
            parts.uri = uri;
        }
        // The body is streamed to the guest; past the limit, its reads fail.
        let body = Limited::new(body, limit as usize)
            .map_err(move |e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    wasmtime_wasi_http::Error::HttpRequestBodySize(Some(limit))
                } else {
                    wasmtime_wasi_http::Error::HttpProtocolError
                }
            })
            .boxed_unsync();
        let req: Request<GuestRequestBody> = Request::from_parts(parts, body);

        // Over a limit, the answer is at once a 503 to retry, never a wait
        // without end.
        let component_slot = service.slots.clone().try_acquire_owned().map_err(|_| HostError::Busy)?;
        let host_slot = self.slots.clone().try_acquire_owned().map_err(|_| HostError::Busy)?;
        // The proxy's request id (kept only when its proof held) ties the
        // host's lines to the proxy's.
        let request_id = req.headers().get("x-gatehouse-request-id").and_then(|v| v.to_str().ok()).unwrap_or("-");
        let span = tracing::info_span!("guest", component = %service.name, request_id = %request_id);
        self.run_guest(service, req, (component_slot, host_slot)).instrument(span).await
    }

    async fn run_guest(
        &self,
        service: &Arc<Service>,
        req: Request<GuestRequestBody>,
        slots: impl Send + 'static,
    ) -> Result<Response<GuestBody>, HostError> {
        let budget = Duration::from_millis(service.timeout_ms);
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let (recipe, engine, own) = (service.clone(), self.engine.clone(), self.own_listeners.clone());
        let new_store = move || recipe.new_store(&engine, own);
        let (metrics, component) = (self.metrics.clone(), service.name.clone());
        let instantiated = move || metrics.instantiated(&component);
        let task =
            service.handler.spawn(service.executor.as_ref(), new_store, instantiated, req, budget, sender, slots);

        match receiver.await {
            Ok(Ok(response)) => {
                let limit = service.max_response_bytes;
                let declared = response
                    .headers()
                    .get(http::header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
                if let Some(declared) = declared.filter(|n| *n > limit) {
                    // Nothing has gone yet: answer for the guest, and stop it.
                    task.abort();
                    tracing::warn!(declared, limit, "component declared a response larger than it may send");
                    self.metrics.failed(&service.name, Failure::ResponseTooLarge);
                    return Err(HostError::ResponseTooLarge(limit));
                }
                // A guest that fails after its response head has gone must
                // not pass for a clean answer: its body ends with an error
                // (the connection is cut), and the failure is logged here.
                let (guest_ok, outcome) = tokio::sync::oneshot::channel();
                let span = tracing::Span::current();
                let budget_ms = service.timeout_ms;
                let (metrics, component) = (self.metrics.clone(), service.name.clone());
                tokio::spawn(
                    async move {
                        let ok = match task.await {
                            Ok(Ok(())) => true,
                            Ok(Err(e)) => {
                                metrics.failed(&component, Failure::AfterHead);
                                tracing::warn!(error = %describe(&e, budget_ms), "guest failed after sending its response head");
                                false
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, "guest task failed after sending its response head");
                                false
                            }
                        };
                        let _ = guest_ok.send(ok);
                    }
                    .instrument(span),
                );
                let (metrics, component) = (self.metrics.clone(), service.name.clone());
                let overflow = move || {
                    tracing::warn!(limit, "component response cut: larger than it may send");
                    metrics.failed(&component, Failure::ResponseTooLarge);
                };
                let span = tracing::Span::current();
                Ok(response.map(|body| {
                    CompletedBody::new(body, outcome, limit, Box::new(move || span.in_scope(overflow))).boxed_unsync()
                }))
            }
            Ok(Err(GuestOutcome::ErrorCode(code))) => {
                tracing::warn!(error = %code, "guest answered with an error code");
                self.metrics.failed(&service.name, Failure::ErrorCode);
                Err(HostError::GuestFailed)
            }
            Ok(Err(GuestOutcome::NoResponse)) | Err(_) => {
                let failure = guest_failure(task.await, service.timeout_ms);
                let kind = if matches!(failure, HostError::Timeout) { Failure::Timeout } else { Failure::Trap };
                self.metrics.failed(&service.name, kind);
                Err(failure)
            }
        }
    }
}

/// Instance slots made ahead of time, sized from the manifest: one per
/// request the host may run at once (and a few spare), each memory slot as
/// large as the largest component may grow. An instance then costs no
/// `mmap`, and its memory starts as a copy-on-write image of the
/// component's initial data instead of being written afresh.
fn pooling(manifest: &Manifest) -> wasmtime::InstanceAllocationStrategy {
    let limits = &manifest.limits;
    // Requests at once, the idle WASIp3 instances kept warm, and a few spare.
    let warm: usize = manifest.component.values().map(|c| c.warm_instances.unwrap_or(limits.warm_instances)).sum();
    let instances =
        u32::try_from(limits.max_concurrent_requests.saturating_add(warm)).unwrap_or(u32::MAX).saturating_add(8);
    let largest_memory = manifest
        .component
        .values()
        .map(|c| c.memory_bytes.unwrap_or(limits.memory_bytes))
        .max()
        .unwrap_or(limits.memory_bytes);
    let mut pool = wasmtime::PoolingAllocationConfig::new();
    // A component built by the usual toolchains is a handful of core
    // instances (the program, the WASI adapter, shims), each with at most
    // one memory and a table or two.
    pool.total_component_instances(instances)
        .total_core_instances(instances.saturating_mul(CORE_INSTANCES_PER_COMPONENT))
        .max_core_instances_per_component(CORE_INSTANCES_PER_COMPONENT)
        .total_memories(instances.saturating_mul(2))
        .max_memories_per_component(2)
        .total_tables(instances.saturating_mul(4))
        .max_tables_per_component(4)
        // WASIp3 guests run their tasks on fibers: a few stacks each.
        .total_stacks(instances.saturating_mul(4))
        .max_memory_size(largest_memory)
        .max_core_instance_size(1 << 20)
        .max_component_instance_size(1 << 20);
    // A slot given back keeps its pages (reset in place) rather than
    // having them unmapped and faulted in again by the next instance; with
    // Linux's PAGEMAP_SCAN (6.7 or later) only the pages used are reset.
    // Measured with `gatehouse-hostbench`: about 40% less CPU per request.
    pool.linear_memory_keep_resident(2 << 20)
        .table_keep_resident(64 << 10)
        .async_stack_keep_resident(64 << 10)
        .pagemap_scan(wasmtime::Enabled::Auto);
    wasmtime::InstanceAllocationStrategy::Pooling(pool)
}

const CORE_INSTANCES_PER_COMPONENT: u32 = 16;

/// Explains why a guest ended without answering.
fn guest_failure(joined: Result<wasmtime::Result<()>, tokio::task::JoinError>, budget_ms: u64) -> HostError {
    match joined {
        Ok(Ok(())) => {
            tracing::error!("guest returned without setting a response");
            HostError::GuestFailed
        }
        Ok(Err(e)) => {
            if let Some(wasmtime::Trap::Interrupt) = e.downcast_ref::<wasmtime::Trap>() {
                tracing::warn!(budget_ms, "guest stopped at the end of its time budget");
                return HostError::Timeout;
            }
            tracing::warn!(error = ?e, "guest trapped");
            HostError::GuestFailed
        }
        Err(e) => {
            tracing::error!(error = %e, "guest task failed");
            HostError::GuestFailed
        }
    }
}

fn describe(e: &wasmtime::Error, budget_ms: u64) -> String {
    match e.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::Interrupt) => format!("ran past its time budget of {budget_ms} ms"),
        _ => format!("{e:#}"),
    }
}
