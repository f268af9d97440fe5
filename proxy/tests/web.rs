//! What browsers get from the edge, over real sockets: answers compressed
//! with what the client accepts, when their type and size make it worth it.

use std::io::Read as _;
use std::path::Path;

use testkit::{ProxyProcess, RunningHost, TestDatabase, services_manifest, test_jwks};

/// The answer to `GET path` as it came over the wire: its
/// `content-encoding` and raw body.
async fn fetch(proxy: &ProxyProcess, path: &str, accept: Option<&str>) -> (Option<String>, Vec<u8>) {
    let mut request = reqwest::Client::new().get(proxy.url(path));
    if let Some(accept) = accept {
        request = request.header("accept-encoding", accept);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200, "{path}");
    let encoding = response.headers().get("content-encoding").map(|v| v.to_str().unwrap().to_owned());
    (encoding, response.bytes().await.unwrap().to_vec())
}

fn decode(encoding: &str, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match encoding {
        "gzip" => flate2::read::GzDecoder::new(body).read_to_end(&mut out).map(drop),
        "br" => brotli::Decompressor::new(body, 4096).read_to_end(&mut out).map(drop),
        "zstd" => zstd::stream::read::Decoder::new(body).and_then(|mut d| d.read_to_end(&mut out)).map(drop),
        other => panic!("unexpected encoding {other}"),
    }
    .unwrap_or_else(|e| panic!("{encoding} body does not decode: {e}"));
    out
}

#[tokio::test]
async fn answers_are_compressed_as_the_client_accepts_by_type_and_size() {
    let db = TestDatabase::create().await;
    let host = RunningHost::start_services(&db, &services_manifest("", 4)).await;
    let proxy = ProxyProcess::start(Path::new(env!("CARGO_BIN_EXE_gatehouse-proxy")), host.addr, &test_jwks(&[]));

    // A JSON document of some kilobytes, as the service sends it.
    let (encoding, plain) = fetch(&proxy, "/items/openapi.json", None).await;
    assert_eq!(encoding, None, "nothing accepted, nothing encoded");
    assert!(plain.len() > 1024, "{} bytes", plain.len());
    for accept in ["gzip", "zstd", "gzip, zstd", "br, gzip"] {
        let (encoding, body) = fetch(&proxy, "/items/openapi.json", Some(accept)).await;
        let encoding = encoding.unwrap_or_else(|| panic!("Accept-Encoding: {accept}: not compressed"));
        assert!(accept.contains(&encoding) && encoding != "br", "Accept-Encoding: {accept}: {encoding}");
        assert!(body.len() < plain.len() / 2, "{encoding}: {} of {} bytes", body.len(), plain.len());
        assert_eq!(decode(&encoding, &body), plain, "{encoding}");
    }
    // Brotli is off by default (see `CompressionConfig::brotli_level`).
    assert_eq!(fetch(&proxy, "/items/openapi.json", Some("br")).await, (None, plain.clone()));
    // Types that do not compress go as they are, declared or streamed
    // (the size rule, for declared lengths, is the unit tests').
    for path in ["/guest/huge/200000", "/guest/huge-declared/200000"] {
        let (encoding, body) = fetch(&proxy, path, Some("gzip, zstd")).await;
        assert_eq!((encoding, body.len()), (None, 200000), "{path}: octet-stream is left alone");
    }
}

#[tokio::test]
async fn cross_origin_requests_are_allowed_only_where_a_route_says_and_preflights_need_no_token() {
    let db = TestDatabase::create().await;
    let host = RunningHost::start_services(&db, &services_manifest("", 4)).await;
    let proxy = ProxyProcess::start(Path::new(env!("CARGO_BIN_EXE_gatehouse-proxy")), host.addr, &test_jwks(&[]));
    let client = reqwest::Client::new();
    const ORIGIN: &str = "https://app.example.test";
    let preflight = |path: &str, origin: &str, method: &str| {
        client
            .request(reqwest::Method::OPTIONS, proxy.url(path))
            .header("origin", origin)
            .header("access-control-request-method", method)
            .header("access-control-request-headers", "authorization, content-type")
            .send()
    };
    let header = |r: &reqwest::Response, name: &str| r.headers().get(name).map(|v| v.to_str().unwrap().to_owned());

    // Answered at the edge, on a route behind a token, without one.
    let received = host.runtime.requests_received();
    let allowed = preflight("/guest-private/echo", ORIGIN, "PATCH").await.unwrap();
    assert_eq!(allowed.status().as_u16(), 204);
    assert_eq!(header(&allowed, "access-control-allow-origin").as_deref(), Some(ORIGIN));
    assert_eq!(header(&allowed, "access-control-allow-credentials").as_deref(), Some("true"));
    assert!(header(&allowed, "access-control-allow-methods").unwrap().contains("PATCH"));
    assert!(header(&allowed, "access-control-allow-headers").unwrap().contains("authorization"));
    assert_eq!(header(&allowed, "access-control-max-age").as_deref(), Some("600"));
    let refused = preflight("/guest-private/echo", "https://elsewhere.example", "GET").await.unwrap();
    assert_eq!(refused.status().as_u16(), 403);
    assert_eq!(host.runtime.requests_received(), received, "preflights never reach the host");

    // Actual requests: the headers for the allowed origin only.
    let from = |origin: &'static str| client.get(proxy.url("/guest/echo")).header("origin", origin).send();
    let ok = from(ORIGIN).await.unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    assert_eq!(header(&ok, "access-control-allow-origin").as_deref(), Some(ORIGIN));
    assert_eq!(header(&ok, "access-control-expose-headers").as_deref(), Some("x-request-id"));
    assert_eq!(header(&ok, "vary").as_deref(), Some("Origin"));
    let other = from("https://elsewhere.example").await.unwrap();
    assert_eq!(header(&other, "access-control-allow-origin"), None);

    // A route that names no policy allows no other origin.
    let plain = client.get(proxy.url("/items/health")).header("origin", ORIGIN).send().await.unwrap();
    assert_eq!(header(&plain, "access-control-allow-origin"), None);
    let no_policy = preflight("/items/api/v1/items/", ORIGIN, "GET").await.unwrap();
    assert_eq!(no_policy.status().as_u16(), 401, "no preflight answer where no policy: the token check stands");
}
