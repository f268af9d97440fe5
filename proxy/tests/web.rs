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

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn brotli(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    brotli::BrotliCompress(&mut &bytes[..], &mut out, &Default::default()).unwrap();
    out
}

#[tokio::test]
async fn the_frontend_is_served_from_its_folder_with_pages_validators_and_precompressed_assets() {
    let script = "console.log('a hashed asset');\n".repeat(200);
    let style = "body { color: black; }\n".repeat(300);
    let export = testkit::TempFolder::with_files::<&[u8]>(&[
        ("index.html", b"<h1>log in</h1>"),
        ("items.html", b"<h1>items</h1>"),
        ("404.html", b"<h1>no such page</h1>"),
        ("_next/static/chunks/app-1a2b.js", script.as_bytes()),
        ("_next/static/chunks/app-1a2b.js.gz", &gzip(script.as_bytes())),
        ("_next/static/chunks/app-1a2b.js.br", &brotli(script.as_bytes())),
        ("styles.css", style.as_bytes()),
        (".env", b"SECRET=1"),
    ]);
    // Nothing listens upstream: the pages need none, and an API route
    // without a token is refused before one is asked.
    let nowhere = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let root = format!("{:?}", export.0.display().to_string());
    let proxy = ProxyProcess::start_with(
        Path::new(env!("CARGO_BIN_EXE_gatehouse-proxy")),
        nowhere,
        &test_jwks(&[]),
        &[("root", &root)],
    );
    let client = reqwest::Client::new(); // decodes nothing: no compression features
    let get = |path: &str, headers: &[(&str, &str)]| {
        let mut request = client.get(proxy.url(path));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send()
    };
    let header = |r: &reqwest::Response, name: &str| r.headers().get(name).map(|v| v.to_str().unwrap().to_owned());
    let html = [("accept", "text/html,application/xhtml+xml,*/*;q=0.8")];

    // Pages: the root, a client-side route by its `.html`, and the app's
    // 404 page for a browser (JSON for an API client).
    for (path, status, body) in [
        ("/", 200, "<h1>log in</h1>"),
        ("/items", 200, "<h1>items</h1>"),
        ("/items/", 200, "<h1>items</h1>"),
        ("/nowhere/deep", 404, "<h1>no such page</h1>"),
        ("/.env", 404, "<h1>no such page</h1>"),
    ] {
        let response = get(path, &html).await.unwrap();
        assert_eq!(response.status().as_u16(), status, "{path}");
        assert_eq!(header(&response, "content-type").as_deref(), Some("text/html; charset=utf-8"), "{path}");
        assert_eq!(header(&response, "cache-control").as_deref(), Some("no-cache"), "{path}");
        let csp = header(&response, "content-security-policy").unwrap();
        assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(header(&response, "x-request-id").is_some(), "{path}");
        assert_eq!(response.text().await.unwrap(), body, "{path}");
    }
    let api_client = get("/nowhere", &[("accept", "application/json")]).await.unwrap();
    assert_eq!(api_client.status().as_u16(), 404);
    assert_eq!(api_client.text().await.unwrap(), r#"{"detail":"Not Found"}"#);
    let api = get("/items/api/v1/items/", &[]).await.unwrap();
    assert_eq!(api.status().as_u16(), 401, "the API beside the pages keeps its policy");

    // A hashed asset: cached for good, sent in the stored encoding the
    // client weighs highest, or as it is.
    let asset = "/_next/static/chunks/app-1a2b.js";
    for (accept, encoding) in [("gzip, deflate, br, zstd", Some("br")), ("gzip", Some("gzip")), ("identity", None)] {
        let response = get(asset, &[("accept-encoding", accept)]).await.unwrap();
        assert_eq!(response.status().as_u16(), 200);
        assert_eq!(header(&response, "cache-control").as_deref(), Some("public, max-age=31536000, immutable"));
        assert_eq!(header(&response, "content-type").as_deref(), Some("text/javascript; charset=utf-8"));
        assert_eq!(header(&response, "vary").as_deref(), Some("accept-encoding"));
        assert_eq!(header(&response, "content-encoding").as_deref(), encoding, "{accept}");
        let body = response.bytes().await.unwrap();
        let plain = encoding.map_or_else(|| body.to_vec(), |e| decode(e, &body));
        assert_eq!(plain, script.as_bytes(), "{accept}");
    }
    // A file stored plain is compressed on the way, like any answer.
    let response = get("/styles.css", &[("accept-encoding", "gzip")]).await.unwrap();
    assert_eq!(header(&response, "cache-control").as_deref(), Some("public, max-age=3600"));
    assert_eq!(header(&response, "content-encoding").as_deref(), Some("gzip"));
    assert_eq!(decode("gzip", &response.bytes().await.unwrap()), style.as_bytes());

    // Validators: the same ETag again is a 304 without a body; HEAD has
    // the headers only; other methods are refused.
    let first = get(asset, &[("accept-encoding", "br")]).await.unwrap();
    let etag = header(&first, "etag").unwrap();
    let again = get(asset, &[("accept-encoding", "br"), ("if-none-match", &etag)]).await.unwrap();
    assert_eq!(again.status().as_u16(), 304);
    assert_eq!(header(&again, "etag").as_deref(), Some(etag.as_str()));
    assert!(again.bytes().await.unwrap().is_empty());
    let other = get(asset, &[("accept-encoding", "gzip"), ("if-none-match", &etag)]).await.unwrap();
    assert_eq!(other.status().as_u16(), 200, "the gzip form has its own validator");
    let head = client.head(proxy.url("/items")).send().await.unwrap();
    assert_eq!(head.status().as_u16(), 200);
    assert_eq!(header(&head, "content-length").as_deref(), Some("14"));
    assert!(head.bytes().await.unwrap().is_empty());
    let post = client.post(proxy.url("/items")).body("x").send().await.unwrap();
    assert_eq!(post.status().as_u16(), 405);
    assert_eq!(header(&post, "allow").as_deref(), Some("GET, HEAD"));
}
