//! Downstream connections: how many may be open (in all, and per client
//! IP), and how long a client may take to send a request head. Pingora
//! times each read on its own, so a client sending a byte every few seconds
//! would otherwise hold its connection forever.
//!
//! [`EdgeApp`] wraps the proxy application: it refuses connections over
//! the caps, and wraps each stream in a [`GuardedStream`] whose reads fail
//! once the connection's deadline has passed. The deadline is armed at
//! accept, disarmed by the proxy once a head is read, and armed again when
//! a response is done, for the next request on the connection. Each time it
//! is armed, the stream holds the next head back until it is whole and
//! passes the head gate (`headgate.rs`).

use std::collections::HashMap;
use std::fmt;
use std::future::Future as _;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
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

use crate::framing::HeadLimits;
use crate::headgate::{self, Scan};

/// The connection limits, from `[limits]`.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    /// From accept (or the end of the previous response) to a complete head.
    pub header_timeout: Duration,
    /// How long a kept-alive connection may wait for its next request.
    pub idle_timeout: Duration,
    pub head: HeadLimits,
}

/// When a connection's current head must be complete, if it is being read,
/// and how many heads have been awaited on the connection.
#[derive(Debug, Default)]
pub struct HeadDeadline {
    at: Mutex<(Option<Instant>, u64)>,
}

impl HeadDeadline {
    fn arm(&self, at: Instant) {
        let mut state = self.at.lock().unwrap();
        *state = (Some(at), state.1 + 1);
    }

    fn disarm(&self) {
        self.at.lock().unwrap().0 = None;
    }

    fn get(&self) -> Option<Instant> {
        self.at.lock().unwrap().0
    }

