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

/// Checking a password against its stored hash, natively, at the cost the
/// platform stores them with. (The same check inside the auth component is
/// what a login through the host costs; `gatehouse-loadgen` measures that.)
#[divan::bench(sample_count = 10, sample_size = 1)]
fn bcrypt_verify(bencher: Bencher) {
    let hash = bcrypt::hash("a password of some length", setup::BCRYPT_COST).unwrap();
    bencher.bench(|| bcrypt::verify(black_box("a password of some length"), &hash).unwrap());
}
