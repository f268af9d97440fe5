//! Micro-benchmarks of the edge's per-request decisions and of password
//! hashing, each alone on one thread (divan):
//!
//! ```sh
//! cargo bench -p benches --bench micro
//! ```
//!
//! What a whole request costs, with the sockets, is `gatehouse-proxybench`'s
//! and `gatehouse-hostbench`'s to say; these tell which part weighs what.

use std::hint::black_box;

use divan::Bencher;
use proxy::framing::{HeadLimits, check_head};
use proxy::identity::{Claim, IdentitySigner};
use proxy::path::normalise_path;
use proxy::routing::RouteTable;
use proxy::token::{TokenRules, TokenVerifier};

fn main() {
    divan::main();
}

const USER: &str = "0b6f1d8e-4c39-4f8a-9a55-3f2b1c7d9e10";
const IDENTITY_KEY: &[u8] = b"a key of the proxy and host, 32 bytes or more";

fn rules() -> TokenRules {
    TokenRules { issuer: "gatehouse".into(), audience: "gatehouse".into(), leeway_seconds: 0 }
}

fn claims() -> serde_json::Value {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    serde_json::json!({ "sub": USER, "exp": now + 3600, "iat": now, "iss": "gatehouse", "aud": "gatehouse" })
}

/// An EdDSA verifier over a fresh key, and `Bearer <token>` it accepts.
fn eddsa(cache: usize) -> (TokenVerifier, Vec<u8>) {
    use base64::Engine as _;
    use ed25519_dalek::pkcs8::EncodePrivateKey as _;
    let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes());
    let jwks = serde_json::json!({ "keys": [{ "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "kid": "k", "x": x }] });
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.kid = Some("k".into());
    let der = key.to_pkcs8_der().unwrap();
    let token = jsonwebtoken::encode(&header, &claims(), &jsonwebtoken::EncodingKey::from_ed_der(der.as_bytes()));
    let verifier = TokenVerifier::eddsa(&jwks.to_string(), &rules()).unwrap().with_cache(cache);
    (verifier, format!("Bearer {}", token.unwrap()).into_bytes())
}

/// An HS256 verifier, and `Bearer <token>` it accepts.
fn hs256(cache: usize) -> (TokenVerifier, Vec<u8>) {
    const SECRET: &[u8] = b"a secret shared with the auth service";
    let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    let token = jsonwebtoken::encode(&header, &claims(), &jsonwebtoken::EncodingKey::from_secret(SECRET)).unwrap();
    (TokenVerifier::hs256(SECRET, &rules()).with_cache(cache), format!("Bearer {token}").into_bytes())
}

/// Verifying a bearer token at the edge: 0 is no cache, 10000 the default.
#[divan::bench(args = [0, 10_000])]
fn token_eddsa(bencher: Bencher, cache: usize) {
    let (verifier, bearer) = eddsa(cache);
    bencher.bench(|| verifier.verify_bearer_token(black_box(Some(&bearer))).unwrap());
}

#[divan::bench(args = [0, 10_000])]
fn token_hs256(bencher: Bencher, cache: usize) {
    let (verifier, bearer) = hs256(cache);
    bencher.bench(|| verifier.verify_bearer_token(black_box(Some(&bearer))).unwrap());
}

const PATHS: [&str; 4] = [
    "/api/v1/items/",
    "/items/api/v1/items/0b6f1d8e-4c39-4f8a-9a55-3f2b1c7d9e10",
    "/users/api/v1/users/./me/../me",
    "/_next/static/chunks/pages/items-1a2b3c4d.js",
];

/// The one normalised form of a path (dot segments, escapes, checks).
#[divan::bench(args = PATHS)]
fn path_normalise(path: &str) -> String {
    normalise_path(black_box(path)).unwrap()
}

/// The route of a normalised path, among the deployed configuration's.
#[divan::bench(args = PATHS)]
fn route_match(bencher: Bencher, path: &str) {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/proxy.toml")).unwrap();
    let table = RouteTable::new(proxy::config::ProxyConfig::parse(&text).unwrap().route);
    let path = normalise_path(path).unwrap();
    bencher.bench(|| table.find(black_box(&path)).map(|r| r.prefix.len()));
}

/// A browser's request head, checked for framing and limits as it arrives.
#[divan::bench]
fn head_check(bencher: Bencher) {
    let head = b"GET /api/v1/items/?skip=0&limit=100 HTTP/1.1\r\nHost: gatehouse.example\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36\r\n\
Accept: application/json, text/plain, */*\r\nAccept-Encoding: gzip, deflate, br, zstd\r\n\
Accept-Language: en-GB,en;q=0.9\r\nAuthorization: Bearer eyJhbGciOiJFZERTQSJ9.e30.c2lnbmF0dXJl\r\n\
Referer: https://gatehouse.example/items\r\nConnection: keep-alive\r\n\r\n";
    let limits = HeadLimits { max_headers: 100, max_head_bytes: 16384 };
    bencher.bench(|| check_head(black_box(head), &limits).unwrap());
}

/// A request head's hop-by-hop and identity headers removed.
#[divan::bench]
fn header_sanitise(bencher: Bencher) {
    let mut request = pingora::http::RequestHeader::build("GET", b"/api/v1/items/", None).unwrap();
    for (name, value) in [
        ("host", "gatehouse.example"),
        ("connection", "keep-alive, x-hop"),
        ("x-hop", "1"),
        ("x-gatehouse-user-id", USER),
        ("X-Gatehouse-Signature", "forged"),
        ("accept", "application/json"),
        ("authorization", "Bearer eyJhbGciOiJFZERTQSJ9.e30.c2lnbmF0dXJl"),
    ] {
        request.append_header(name, value).unwrap();
    }
    bencher.with_inputs(|| request.clone()).bench_local_refs(|request| {
        proxy::gateway::remove_hop_by_hop_and_identity(request, false);
    });
}

/// The proxy's proof of a request, and the host's check of it.
#[divan::bench]
fn identity_sign() -> String {
    let signer = IdentitySigner::new(IDENTITY_KEY).unwrap();
    signer.sign(black_box(&Claim {
        method: "GET",
        path_and_query: "/items/api/v1/items/?skip=0&limit=100",
        user_id: USER,
        request_id: "6f1c2a8e-0d4b-4c1e-9f3a-2b7d5e8c1a90",
        timestamp: 1_795_000_000,
    }))
}

#[divan::bench]
fn identity_check(bencher: Bencher) {
    let verifier = host::identity::IdentityVerifier::new(Some(IDENTITY_KEY)).unwrap();
    let path = "/items/api/v1/items/?skip=0&limit=100";
    let mut headers = http::HeaderMap::new();
    for (name, value) in host::identity::signed_headers(IDENTITY_KEY, "GET", path, USER) {
        headers.insert(name, value.parse().unwrap());
    }
    bencher.with_inputs(|| headers.clone()).bench_local_refs(|headers| {
        assert!(matches!(verifier.admit("GET", path, headers), host::identity::Verdict::Proven));
    });
}

const PASSWORD: &str = "a password of some length";

/// Checking a password against its stored hash, natively, at the cost the
/// platform stores them with.
#[divan::bench(sample_count = 10, sample_size = 1)]
fn bcrypt_verify(bencher: Bencher) {
    let hash = bcrypt::hash(PASSWORD, setup::BCRYPT_COST).unwrap();
    bencher.bench(|| bcrypt::verify(black_box(PASSWORD), &hash).unwrap());
}

/// The same check inside a component (the test guest, compiled to
/// WebAssembly with the same bcrypt crate the auth service uses), request
/// included.
#[divan::bench(sample_count = 10, sample_size = 1)]
fn bcrypt_verify_in_component(bencher: Bencher) {
    let host = in_process();
    let body = format!("{PASSWORD}\n{}", bcrypt::hash(PASSWORD, setup::BCRYPT_COST).unwrap());
    bencher.bench_local(|| assert_eq!(host.call("POST", "/p2/bcrypt-verify", &body), r#"{"ok":true}"#));
}

/// A request to a hello-world component, on one thread: a fresh instance
/// for WASIp2 (spin-sdk 5), a warm one for WASIp3 (spin-sdk 7).
#[divan::bench(args = ["/p2/env/UNSET", "/p3/env/UNSET"])]
fn component_call(bencher: Bencher, path: &str) {
    let host = in_process();
    bencher.bench_local(|| assert_eq!(host.call("GET", path, ""), r#"{"ok":null}"#));
}

/// A WASIp2 request that opens the database and runs `SELECT 1` this many
/// times on that connection: each query is one host database call, and 0
/// is the opening alone.
#[divan::bench(args = [0, 1, 10])]
fn component_database(bencher: Bencher, queries: u32) {
    let host = in_process();
    let path = format!("/p2/db/select/{queries}");
    bencher.bench_local(|| assert_eq!(host.call("GET", &path, ""), format!(r#"{{"ok":{queries}}}"#)));
}

/// The host in this process, its guests called on one thread: the test
/// guests, the WASIp2 one granted the database at `DATABASE_URL`.
struct InProcess {
    runtime: host::Runtime,
    tokio: tokio::runtime::Runtime,
}

impl InProcess {
    /// One request; its answer's body, once it is checked to be a 200.
    fn call(&self, method: &str, path: &str, body: &str) -> String {
        use http_body_util::BodyExt as _;
        let request = http::Request::builder().method(method).uri(path).header("host", "bench");
        let request = request.body(http_body_util::Full::new(bytes::Bytes::from(body.to_owned()))).unwrap();
        self.tokio.block_on(async {
            let response = self.runtime.handle(request, None).await;
            let status = response.status();
            let body = response.into_body().collect().await.map_err(|e| e.to_string()).unwrap().to_bytes();
            let body = String::from_utf8_lossy(&body).into_owned();
            assert_eq!(status, 200, "{path}: {body}");
            body
        })
    }
}

fn in_process() -> &'static InProcess {
    static HOST: std::sync::OnceLock<InProcess> = std::sync::OnceLock::new();
    HOST.get_or_init(|| {
        let components = std::env::var("GATEHOUSE_COMPONENTS_DIR").map_or_else(
            |_| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/wasm32-wasip2/release"),
            std::path::PathBuf::from,
        );
        let url = std::env::var("DATABASE_URL")
            .expect("DATABASE_URL: the component benchmarks call a real database (`cargo xtask bench` sets it)");
        let manifest = host::Manifest::parse(
            r#"
            [database.app]
            url_env = "DATABASE_URL"
            [component.p2]
            route = "/p2/..."
            file = "test_guest.wasm"
            databases = ["app"]
            [component.p2.variables]
            database = "app"
            [component.p3]
            route = "/p3/..."
            file = "spin7_guest.wasm"
            "#,
            &components,
        )
        .expect("the benchmark's manifest (are the plugins built?)");
        let tokio = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let urls = std::collections::BTreeMap::from([("app".to_owned(), url)]);
        let pools = tokio
            .block_on(host::pools::connect_pools(&manifest.database, &urls, &manifest.limits))
            .expect("the database");
        let engine = host::Runtime::new_engine(&manifest).unwrap();
        let runtime = host::Runtime::new(engine, &manifest, &pools, |_| None).unwrap();
        InProcess { runtime, tokio }
    })
}
