//! `gatehouse-loadgen` against small servers on loopback: an open loop's
//! latency counts a stall from when each request was due; a scenario logs
//! in, captures ids and sends its weighted mix; the command line writes
//! its results and charts. Nothing here asserts a speed.

use std::collections::{BTreeMap, HashSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use benches::loadgen::{self, Credentials, HttpVersion, Mode, Report, RunOptions, Scenario};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

type Response = http::Response<Full<Bytes>>;

/// Serves `handler` over HTTP/1.1 on a loopback port of its own.
async fn serve<F, Fut>(handler: F) -> SocketAddr
where
    F: Fn(http::Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            let handler = handler.clone();
            let service = hyper::service::service_fn(move |request| {
                let answer = handler(request);
                async move { Ok::<_, Infallible>(answer.await) }
            });
            tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service));
        }
    });
    addr
}

fn answer(status: u16, body: impl Into<Bytes>) -> Response {
    http::Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(body.into()))
        .unwrap()
}

fn options(mode: Mode, concurrency: usize, duration: Duration) -> RunOptions {
    RunOptions {
        mode,
        concurrency,
        connections: concurrency,
        warmup: Duration::ZERO,
        duration,
        timeout: Duration::from_secs(10),
        http: HttpVersion::Http1,
        ca_certificate: None,
        insecure: false,
        progress: false,
    }
}

/// A server that stops answering for a second in the middle of the run:
/// what arrives then waits until the second is over. In an open loop the
/// requests due during the stall are sent late, and counted from when they
/// were due, so the stall fills the top percentiles; timed from when they
/// were sent, only the few in flight when it began look slow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_latency_is_corrected_for_coordinated_omission() {
    const STALL: Duration = Duration::from_secs(1);
    let first = Arc::new(OnceLock::<Instant>::new());
    let addr = serve(move |_request| {
        let first = Arc::clone(&first);
        async move {
            let start = *first.get_or_init(Instant::now);
            let (stall_from, stall_until) = (start + Duration::from_secs(1), start + Duration::from_secs(1) + STALL);
            let now = Instant::now();
            if now >= stall_from && now < stall_until {
                tokio::time::sleep_until(stall_until.into()).await;
            }
            answer(200, "{}")
        }
    })
    .await;

    // 400 requests a second for 3 s over 4 workers: 1200 due, about 400
    // of them during the stall, at most 4 in flight when it begins.
    let scenario = Scenario::single("GET", &format!("http://{addr}/"), BTreeMap::new(), None);
    let outcome = loadgen::run(
        scenario,
        None,
        Credentials::default(),
        options(Mode::Open { rate: 400.0 }, 4, Duration::from_secs(3)),
    )
    .await
    .unwrap();
    let report = Report::of(&outcome);
    println!("{}", report.summary());

    assert_eq!(report.errors, 0);
    assert!((1190..=1210).contains(&report.requests), "{} requests counted, 1200 were due", report.requests);
    let corrected = report.latency_ms;
    let uncorrected = report.uncorrected_latency_ms.expect("an open loop reports both");
    let stall_ms = STALL.as_secs_f64() * 1e3;
    // Corrected: the stall is in the tail, p99 and max alike.
    assert!(corrected.p99 >= stall_ms * 0.5, "corrected p99 {} ms misses the stall", corrected.p99);
    assert!(corrected.max >= stall_ms * 0.9, "corrected max {} ms misses the stall", corrected.max);
    assert!(corrected.p90 > uncorrected.p90);
    // Uncorrected, from the same run: the stall shows only in the handful
    // of requests in flight when it began, not in the p99.
    assert!(uncorrected.max >= stall_ms * 0.9, "uncorrected max {} ms", uncorrected.max);
    assert!(uncorrected.p99 < stall_ms * 0.25, "uncorrected p99 {} ms", uncorrected.p99);
    // And over time: the second of the stall has its p99.
    assert!(report.timeline.iter().any(|s| s.p99_ms >= stall_ms * 0.5), "{:?}", report.timeline);
}

/// What the items server below saw.
#[derive(Default)]
struct Seen {
    logins: AtomicU64,
    lists: AtomicU64,
    creates: AtomicU64,
    reads: AtomicU64,
    /// Requests without the token the login gave, or for an unknown id.
    wrong: AtomicU64,
    ids: Mutex<HashSet<String>>,
    titles: Mutex<HashSet<String>>,
}

