//! Spin components of both generations, built unmodified from the pinned
//! SDKs, on the real host, database and sockets: the WASIp2 test guest
//! (spin-sdk 5, `wasi:http/incoming-handler@0.2`) and the WASIp3 one
//! (spin-sdk 7, `wasi:http/handler@0.3.0`) get the same Spin contract:
//! request headers, environment, variables, key-value, outbound HTTP.

use serde_json::{Value, json};
use testkit::{RunningHost, TestDatabase, services_manifest};

/// (route of the guest with grants, route of the same guest without, name).
const GENERATIONS: [(&str, &str, &str); 2] = [("/guest", "/sealed", "wasip2"), ("/p3", "/p3-sealed", "wasip3")];

async fn start(db: &TestDatabase) -> RunningHost {
    RunningHost::start_services(db, &services_manifest("timeout_ms = 4000", 4)).await
}

async fn get(host: &RunningHost, path: &str) -> (u16, Value) {
    let response = reqwest::get(host.url(path)).await.expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn spin_headers_environment_and_variables_are_the_manifests() {
    let db = TestDatabase::create().await;
    let host = start(&db).await;
    for (route, _, generation) in GENERATIONS {
        let response = reqwest::Client::new()
            .get(host.url(&format!("{route}/echo?x=1")))
            .header("spin-path-info", "/forged")
            .header("spin-path-match-planet", "forged")
            .send()
            .await
            .unwrap();
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["ok"]["path"], format!("{route}/echo"), "{generation}: the whole path, as on Spin");
        assert_eq!(body["ok"]["query"], "x=1", "{generation}");
        let spin = &body["ok"]["spin"];
        let expected = [
            ("spin-path-info", "/echo".to_owned()),
            ("spin-full-url", format!("http://{}{route}/echo?x=1", host.addr)),
            ("spin-matched-route", format!("{route}/...")),
            ("spin-raw-component-route", format!("{route}/...")),
            ("spin-component-route", route.to_owned()),
            ("spin-base-path", "/".to_owned()),
        ];
        for (name, value) in expected {
            assert_eq!(spin[name], value, "{generation}: {name} in {spin}");
        }
        assert!(spin["spin-client-addr"].as_str().is_some_and(|a| a.starts_with("127.0.0.1:")), "{spin}");
        assert!(spin.get("spin-path-match-planet").is_none(), "{generation}: client copies are removed: {spin}");

        let env = get(&host, &format!("{route}/env/GREETING")).await;
        assert_eq!(env, (200, json!({ "ok": "hello from the manifest" })), "{generation}");
        let env = get(&host, &format!("{route}/env/PATH")).await;
        assert_eq!(env, (200, json!({ "ok": null })), "{generation}: the host's environment stays in the host");
        let variable = get(&host, &format!("{route}/variable/greeting")).await;
        assert_eq!(variable, (200, json!({ "ok": "hello" })), "{generation}");
        let (status, body) = get(&host, &format!("{route}/variable/secret_key")).await;
        assert_eq!(status, 404, "{generation}: another component's variable: {body}");
        assert!(body["error"].as_str().is_some_and(|e| e.contains("Undefined")), "{generation}: {body}");
    }
    host.shutdown().await;
}

/// A plain HTTP server on loopback answering every request with 204.
async fn answering_server() -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf).await;
                let _ = stream.write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n").await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn outbound_requests_go_only_where_allowed_and_never_to_the_host() {
    let db = TestDatabase::create().await;
    let host = start(&db).await;
    let server = answering_server().await;
    let port = host.addr.port();
    for (route, sealed, generation) in GENERATIONS {
        for url in [format!("http://{server}/"), format!("http://localhost:{}/", server.port())] {
            let answer = get(&host, &format!("{route}/outbound?{url}")).await;
            assert_eq!(answer, (200, json!({ "ok": { "status": 204 } })), "{generation}: {url}");
        }
        // The same guest without an allow-list may not.
        let (_, body) = get(&host, &format!("{sealed}/outbound?http://{server}/")).await;
        assert!(body["error"].as_str().is_some_and(|e| e.contains("HttpRequestDenied")), "{generation}: {body}");
        // Nor may any guest call the host itself, by any name it answers to.
        for url in [
            format!("http://127.0.0.1:{port}/guest/echo"),
            format!("http://localhost:{port}/guest/echo"),
            format!("http://127.0.0.2:{port}/guest/echo"),
        ] {
            let received = host.runtime.requests_received();
            let (_, body) = get(&host, &format!("{route}/outbound?{url}")).await;
            assert!(
                body["error"].as_str().is_some_and(|e| e.contains("DestinationIpProhibited")),
                "{generation}: {url}: {body}"
            );
            assert_eq!(host.runtime.requests_received(), received + 1, "{generation}: {url} reached the host");
        }
    }
    host.shutdown().await;
}

