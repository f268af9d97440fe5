//! Gatehouse's edge proxy, on Pingora: routes by path prefix, verifies
//! bearer tokens before any upstream is contacted, and passes the verified
//! identity on in `x-gatehouse-user-id`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use pingora::lb::health_check::{HttpHealthCheck, TcpHealthCheck};
use pingora::lb::selection::RoundRobin;
use pingora::lb::{Backends, LoadBalancer};
use pingora::server::Server;
use pingora::server::configuration::ServerConf;
use pingora::services::background::background_service;

use std::sync::Arc;

use pingora::services::listening::Service;

use proxy::config::ProxyConfig;
use proxy::connections::{ConnectionRegistry, EdgeApp};
use proxy::gateway::Gateway;
use proxy::{discovery, gateway, jwks, metrics, reload, tls};

/// Every request allocates and frees many small buffers (heads, header
/// maps, bytes): mimalloc's thread-local free lists cost less than glibc's
/// malloc for that (measured with `gatehouse-proxybench`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(version, about = "Gatehouse's edge proxy")]
struct Args {
    /// The proxy's configuration (TOML).
    #[arg(long, env = "GATEHOUSE_PROXY_CONFIG", default_value = "deploy/proxy.toml")]
    config: PathBuf,
    /// Check the configuration and exit.
    #[arg(long)]
    check: bool,
    /// Override the configured listen address.
    #[arg(long, env = "GATEHOUSE_PROXY_LISTEN")]
    listen: Option<std::net::SocketAddr>,
    /// Override the configured admin listen address.
    #[arg(long, env = "GATEHOUSE_PROXY_ADMIN_LISTEN")]
    admin_listen: Option<std::net::SocketAddr>,
    /// Worker threads (default: one per core).
    #[arg(long, env = "GATEHOUSE_PROXY_THREADS")]
    threads: Option<usize>,
    /// Take over the listening sockets of the proxy running now (a graceful
    /// upgrade): start this one with `--upgrade`, then send the old one
    /// SIGQUIT. They meet at the configured `upgrade_socket`.
    #[arg(long)]
    upgrade: bool,
}