/// The platform's login and items routes in miniature.
async fn items_server(seen: Arc<Seen>) -> SocketAddr {
    serve(move |request: http::Request<Incoming>| {
        let seen = Arc::clone(&seen);
        async move {
            let (parts, body) = request.into_parts();
            let body = body.collect().await.unwrap().to_bytes();
            let path = parts.uri.path();
            if parts.method == http::Method::POST && path == "/auth/api/v1/login/access-token" {
                let form: BTreeMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
                if form.get("username").map(String::as_str) != Some("load@example.com")
                    || form.get("password").map(String::as_str) != Some("s3cret&=")
                {
                    return answer(400, r#"{"detail":"incorrect email or password"}"#);
                }
                seen.logins.fetch_add(1, Ordering::Relaxed);
                return answer(200, r#"{"access_token":"tok-123","token_type":"bearer"}"#);
            }
            if parts.headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("Bearer tok-123") {
                seen.wrong.fetch_add(1, Ordering::Relaxed);
                return answer(401, r#"{"detail":"not authenticated"}"#);
            }
            match (parts.method.as_str(), path) {
                ("GET", "/api/v1/items/") => {
                    seen.lists.fetch_add(1, Ordering::Relaxed);
                    answer(200, r#"{"data":[],"count":0}"#)
                }
                ("POST", "/api/v1/items/") => {
                    let item: serde_json::Value = serde_json::from_slice(&body).unwrap();
                    let title = item["title"].as_str().unwrap_or_default().to_owned();
                    seen.titles.lock().unwrap().insert(title.clone());
                    let n = seen.creates.fetch_add(1, Ordering::Relaxed);
                    let id = format!("item-{n}");
                    seen.ids.lock().unwrap().insert(id.clone());
                    answer(200, serde_json::json!({"id": id, "title": title}).to_string())
                }
                ("GET", path) if path.starts_with("/api/v1/items/") => {
                    let id = path.trim_start_matches("/api/v1/items/");
                    if !seen.ids.lock().unwrap().contains(id) {
                        seen.wrong.fetch_add(1, Ordering::Relaxed);
                        return answer(404, r#"{"detail":"item not found"}"#);
                    }
                    seen.reads.fetch_add(1, Ordering::Relaxed);
                    answer(200, serde_json::json!({"id": id}).to_string())
                }
                _ => answer(404, "{}"),
            }
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scenario_logs_in_captures_ids_and_sends_its_mix() {
    let seen = Arc::new(Seen::default());
    let addr = items_server(Arc::clone(&seen)).await;
    let dir = std::env::temp_dir().join(format!("gatehouse-loadgen-{}-{}", std::process::id(), line!()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("items.toml");
    std::fs::write(
        &file,
        r#"
[login]
path = "/auth/api/v1/login/access-token"

[[request]]
name = "list items"
weight = 6
path = "/api/v1/items/"

[[request]]
name = "create item"
weight = 1
method = "POST"
path = "/api/v1/items/"
json = { title = "load test {seq}", description = "made under load" }
capture = { id = "/id" }

[[request]]
name = "read item"
weight = 3
path = "/api/v1/items/{id}"
"#,
    )
    .unwrap();
    let scenario = Scenario::from_file(&file).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();

    let credentials =
        Credentials { username: Some("load@example.com".into()), password: Some("s3cret&=".into()), token: None };
    let outcome = loadgen::run(
        scenario,
        Some(format!("http://{addr}")),
        credentials,
        options(Mode::Closed, 4, Duration::from_secs(1)),
    )
    .await
    .unwrap();
    let report = Report::of(&outcome);
    println!("{}", report.summary());

    assert_eq!(seen.logins.load(Ordering::Relaxed), 1, "one login for the whole run");
    assert_eq!(seen.wrong.load(Ordering::Relaxed), 0, "every request had the token and a known id");
    assert_eq!(report.errors, 0);
    let counted: BTreeMap<&str, u64> = report.by_request.iter().map(|r| (r.name.as_str(), r.ok)).collect();
    // With no warm-up, every request sent was counted, and the server saw
    // each one.
    assert_eq!(counted["list items"], seen.lists.load(Ordering::Relaxed));
    assert_eq!(counted["create item"], seen.creates.load(Ordering::Relaxed));
    assert_eq!(counted["read item"], seen.reads.load(Ordering::Relaxed));
    assert!(counted["create item"] > 0 && counted["read item"] > 0);
    // Weighted 6 to 1, over hundreds of requests.
    assert!(counted["list items"] > counted["create item"], "{counted:?}");
    // `{seq}` made every title different.
    assert_eq!(seen.titles.lock().unwrap().len() as u64, seen.creates.load(Ordering::Relaxed));
    assert_eq!(report.requests, report.ok);
}

/// A run stopped early (as Ctrl-C does) returns what it measured so far,
/// requests in flight abandoned, even with a server that never answers some.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_stopped_early_reports_what_it_measured() {
    let served = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&served);
    let addr = serve(move |_request| {
        let n = counter.fetch_add(1, Ordering::Relaxed);
        async move {
            // Every tenth request hangs until the client gives up.
            if n % 10 == 9 {
                std::future::pending::<()>().await;
            }
            answer(200, "{}")
        }
    })
    .await;
    let scenario = Scenario::single("GET", &format!("http://{addr}/"), BTreeMap::new(), None);
    for mode in [Mode::Closed, Mode::Open { rate: 200.0 }] {
        let mut options = options(mode, 4, Duration::from_secs(600));
        options.timeout = Duration::from_secs(600);
        let stop = tokio::time::sleep(Duration::from_millis(500));
        let run = loadgen::run_until(scenario.clone(), None, Credentials::default(), options, stop);
        let outcome = tokio::time::timeout(Duration::from_secs(60), run).await.expect("the run stops").unwrap();
        let report = Report::of(&outcome);
        assert!(report.interrupted, "{mode:?}");
        assert!(report.duration_s < 60.0, "{mode:?}: {} s", report.duration_s);
        assert!(report.ok > 0, "{mode:?}");
        assert_eq!(report.errors, 0, "{mode:?}: abandoned requests are not errors");
        assert!(report.summary().contains("stopped early"));
    }
}

#[test]
fn the_committed_scenario_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/items.toml");
    let scenario = Scenario::from_file(&path).unwrap();
    assert!(scenario.login.is_some());
    assert!(scenario.requests.iter().any(|r| !r.capture.is_empty()));
}

/// The command line with `--url`, a login by credentials from the
/// environment, a warm-up and `--out`.
#[test]
fn the_command_line_writes_results_and_charts() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let seen = Arc::new(Seen::default());
    let addr = runtime.block_on(items_server(Arc::clone(&seen)));
    let out = std::env::temp_dir().join(format!("gatehouse-loadgen-out-{}", std::process::id()));
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse-loadgen"))
        .args(["--url", &format!("http://{addr}/api/v1/items/")])
        .args(["--login-url", &format!("http://{addr}/auth/api/v1/login/access-token")])
        .args(["--rate", "100", "--concurrency", "2", "--warmup", "500ms", "--duration", "1s", "--quiet"])
        .arg("--out")
        .arg(&out)
        .env("GATEHOUSE_LOADGEN_USERNAME", "load@example.com")
        .env("GATEHOUSE_LOADGEN_PASSWORD", "s3cret&=")
        .output()
        .unwrap();
    let summary = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{summary}{}", String::from_utf8_lossy(&output.stderr));
    assert!(summary.contains("open loop at 100 req/s") && summary.contains("from due"), "{summary}");
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    for chart in ["latency.svg", "throughput.svg", "latency-over-time.svg"] {
        let svg = std::fs::read_to_string(out.join(chart)).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("</svg>"), "{chart}");
    }
    std::fs::remove_dir_all(&out).unwrap();

    assert_eq!(results["mode"], "open");
    assert_eq!(results["errors"], 0);
    assert_eq!(seen.wrong.load(Ordering::Relaxed), 0);
    // 100 a second for 1 s were counted; the 50 of the warm-up were sent
    // but not counted.
    let counted = results["requests"].as_u64().unwrap();
    assert!((98..=102).contains(&counted), "{counted} counted");
    assert!(seen.lists.load(Ordering::Relaxed) >= counted + 45, "the warm-up's requests were sent too");
    assert!(results["latency_ms"]["p99"].as_f64().unwrap() > 0.0);
    assert!(results["uncorrected_latency_ms"]["p99"].is_number());
}

/// Serves over TLS (h2 and HTTP/1.1 by ALPN) with the test CA's server
/// certificate, or in cleartext (HTTP/1.1 or h2c by prior knowledge);
/// counts the connections it accepts.
async fn serve_tls_or_not(certificates: Option<&Path>, connections: Arc<AtomicU64>) -> SocketAddr {
    use hyper_util::rt::TokioExecutor;
    use tokio_rustls::rustls;
    use tokio_rustls::rustls::pki_types::pem::PemObject as _;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

    let acceptor = certificates.map(|dir| {
        let chain =
            CertificateDer::pem_file_iter(dir.join("server.crt")).unwrap().collect::<Result<Vec<_>, _>>().unwrap();
        let key = PrivateKeyDer::from_pem_file(dir.join("server.key")).unwrap();
        let mut config =
            rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(chain, key)
                .unwrap();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        tokio_rustls::TlsAcceptor::from(Arc::new(config))
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            connections.fetch_add(1, Ordering::Relaxed);
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|request: http::Request<Incoming>| async move {
                    Ok::<_, Infallible>(answer(200, format!("{:?}", request.version())))
                });
                let server = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                match acceptor {
                    Some(acceptor) => {
                        let Ok(tls) = acceptor.accept(stream).await else { return };
                        let _ = server.serve_connection(TokioIo::new(tls), service).await;
                    }
                    None => {
                        let _ = server.serve_connection(TokioIo::new(stream), service).await;
                    }
                }
            });
        }
    });
    addr
}

/// HTTP/2 over TLS by ALPN, HTTP/1.1 over TLS when asked, h2c by prior
/// knowledge; and a server whose certificate is not trusted is an error of
/// its own kind, not a latency.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_and_http2() {
    let dir = std::env::temp_dir().join(format!("gatehouse-loadgen-tls-{}", std::process::id()));
    devpg::make_test_certificates(&dir).unwrap();
    let ca = std::fs::read(dir.join("ca.pem")).unwrap();
    let tls_connections = Arc::new(AtomicU64::new(0));
    let tls = serve_tls_or_not(Some(&dir), Arc::clone(&tls_connections)).await;
    let cleartext = serve_tls_or_not(None, Arc::new(AtomicU64::new(0))).await;
    std::fs::remove_dir_all(&dir).unwrap();

    let run = |url: String, http: HttpVersion, connections: usize, ca: Option<Vec<u8>>| async move {
        let mut options = options(Mode::Closed, 4, Duration::from_millis(500));
        options.http = http;
        options.connections = connections;
        options.ca_certificate = ca;
        let scenario = Scenario::single("GET", &url, BTreeMap::new(), None);
        Report::of(&loadgen::run(scenario, None, Credentials::default(), options).await.unwrap())
    };
    let https = format!("https://localhost:{}/", tls.port());

    // Four workers on one client: one TLS connection carrying h2 streams.
    let report = run(https.clone(), HttpVersion::Http2, 1, Some(ca.clone())).await;
    assert_eq!(report.errors, 0);
    assert!(report.ok > 0);
    assert_eq!(report.versions.keys().collect::<Vec<_>>(), ["HTTP/2.0"]);
    assert_eq!(tls_connections.load(Ordering::Relaxed), 1);

    let report = run(https.clone(), HttpVersion::Auto, 1, Some(ca.clone())).await;
    assert_eq!(report.errors, 0);
    assert_eq!(report.versions.keys().collect::<Vec<_>>(), ["HTTP/2.0"], "h2 chosen by ALPN");

    let report = run(https.clone(), HttpVersion::Http1, 4, Some(ca.clone())).await;
    assert_eq!(report.errors, 0);
    assert_eq!(report.versions.keys().collect::<Vec<_>>(), ["HTTP/1.1"]);

    let report = run(format!("http://{cleartext}/"), HttpVersion::Http2, 1, None).await;
    assert_eq!(report.errors, 0);
    assert_eq!(report.versions.keys().collect::<Vec<_>>(), ["HTTP/2.0"], "h2c by prior knowledge");

    // Not trusting the test CA: every request fails to connect, and no
    // latency is counted for it.
    let report = run(https, HttpVersion::Auto, 1, None).await;
    assert_eq!(report.ok, 0);
    assert!(report.errors > 0);
    assert_eq!(report.errors_by_kind.keys().collect::<Vec<_>>(), ["connect"]);
    assert_eq!(report.latency_ms.max, 0.0);
}
