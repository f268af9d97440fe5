//! The HTTP/1.1 listener in front of the runtime, with graceful shutdown:
//! on shutdown it stops accepting and lets requests in flight finish.

use std::future::Future;
use std::sync::Arc;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::runtime::Runtime;

/// Serves until `shutdown` resolves, then waits for open connections.
pub async fn serve(runtime: Arc<Runtime>, listener: TcpListener, shutdown: impl Future<Output = ()>) {
    if let Ok(addr) = listener.local_addr() {
        runtime.add_own_listener(addr);
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
        let runtime = runtime.clone();
        let service = service_fn(move |req| {
            let runtime = runtime.clone();
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
    tracing::info!("shutting down: waiting for requests in flight");
    graceful.shutdown().await;
}
