//! The HTTP/1.1 listener in front of the runtime, with graceful shutdown:
//! on shutdown it stops accepting and lets requests in flight finish; and
//! the admin listener, apart from guest traffic: `/healthz` (the process
//! serves), `/readyz` (databases answer, not shutting down) and `/metrics`.

use std::future::Future;
use std::sync::Arc;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::live::Live;

/// Serves until `shutdown` resolves, then stops accepting and gives the
/// requests in flight up to `grace` to finish; what is still running then
/// is cut.
pub async fn serve(
    live: Arc<Live>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
    grace: std::time::Duration,
) {
    if let Ok(addr) = listener.local_addr() {
        live.add_own_listener(addr);
    }
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // A response goes out as a head and body chunks: without this,
        // Nagle's algorithm holds the last small write for the client's
        // delayed ACK (some 40 ms).
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(%peer, error = %e, "cannot set TCP_NODELAY");
        }
        let live = live.clone();
        let service = service_fn(move |req| {
            // The runtime current now serves this request to its end.
            let runtime = live.current();
            async move { Ok::<_, std::convert::Infallible>(runtime.handle(req, Some(peer)).await) }
        });
        let conn = http1::Builder::new().keep_alive(true).serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tracing::info!(grace_seconds = grace.as_secs(), "shutting down: waiting for requests in flight");
    if tokio::time::timeout(grace, graceful.shutdown()).await.is_err() {
        tracing::warn!("grace period over: requests still in flight were cut");
    }
}

/// Serves the admin endpoints until `shutdown` resolves.
pub async fn serve_admin(live: Arc<Live>, listener: TcpListener, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "admin accept failed");
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let live = live.clone();
        let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
            let runtime = live.current();
            async move { Ok::<_, std::convert::Infallible>(admin(&runtime, req.uri().path()).await) }
        });
        tokio::spawn(async move {
            let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

async fn admin(runtime: &crate::Runtime, path: &str) -> http::Response<http_body_util::Full<bytes::Bytes>> {
    let (status, content_type, body) = match path {
        "/healthz" => (200, "text/plain", "ok\n".to_owned()),
        "/readyz" => match runtime.ready().await {
            Ok(()) => (200, "text/plain", "ready\n".to_owned()),
            Err(why) => (503, "application/json", serde_json::json!({ "detail": why }).to_string()),
        },
        "/metrics" => (200, "text/plain; version=0.0.4", runtime.metrics_text()),
        _ => (404, "application/json", serde_json::json!({ "detail": "Not Found" }).to_string()),
    };
    let mut response = http::Response::new(http_body_util::Full::new(bytes::Bytes::from(body)));
    *response.status_mut() = http::StatusCode::from_u16(status).expect("a valid status");
    response.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static(content_type));
    response
}