    /// The number of the head being awaited, while one is.
    fn awaited_head(&self) -> Option<u64> {
        let state = self.at.lock().unwrap();
        state.0.map(|_| state.1)
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

    /// Client connections open now.
    pub fn open_connections(&self) -> usize {
        self.per_ip.lock().unwrap().values().sum()
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
    /// At shutdown, how long idle keep-alive connections stay open for a
    /// last request, answered with `Connection: close`.
    linger: std::time::Duration,
    /// Whether plaintext connections may speak HTTP/2 (prior knowledge).
    h2c: bool,
}

impl<A> EdgeApp<A> {
    pub fn new(
        inner: A,
        limits: ConnectionLimits,
        registry: Arc<ConnectionRegistry>,
        linger: std::time::Duration,
        h2c: bool,
    ) -> Self {
        let slots = Arc::new(Semaphore::new(limits.max_connections));
        Self { inner: Arc::new(inner), limits, registry, slots, linger, h2c }
    }

    /// Whether `stream` speaks HTTP/2: chosen in the TLS handshake, or, with
    /// h2c, opened with HTTP/2's preface (awaited no longer than a head).
    /// `None` when the client sent nothing in time.
    async fn is_h2(&self, stream: &mut Stream) -> Option<bool> {
        if stream.get_ssl_digest().is_some() {
            return Some(matches!(stream.selected_alpn_proto(), Some(pingora::protocols::ALPN::H2)));
        }
        if !self.h2c {
            return Some(false);
        }
        const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
        let mut start = [0u8; PREFACE.len()];
        match tokio::time::timeout(self.limits.header_timeout, stream.try_peek(&mut start)).await {
            Ok(Ok(peeked)) => Some(peeked && start == PREFACE),
            Ok(Err(_)) | Err(_) => None,
        }
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
        let mut stream = stream;
        // HTTP/2 frames its own heads, within the limits its settings
        // announce; the head gate and deadline are HTTP/1's.
        match self.is_h2(&mut stream).await {
            None => return None,
            Some(true) => return self.inner.process_new(stream, shutdown).await,
            Some(false) => {}
        }
        let deadline = Arc::new(HeadDeadline::default());
        deadline.arm(Instant::now() + self.limits.header_timeout);
        self.registry.deadlines.lock().unwrap().insert(peer, deadline.clone());
        let guarded: Stream = Box::new(GuardedStream::new(stream, deadline, self.limits.head));
        // Pingora hands back a reusable stream only to the listener's own
        // loop; ours runs the whole connection, so nothing comes back here.
        let result = self.inner.process_new(guarded, shutdown).await;
        self.registry.deadlines.lock().unwrap().remove(&peer);
        result
    }

    /// The listener is closed: new connections go to whoever holds the
    /// socket now (nobody after SIGTERM, the new proxy after an upgrade).
    /// Requests on open connections are still answered, and told to close
    /// it, for a moment; then the idle ones are closed.
    async fn cleanup(&self) {
        tokio::time::sleep(self.linger).await;
        self.inner.cleanup().await;
    }
}

/// A downstream stream whose reads fail once its head deadline passes, and
/// which holds each head back until the head gate has passed it.
pub struct GuardedStream {
    inner: Stream,
    deadline: Arc<HeadDeadline>,
    /// Wakes a pending read at the deadline; rebuilt when the deadline moves.
    timer: Option<(Instant, Pin<Box<tokio::time::Sleep>>)>,
    head_limits: HeadLimits,
    gate: Gate,
    /// The last head the gate looked at, by [`HeadDeadline::awaited_head`].
    gated_head: u64,
}

/// Where the stream is in the current request's head.
enum Gate {
    /// Between heads: bytes go straight through.
    Open,
    /// Collecting a head.
    Reading(Vec<u8>),
    /// Handing the gated head (and what followed it) to the parser.
    Releasing(Bytes),
    /// Writing the refusal of a head; then the connection ends.
    Refusing {
        answer: Bytes,
    },
    Closed,
}

impl GuardedStream {
    fn new(inner: Stream, deadline: Arc<HeadDeadline>, head_limits: HeadLimits) -> Self {
        Self { inner, deadline, timer: None, head_limits, gate: Gate::Open, gated_head: 0 }
    }

    /// Reads from the client, failing once the head deadline has passed.
    fn poll_read_timed(&mut self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let Some(deadline) = self.deadline.get() else {
            self.timer = None;
            return Pin::new(&mut self.inner).poll_read(cx, buf);
        };
        let too_slow = || std::io::Error::new(std::io::ErrorKind::TimedOut, "request head too slow");
        if Instant::now() >= deadline {
            return Poll::Ready(Err(too_slow()));
        }
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(result) => Poll::Ready(result),
            Poll::Pending => {
                if self.timer.as_ref().is_none_or(|(at, _)| *at != deadline) {
                    let sleep = tokio::time::sleep_until(tokio::time::Instant::from_std(deadline));
                    self.timer = Some((deadline, Box::pin(sleep)));
                }
                let (_, timer) = self.timer.as_mut().expect("set above");
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(too_slow())),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl fmt::Debug for GuardedStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GuardedStream").field("inner", &self.inner).finish()
    }
}

impl AsyncRead for GuardedStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        loop {
            match &mut this.gate {
                Gate::Open => match this.deadline.awaited_head() {
                    Some(head) if head != this.gated_head => {
                        this.gated_head = head;
                        this.gate = Gate::Reading(Vec::new());
                    }
                    _ => return this.poll_read_timed(cx, buf),
                },
                Gate::Reading(received) => {
                    let mut chunk = [0u8; 4096];
                    let mut chunk_buf = ReadBuf::new(&mut chunk);
                    let mut received = std::mem::take(received);
                    let polled = this.poll_read_timed(cx, &mut chunk_buf);
                    let filled = chunk_buf.filled();
                    match polled {
                        Poll::Ready(Ok(())) if filled.is_empty() => {
                            // The client left before a whole head.
                            this.gate = Gate::Closed;
                        }
                        Poll::Ready(Ok(())) => {
                            received.extend_from_slice(filled);
                            this.gate = match headgate::scan_head(&received, &this.head_limits) {
                                Scan::NeedMore => Gate::Reading(received),
                                Scan::Complete(head) => Gate::Releasing(Bytes::from(head)),
                                Scan::Refused(e) => Gate::Refusing { answer: Bytes::from(headgate::refusal(&e)) },
                            };
                        }
                        other => {
                            this.gate = Gate::Reading(received);
                            return other;
                        }
                    }
                }
                Gate::Releasing(pending) => {
                    let n = pending.len().min(buf.remaining());
                    buf.put_slice(&pending.split_to(n));
                    if pending.is_empty() {
                        this.gate = Gate::Open;
                    }
                    return Poll::Ready(Ok(()));
                }
                Gate::Refusing { answer } => {
                    while !answer.is_empty() {
                        let written = std::task::ready!(Pin::new(&mut this.inner).poll_write(cx, answer))?;
                        if written == 0 {
                            break;
                        }
                        let _ = answer.split_to(written);
                    }
                    std::task::ready!(Pin::new(&mut this.inner).poll_flush(cx))?;
                    this.gate = Gate::Closed;
                }
                // End of stream: the parser sees a client that left.
                Gate::Closed => return Poll::Ready(Ok(())),
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

impl Ssl for GuardedStream {
    fn get_ssl(&self) -> Option<&pingora::protocols::tls::TlsRef> {
        self.inner.get_ssl()
    }

    fn get_ssl_digest(&self) -> Option<Arc<pingora::protocols::tls::SslDigest>> {
        self.inner.get_ssl_digest()
    }

    fn selected_alpn_proto(&self) -> Option<pingora::protocols::ALPN> {
        self.inner.selected_alpn_proto()
    }
}

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
