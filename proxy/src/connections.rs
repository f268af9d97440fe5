//! Downstream connections: how many may be open (in all, and per client
//! IP), and how long a client may take to send a request head. Pingora
//! times each read on its own, so a client sending a byte every few seconds
//! would otherwise hold its connection forever.
//!
//! [`EdgeApp`] wraps the proxy application: it refuses connections over
//! the caps, and wraps each stream in a [`GuardedStream`] whose reads fail
//! once the connection's deadline has passed. The deadline is armed at
//! accept, disarmed by the proxy once a head is read, and armed again when
//! a response is done, for the next request on the connection.

use std::collections::HashMap;
use std::fmt;
use std::future::Future as _;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::protocols::l4::socket::SocketAddr as PingoraSocketAddr;
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl, Stream, TimingDigest,
    UniqueID, UniqueIDType,
};
use pingora::server::ShutdownWatch;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The connection limits, from `[limits]`.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    /// From accept (or the end of the previous response) to a complete head.
    pub header_timeout: Duration,
    /// How long a kept-alive connection may wait for its next request.
    pub idle_timeout: Duration,
}

/// When a connection's current head must be complete, if it is being read.
#[derive(Debug, Default)]
pub struct HeadDeadline {
    at: Mutex<Option<Instant>>,
}

impl HeadDeadline {
    fn arm(&self, at: Instant) {
        *self.at.lock().unwrap() = Some(at);
    }

    fn disarm(&self) {
        *self.at.lock().unwrap() = None;
    }

    fn get(&self) -> Option<Instant> {
        *self.at.lock().unwrap()
    }
}

/// The open connections, by client address, so the proxy's phases can
/// reach the deadline of the connection a request came on.
#[derive(Default)]
pub struct ConnectionRegistry {
    deadlines: Mutex<HashMap<SocketAddr, Arc<HeadDeadline>>>,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
}

impl ConnectionRegistry {
    /// The head has been read: the deadline no longer applies.
    pub fn head_received(&self, client: SocketAddr) {
        if let Some(deadline) = self.deadlines.lock().unwrap().get(&client) {
            deadline.disarm();
        }
    }

    /// The response is done: the next head must come within `within`.
    pub fn response_done(&self, client: SocketAddr, within: Duration) {
        if let Some(deadline) = self.deadlines.lock().unwrap().get(&client) {
            deadline.arm(Instant::now() + within);
        }
    }

    /// Counts a connection from `ip`, unless it already has `max` open.
    fn open(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<IpSlot> {
        let mut per_ip = self.per_ip.lock().unwrap();
        let count = per_ip.entry(ip).or_insert(0);
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(IpSlot { registry: self.clone(), ip })
    }
}

/// One connection counted against its IP; uncounted when dropped.
struct IpSlot {
    registry: Arc<ConnectionRegistry>,
    ip: IpAddr,
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut per_ip = self.registry.per_ip.lock().unwrap();
        if let Some(count) = per_ip.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                per_ip.remove(&self.ip);
            }
        }
    }
}

/// The proxy application behind the connection caps and head deadlines.
pub struct EdgeApp<A> {
    inner: Arc<A>,
    limits: ConnectionLimits,
    registry: Arc<ConnectionRegistry>,
    slots: Arc<Semaphore>,
}

