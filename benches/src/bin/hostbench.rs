//! `gatehouse-hostbench`: what the runtime host costs, measured side by side
//! in one run, without a database:
//!
//! 1. start-up: compiling the components with an empty compile cache
//!    (cold) and loading them from it (warm);
//! 2. instantiate + call: the CPU time one request costs the host for a
//!    hello-world component (WASIp2 and WASIp3), with instances from
//!    wasmtime's pooling allocator and mapped on demand;
//! 3. over loopback sockets: the same hello world on the host against the
//!    same handler written natively on hyper, in alternating rounds.
//!
//! ```sh
//! cargo xtask bench   # builds in release and runs this, then the platform's load test
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use benches::{Rounds, Tally, load, serve_native, thread_cpu_time};
use bytes::Bytes;
use clap::Parser;
use host::{Manifest, Runtime};
use http_body_util::{BodyExt as _, Empty};

#[derive(Debug, Parser)]
struct Args {
    /// Where the built components are (`test_guest.wasm`, `spin7_guest.wasm`).
    #[arg(long, default_value = "target/wasm32-wasip2/release")]
    components: PathBuf,
    /// Requests per measurement of instantiate + call.
    #[arg(long, default_value_t = 3000)]
    requests: u32,
    #[command(flatten)]
    rounds: Rounds,
}

/// The hello world each generation answers: a guest route that only
/// replies (`{"ok":null}`, the value of an unset variable).
const HELLO: [(&str, &str); 2] = [("WASIp2 (spin-sdk 5)", "/p2/env/UNSET"), ("WASIp3 (spin-sdk 7)", "/p3/env/UNSET")];
const NATIVE_REPLY: &str = r#"{"ok":null}"#;

fn manifest(components: &Path, allocation: &str, cache: &Path) -> anyhow::Result<Manifest> {
    let text = format!(
        r#"
        [server]
        instance_allocation = "{allocation}"
        compile_cache = {cache:?}
        [limits]
        max_concurrent_requests = 64
        [component.p2]
        route = "/p2/..."
        file = "test_guest.wasm"
        [component.p3]
        route = "/p3/..."
        file = "spin7_guest.wasm"
        "#,
        cache = cache.display().to_string(),
    );
    Ok(Manifest::parse(&text, components)?)
}

fn runtime(manifest: &Manifest) -> anyhow::Result<Arc<Runtime>> {
    let engine = Runtime::new_engine(manifest)?;
    Ok(Arc::new(Runtime::new(engine, manifest, &BTreeMap::new(), |_| None)?))
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    for file in ["test_guest.wasm", "spin7_guest.wasm"] {
        let path = args.components.join(file);
        anyhow::ensure!(path.is_file(), "no component at {}: build the plugins first", path.display());
    }
    let cache = std::env::temp_dir().join(format!("gatehouse-hostbench-{}", std::process::id()));
    let result = run(&args, &cache);
    let _ = std::fs::remove_dir_all(&cache);
    result
}

fn run(args: &Args, cache: &Path) -> anyhow::Result<()> {
    println!("start-up (compile and link both components, then pre-instantiate)");
    let cold_started = Instant::now();
    let pooled = runtime(&manifest(&args.components, "pooling", cache)?)?;
    let cold = cold_started.elapsed();
    let warm_started = Instant::now();
    drop(runtime(&manifest(&args.components, "pooling", cache)?)?);
    let warm = warm_started.elapsed();
    println!("  cold (empty compile cache)  {:>9.1} ms", cold.as_secs_f64() * 1e3);
    println!("  warm (from the cache)       {:>9.1} ms\n", warm.as_secs_f64() * 1e3);
    let on_demand = runtime(&manifest(&args.components, "on-demand", cache)?)?;

    // One thread runs the host and the guest, so its CPU time is the
    // request's whole cost.
    let single = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    println!("instantiate + call, CPU per request on one thread ({} requests each)", args.requests);
    println!("  {:<22} {:>14} {:>14} {:>8}", "component", "on-demand µs", "pooling µs", "ratio");
    for (label, path) in HELLO {
        let demand = single.block_on(cpu_per_request(&on_demand, path, args.requests))?;
        let pooling = single.block_on(cpu_per_request(&pooled, path, args.requests))?;
        println!(
            "  {label:<22} {:>14.1} {:>14.1} {:>8.2}",
            demand.as_secs_f64() * 1e6,
            pooling.as_secs_f64() * 1e6,
            pooling.as_secs_f64() / demand.as_secs_f64().max(f64::EPSILON)
        );
    }
    drop(on_demand);
    drop(single);

    let multi = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    multi.block_on(over_sockets(args, pooled))
}

/// CPU time of this thread per request, over `requests` requests in a row
/// (after a warm-up), with every answer checked.
async fn cpu_per_request(runtime: &Runtime, path: &str, requests: u32) -> anyhow::Result<Duration> {
    for _ in 0..requests / 10 {
        call(runtime, path).await?;
    }
    let started = thread_cpu_time();
    for _ in 0..requests {
        call(runtime, path).await?;
    }
    Ok((thread_cpu_time() - started) / requests)
}

async fn call(runtime: &Runtime, path: &str) -> anyhow::Result<()> {
    let request = http::Request::get(path).header("host", "bench").body(Empty::<Bytes>::new())?;
    let response = runtime.handle(request, None).await;
    let status = response.status();
    let body = response.into_body().collect().await.map_err(|e| anyhow::anyhow!("{e}"))?.to_bytes();
    anyhow::ensure!(status == 200 && body == NATIVE_REPLY.as_bytes(), "{path}: {status} {body:?}");
    Ok(())
}

async fn over_sockets(args: &Args, runtime: Arc<Runtime>) -> anyhow::Result<()> {
    let host_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let host_addr = host_listener.local_addr()?;
    tokio::spawn(host::server::serve(
        host::live::Live::new(runtime),
        host_listener,
        std::future::pending(),
        Duration::ZERO,
    ));
    let native_addr = serve_native(NATIVE_REPLY).await?;

    println!(
        "\nover loopback: {} connections per target, {} rounds of {} s, targets alternating",
        args.rounds.connections, args.rounds.rounds, args.rounds.seconds
    );
    let mut native = Tally::default();
    let mut hosted: Vec<Tally> = HELLO.iter().map(|_| Tally::default()).collect();
    let round = Duration::from_secs(args.rounds.seconds);
    for _ in 0..args.rounds.rounds {
        native.merge(load(native_addr, "/", &[], args.rounds.connections, round).await?);
        native.elapsed += round;
        for ((_, path), tally) in HELLO.iter().zip(&mut hosted) {
            tally.merge(load(host_addr, path, &[], args.rounds.connections, round).await?);
            tally.elapsed += round;
        }
    }
    println!(
        "  {:<22} {:>10} {:>9} {:>9} {:>7} {:>14}",
        "target", "req/s", "p50 ms", "p99 ms", "errors", "ratio/native"
    );
    let native_rate = native.rate();
    row("native hyper", &mut native, native_rate);
    for ((label, _), tally) in HELLO.iter().zip(&mut hosted) {
        row(label, tally, native_rate);
    }
    Ok(())
}

fn row(label: &str, tally: &mut Tally, native_rate: f64) {
    println!(
        "  {label:<22} {:>10.0} {:>9.3} {:>9.3} {:>7} {:>14.3}",
        tally.rate(),
        tally.percentile(0.5).as_secs_f64() * 1e3,
        tally.percentile(0.99).as_secs_f64() * 1e3,
        tally.errors,
        tally.rate() / native_rate.max(f64::EPSILON)
    );
}
