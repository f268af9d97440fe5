//! The proxy binary against a hostile client, over real sockets: forged
//! tokens, path spellings of protected routes, smuggling attempts, oversized
//! requests and slow upstreams. None may reach a component it should not,
//! and every refusal is the proxy's own `{"detail": ...}`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use testkit::{
    ADMIN_EMAIL, ADMIN_PASSWORD, ApiClient, ProxyProcess, RunningHost, TEST_KEY_ID, TestDatabase, services_manifest,
    test_jwks, test_signing_key,
};

fn proxy_binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_gatehouse-proxy"))
}

/// Sends `request` as written and reads the answer until the proxy closes
/// the connection or goes quiet. Blocking I/O, so off the runtime that also
/// runs the host.
async fn raw(addr: SocketAddr, request: &[u8]) -> String {
    let request = request.to_vec();
    tokio::task::spawn_blocking(move || raw_blocking(addr, &request)).await.unwrap()
}

fn raw_blocking(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    stream.write_all(request).unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

/// Sends each request on one kept-alive connection after the answer to the
/// one before it has arrived whole (by its `Content-Length`).
async fn raw_in_turn(addr: SocketAddr, requests: &[String]) -> Vec<String> {
    let requests = requests.to_vec();
    tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut answers = Vec::new();
        for request in requests {
            stream.write_all(request.as_bytes()).unwrap();
            let mut answer = Vec::new();
            let mut buf = [0u8; 4096];
            loop {
                let text = String::from_utf8_lossy(&answer).into_owned();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let length = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned())
                        })
                        .and_then(|v| v.parse::<usize>().ok());
                    if length.is_some_and(|n| body.len() >= n) {
                        break;
                    }
                }
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => answer.extend_from_slice(&buf[..n]),
                }
            }
            answers.push(String::from_utf8_lossy(&answer).into_owned());
        }
        answers
    })
    .await
    .unwrap()
}

fn status_of(answer: &str) -> u16 {
    answer.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// The JSON body of the first answer in `answer`, chunked or not.
fn detail_of(answer: &str) -> Value {
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or_default();
    let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        body.split_once("\r\n").map_or("", |(_, rest)| rest)
    } else {
        body
    };
    let end = body.find(['\r', '\n']).unwrap_or(body.len()).min(body.find("HTTP/1.1").unwrap_or(body.len()));
    serde_json::from_str(&body[..end]).unwrap_or(Value::Null)
}

struct Platform {
    _db: TestDatabase,
    host: RunningHost,
    proxy: ProxyProcess,
    api: ApiClient,
}

impl Platform {
    fn api_url(&self, path: &str) -> String {
        self.proxy.url(path)
    }
}

async fn platform(overrides: &[(&str, &str)], limits: &str) -> Platform {
    let db = TestDatabase::create().await;
    let host = RunningHost::start_services(&db, &services_manifest(limits, 8)).await;
    let proxy = ProxyProcess::start_with(proxy_binary(), host.addr, &test_jwks(&[]), overrides);
    let api = ApiClient::new(format!("http://{}", proxy.addr));
    Platform { _db: db, host, proxy, api }
}

/// A token for `claims` signed with the test platform's own key.
fn signed(claims: &Value, header: Header) -> String {
    let key = ed25519_dalek::SigningKey::from_pkcs8_pem(&test_signing_key().private_pem).unwrap();
    let der = key.to_pkcs8_der().unwrap();
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_ed_der(der.as_bytes())).unwrap()
}

fn eddsa_header(kid: Option<&str>) -> Header {
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = kid.map(str::to_owned);
    header
}

