//! What the proxy tells about the requests it carries, over real sockets:
//! request ids kept or made and passed both ways, Prometheus metrics on the
//! admin listener, and a JSON access log line per request that never holds
//! a token.

use std::path::Path;

use serde_json::Value;
use testkit::{ADMIN_EMAIL, ADMIN_PASSWORD, ProxyProcess, RunningHost, TestDatabase, services_manifest, test_jwks};

async fn admin(proxy: &ProxyProcess, path: &str) -> (u16, String) {
    let response = reqwest::get(format!("http://{}{path}", proxy.admin_addr)).await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

fn metric(text: &str, line: &str) -> u64 {
    text.lines().find_map(|l| l.strip_prefix(&format!("{line} "))).map_or(0, |n| n.parse().unwrap())
}

#[tokio::test]
async fn request_ids_metrics_and_an_access_log_without_tokens() {
    let db = TestDatabase::create().await;
    let host = RunningHost::start_services(&db, &services_manifest("", 4)).await;
    let proxy = ProxyProcess::start(Path::new(env!("CARGO_BIN_EXE_gatehouse-proxy")), host.addr, &test_jwks(&[]));
    let client = reqwest::Client::new();
    let echo = |id: Option<&str>| {
        let mut request = client.get(proxy.url("/guest/echo"));
        if let Some(id) = id {
            request = request.header("x-request-id", id);
        }
        async move {
            let response = request.send().await.unwrap();
            let returned = response.headers().get("x-request-id").map(|v| v.to_str().unwrap().to_owned());
            let body: Value = response.json().await.unwrap();
            (returned, body["ok"]["request_id"].as_str().map(str::to_owned))
        }
    };

    // A client's id is kept, upstream and back; a missing or unusable one
    // is replaced by a fresh one, the same both ways.
    assert_eq!(echo(Some("client-id.1")).await, (Some("client-id.1".into()), Some("client-id.1".into())));
    for sent in [None, Some("has spaces"), Some(&*"x".repeat(129))] {
        let (returned, upstream) = echo(sent).await;
        let returned = returned.expect("an id on every answer");
        assert_eq!(returned.len(), 36, "a UUID for {sent:?}: {returned}");
        assert_eq!(upstream.as_deref(), Some(returned.as_str()));
    }
    // The proxy's own answers carry one too.
    let refused = client.get(proxy.url("/items/api/v1/items/")).header("x-request-id", "refused-1").send().await;
    let refused = refused.unwrap();
    assert_eq!(refused.status().as_u16(), 401);
    assert_eq!(refused.headers()["x-request-id"], "refused-1");
    let bad = client.get(proxy.url("/items/api/v1/items/")).bearer_auth("not.a.token").send().await.unwrap();
    assert_eq!(bad.status().as_u16(), 401);

    let login = client
        .post(proxy.url("/auth/api/v1/login/access-token"))
        .form(&[("username", ADMIN_EMAIL), ("password", ADMIN_PASSWORD)])
        .send()
        .await
        .unwrap();
    let token = login.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_owned();
    let listed = client
        .get(proxy.url("/items/api/v1/items/?limit=5"))
        .bearer_auth(&token)
        .header("x-request-id", "listing-1")
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status().as_u16(), 200);

    // Metrics, from the admin listener.
    assert_eq!(admin(&proxy, "/healthz").await.0, 200);
    let (status, ready) = admin(&proxy, "/readyz").await;
    assert_eq!(status, 200, "{ready}");
    let (_, metrics) = admin(&proxy, "/metrics").await;
    assert_eq!(metric(&metrics, r#"gatehouse_proxy_requests_total{route="/guest",status="200"}"#), 4, "{metrics}");
    assert_eq!(metric(&metrics, r#"gatehouse_proxy_requests_total{route="/items/api",status="401"}"#), 2, "{metrics}");
    assert_eq!(metric(&metrics, r#"gatehouse_proxy_auth_failures_total{reason="missing"}"#), 1, "{metrics}");
    assert_eq!(metric(&metrics, r#"gatehouse_proxy_auth_failures_total{reason="invalid"}"#), 1, "{metrics}");
    assert_eq!(metric(&metrics, r#"gatehouse_proxy_request_seconds_count{route="/guest"}"#), 4, "{metrics}");
    let upstream = format!(r#"gatehouse_proxy_upstream_healthy{{upstream="runtime",address="{}"}}"#, host.addr);
    assert_eq!(metric(&metrics, &upstream), 1, "{metrics}");
    assert!(metrics.contains("# TYPE gatehouse_proxy_open_connections gauge"), "{metrics}");

    // The access log: one JSON line per request, with who and how, never
    // the token.
    let log = proxy.log();
    let lines: Vec<Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["target"] == "gatehouse::access")
        .collect();
    assert_eq!(lines.len(), 8, "{log}");
    let listing = lines.iter().find(|l| l["fields"]["request_id"] == "listing-1").expect("the listing's line");
    let fields = &listing["fields"];
    assert_eq!(fields["method"], "GET");
    assert_eq!(fields["path"], "/items/api/v1/items/");
    assert_eq!(fields["route"], "/items/api");
    assert_eq!(fields["status"], 200);
    assert!(fields["bytes"].as_u64().unwrap() > 0, "{fields}");
    assert!(fields["latency_ms"].as_f64().unwrap() > 0.0, "{fields}");
    assert_eq!(fields["upstream"], host.addr.to_string());
    assert_eq!(fields["user_id"].as_str().map(str::len), Some(36), "the user's id: {fields}");
    assert!(listing["timestamp"].is_string());
    assert!(!log.contains(&token), "a token reached the log");
    assert!(!log.contains("not.a.token"), "a token reached the log");
    assert!(!log.contains(ADMIN_PASSWORD), "a password reached the log");
}
