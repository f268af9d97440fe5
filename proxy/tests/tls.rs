//! HTTP/2 and TLS at the edge, over real sockets: h2 and HTTP/1.1 over
//! TLS (rustls), h2c by prior knowledge, the `X-Forwarded-*` an upstream
//! is told, and a renewed certificate served without a restart.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use testkit::{NativeUpstream, ProxyProcess, make_test_certificates, test_jwks};

/// Two certificate authorities' worth of test certificates, each in a
/// folder of its own, removed at the end.
struct Certificates(PathBuf);

impl Certificates {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("gatehouse-tls-{}", uuid::Uuid::new_v4().simple()));
        make_test_certificates(&dir.join("first")).unwrap();
        make_test_certificates(&dir.join("second")).unwrap();
        std::fs::create_dir_all(dir.join("served")).unwrap();
        let certificates = Self(dir);
        certificates.serve("first");
        certificates
    }

    /// Puts the pair of `which` where the proxy reads it, each file
    /// replaced whole (as a Secret volume update does).
    fn serve(&self, which: &str) {
        for file in ["server.crt", "server.key"] {
            let staged = self.0.join("served").join(format!("{file}.new"));
            std::fs::copy(self.0.join(which).join(file), &staged).unwrap();
            std::fs::rename(&staged, self.0.join("served").join(file)).unwrap();
        }
    }

    fn served(&self, file: &str) -> String {
        format!("{:?}", self.0.join("served").join(file).display().to_string())
    }

    /// The proxy, with a TLS listener serving these files, in front of
    /// `upstream`; and the TLS listener's port.
    fn proxy_in_front_of(&self, upstream: &NativeUpstream, overrides: &[(&str, &str)]) -> (ProxyProcess, u16) {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let tls = format!(
            "listen = \"127.0.0.1:{port}\"\ncertificate = {}\nprivate_key = {}",
            self.served("server.crt"),
            self.served("server.key")
        );
        let mut overrides = overrides.to_vec();
        overrides.push(("[tls]", &tls));
        let binary = Path::new(env!("CARGO_BIN_EXE_gatehouse-proxy"));
        (ProxyProcess::start_with(binary, upstream.addr, &test_jwks(&[]), &overrides), port)
    }

    fn client_trusting(&self, which: &str) -> reqwest::Client {
        let pem = std::fs::read(self.0.join(which).join("ca.pem")).unwrap();
        reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
            .pool_max_idle_per_host(0)
            .build()
            .unwrap()
    }
}

impl Drop for Certificates {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The head the upstream received, lower-cased, and the HTTP version the
/// client spoke.
async fn echo(request: reqwest::RequestBuilder) -> (http::Version, String) {
    let response = request.send().await.expect("the request");
    assert_eq!(response.status().as_u16(), 200);
    (response.version(), response.text().await.unwrap().to_ascii_lowercase())
}

#[tokio::test]
async fn h2_and_http1_over_tls_and_h2c_with_the_forwarded_headers_an_upstream_needs() {
    let upstream = NativeUpstream::start().await;
    let certificates = Certificates::new();
    let (proxy, tls_port) = certificates.proxy_in_front_of(&upstream, &[("h2c", "true")]);
    let secure = format!("https://localhost:{tls_port}/guest/echo");
    let trusting = certificates.client_trusting("first");

    // Over TLS, a browser-like client gets HTTP/2 (ALPN), and the upstream
    // is told the scheme and host the client used, not what it claimed.
    let (version, head) = echo(trusting.get(&secure).header("x-forwarded-proto", "http")).await;
    assert_eq!(version, http::Version::HTTP_2);
    assert!(head.contains("x-forwarded-proto: https\r\n"), "{head}");
    assert!(head.contains(&format!("x-forwarded-host: localhost:{tls_port}\r\n")), "{head}");
    assert!(head.contains("x-forwarded-for: 127.0.0.1\r\n"), "{head}");
    // A client that offers HTTP/1.1 only is served too, with HSTS.
    let http1 = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(certificates.0.join("first/ca.pem")).unwrap()).unwrap(),
        )
        .http1_only()
        .build()
        .unwrap();
    let response = http1.get(&secure).send().await.unwrap();
    assert_eq!(response.version(), http::Version::HTTP_11);
    assert_eq!(response.headers()["strict-transport-security"], "max-age=31536000");
    // The edge's checks hold over HTTP/2 as over HTTP/1.1.
    let refused = trusting.get(format!("https://localhost:{tls_port}/items/api/v1/items/")).send().await.unwrap();
    assert_eq!((refused.version(), refused.status().as_u16()), (http::Version::HTTP_2, 401));
    let many = (0..150).fold(trusting.get(&secure), |r, i| r.header(format!("x-filler-{i}"), "1"));
    assert_eq!(many.send().await.unwrap().status().as_u16(), 431, "too many header fields over HTTP/2");

    // Without TLS: HTTP/2 by prior knowledge (h2c) beside HTTP/1.1.
    let h2c = reqwest::Client::builder().http2_prior_knowledge().build().unwrap();
    let (version, head) = echo(h2c.get(proxy.url("/guest/echo")).header("x-forwarded-host", "evil.example")).await;
    assert_eq!(version, http::Version::HTTP_2);
    assert!(head.contains("x-forwarded-proto: http\r\n"), "{head}");
    assert!(head.contains(&format!("x-forwarded-host: {}\r\n", proxy.addr)), "{head}");
    let (version, _) = echo(reqwest::Client::new().get(proxy.url("/guest/echo"))).await;
    assert_eq!(version, http::Version::HTTP_11);
}

#[tokio::test]
async fn a_renewed_certificate_is_served_without_a_restart_and_a_broken_one_refused() {
    let upstream = NativeUpstream::start().await;
    let certificates = Certificates::new();
    let (mut proxy, tls_port) = certificates.proxy_in_front_of(&upstream, &[]);
    let url = format!("https://localhost:{tls_port}/guest/x");
    let (first, second) = (certificates.client_trusting("first"), certificates.client_trusting("second"));
    assert_eq!(first.get(&url).send().await.unwrap().status().as_u16(), 200);
    assert!(second.get(&url).send().await.is_err(), "the second authority's client trusts the first's certificate");

    // The renewal: new files in place; the next handshakes get them.
    certificates.serve("second");
    let deadline = Instant::now() + Duration::from_secs(20);
    while second.get(&url).send().await.is_err() {
        assert!(Instant::now() < deadline, "the new certificate was not served: {}", proxy.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // (A client of its own: one that connected before may resume its TLS
    // session, which skips the certificate.)
    assert!(
        certificates.client_trusting("first").get(&url).send().await.is_err(),
        "the old certificate is still served"
    );

    // A broken renewal is refused; the last good pair serves on.
    let key = certificates.0.join("served/server.key");
    std::fs::write(&key, "-----BEGIN PRIVATE KEY-----\nbroken\n-----END PRIVATE KEY-----\n").unwrap();
    testkit::wait_for_log(|| proxy.log(), "TLS certificate refused", 1, Duration::from_secs(20)).await;
    assert_eq!(second.get(&url).send().await.unwrap().status().as_u16(), 200);
    assert!(!proxy.log().contains("broken"), "key material in the log");
    assert!(proxy.is_running());
}
