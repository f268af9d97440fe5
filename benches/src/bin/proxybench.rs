//! `gatehouse-proxybench`: what the edge proxy costs, measured side by side
//! in one run against a trivial native upstream (hyper, in this process):
//!
//! 1. pass-through: requests per second through the proxy on a public
//!    route against the same requests sent to the upstream directly, and
//!    the proxy's CPU time per request;
//! 2. token verification at the edge: the same proxy's CPU time per
//!    request on a route that needs a token (EdDSA) against the public one,
//!    the same bearer header sent to both, with its cache of verified
//!    tokens (the default) and without.
//!
//! ```sh
//! cargo xtask bench   # builds in release and runs this with the others
//! ```

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use benches::{Rounds, Tally, load, process_cpu_time, serve_native, wait_listening};
use clap::Parser;

#[derive(Debug, Parser)]
struct Args {
    /// The proxy binary (a release build).
    #[arg(long, default_value = "target/release/gatehouse-proxy")]
    proxy: PathBuf,
    #[command(flatten)]
    rounds: Rounds,
    /// Worker threads of each proxy process.
    #[arg(long, default_value_t = 1)]
    proxy_threads: usize,
}

const REPLY: &str = r#"{"ok":true}"#;
const KEY_ID: &str = "bench";
const USER: &str = "0b6f1d8e-4c39-4f8a-9a55-3f2b1c7d9e10";

/// A proxy process in front of the native upstream.
struct Proxy {
    addr: SocketAddr,
    child: Child,
    dir: PathBuf,
}

