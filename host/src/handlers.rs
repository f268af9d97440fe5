//! The two generations of HTTP components, each run its own way:
//! `wasi:http/incoming-handler@0.2` (WASIp2, spin-sdk 5 and plain
//! wasi-http) and `wasi:http/handler@0.3` (WASIp3, spin-sdk 7's
//! `#[http_service]`). Which one a component is comes from what it exports.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use wasmtime::Store;
use wasmtime::component::{Component, InstancePre};
use wasmtime_wasi_http::WasiHttpView as _;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::p3::bindings::{Service, ServicePre};

use crate::runtime::RequestState;

pub const P2_EXPORT: &str = "wasi:http/incoming-handler@0.2.0";
pub const P3_EXPORT: &str = "wasi:http/handler@0.3.0";

/// A component pre-instantiated for the handler it exports.
#[derive(Clone)]
pub enum Handler {
    /// A fresh instance for every request, as WASIp2 expects.
    P2(ProxyPre<RequestState>),
    /// WASIp3: instances may serve one request after another.
    P3(P3Handler),
}

/// A WASIp3 component and the instances kept warm for it. An instance
/// serves one request at a time; when it ends cleanly, having given back
/// every connection and store the host lent it, it waits for the next
/// request. One that trapped, ran out of time or kept a connection is
/// dropped, and the next request gets a fresh instance.
#[derive(Clone)]
pub struct P3Handler {
    pre: ServicePre<RequestState>,
    warm: Arc<Mutex<Vec<WarmInstance>>>,
    /// Idle instances kept at most; 0 makes every request instantiate.
    keep: usize,
}

struct WarmInstance {
    store: Store<RequestState>,
    service: Service,
}

impl P3Handler {
    fn take(&self) -> Option<WarmInstance> {
        if self.keep == 0 {
            return None;
        }
        self.warm.lock().unwrap_or_else(|e| e.into_inner()).pop()
    }

    fn give_back(&self, instance: WarmInstance) {
        let mut warm = self.warm.lock().unwrap_or_else(|e| e.into_inner());
        if warm.len() < self.keep {
            warm.push(instance);
        }
    }
}

/// How a guest's run ended, if not with a response.
pub enum GuestOutcome {
    /// The guest answered with a `wasi:http` error code instead of a response.
    ErrorCode(String),
    /// The guest returned without answering.
    NoResponse,
}

pub type GuestBody = HyperOutgoingBody;

impl Handler {
    /// Picks the handler a component exports (the linker matches any
    /// compatible 0.2.x or 0.3.x version).
    pub fn new(component: &Component, pre: InstancePre<RequestState>) -> Result<Self, String> {
        if component.get_export_index(None, P3_EXPORT).is_some() {
            return ServicePre::new(pre)
                .map(|pre| Handler::P3(P3Handler { pre, warm: Arc::default(), keep: 0 }))
                .map_err(|e| format!("{P3_EXPORT}: {e:#}"));
        }
        if component.get_export_index(None, P2_EXPORT).is_some() {
            return ProxyPre::new(pre).map(Handler::P2).map_err(|e| format!("{P2_EXPORT}: {e:#}"));
        }
        Err(format!("exports neither `{P2_EXPORT}` (WASIp2) nor `{P3_EXPORT}` (WASIp3): not an HTTP component"))
    }

    /// This handler with up to `keep` idle WASIp3 instances kept for
    /// reuse, in a pool of its own.
    pub fn reusing(&self, keep: usize) -> Self {
        match self {
            Handler::P2(pre) => Handler::P2(pre.clone()),
            Handler::P3(p3) => Handler::P3(P3Handler { pre: p3.pre.clone(), warm: Arc::default(), keep }),
        }
    }

    pub fn generation(&self) -> &'static str {
        match self {
            Handler::P2(_) => "wasip2",
            Handler::P3(_) => "wasip3",
        }
    }

    /// Runs the guest on `req` in its own task (holding `slots` until it
    /// ends), on `executor` or else the current runtime, so it can keep
    /// writing the body after the head of its response is sent. `answer` gets the response, or why there is none;
    /// the task's own result says how the guest ended (a trap after the head
    /// is only seen there). A new instance lives in a store from
    /// `new_store`, and `instantiated` is called when one is made.
    #[allow(clippy::too_many_arguments)]
    pub fn spawn(
        &self,
        executor: Option<&tokio::runtime::Handle>,
        new_store: impl FnOnce() -> Store<RequestState> + Send + 'static,
        instantiated: impl FnOnce() + Send + 'static,
        req: Request<GuestRequestBody>,
        budget: Duration,
        answer: Answer,
        slots: impl Send + 'static,
    ) -> tokio::task::JoinHandle<wasmtime::Result<()>> {
        let handler = self.clone();
        // The guest's host calls log inside the request's span.
        let span = tracing::Span::current();
        let task = tracing::Instrument::instrument(
            async move {
                // The request's concurrency slots are held until the guest has
                // ended, body and all, not just until its response head.
                let _slots = slots;
                match handler {
                    Handler::P2(pre) => {
                        let mut store = new_store();
                        instantiated();
                        within(budget, run_p2(&pre, &mut store, req, answer)).await
                    }
                    Handler::P3(p3) => p3.serve(new_store, instantiated, req, budget, answer).await,
                }
            },
            span,
        );
        match executor {
            Some(executor) => executor.spawn(task),
            None => tokio::spawn(task),
        }
    }
}

/// Where the guest's response, or why there is none, goes.
pub type Answer = tokio::sync::oneshot::Sender<Result<Response<GuestBody>, GuestOutcome>>;