#[tokio::test]
async fn key_value_stores_are_shared_by_label_and_granted_by_name() {
    let db = TestDatabase::create().await;
    let host = start(&db).await;
    for (route, sealed, generation) in GENERATIONS {
        let call = |path: &str| {
            let url = format!("{route}/kv/{path}");
            let host = &host;
            async move { get(host, &url).await }
        };
        let key = format!("{generation}-key");
        assert_eq!(call(&format!("set/{key}/one")).await, (200, json!({ "ok": "set" })), "{generation}");
        assert_eq!(call(&format!("set/{key}/two")).await, (200, json!({ "ok": "set" })), "{generation}: overwrite");
        assert_eq!(call(&format!("get/{key}")).await, (200, json!({ "ok": "two" })), "{generation}");
        assert_eq!(call("get/absent").await, (200, json!({ "ok": null })), "{generation}");
        let too_long = "k".repeat(256);
        let (_, body) = call(&format!("set/{too_long}/x")).await;
        assert!(body["error"].as_str().is_some_and(|e| e.contains("at most 255 bytes")), "{generation}: {body}");

        let (_, body) = call("open/elsewhere").await;
        assert!(body["error"].as_str().is_some_and(|e| e.contains("AccessDenied")), "{generation}: {body}");
        let (_, body) = call("open/nowhere").await;
        assert!(body["error"].as_str().is_some_and(|e| e.contains("NoSuchStore")), "{generation}: {body}");
        let (_, body) = get(&host, &format!("{sealed}/kv/open/default")).await;
        assert!(body["error"].as_str().is_some_and(|e| e.contains("AccessDenied")), "{generation}: {body}");
    }
    // One store, whichever generation writes or reads it.
    let (_, keys) = get(&host, "/p3/kv/keys").await;
    assert_eq!(keys, json!({ "ok": ["wasip2-key", "wasip3-key"] }));
    assert_eq!(get(&host, "/guest/kv/get/wasip3-key").await, (200, json!({ "ok": "two" })));
    assert_eq!(get(&host, "/p3/kv/delete/wasip2-key").await, (200, json!({ "ok": "deleted" })));
    assert_eq!(get(&host, "/guest/kv/keys").await, (200, json!({ "ok": ["wasip3-key"] })));
    host.shutdown().await;
}