fn now() -> i64 {
    jsonwebtoken::get_current_timestamp() as i64
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

#[tokio::test]
async fn forged_and_malformed_tokens_are_all_refused() {
    let p = platform(&[], "").await;
    let admin = p.api.token(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let (_, me) = p.api.call("GET", "/users/api/v1/users/me", Some(&admin), None).await;
    let sub = me["id"].as_str().unwrap().to_owned();
    let good = json!({ "sub": sub, "exp": now() + 600, "iat": now(), "iss": "gatehouse", "aud": "gatehouse" });
    let with = |change: Value| {
        let mut claims = good.clone();
        for (k, v) in change.as_object().unwrap() {
            if v.is_null() {
                claims.as_object_mut().unwrap().remove(k);
            } else {
                claims[k] = v.clone();
            }
        }
        signed(&claims, eddsa_header(Some(TEST_KEY_ID)))
    };
    let valid = signed(&good, eddsa_header(Some(TEST_KEY_ID)));
    assert_eq!(p.api.call("GET", "/users/api/v1/users/me", Some(&valid), None).await.0, 200, "the control works");

    let public_key = URL_SAFE_NO_PAD.decode(test_signing_key().public_jwk["x"].as_str().unwrap()).unwrap();
    let parts: Vec<&str> = valid.split('.').collect();
    let mut forged = vec![
        with(json!({ "exp": now() - 10 })),
        with(json!({ "nbf": now() + 600 })),
        with(json!({ "iat": now() + 600 })),
        with(json!({ "iss": "someone-else" })),
        with(json!({ "aud": "another-app" })),
        with(json!({ "exp": (now() + 600).to_string() })),
        with(json!({ "exp": (now() + 600) as f64 + 0.5 })),
        with(json!({ "exp": -1 })),
        with(json!({ "exp": 1e300 })),
        with(json!({ "exp": null })),
        with(json!({ "sub": null })),
        with(json!({ "sub": "admin" })),
        with(json!({ "sub": 1 })),
        signed(&good, eddsa_header(None)),
        signed(&good, eddsa_header(Some("unknown-kid"))),
        // HS256 "signed" with the EdDSA public key: algorithm confusion.
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &good, &EncodingKey::from_secret(&public_key)).unwrap(),
        format!("{}.{}", parts[0], parts[1]),
        format!("{valid}.extra"),
        format!("{valid}."),
        String::new(),
        "a.b.c".to_owned(),
    ];
    for alg in ["none", "None", "NONE", "nOnE"] {
        let header = json!({ "alg": alg, "typ": "JWT", "kid": TEST_KEY_ID });
        forged.push(format!("{}.{}.", b64(&header), b64(&good)));
        forged.push(format!("{}.{}.{}", b64(&header), b64(&good), parts[2]));
    }
    // A flipped bit in each part.
    for part in 0..3 {
        let mut pieces: Vec<Vec<u8>> = parts.iter().map(|p| p.as_bytes().to_vec()).collect();
        let middle = pieces[part].len() / 2;
        pieces[part][middle] = if pieces[part][middle] == b'A' { b'B' } else { b'A' };
        forged.push(pieces.iter().map(|p| String::from_utf8_lossy(p).into_owned()).collect::<Vec<_>>().join("."));
    }
    forged.push(format!("{valid}{}", "A".repeat(9000)));

    let received = p.host.runtime.requests_received();
    for token in &forged {
        let (status, body) = p.api.call("GET", "/users/api/v1/users/me", Some(token), None).await;
        assert_eq!(status, 401, "{token:.80}: {body}");
        let detail = body["detail"].as_str().unwrap_or_default();
        assert!(["Could not validate credentials", "Not authenticated"].contains(&detail), "{token:.80}: {body}");
    }
    // A 1 MiB token is refused by the header limit, not by a crash.
    let huge = format!(
        "GET /users/api/v1/users/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\r\n",
        "A".repeat(1 << 20)
    );
    let answer = raw(p.proxy.addr, huge.as_bytes()).await;
    assert_eq!(status_of(&answer), 431, "{answer:.200}");
    assert!(detail_of(&answer)["detail"].is_string(), "the proxy's own JSON: {answer:.300}");
    // Two Authorization headers, one of them valid, are refused.
    let twice = format!(
        "GET /users/api/v1/users/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {valid}\r\nAuthorization: Bearer x\r\nConnection: close\r\n\r\n"
    );
    let answer = raw(p.proxy.addr, twice.as_bytes()).await;
    assert_eq!(status_of(&answer), 401, "{answer}");
    assert!(answer.to_ascii_lowercase().contains(r#"www-authenticate: bearer error="invalid_token""#), "{answer}");
    assert_eq!(p.host.runtime.requests_received(), received, "no forged token reached the host");
    p.host.shutdown().await;
}

#[tokio::test]
async fn every_spelling_of_a_protected_path_is_checked_or_refused() {
    let p = platform(&[], "").await;
    let admin = p.api.token(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let checked = [
        "/auth/api/v1/login/test-token",
        "/auth//api/v1/login/test-token",
        "//auth/api/v1/login/test-token",
        "/auth/api/v1/login//test-token",
        "/auth/./api/v1/login/test-token",
        "/auth/x/../api/v1/login/test-token",
        "/auth/%2e/api/v1/login/test-token",
        "/auth/x/%2E%2e/api/v1/login/test-token",
        "/%61uth/api/v1/login/test-token",
        "/auth/api/v1/login/test%2Dtoken",
        "/api/v1//login/test-token",
        "/api/v1/login/./test-token",
        "/api/v1/login/test-token/",
        "/users/api/v1/users/signup/../me",
        "/api/v1/users/signup/%2e%2e/me",
        "/users/health/../api/v1/users/me",
    ];
    let received = p.host.runtime.requests_received();
    for path in checked {
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let answer = raw(p.proxy.addr, request.as_bytes()).await;
        assert_eq!(status_of(&answer), 401, "{path} without a token: {answer}");
    }
    assert_eq!(p.host.runtime.requests_received(), received, "no unauthenticated spelling reached the host");
    for path in checked {
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {admin}\r\nConnection: close\r\n\r\n");
        let answer = raw(p.proxy.addr, request.as_bytes()).await;
        assert_eq!(status_of(&answer), 200, "{path} with a token: {answer}");
        assert_eq!(detail_of(&answer)["email"], ADMIN_EMAIL, "{path} reached the caller's own profile");
    }
    // An absolute-form target is its path, checked like any other; its
    // authority replaces the Host header (RFC 9112 §3.2.2).
    let absolute =
        "GET http://example.com/auth//api/v1/login/test-token HTTP/1.1\r\nHost: other\r\nConnection: close\r\n";
    let answer = raw(p.proxy.addr, format!("{absolute}\r\n").as_bytes()).await;
    assert_eq!(status_of(&answer), 401, "{answer}");
    let answer = raw(p.proxy.addr, format!("{absolute}Authorization: Bearer {admin}\r\n\r\n").as_bytes()).await;
    assert_eq!(status_of(&answer), 200, "{answer}");
    assert_eq!(detail_of(&answer)["email"], ADMIN_EMAIL);
    // Every head on a kept-alive connection goes through the same gate.
    let answers = raw_in_turn(
        p.proxy.addr,
        &["GET /items/health HTTP/1.1\r\nHost: x\r\n\r\n".to_owned(), format!("{absolute}\r\n")],
    )
    .await;
    assert_eq!(answers.iter().map(|a| status_of(a)).collect::<Vec<_>>(), [200, 401], "{answers:?}");
    let answer = raw(p.proxy.addr, b"GET example.com:80 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
    assert_eq!(status_of(&answer), 400, "authority-form: {answer}");
    assert!(detail_of(&answer)["detail"].is_string(), "the proxy's own JSON: {answer}");

    let refused = [
        ("/auth%2fapi/v1/login/test-token", 400),
        ("/auth/api/v1/login%2Ftest-token", 400),
        ("/auth\\api/v1/login/test-token", 400),
        ("/auth;x=1/api/v1/login/test-token", 400),
        ("/auth/api/v1/login/test-token;", 400),
        ("/../auth/api/v1/login/test-token", 400),
        ("/auth/%zz/x", 400),
        ("/AUTH/api/v1/login/test-token", 404),
        ("/Users/api/v1/users/me", 404),
    ];
    let received = p.host.runtime.requests_received();
    for (path, status) in refused {
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {admin}\r\nConnection: close\r\n\r\n");
        let answer = raw(p.proxy.addr, request.as_bytes()).await;
        assert_eq!(status_of(&answer), status, "{path}: {answer}");
        assert!(detail_of(&answer)["detail"].is_string(), "{path}: the proxy's own JSON: {answer}");
    }
    let answer = raw(p.proxy.addr, b"GET /auth/api/v1/login/test-token HTTP/1.1\r\nConnection: close\r\n\r\n").await;
    assert_eq!(status_of(&answer), 400, "no Host: {answer}");
    assert_eq!(p.host.runtime.requests_received(), received, "refused paths never reach the host");
    p.host.shutdown().await;
}

#[tokio::test]
async fn identity_sent_straight_to_the_host_is_believed_only_with_the_proxys_proof() {
    let p = platform(&[], "").await;
    let admin = p.api.token(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let (status, me) = p.api.call("GET", "/users/api/v1/users/me", Some(&admin), None).await;
    assert_eq!(status, 200, "through the proxy, the identity arrives: {me}");
    let admin_id = me["id"].as_str().unwrap().to_owned();
    let path = "/users/api/v1/users/me";
    let direct = |headers: Vec<(&'static str, String)>| {
        let mut request = reqwest::Client::new().get(format!("http://{}{path}", p.host.addr));
        for (name, value) in headers {
            request = request.header(name, value);
        }
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(direct(vec![("x-gatehouse-user-id", admin_id.clone())]).await, 401, "a bare claim");
    let forged = host::identity::signed_headers(b"a key that is not the proxy's, 32+ bytes", "GET", path, &admin_id);
    assert_eq!(direct(forged).await, 401, "signed with another key");
    let for_another_path = testkit::identity_headers("GET", "/users/api/v1/users/", &admin_id);
    assert_eq!(direct(for_another_path).await, 401, "a proof for another request");
    assert_eq!(direct(testkit::identity_headers("GET", path, &admin_id)).await, 200, "the proxy's key");
    p.host.shutdown().await;
}

#[tokio::test]
async fn smuggling_attempts_never_reach_the_upstream_as_a_second_request() {
    let p = platform(&[], "").await;
    let smuggled = "GET /guest/echo HTTP/1.1\r\nHost: x\r\n\r\n";
    let corpus = [
        // CL.TE and TE.CL
        format!(
            "POST /guest/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}"
        ),
        format!(
            "POST /guest/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n5c\r\n{smuggled}\r\n0\r\n\r\n"
        ),
        // TE.TE: obfuscated Transfer-Encoding
        format!("POST /guest/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n{smuggled}"),
        format!("POST /guest/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n{smuggled}"),
        format!(
            "POST /guest/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n{smuggled}"
        ),
        format!("POST /guest/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n{smuggled}"),
        format!(
            "POST /guest/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n{smuggled}"
        ),
        // Duplicate and malformed Content-Length
        format!("POST /guest/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 40\r\n\r\n{smuggled}"),
        format!("POST /guest/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 0, 40\r\n\r\n{smuggled}"),
        // HTTP/1.0 with Transfer-Encoding; bare LF
        format!("POST /guest/echo HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}"),
        format!("POST /guest/echo HTTP/1.1\nHost: x\nContent-Length: 0\n\n{smuggled}"),
    ];
    for request in &corpus {
        let received = p.host.runtime.requests_received();
        let answer = raw(p.proxy.addr, request.as_bytes()).await;
        assert_eq!(status_of(&answer), 400, "{request:?}: {answer}");
        assert_eq!(answer.matches("HTTP/1.1 ").count(), 1, "one answer, then the connection is closed: {answer}");
        assert_eq!(p.host.runtime.requests_received(), received, "{request:?} reached the host");
    }
    // The connection refused, the next one is served as usual.
    let received = p.host.runtime.requests_received();
    let answer = raw(p.proxy.addr, b"GET /guest/echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
    assert_eq!(status_of(&answer), 200, "{answer}");
    assert_eq!(p.host.runtime.requests_received(), received + 1);
    p.host.shutdown().await;
}

#[tokio::test]
async fn size_limits_answer_413_and_431_before_anything_runs() {
    let p = platform(&[("max_body_bytes", "4096")], "").await;
    let admin = p.api.token(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let big_title = "x".repeat(8000);
    let body = json!({ "title": big_title }).to_string();
    let request = format!(
        "POST /items/api/v1/items/ HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {admin}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let answer = raw(p.proxy.addr, request.as_bytes()).await;
    assert_eq!(status_of(&answer), 413, "{answer:.300}");
    assert_eq!(detail_of(&answer)["detail"], "Request body too large");

    let chunked = format!(
        "POST /items/api/v1/items/ HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {admin}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
        body.len()
    );
    let answer = raw(p.proxy.addr, chunked.as_bytes()).await;
    assert_eq!(status_of(&answer), 413, "chunked: {answer:.300}");
    let (_, items) = p.api.call("GET", "/items/api/v1/items/", Some(&admin), None).await;
    assert_eq!(items["count"], 0, "nothing was written");

    let mut many = String::from("GET /items/health HTTP/1.1\r\nHost: x\r\n");
    for i in 0..150 {
        many.push_str(&format!("X-Filler-{i}: {i}\r\n"));
    }
    many.push_str("\r\n");
    let answer = raw(p.proxy.addr, many.as_bytes()).await;
    assert_eq!(status_of(&answer), 431, "{answer}");
    assert_eq!(detail_of(&answer)["detail"], "Too many request header fields");
    // Past what Pingora's own parser takes (256 fields, 1 MiB), the answer
    // is still the proxy's JSON.
    let mut more_than_pingora = String::from("GET /items/health HTTP/1.1\r\nHost: x\r\n");
    for i in 0..300 {
        more_than_pingora.push_str(&format!("X-Filler-{i}: {i}\r\n"));
    }
    let long = format!("GET /items/health HTTP/1.1\r\nHost: x\r\nX-Long: {}\r\n\r\n", "y".repeat(20_000));
    let huge = format!("GET /items/health HTTP/1.1\r\nHost: x\r\nX-Long: {}\r\n\r\n", "y".repeat(2 << 20));
    for head in [format!("{more_than_pingora}\r\n"), long, huge] {
        let answer = raw(p.proxy.addr, head.as_bytes()).await;
        assert_eq!(status_of(&answer), 431, "{answer:.200}");
        assert!(detail_of(&answer)["detail"].is_string(), "the proxy's own JSON: {answer:.300}");
    }
    p.host.shutdown().await;
}

#[tokio::test]
async fn a_silent_upstream_is_a_504_and_answers_carry_security_headers() {
    let p = platform(
        &[("upstream_read_timeout_ms", "300"), ("trusted_proxies", r#"["127.0.0.1/32"]"#)],
        "timeout_ms = 3000",
    )
    .await;
    let answer = raw(p.proxy.addr, b"GET /guest/loop HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
    assert_eq!(status_of(&answer), 504, "{answer}");
    assert_eq!(detail_of(&answer)["detail"], "Upstream timed out");

    for path in ["/items/health", "/nowhere", "/items/api/v1/items/"] {
        let answer =
            raw(p.proxy.addr, format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes()).await;
        let lower = answer.to_ascii_lowercase();
        for header in [
            "x-content-type-options: nosniff",
            "x-frame-options: deny",
            "referrer-policy: no-referrer",
            "content-security-policy: ",
        ] {
            assert!(lower.contains(header), "{path} lacks {header}: {answer}");
        }
        assert!(!lower.contains("\r\nserver:"), "{path} names its server: {answer}");
        assert!(!lower.contains("strict-transport-security"), "{path} over plain HTTP: {answer}");
        // Through a trusted load balancer that terminated TLS: HSTS.
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nX-Forwarded-Proto: https\r\nConnection: close\r\n\r\n");
        let answer = raw(p.proxy.addr, request.as_bytes()).await.to_ascii_lowercase();
        assert!(answer.contains("strict-transport-security: max-age="), "{path} over TLS: {answer}");
    }
    p.host.shutdown().await;
}

/// Opens `count` connections that send a request head a byte at a time,
/// for `for_how_long`; returns how many the proxy closed in that time.
fn slow_loris(addr: SocketAddr, count: usize, for_how_long: Duration) -> usize {
    let mut streams: Vec<TcpStream> = (0..count)
        .filter_map(|_| {
            let mut s = TcpStream::connect(addr).ok()?;
            s.write_all(b"GET /items/health HTTP/1.1\r\nHost: x\r\n").ok()?;
            s.set_nonblocking(true).ok()?;
            Some(s)
        })
        .collect();
    assert_eq!(streams.len(), count, "all slow connections opened");
    let mut closed = vec![false; count];
    let started = std::time::Instant::now();
    while started.elapsed() < for_how_long {
        for (i, s) in streams.iter_mut().enumerate() {
            if closed[i] {
                continue;
            }
            let mut buf = [0u8; 512];
            let gone = match s.read(&mut buf) {
                Ok(0) => true,
                Ok(_) => true, // an answer to half a head also ends it
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => s.write_all(b"X-Slow: 1\r\n").is_err(),
                Err(_) => true,
            };
            closed[i] = gone;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    closed.iter().filter(|c| **c).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_dropped_without_starving_others() {
    let p = platform(&[("header_timeout_ms", "1000"), ("max_connections_per_ip", "1000")], "").await;
    let addr = p.proxy.addr;
    let loris = tokio::task::spawn_blocking(move || slow_loris(addr, 500, Duration::from_secs(4)));
    // While 500 slow heads trickle in, ordinary requests are served.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..20 {
        let (status, body) = p.api.call("GET", "/items/health", None, None).await;
        assert_eq!(status, 200, "{body}");
    }
    let closed = loris.await.unwrap();
    assert_eq!(closed, 500, "every slow client was disconnected at its deadline");
    let (status, _) = p.api.call("GET", "/items/health", None, None).await;
    assert_eq!(status, 200);
    p.host.shutdown().await;
}

#[tokio::test]
async fn connections_over_the_per_address_cap_are_closed() {
    let p = platform(&[("max_connections_per_ip", "4")], "").await;
    let addr = p.proxy.addr;
    let outcome = tokio::task::spawn_blocking(move || {
        let held: Vec<TcpStream> = (0..4).map(|_| TcpStream::connect(addr).unwrap()).collect();
        std::thread::sleep(Duration::from_millis(200));
        let refused = raw_blocking(addr, b"GET /items/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        drop(held);
        std::thread::sleep(Duration::from_millis(200));
        let served = raw_blocking(addr, b"GET /items/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        (refused, served)
    })
    .await
    .unwrap();
    assert_eq!(outcome.0, "", "the fifth connection is closed unanswered");
    assert_eq!(status_of(&outcome.1), 200, "{}", outcome.1);
    p.host.shutdown().await;
}

#[tokio::test]
async fn logins_recoveries_and_sign_ups_are_rate_limited() {
    let p = platform(
        &[
            ("login_account", r#"{ per_second = 0.01, burst = 3, key = "username" }"#),
            ("recovery_account", r#"{ per_second = 0.01, burst = 2, key = "username" }"#),
            ("signup_ip", r#"{ per_second = 0.01, burst = 2, key = "ip" }"#),
        ],
        "",
    )
    .await;
    // Guessing at one account: three tries, then 429 whatever the layout.
    for _ in 0..3 {
        let (status, _) = p.api.login_at("/api/v1/login/access-token", ADMIN_EMAIL, "guess").await;
        assert_eq!(status, 400);
    }
    for path in ["/api/v1/login/access-token", "/auth/api/v1/login/access-token"] {
        let response = reqwest::Client::new()
            .post(p.api_url(path))
            .form(&[("username", ADMIN_EMAIL.to_uppercase().as_str()), ("password", ADMIN_PASSWORD)])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 429, "{path}");
        // Refused once its body was read, the connection is closed after the
        // answer, and the answer says so: a client reusing it would meet a
        // reset.
        assert_eq!(response.headers()["connection"], "close", "{path}");
        let wait: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
        assert!(wait >= 1, "{wait}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["detail"], "Too many requests");
    }
    // Naming the account in JSON instead of a form changes nothing.
    let body = json!({ "username": ADMIN_EMAIL, "password": ADMIN_PASSWORD });
    let (status, _) = p.api.call("POST", "/api/v1/login/access-token", None, Some(&body)).await;
    assert_eq!(status, 429, "a JSON login counts against the same account");
    // Another account from the same address is not held back.
    let (status, _) = p.api.login_at("/api/v1/login/access-token", "someone@example.com", "guess").await;
    assert_eq!(status, 400);

    for n in 0..3 {
        let (status, body) = p.api.call("POST", "/api/v1/password-recovery/victim@example.com", None, None).await;
        assert_eq!(status, if n < 2 { 200 } else { 429 }, "recovery {n}: {body}");
    }
    let (status, _) = p.api.call("POST", "/api/v1/password-recovery/other@example.com", None, None).await;
    assert_eq!(status, 200);

    for n in 0..3 {
        let body = json!({ "email": format!("new{n}@example.com"), "password": "new-password" });
        let (status, answer) = p.api.call("POST", "/api/v1/users/signup", None, Some(&body)).await;
        assert_eq!(status, if n < 2 { 200 } else { 429 }, "sign-up {n}: {answer}");
    }
    p.host.shutdown().await;
}

#[tokio::test]
async fn keys_can_come_from_the_auth_services_key_set() {
    let db = TestDatabase::create().await;
    let host = RunningHost::start_services(&db, &services_manifest("", 8)).await;
    let url = format!(r#""http://{}/auth/api/v1/.well-known/jwks.json""#, host.addr);
    // No key in the environment: the proxy holds only what it fetches.
    let proxy = ProxyProcess::start_with(proxy_binary(), host.addr, "", &[("jwt.jwks_url", &url)]);
    let api = ApiClient::new(format!("http://{}", proxy.addr));
    let token = api.token(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let (status, me) = api.call("GET", "/users/api/v1/users/me", Some(&token), None).await;
    assert_eq!((status, me["email"].as_str()), (200, Some(ADMIN_EMAIL)));
    // A key the auth service does not publish is still refused.
    let stranger = ed25519_dalek::SigningKey::from_bytes(&[9; 32]).to_pkcs8_der().unwrap();
    let claims = json!({ "sub": me["id"], "exp": now() + 600, "iss": "gatehouse", "aud": "gatehouse" });
    let forged =
        jsonwebtoken::encode(&eddsa_header(Some("stranger")), &claims, &EncodingKey::from_ed_der(stranger.as_bytes()))
            .unwrap();
    for _ in 0..3 {
        let (status, _) = api.call("GET", "/users/api/v1/users/me", Some(&forged), None).await;
        assert_eq!(status, 401);
    }
    drop(proxy);
    host.shutdown().await;
}
