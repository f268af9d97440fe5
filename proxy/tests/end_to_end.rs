//! The whole spine over real sockets: the proxy binary in front of the host
//! running the real auth and items components on a real PostgreSQL.

use std::net::{SocketAddr, TcpStream};
use std::path::Path;

use serde_json::{Value, json};
use testkit::{ADMIN_EMAIL, ADMIN_PASSWORD, ProxyProcess, RunningHost, TestDatabase, services_manifest, test_jwks};

fn start_proxy(upstream: SocketAddr) -> ProxyProcess {
    ProxyProcess::start(Path::new(env!("CARGO_BIN_EXE_gatehouse-proxy")), upstream, &test_jwks(&[]))
}

async fn start_host(db: &TestDatabase) -> RunningHost {
    RunningHost::start_services(db, &services_manifest("", 4)).await
}

async fn login(client: &reqwest::Client, proxy: &ProxyProcess, email: &str, password: &str) -> String {
    let response = client
        .post(proxy.url("/auth/api/v1/login/access-token"))
        .form(&[("username", email), ("password", password)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200, "login as {email}");
    let body: Value = response.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

async fn send(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn log_in_create_and_list_items_through_the_proxy() {
    let db = TestDatabase::create().await;
    let host = start_host(&db).await;
    let proxy = start_proxy(host.addr);
    let client = reqwest::Client::new();
    let items = proxy.url("/items/api/v1/items/");

    // `/auth/api/v1/login/access-token` reaches the auth service's own route.
    let token = login(&client, &proxy, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let (status, me) = send(client.get(proxy.url("/auth/api/v1/login/test-token")).bearer_auth(&token)).await;
    assert_eq!((status, me["email"].as_str()), (200, Some(ADMIN_EMAIL)));

    let (status, created) =
        send(client.post(&items).bearer_auth(&token).json(&json!({ "title": "first", "description": "hello" }))).await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["owner_id"], me["id"]);
    let (status, listed) = send(client.get(&items).bearer_auth(&token)).await;
    assert_eq!(status, 200);
    assert_eq!(listed["count"], 1);
    assert_eq!(listed["data"][0]["id"], created["id"]);
    assert_eq!(listed["data"][0]["title"], "first");

    // Requests without a valid token are answered by the proxy alone.
    let received = host.runtime.requests_received();
    let response = client.get(&items).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 401);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    assert_eq!(response.json::<Value>().await.unwrap(), json!({ "detail": "Not authenticated" }));
    let tampered = tamper(&token);
    let (status, body) = send(client.get(&items).bearer_auth(&tampered)).await;
    assert_eq!((status, body["detail"].as_str()), (401, Some("Could not validate credentials")));
    let (status, _) = send(client.post(&items).bearer_auth(format!("{token}x")).json(&json!({ "title": "no" }))).await;
    assert_eq!(status, 401);
    let (status, _) = send(client.get(proxy.url("/auth/api/v1/login/test-token"))).await;
    assert_eq!(status, 401);
    assert_eq!(host.runtime.requests_received(), received, "a 401 must not reach the host");
    let (status, listed) = send(client.get(&items).bearer_auth(&token)).await;
    assert_eq!((status, listed["count"].as_i64()), (200, Some(1)), "rejected requests wrote nothing");

    host.shutdown().await;
}

#[tokio::test]
async fn identity_headers_from_clients_are_replaced() {
    let db = TestDatabase::create().await;
    let host = start_host(&db).await;
    let proxy = start_proxy(host.addr);
    let client = reqwest::Client::new();
    let items = proxy.url("/items/api/v1/items/");

    let hash = bcrypt::hash("user-password", 4).unwrap();
    sqlx::query(r#"INSERT INTO "user" (email, hashed_password) VALUES ('user@example.com', $1)"#)
        .bind(hash)
        .execute(&mut db.connect().await)
        .await
        .unwrap();
    let admin_token = login(&client, &proxy, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let (_, admin) = send(client.get(proxy.url("/auth/api/v1/login/test-token")).bearer_auth(&admin_token)).await;
    let (status, _) = send(client.post(&items).bearer_auth(&admin_token).json(&json!({ "title": "admin's" }))).await;
    assert_eq!(status, 200);

    // A plain user claiming to be the admin still acts as themself.
    let user_token = login(&client, &proxy, "user@example.com", "user-password").await;
    let forged = |request: reqwest::RequestBuilder| {
        request.bearer_auth(&user_token).header("X-Gatehouse-User-Id", admin["id"].as_str().unwrap())
    };
    let (status, created) = send(forged(client.post(&items)).json(&json!({ "title": "mine" }))).await;
    assert_eq!(status, 200);
    assert_ne!(created["owner_id"], admin["id"]);
    let (_, listed) = send(forged(client.get(&items))).await;
    assert_eq!(listed["count"], 1, "{listed}");
    assert_eq!(listed["data"][0]["title"], "mine");

    // On a public route no identity is passed on, whatever the client sends.
    let (status, echoed) =
        send(client.get(proxy.url("/guest/echo")).header("x-gatehouse-user-id", admin["id"].as_str().unwrap())).await;
    assert_eq!(status, 200);
    assert_eq!(echoed["ok"]["user_id"], Value::Null, "{echoed}");

    // A path that resolves into another route is judged as that route.
    let raw = raw_get(proxy.addr, "/auth/../items/api/v1/items/");
    assert!(raw.starts_with("HTTP/1.1 401"), "{raw}");

    // With the host gone the proxy answers 502 in the services' JSON shape.
    host.shutdown().await;
    let (status, body) = send(client.get(&items).bearer_auth(&admin_token)).await;
    assert_eq!((status, body["detail"].as_str()), (502, Some("Upstream unavailable")));
}

/// A token whose payload was changed after signing: the signature no
/// longer matches.
fn tamper(token: &str) -> String {
    let mut parts: Vec<&str> = token.split('.').collect();
    let forged_payload = "eyJzdWIiOiIwMDAwMDAwMC0wMDAwLTAwMDAtMDAwMC0wMDAwMDAwMDAwMDAiLCJleHAiOjQxMDI0NDQ4MDB9";
    parts[1] = forged_payload;
    parts.join(".")
}

/// Sends a request line exactly as written (HTTP clients normalise `..`).
fn raw_get(addr: SocketAddr, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}