#[tokio::test]
async fn postgres_values_cross_with_their_types_in_both_generations() {
    let db = TestDatabase::create().await;
    let host = start(&db).await;
    // The same statement from both guests: WASIp2 through `query`, WASIp3
    // through `open-async` and `query-async`'s row stream.
    let expected = [
        "DbValue::Int32(42)",
        "DbValue::Str(\"héllo\")",
        "DbValue::Uuid(\"0b6f1d8e-4c39-4f8a-9a55-3f2b1c7d9e10\")",
        "DbValue::Datetime((2024, 12, 1, 13, 14, 15, 0))",
        // {"a":[1,2]} as JSONB bytes
        "DbValue::Jsonb([123, 34, 97, 34, 58, 91, 49, 44, 50, 93, 125])",
        "DbValue::Boolean(true)",
        "DbValue::Floating64(1.5)",
        "DbValue::Decimal(\"12.340\")",
        "DbValue::Date((2024, 2, 29))",
        "DbValue::Int64(-7)",
        "DbValue::DbNull",
        "DbValue::ArrayStr([Some(\"x\"), None])",
        "DbValue::Datetime((2024, 12, 1, 13, 14, 15, 0))",
        "DbValue::Interval(Interval { micros: 7200000000, days: 1, months: 0 })",
        "DbValue::RangeInt32((Some((1, RangeBoundKind::Inclusive)), Some((10, RangeBoundKind::Exclusive))))",
        "DbValue::Time((13, 14, 15, 500000000))",
        "DbValue::Binary([0, 1, 255])",
        "DbValue::RangeInt64((Some((-5, RangeBoundKind::Inclusive)), None))",
        "DbValue::RangeDecimal((Some((\"1.5\", RangeBoundKind::Exclusive)), Some((\"2.5\", RangeBoundKind::Inclusive))))",
        "DbValue::ArrayInt32([Some(1), None, Some(3)])",
        "DbValue::ArrayInt64([Some(-1), None])",
        "DbValue::ArrayDecimal([Some(\"1.10\"), None])",
        "DbValue::Floating32(0.25)",
        "DbValue::Int16(-3)",
    ];
    for (route, _, generation) in GENERATIONS {
        let (status, body) = get(&host, &format!("{route}/db/roundtrip")).await;
        assert_eq!(status, 200, "{generation}: {body}");
        let row: Vec<&str> = body["ok"]["row"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        assert_eq!(row, expected, "{generation}");
        let types: Vec<&str> =
            body["ok"]["columns"].as_array().unwrap().iter().map(|c| c[1].as_str().unwrap()).collect();
        assert_eq!(
            types[..4],
            ["DbDataType::Int32", "DbDataType::Str", "DbDataType::Uuid", "DbDataType::Datetime"],
            "{generation}"
        );
        let (_, body) = get(&host, &format!("{route}/db/bad-sql")).await;
        assert_eq!(body["ok"]["code"], "42601", "{generation}: a syntax error comes back as a value: {body}");
        let (_, body) = get(&host, &format!("{route}/db/transaction")).await;
        let counts = json!({ "ok": ["DbValue::Int64(0)", "DbValue::Int64(1)"] });
        assert_eq!(body, counts, "{generation}: rolled back, then committed");
    }
    assert_eq!(get(&host, "/p3/db/sync-open").await, (200, json!({ "ok": 1 })), "the synchronous open, from WASIp3");
    assert_eq!(get(&host, "/p3/db/execute").await, (200, json!({ "ok": 2 })));
    let again = get(&host, "/p3/db/execute").await;
    assert_eq!(again, (200, json!({ "ok": 2 })), "the temporary table did not outlive its request");
    host.shutdown().await;
}

#[tokio::test]
async fn a_wasip3_guest_that_traps_fails_its_request_only() {
    let db = TestDatabase::create().await;
    let host = start(&db).await;
    let (status, body) = get(&host, "/p3/trap").await;
    assert_eq!((status, body["detail"].as_str()), (500, Some("component failed")));
    // A trap after the head: the client sees the head, then a body that
    // never ends cleanly, never a complete answer.
    let response = reqwest::get(host.url("/p3/stream-then-trap")).await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert!(response.bytes().await.is_err(), "a body cut short must not look complete");
    let (status, _) = get(&host, "/p3/echo").await;
    assert_eq!(status, 200, "the host keeps serving");
    host.shutdown().await;
}

#[tokio::test]
async fn older_postgres_interfaces_reach_the_same_database() {
    let db = TestDatabase::create().await;
    let host = start(&db).await;
    let (status, v3) = get(&host, "/guest/db/v3").await;
    assert_eq!(status, 200, "{v3}");
    assert_eq!(
        v3["ok"]["types"],
        json!(["DbDataType::Int32", "DbDataType::Str", "DbDataType::Date", "DbDataType::Other"]),
        "spin:postgres@3.0.0: {v3}"
    );
    assert_eq!(
        v3["ok"]["row"],
        json!([
            "DbValue::Int32(42)",
            "DbValue::Str(\"héllo\")",
            "DbValue::Date((2024, 2, 29))",
            "DbValue::Unsupported"
        ])
    );
    let bad_sql = v3["ok"]["bad_sql"].as_str().unwrap();
    assert!(bad_sql.contains("QueryFailed") && bad_sql.contains("syntax error"), "{bad_sql}");

    let (status, v2) = get(&host, "/guest/db/v2").await;
    assert_eq!(status, 200, "{v2}");
    assert_eq!(
        v2["ok"]["types"],
        json!(["DbDataType::Int64", "DbDataType::Str", "DbDataType::Other"]),
        "fermyon:spin/postgres@2.0.0: {v2}"
    );
    assert_eq!(
        v2["ok"]["row"],
        json!(["DbValue::Int64(4000000000)", "DbValue::Str(\"héllo\")", "DbValue::Unsupported"])
    );
    let too_big = v2["ok"]["too_big"].as_str().unwrap();
    assert!(too_big.contains("BadParameter") && too_big.contains("$1"), "{too_big}");
    host.shutdown().await;
}

/// A line of the host's metrics: the value of `metric`, 0 if absent.
async fn metric(host: &RunningHost, metric: &str) -> u64 {
    let text = reqwest::get(format!("http://{}/metrics", host.admin_addr)).await.unwrap().text().await.unwrap();
    text.lines().find_map(|l| l.strip_prefix(&format!("{metric} "))).map_or(0, |n| n.parse().unwrap())
}

#[tokio::test]
async fn a_wasip3_instance_serves_request_after_request_until_it_fails_or_keeps_a_connection() {
    let db = TestDatabase::create().await;
    let host = start(&db).await;
    let served = || get(&host, "/p3/served");
    // One request after another: the same instance, counting.
    for count in 1..=3 {
        assert_eq!(served().await, (200, json!({ "ok": count })));
    }
    // A trap ends that instance; the next request gets a fresh one.
    assert_eq!(get(&host, "/p3/trap").await.0, 500);
    assert_eq!(served().await, (200, json!({ "ok": 1 })));
    // An instance still holding a database connection is not handed on:
    // dropped, and its connection back in the pool.
    assert_eq!(get(&host, "/p3/db/keep-open").await, (200, json!({ "ok": "kept" })));
    assert_eq!(served().await, (200, json!({ "ok": 1 })));
    for _ in 0..50 {
        if metric(&host, r#"gatehouse_db_pool_connections{database="app",state="in_use"}"#).await == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(metric(&host, r#"gatehouse_db_pool_connections{database="app",state="in_use"}"#).await, 0);
    // Seven requests, three instances; WASIp2 makes one for every request.
    assert_eq!(metric(&host, r#"gatehouse_instantiations_total{component="p3"}"#).await, 3);
    let before = metric(&host, r#"gatehouse_instantiations_total{component="guest"}"#).await;
    for _ in 0..3 {
        assert_eq!(get(&host, "/guest/env/UNSET").await, (200, json!({ "ok": null })));
    }
    assert_eq!(metric(&host, r#"gatehouse_instantiations_total{component="guest"}"#).await, before + 3);
    host.shutdown().await;
}