/// `run`'s result, or an interrupt if it takes longer than `budget`.
async fn within<T>(budget: Duration, run: impl Future<Output = wasmtime::Result<T>>) -> wasmtime::Result<T> {
    tokio::time::timeout(budget, run).await.unwrap_or_else(|_| Err(wasmtime::Trap::Interrupt.into()))
}

impl P3Handler {
    /// Serves one request in a warm instance if one is idle, else in a new
    /// one, and keeps the instance for the next request if it may serve
    /// again.
    async fn serve(
        &self,
        new_store: impl FnOnce() -> Store<RequestState>,
        instantiated: impl FnOnce(),
        req: Request<GuestRequestBody>,
        budget: Duration,
        answer: Answer,
    ) -> wasmtime::Result<()> {
        let (mut store, warm) = match self.take() {
            Some(warm) => (warm.store, Some(warm.service)),
            None => (new_store(), None),
        };
        let run = async {
            let service = match warm {
                Some(service) => service,
                None => {
                    instantiated();
                    self.pre.instantiate_async(&mut store).await?
                }
            };
            run_p3(&service, &mut store, req, answer).await?;
            Ok(service)
        };
        let service = within(budget, run).await?;
        // Only an instance that holds nothing of the host's serves again.
        if !store.data().holds_host_resources() {
            self.give_back(WarmInstance { store, service });
        }
        Ok(())
    }
}

/// The request body as the guest reads it: streamed, bounded by the limit.
pub type GuestRequestBody = http_body_util::combinators::UnsyncBoxBody<Bytes, wasmtime_wasi_http::Error>;

async fn run_p2(
    pre: &ProxyPre<RequestState>,
    store: &mut Store<RequestState>,
    req: Request<GuestRequestBody>,
    answer: Answer,
) -> wasmtime::Result<()> {
    let (sender, receiver) = tokio::sync::oneshot::channel();
    let guest_req = store.data_mut().http().new_incoming_request(Scheme::Http, req)?;
    let out = store.data_mut().http().new_response_outparam(sender)?;
    let proxy = pre.instantiate_async(&mut *store).await?;
    // The guest sets its response through the outparam, possibly long
    // before it returns: pass it on as soon as it is set. If the guest ends
    // without setting one, the store goes and the outparam with it.
    tokio::spawn(async move {
        let result = match receiver.await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(code)) => Err(GuestOutcome::ErrorCode(format!("{code:?}"))),
            Err(_) => Err(GuestOutcome::NoResponse),
        };
        let _ = answer.send(result);
    });
    proxy.wasi_http_incoming_handler().call_handle(&mut *store, guest_req, out).await
}

async fn run_p3(
    service: &Service,
    store: &mut Store<RequestState>,
    req: Request<GuestRequestBody>,
    answer: Answer,
) -> wasmtime::Result<()> {
    let (guest_req, request_io) = wasmtime_wasi_http::p3::Request::from_http(&mut store.data_mut().outbound, req);
    store
        .run_concurrent(async move |accessor| -> wasmtime::Result<()> {
            match service.handle(accessor, guest_req).await? {
                Err(code) => {
                    let _ = answer.send(Err(GuestOutcome::ErrorCode(format!("{code:?}"))));
                }
                Ok(response) => {
                    let response = accessor.with(|access| response.into_http(access, request_io))?;
                    let _ = answer.send(Ok(response));
                    // The guest may still be writing the body: keep its
                    // tasks running until they are all done.
                    std::future::poll_fn(|cx| accessor.poll_no_interesting_tasks(cx)).await;
                }
            }
            Ok(())
        })
        .await?
}

/// A guest's response body that ends cleanly only if the guest did: when
/// the body's last frame has gone, it waits for the guest's outcome and
/// turns a failure into an error, so hyper cuts the connection (or leaves
/// the chunked body unterminated) instead of passing a truncated answer off
/// as complete. A body longer than `limit` is cut the same way.
pub struct CompletedBody {
    inner: GuestBody,
    guest_ok: Option<tokio::sync::oneshot::Receiver<bool>>,
    /// Bytes the body may still carry.
    remaining: u64,
    /// Called once if the body runs past its limit.
    overflow: Option<Box<dyn FnOnce() + Send>>,
}

impl CompletedBody {
    pub fn new(
        inner: GuestBody,
        guest_ok: tokio::sync::oneshot::Receiver<bool>,
        limit: u64,
        overflow: Box<dyn FnOnce() + Send>,
    ) -> Self {
        Self { inner, guest_ok: Some(guest_ok), remaining: limit, overflow: Some(overflow) }
    }
}

impl hyper::body::Body for CompletedBody {
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        use std::task::Poll;
        let this = &mut *self;
        if this.overflow.is_none() {
            return Poll::Ready(None);
        }
        match std::pin::Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(None) => {}
            Poll::Ready(Some(Ok(frame))) => {
                let len = frame.data_ref().map_or(0, |d| d.len() as u64);
                if len > this.remaining {
                    if let Some(overflow) = this.overflow.take() {
                        overflow();
                    }
                    return Poll::Ready(Some(Err(wasmtime_wasi_http::Error::HttpResponseIncomplete)));
                }
                this.remaining -= len;
                return Poll::Ready(Some(Ok(frame)));
            }
            other => return other,
        }
        let Some(guest_ok) = &mut this.guest_ok else { return Poll::Ready(None) };
        let ok = std::task::ready!(std::pin::Pin::new(guest_ok).poll(cx)).unwrap_or(false);
        this.guest_ok = None;
        if ok { Poll::Ready(None) } else { Poll::Ready(Some(Err(wasmtime_wasi_http::Error::HttpResponseIncomplete))) }
    }

    fn is_end_stream(&self) -> bool {
        self.overflow.is_none() || (self.guest_ok.is_none() && self.inner.is_end_stream())
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}