impl Proxy {
    fn start(args: &Args, upstream: SocketAddr, token_cache: usize, jwks: &str) -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!("gatehouse-proxybench-{}-{token_cache}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let (addr, admin) = (free_port()?, free_port()?);
        let config = format!(
            r#"listen = "{addr}"
admin_listen = "{admin}"
reload_poll_seconds = 0
upgrade_socket = "{socket}"

[jwt]
algorithm = "EdDSA"
jwks_env = "JWT_PUBLIC_KEYS"
verified_token_cache = {token_cache}

[upstream.native]
addresses = ["{upstream}"]
retries = 0

[[route]]
prefix = "/public"
upstream = "native"
auth = "public"

[[route]]
prefix = "/private"
upstream = "native"
auth = "required"
"#,
            socket = dir.join("upgrade.sock").display(),
        );
        std::fs::write(dir.join("proxy.toml"), config)?;
        let child = Command::new(&args.proxy)
            .arg("--config")
            .arg(dir.join("proxy.toml"))
            .args(["--threads", &args.proxy_threads.to_string()])
            .env("JWT_PUBLIC_KEYS", jwks)
            .env("GATEHOUSE_IDENTITY_KEY", random_hex(32))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .with_context(|| {
                format!("starting {} (build it with `cargo build --release -p proxy`)", args.proxy.display())
            })?;
        let proxy = Self { addr, child, dir };
        wait_listening(addr, "the proxy")?;
        Ok(proxy)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Where one series of requests goes, and the proxy process on its way.
struct Target {
    label: &'static str,
    addr: SocketAddr,
    path: &'static str,
    headers: Vec<(String, String)>,
    proxy_pid: Option<u32>,
}

/// One target measured: its requests and the proxy's CPU time over them.
#[derive(Default)]
struct Measured {
    tally: Tally,
    proxy_cpu: Duration,
}

impl Measured {
    fn cpu_per_request_us(&self) -> f64 {
        self.proxy_cpu.as_secs_f64() * 1e6 / self.tally.latencies.len().max(1) as f64
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // The load and the upstream share one thread: the proxy gets the rest.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(run(&args))
}

async fn run(args: &Args) -> anyhow::Result<()> {
    let upstream = serve_native(REPLY).await?;
    let (jwks, token) = signing_key()?;
    let cached = Proxy::start(args, upstream, 10_000, &jwks)?;
    let uncached = Proxy::start(args, upstream, 0, &jwks)?;
    let bearer = vec![("authorization".to_owned(), format!("Bearer {token}"))];

    let target = |label, addr, path, headers: &[(String, String)], proxy: Option<&Proxy>| Target {
        label,
        addr,
        path,
        headers: headers.to_vec(),
        proxy_pid: proxy.map(|p| p.child.id()),
    };
    let targets = [
        target("native upstream, directly", upstream, "/public", &[], None),
        // The same header on both routes: what differs is the check alone.
        target("proxy, public route", cached.addr, "/public", &bearer, Some(&cached)),
        target("proxy, token (cached)", cached.addr, "/private", &bearer, Some(&cached)),
        target("proxy, public route (2)", uncached.addr, "/public", &bearer, Some(&uncached)),
        target("proxy, token (no cache)", uncached.addr, "/private", &bearer, Some(&uncached)),
    ];
    println!(
        "proxy pass-through: {} connections per target, {} rounds of {} s, targets alternating; \
         proxies on {} worker thread(s), the load and the upstream on one",
        args.rounds.connections, args.rounds.rounds, args.rounds.seconds, args.proxy_threads
    );
    let round = Duration::from_secs(args.rounds.seconds);
    let mut measured: Vec<Measured> = targets.iter().map(|_| Measured::default()).collect();
    for _ in 0..args.rounds.rounds {
        for (t, m) in targets.iter().zip(&mut measured) {
            let cpu_before = t.proxy_pid.map(process_cpu_time).unwrap_or_default();
            m.tally.merge(load(t.addr, t.path, &t.headers, args.rounds.connections, round).await?);
            m.tally.elapsed += round;
            m.proxy_cpu += t.proxy_pid.map(process_cpu_time).unwrap_or_default().saturating_sub(cpu_before);
        }
    }

    println!(
        "  {:<28} {:>9} {:>8} {:>8} {:>7} {:>13} {:>15}",
        "target", "req/s", "p50 ms", "p99 ms", "errors", "ratio/direct", "proxy CPU µs/req"
    );
    let direct = measured[0].tally.rate();
    for (t, m) in targets.iter().zip(&mut measured) {
        let label = t.label;
        let cpu = if t.proxy_pid.is_some() { format!("{:.1}", m.cpu_per_request_us()) } else { "-".to_owned() };
        println!(
            "  {label:<28} {:>9.0} {:>8.3} {:>8.3} {:>7} {:>13.3} {:>15}",
            m.tally.rate(),
            m.tally.percentile(0.5).as_secs_f64() * 1e3,
            m.tally.percentile(0.99).as_secs_f64() * 1e3,
            m.tally.errors,
            m.tally.rate() / direct.max(f64::EPSILON),
            cpu
        );
    }
    let added =
        |token: usize, public: usize| measured[token].cpu_per_request_us() - measured[public].cpu_per_request_us();
    println!(
        "\nedge token verification (EdDSA), CPU added per request: {:.2} µs with the cache of verified \
         tokens, {:.2} µs without",
        added(2, 1),
        added(4, 3)
    );
    Ok(())
}

fn free_port() -> anyhow::Result<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom").and_then(|mut f| std::io::Read::read_exact(&mut f, &mut buf)).expect("urandom");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// A fresh Ed25519 key: its JWKS for the proxy, and a token it signs for
/// an hour.
fn signing_key() -> anyhow::Result<(String, String)> {
    use base64::Engine as _;
    use ed25519_dalek::pkcs8::EncodePrivateKey as _;
    let seed: [u8; 32] = {
        let hex = random_hex(32);
        let mut seed = [0u8; 32];
        for (i, byte) in seed.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)?;
        }
        seed
    };
    let key = ed25519_dalek::SigningKey::from_bytes(&seed);
    let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes());
    let jwks =
        serde_json::json!({ "keys": [{ "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "kid": KEY_ID, "x": x }] });
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH)?.as_secs();
    let claims =
        serde_json::json!({ "sub": USER, "exp": now + 3600, "iat": now, "iss": "gatehouse", "aud": "gatehouse" });
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.kid = Some(KEY_ID.to_owned());
    let der = key.to_pkcs8_der().map_err(|e| anyhow::anyhow!("{e}"))?;
    let token = jsonwebtoken::encode(&header, &claims, &jsonwebtoken::EncodingKey::from_ed_der(der.as_bytes()))?;
    Ok((jwks.to_string(), token))
}
