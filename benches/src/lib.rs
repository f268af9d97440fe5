//! What the benchmarks share: a closed-loop HTTP/1.1 load generator over
//! keep-alive connections, its tally, and a thread's CPU time; and
//! [`loadgen`], the load generator for any URL. Nothing here asserts a
//! speed; the binaries report what they measure.

pub mod loadgen;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

#[derive(Default)]
/// Latencies of the requests that succeeded, and the failures.
pub struct Tally {
    pub latencies: Vec<Duration>,
    pub errors: u64,
    /// Time measured, summed over rounds.
    pub elapsed: Duration,
}

impl Tally {
    pub fn merge(&mut self, other: Tally) {
        self.latencies.extend(other.latencies);
        self.errors += other.errors;
    }

    pub fn rate(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }

    pub fn percentile(&mut self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        self.latencies.sort_unstable();
        let index = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies[index]
    }
}

/// How the side-by-side benchmarks load each target: the options they share.
#[derive(Debug, clap::Args)]
pub struct Rounds {
    /// Connections kept busy per target.
    #[arg(long, default_value_t = 16)]
    pub connections: usize,
    /// Length of one round per target (seconds).
    #[arg(long, default_value_t = 3)]
    pub seconds: u64,
    /// Rounds per target; targets alternate so drift hits all alike.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
}

/// Keeps `connections` keep-alive connections busy for `duration`.
pub async fn load(
    addr: SocketAddr,
    path: &str,
    headers: &[(String, String)],
    connections: usize,
    duration: Duration,
) -> anyhow::Result<Tally> {
    let deadline = Instant::now() + duration;
    let mut workers = Vec::new();
    for _ in 0..connections {
        let path = path.to_owned();
        let headers = headers.to_vec();
        workers.push(tokio::spawn(async move { one_connection(addr, &path, &headers, deadline).await }));
    }
    let mut tally = Tally::default();
    for worker in workers {
        tally.merge(worker.await??);
    }
    Ok(tally)
}

async fn one_connection(
    addr: SocketAddr,
    path: &str,
    headers: &[(String, String)],
    deadline: Instant,
) -> anyhow::Result<Tally> {
    let mut tally = Tally::default();
    let mut sender = connect(addr).await?;
    while Instant::now() < deadline {
        let mut request = http::Request::get(path).header("host", addr.to_string());
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let started = Instant::now();
        let outcome = async {
            let response = sender.send_request(request.body(Empty::<Bytes>::new())?).await?;
            let status = response.status();
            response.into_body().collect().await?;
            anyhow::Ok(status)
        }
        .await;
        match outcome {
            Ok(status) if status.is_success() => tally.latencies.push(started.elapsed()),
            Ok(_) => tally.errors += 1,
            Err(_) => {
                tally.errors += 1;
                sender = connect(addr).await?;
            }
        }
    }
    Ok(tally)
}

async fn connect(addr: SocketAddr) -> anyhow::Result<http1::SendRequest<Empty<Bytes>>> {
    let stream = TcpStream::connect(addr).await.with_context(|| format!("connecting to {addr}"))?;
    stream.set_nodelay(true)?;
    let (sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

/// CPU time this thread has run, from the kernel's scheduler statistics.
pub fn thread_cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    let nanos = stat.split_whitespace().next().and_then(|n| n.parse().ok()).unwrap_or(0);
    Duration::from_nanos(nanos)
}

/// A trivial native server: hyper's HTTP/1.1 answering every request with
/// `reply` as JSON, on a loopback port of its own (on the current runtime).
pub async fn serve_native(reply: &'static str) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.context("binding the native server")?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            let service = hyper::service::service_fn(move |_req| async move {
                let response = http::Response::builder()
                    .header("content-type", "application/json")
                    .body(http_body_util::Full::new(Bytes::from_static(reply.as_bytes())))
                    .expect("a valid response");
                Ok::<_, std::convert::Infallible>(response)
            });
            let io = TokioIo::new(stream);
            tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(io, service));
        }
    });
    Ok(addr)
}

/// CPU time (user and system) a process has run so far, summed over its
/// threads from the kernel's scheduler statistics (nanoseconds).
pub fn process_cpu_time(pid: u32) -> Duration {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).into_iter().flatten().flatten();
    let nanos: u64 = tasks
        .filter_map(|task| std::fs::read_to_string(task.path().join("schedstat")).ok())
        .filter_map(|stat| stat.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    Duration::from_nanos(nanos)
}

/// A process's resident memory now (`VmRSS`) and at its peak so far
/// (`VmHWM`), in bytes; zero if the process is gone.
pub fn resident_memory(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
            .map_or(0, |kib| kib * 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Every process whose name is `name` (`postgres`: the server and its
/// backends), for CPU time summed over them.
pub fn processes_named(name: &str) -> Vec<u32> {
    let entries = std::fs::read_dir("/proc").into_iter().flatten().flatten();
    entries
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|comm| comm.trim_end() == name))
        .collect()
}

/// Waits up to 30 s for `what` (a process this benchmark started) to accept
/// connections at `addr`.
pub fn wait_listening(addr: SocketAddr, what: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(addr).is_err() {
        anyhow::ensure!(Instant::now() < deadline, "{what} did not listen on {addr}");
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}