impl<A> EdgeApp<A> {
    pub fn new(inner: A, limits: ConnectionLimits, registry: Arc<ConnectionRegistry>) -> Self {
        let slots = Arc::new(Semaphore::new(limits.max_connections));
        Self { inner: Arc::new(inner), limits, registry, slots }
    }
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for EdgeApp<A> {
    async fn process_new(self: &Arc<Self>, stream: Stream, shutdown: &ShutdownWatch) -> Option<Stream> {
        let peer = stream.get_socket_digest().and_then(|d| d.peer_addr().and_then(PingoraSocketAddr::as_inet).copied());
        let Some(peer) = peer else {
            return self.inner.process_new(stream, shutdown).await;
        };
        // Over a cap, the connection is closed unanswered: answering would
        // cost what the cap is there to save.
        let Ok(_slot): Result<OwnedSemaphorePermit, _> = self.slots.clone().try_acquire_owned() else {
            tracing::warn!(client = %peer.ip(), "connection refused: too many open connections");
            return None;
        };
        let Some(_ip_slot) = self.registry.open(peer.ip(), self.limits.max_connections_per_ip) else {
            tracing::warn!(client = %peer.ip(), "connection refused: too many open connections from this address");
            return None;
        };
        let deadline = Arc::new(HeadDeadline::default());
        deadline.arm(Instant::now() + self.limits.header_timeout);
        self.registry.deadlines.lock().unwrap().insert(peer, deadline.clone());
        let guarded: Stream = Box::new(GuardedStream { inner: stream, deadline, timer: None });
        // Pingora hands back a reusable stream only to the listener's own
        // loop; ours runs the whole connection, so nothing comes back here.
        let result = self.inner.process_new(guarded, shutdown).await;
        self.registry.deadlines.lock().unwrap().remove(&peer);
        result
    }

    async fn cleanup(&self) {
        self.inner.cleanup().await;
    }
}

/// A downstream stream whose reads fail once its head deadline passes.
pub struct GuardedStream {
    inner: Stream,
    deadline: Arc<HeadDeadline>,
    /// Wakes a pending read at the deadline; rebuilt when the deadline moves.
    timer: Option<(Instant, Pin<Box<tokio::time::Sleep>>)>,
}

impl fmt::Debug for GuardedStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GuardedStream").field("inner", &self.inner).finish()
    }
}

impl AsyncRead for GuardedStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        let Some(deadline) = this.deadline.get() else {
            this.timer = None;
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        };
        if Instant::now() >= deadline {
            return Poll::Ready(Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "request head too slow")));
        }
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(result) => Poll::Ready(result),
            Poll::Pending => {
                if this.timer.as_ref().is_none_or(|(at, _)| *at != deadline) {
                    let sleep = tokio::time::sleep_until(tokio::time::Instant::from_std(deadline));
                    this.timer = Some((deadline, Box::pin(sleep)));
                }
                let (_, timer) = this.timer.as_mut().expect("set above");
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        Poll::Ready(Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "request head too slow")))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl AsyncWrite for GuardedStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[async_trait]
impl Shutdown for GuardedStream {
    async fn shutdown(&mut self) {
        self.inner.shutdown().await
    }
}

impl UniqueID for GuardedStream {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for GuardedStream {}

impl GetTimingDigest for GuardedStream {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }
}

impl GetProxyDigest for GuardedStream {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_proxy_digest()
    }
}

impl GetSocketDigest for GuardedStream {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }
}

#[async_trait]
impl Peek for GuardedStream {
    async fn try_peek(&mut self, buf: &mut [u8]) -> std::io::Result<bool> {
        self.inner.try_peek(buf).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_ip_slots_are_counted_and_given_back() {
        let registry = Arc::new(ConnectionRegistry::default());
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let first = registry.open(ip, 2).unwrap();
        let second = registry.open(ip, 2).unwrap();
        assert!(registry.open(ip, 2).is_none(), "a third is over the cap");
        assert!(registry.open("192.0.2.2".parse().unwrap(), 2).is_some(), "other addresses are counted apart");
        drop(first);
        assert!(registry.open(ip, 2).is_some(), "a closed connection frees its slot");
        drop(second);
    }

    #[test]
    fn deadlines_follow_the_request_cycle() {
        let registry = ConnectionRegistry::default();
        let client: SocketAddr = "192.0.2.1:4000".parse().unwrap();
        let deadline = Arc::new(HeadDeadline::default());
        deadline.arm(Instant::now());
        registry.deadlines.lock().unwrap().insert(client, deadline.clone());
        registry.head_received(client);
        assert_eq!(deadline.get(), None);
        registry.response_done(client, Duration::from_secs(5));
        assert!(deadline.get().is_some_and(|at| at > Instant::now()));
    }
}