fn main() {
    // A start-up failure is one line saying what is wrong, not a backtrace.
    if let Err(e) = run() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    // `GATEHOUSE_LOG_FORMAT=json`: one JSON object a line, the access log
    // included, for collectors.
    if std::env::var("GATEHOUSE_LOG_FORMAT").is_ok_and(|f| f == "json") {
        tracing_subscriber::fmt().json().with_env_filter(filter).init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
    let args = Args::parse();
    let mut config = ProxyConfig::load(&args.config)?;
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(admin) = args.admin_listen {
        config.admin_listen = admin;
    }
    let verifier = config.token_verifier(|k| std::env::var(k).ok())?;
    let certificates = config.tls.as_ref().map(tls::Certificates::load).transpose().map_err(anyhow::Error::msg)?;
    let identity = config.identity_signer(|k| std::env::var(k).ok())?;
    if args.check {
        println!("{}: ok", args.config.display());
        return Ok(());
    }

    let conf = ServerConf {
        threads: args.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        // SIGTERM (and SIGQUIT, once the sockets are handed over): stop
        // accepting at once, give requests in flight the configured time;
        // the process leaves as soon as they are done (see `exit_when_drained`).
        grace_period_seconds: Some(config.drain_seconds),
        graceful_shutdown_timeout_seconds: Some(1),
        upgrade_sock: config.upgrade_socket.display().to_string(),
        ..Default::default()
    };
    let opt = pingora::server::configuration::Opt { upgrade: args.upgrade, ..Default::default() };
    let mut server = Server::new_with_opt_and_conf(Some(opt), conf);
    // With `--upgrade`, this waits for the old proxy's sockets.
    server.bootstrap();

    let mut upstreams = BTreeMap::new();
    // Resolves each upstream's names once before serving, so no request
    // finds an empty pool; the load balancer's service resolves them again.
    let startup = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    for (name, upstream) in &config.upstream {
        let backends = Backends::new(Box::new(discovery::DnsDiscovery::new(upstream.addresses.clone())));
        let mut lb = LoadBalancer::<RoundRobin>::from_backends(backends);
        startup.block_on(lb.update()).map_err(|e| anyhow::anyhow!("upstream `{name}`: {e}"))?;
        lb.update_frequency = (upstream.resolve_seconds > 0).then(|| Duration::from_secs(upstream.resolve_seconds));
        match &upstream.health_check_path {
            Some(path) => {
                let mut check = HttpHealthCheck::new("gatehouse-health-check", false);
                check.req = pingora::http::RequestHeader::build("GET", path.as_bytes(), None)?;
                check.req.insert_header("host", "gatehouse-health-check")?;
                check.port_override = upstream.health_check_port;
                lb.set_health_check(Box::new(check));
            }
            None => lb.set_health_check(TcpHealthCheck::new()),
        }
        lb.health_check_frequency = Some(Duration::from_secs(upstream.health_check_seconds));
        let service = background_service(&format!("health check: {name}"), lb);
        upstreams.insert(name.clone(), service.task());
        server.add_service(service);
    }

    let jwks = match (&config.jwt.jwks_url, verifier.key_store()) {
        (Some(url), Some(store)) => {
            let min = Duration::from_secs(config.jwt.jwks_refetch_min_seconds);
            let fetcher = Arc::new(jwks::JwksFetcher::new(url.clone(), store, min));
            let period = Duration::from_secs(config.jwt.jwks_refresh_seconds);
            server.add_service(background_service(
                "token keys",
                jwks::JwksRefresher { fetcher: fetcher.clone(), period },
            ));
            Some(fetcher)
        }
        _ => None,
    };
    let connections = Arc::new(ConnectionRegistry::default());
    exit_when_drained(server.watch_execution_phase(), connections.clone());
    let metrics = Arc::new(metrics::ProxyMetrics::default());
    let mut admin = Service::new(
        "admin".into(),
        pingora::apps::http_app::HttpServer::new_app(metrics::AdminApp {
            metrics: metrics.clone(),
            upstreams: upstreams.clone(),
            connections: connections.clone(),
        }),
    );
    admin.add_tcp(&config.admin_listen.to_string());
    server.add_service(admin);
    let policy = gateway::PolicyCell::new(gateway::Policy::new(&config));
    let poll = (config.reload_poll_seconds > 0).then(|| Duration::from_secs(config.reload_poll_seconds));
    server.add_service(background_service(
        "configuration reload",
        reload::Reloader::new(args.config.clone(), &config, policy.clone(), poll, certificates.clone()),
    ));
    let gateway = Gateway {
        policy,
        metrics,
        ejected: Default::default(),
        in_flight: Default::default(),
        retry_budget: gateway::RetryBudget::default(),
        upstreams,
        verifier,
        identity,
        connections: connections.clone(),
        jwks,
    };
    let mut proxy = pingora::proxy::http_proxy(&server.configuration, gateway);
    let mut options = pingora::apps::HttpServerOptions::default();
    options.h2c = config.h2c;
    proxy.server_options = Some(options);
    let linger = IDLE_LINGER.min(Duration::from_secs(config.drain_seconds));
    let edge = EdgeApp::new(proxy, config.limits.connections(), connections, linger, config.h2c);
    let mut service = Service::new("gatehouse proxy".into(), edge);
    service.add_tcp(&config.listen.to_string());
    if let (Some(tls), Some(certificates)) = (&config.tls, certificates) {
        let path = tls.certificate.display().to_string();
        let mut settings = pingora::listeners::tls::TlsSettings::intermediate(&path, &path)?;
        settings.set_cert_resolver(certificates);
        if tls.h2 {
            settings.enable_h2();
        }
        service.add_tls_with_settings(&tls.listen.to_string(), None, settings);
        tracing::info!(address = %tls.listen, "TLS listening");
    }
    server.add_service(service);
    tracing::info!(address = %config.listen, admin = %config.admin_listen, "proxy listening");
    server.run_forever()
}

/// After shutdown starts, how long idle keep-alive connections are kept:
/// a request arriving on one meanwhile is answered (with `Connection:
/// close`) rather than finding it closed under it.
const IDLE_LINGER: Duration = Duration::from_secs(1);

/// Ends the process once shutdown has begun and no client connection is
/// left, rather than at the end of the drain time: Pingora waits that time
/// out whatever is in flight.
fn exit_when_drained(
    mut phases: tokio::sync::broadcast::Receiver<pingora::server::ExecutionPhase>,
    connections: Arc<ConnectionRegistry>,
) {
    use tokio::sync::broadcast::error::RecvError;
    std::thread::spawn(move || {
        loop {
            match phases.blocking_recv() {
                Ok(pingora::server::ExecutionPhase::ShutdownGracePeriod) => break,
                Ok(_) | Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => return,
            }
        }
        let started = std::time::Instant::now();
        while connections.open_connections() > 0 {
            std::thread::sleep(Duration::from_millis(20));
        }
        tracing::info!(after_ms = started.elapsed().as_millis() as u64, "drained: no client connection left");
        std::process::exit(0);
    });
}
