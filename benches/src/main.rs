//! `gatehouse-load`: drives the same requests at two targets — the host
//! directly and the proxy in front of it — in alternating rounds, and prints
//! throughput, latency percentiles and the proxy/direct ratios measured in
//! this one run. Nothing here asserts a speed; it reports one.
//!
//! ```sh
//! cargo xtask bench            # starts the platform in release mode and runs this
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context as _, bail};
use benches::{Tally, load};
use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

#[derive(Debug, Parser)]
struct Args {
    /// The proxy's address.
    #[arg(long, default_value = "127.0.0.1:8080")]
    proxy: SocketAddr,
    /// The host's address (what the proxy fronts).
    #[arg(long, default_value = "127.0.0.1:8081")]
    host: SocketAddr,
    /// Login used to get a token for protected routes.
    #[arg(long, env = "FIRST_SUPERUSER", default_value = "admin@example.com")]
    email: String,
    #[arg(long, env = "FIRST_SUPERUSER_PASSWORD", default_value = "changethis")]
    password: String,
    /// Connections kept open per target, each sending requests back to back.
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Length of one measured round per target.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Rounds per target; targets alternate so drift hits both alike.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
}

/// One request shape, sent to both targets.
struct Scenario {
    name: &'static str,
    path: &'static str,
    /// Headers for the proxy (a bearer token) and for the host directly
    /// (the identity the proxy would have passed on).
    proxy_headers: Vec<(String, String)>,
    host_headers: Vec<(String, String)>,
    /// The user the proxy would have vouched for, signed afresh each round
    /// with the key the proxy and host share.
    host_user: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // Identity sent straight to the host is signed once a round, and the
    // host accepts a signature for 30 s.
    anyhow::ensure!(args.seconds <= 25, "--seconds is at most 25 (the host's window for a signed identity)");
    let (token, user_id) = log_in(&args).await?;
    let identity_key = std::env::var("GATEHOUSE_IDENTITY_KEY")
        .map_err(|_| anyhow::anyhow!("GATEHOUSE_IDENTITY_KEY is not set: the host believes no unsigned identity"))?;
    let scenarios = [
        Scenario {
            name: "GET /auth/health (database round trip)",
            path: "/auth/health",
            proxy_headers: vec![],
            host_headers: vec![],
            host_user: None,
        },
        Scenario {
            name: "GET /items/api/v1/items/ (token verified at the edge)",
            path: "/items/api/v1/items/?limit=10",
            proxy_headers: vec![("authorization".into(), format!("Bearer {token}"))],
            host_headers: vec![],
            host_user: Some(user_id.clone()),
        },
    ];
    println!(
        "{} connections per target, {} rounds of {} s each, targets alternating\n",
        args.connections, args.rounds, args.seconds
    );
    for scenario in &scenarios {
        let mut direct = Tally::default();
        let mut proxied = Tally::default();
        for _ in 0..args.rounds {
            let round = Duration::from_secs(args.seconds);
            let mut host_headers = scenario.host_headers.clone();
            if let Some(user) = &scenario.host_user {
                host_headers.extend(identity_headers(&identity_key, scenario.path, user));
            }
            direct.merge(load(args.host, scenario.path, &host_headers, args.connections, round).await?);
            direct.elapsed += round;
            proxied.merge(load(args.proxy, scenario.path, &scenario.proxy_headers, args.connections, round).await?);
            proxied.elapsed += round;
        }
        report(scenario.name, &mut direct, &mut proxied);
    }
    Ok(())
}

/// The headers the proxy would send the host for a `GET` of `path` by
/// `user`: the identity and its proof, made by the host's own code for the
/// format. Good for the clock window, so made each round.
fn identity_headers(key: &str, path: &str, user: &str) -> Vec<(String, String)> {
    host::identity::signed_headers(key.as_bytes(), "GET", path, user)
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect()
}

fn report(name: &str, direct: &mut Tally, proxied: &mut Tally) {
    println!("{name}");
    println!("  {:<8} {:>10} {:>10} {:>10} {:>8}", "target", "req/s", "p50 ms", "p99 ms", "errors");
    for (label, tally) in [("direct", &mut *direct), ("proxy", &mut *proxied)] {
        println!(
            "  {:<8} {:>10.0} {:>10.2} {:>10.2} {:>8}",
            label,
            tally.rate(),
            tally.percentile(0.5).as_secs_f64() * 1e3,
            tally.percentile(0.99).as_secs_f64() * 1e3,
            tally.errors
        );
    }
    let p50 = proxied.percentile(0.5).as_secs_f64() / direct.percentile(0.5).as_secs_f64().max(f64::EPSILON);
    println!(
        "  ratio proxy/direct: throughput {:.3}, p50 latency {:.3} (+{:.3} ms)\n",
        proxied.rate() / direct.rate().max(f64::EPSILON),
        p50,
        (proxied.percentile(0.5).as_secs_f64() - direct.percentile(0.5).as_secs_f64()) * 1e3
    );
}

/// Logs in through the proxy; returns the token and the user's id.
async fn log_in(args: &Args) -> anyhow::Result<(String, String)> {
    let form = format!("username={}&password={}", args.email.replace('@', "%40"), args.password);
    let stream = TcpStream::connect(args.proxy).await.with_context(|| format!("connecting to {}", args.proxy))?;
    let (mut sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let request = http::Request::post("/auth/api/v1/login/access-token")
        .header("host", args.proxy.to_string())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from(form)))?;
    let response = sender.send_request(request).await?;
    if !response.status().is_success() {
        bail!("login failed with {}", response.status());
    }
    let body: serde_json::Value = serde_json::from_slice(&response.into_body().collect().await?.to_bytes())?;
    let token = body["access_token"].as_str().context("no access_token in the login answer")?.to_owned();

    let stream = TcpStream::connect(args.proxy).await?;
    let (mut sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let request = http::Request::get("/auth/api/v1/login/test-token")
        .header("host", args.proxy.to_string())
        .header("authorization", format!("Bearer {token}"))
        .body(Full::new(Bytes::new()))?;
    let response = sender.send_request(request).await?;
    let me: serde_json::Value = serde_json::from_slice(&response.into_body().collect().await?.to_bytes())?;
    let id = me["id"].as_str().context("no id in the test-token answer")?.to_owned();
    Ok((token, id))
}
