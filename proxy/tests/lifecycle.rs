//! The proxy's life cycle over real sockets: SIGTERM drains what is in
//! flight and exits, and a graceful upgrade hands the listening sockets to
//! a new process under load without refusing a connection or losing a
//! request.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use testkit::{NativeUpstream, ProxyProcess, SteadyLoad, test_jwks};

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_gatehouse-proxy"))
}

/// Sends one GET on `stream` and reads the whole answer (its length is
/// declared): the head and the body.
fn exchange(stream: &mut TcpStream, path: &str, close: bool) -> std::io::Result<(String, String)> {
    let connection = if close { "close" } else { "keep-alive" };
    write!(stream, "GET {path} HTTP/1.1\r\nHost: gatehouse.test\r\nConnection: {connection}\r\n\r\n")?;
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&received[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if received.len() >= end + 4 + length {
                let body = String::from_utf8_lossy(&received[end + 4..end + 4 + length]).into_owned();
                return Ok((head, body));
            }
        }
        match stream.read(&mut chunk)? {
            0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            n => received.extend_from_slice(&chunk[..n]),
        }
    }
}

fn connect(addr: SocketAddr) -> std::io::Result<TcpStream> {
    let stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    Ok(stream)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_what_is_in_flight_refuses_new_connections_and_exits_once_drained() {
    let upstream = NativeUpstream::start().await;
    let mut proxy = ProxyProcess::start_with(binary(), upstream.addr, &test_jwks(&[]), &[("drain_seconds", "30")]);
    let addr = proxy.addr;

    // A slow request in flight, and an idle keep-alive connection.
    let slow = std::thread::spawn(move || exchange(&mut connect(addr)?, "/guest/slow/1500", true));
    let mut idle = connect(addr).unwrap();
    let (head, _) = exchange(&mut idle, "/guest/first", false).unwrap();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    std::thread::sleep(Duration::from_millis(300));
    proxy.signal("TERM");

    // A request arriving on the idle connection just after is still
    // answered, and told to close it.
    std::thread::sleep(Duration::from_millis(200));
    let (head, body) = exchange(&mut idle, "/guest/second", false).expect("the idle connection's last request");
    assert!(head.starts_with("http/1.1 200") && body == "ok", "{head}");
    assert!(head.contains("connection: close"), "{head}");

    // New connections are refused: the listener is closed.
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Ok(mut stream) = connect(addr) {
        let _ = exchange(&mut stream, "/guest/late", true);
        assert!(Instant::now() < deadline, "still accepting connections after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }

    // The request in flight finishes; then the proxy leaves, well before
    // its 30 s drain time is up.
    let (head, body) = slow.join().unwrap().expect("the request in flight");
    assert!(head.starts_with("http/1.1 200") && body == "ok", "{head}");
    let status = proxy.wait_exit(Duration::from_secs(20)).expect("the proxy did not exit once drained");
    assert!(status.success(), "{status}\n{}", proxy.log());
    assert!(proxy.log().contains("drained: no client connection left"), "{}", proxy.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_upgrade_under_load_refuses_no_connection_and_loses_no_request() {
    let upstream = NativeUpstream::start().await;
    let mut old = ProxyProcess::start(binary(), upstream.addr, &test_jwks(&[]));
    let addr = old.addr;

    // Keep-alive clients, and a client opening a new connection a request.
    let load = SteadyLoad::start(&old.url("/guest/kept"), 4);
    let stop = Arc::new(AtomicBool::new(false));
    let fresh_ok = Arc::new(AtomicU64::new(0));
    let fresh = std::thread::spawn({
        let (stop, fresh_ok) = (stop.clone(), fresh_ok.clone());
        move || {
            let mut failures = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                match connect(addr).and_then(|mut s| exchange(&mut s, "/guest/fresh", true)) {
                    Ok((head, _)) if head.starts_with("http/1.1 200") => {
                        fresh_ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok((head, _)) => failures.push(head.lines().next().unwrap_or_default().to_owned()),
                    Err(e) => failures.push(e.to_string()),
                }
            }
            failures
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let served_before = fresh_ok.load(Ordering::Relaxed);

    let new = old.upgrade();
    let status = tokio::task::spawn_blocking(move || (old.wait_exit(Duration::from_secs(60)), old)).await.unwrap();
    let (status, old) = status;
    let status = status.expect("the old proxy did not exit after the upgrade");
    assert!(status.success(), "{status}\n{}", old.log());
    let handed_over = fresh_ok.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(500)).await;

    stop.store(true, Ordering::Relaxed);
    let (ok, failed) = load.stop().await;
    let fresh_failures = fresh.join().unwrap();
    let fresh_total = fresh_ok.load(Ordering::Relaxed);
    eprintln!("keep-alive: {ok} answered; new connections: {fresh_total} answered");
    assert!(failed.is_empty(), "keep-alive requests lost: {failed:?}");
    assert!(fresh_failures.is_empty(), "new connections refused or lost: {fresh_failures:?}");
    assert!(
        served_before > 0 && fresh_total > handed_over,
        "served before {served_before}, at hand-over {handed_over}, in all {fresh_total}"
    );
    // The new process is the one serving now, on the same address.
    let (head, _) = exchange(&mut connect(addr).unwrap(), "/guest/after", true).unwrap();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    // (Its access log line follows the answer.)
    testkit::wait_for_log(|| new.log(), "/guest/after", 1, Duration::from_secs(10)).await;
}
