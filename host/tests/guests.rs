//! The host with real components on a real PostgreSQL, over a real socket:
//! what guests may do (database, variables) and what they may not (trap,
//! spin, exhaust memory) without harming the host.

use std::path::Path;

use serde_json::{Value, json};
use testkit::{
    ADMIN_EMAIL, ADMIN_PASSWORD, RunningHost, TestDatabase, components_dir, identity_headers, services_manifest,
    wait_until_guest_spins,
};

/// Small limits, so the misbehaving guest reaches them quickly.
const LIMITS: &str = "memory_bytes = 33554432\ntimeout_ms = 4000\nmax_body_bytes = 4096\nmax_response_bytes = 1048576";

async fn start_with(db: &TestDatabase, max_connections: u32) -> RunningHost {
    RunningHost::start_services(db, &services_manifest(LIMITS, max_connections)).await
}

async fn start(db: &TestDatabase) -> RunningHost {
    start_with(db, 4).await
}

async fn get(host: &RunningHost, path: &str) -> (u16, Value) {
    let response = reqwest::get(host.url(path)).await.expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn assert_still_serving(host: &RunningHost) {
    let (status, body) = get(host, "/guest/echo").await;
    assert_eq!(status, 200, "host stopped serving: {body}");
}

/// Every pooled connection is back (or closed), by the pool's own count as
/// the admin listener reports it.
async fn assert_connections_returned(host: &RunningHost) {
    let mut in_use = String::new();
    for _ in 0..100 {
        let metrics = reqwest::get(format!("http://{}/metrics", host.admin_addr)).await.unwrap().text().await.unwrap();
        in_use = metrics
            .lines()
            .find(|l| l.starts_with(r#"gatehouse_db_pool_connections{database="app",state="in_use"}"#))
            .expect("the pool's gauge")
            .to_owned();
        if in_use.ends_with(" 0") {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("connections still lent after the request ended: {in_use}");
}

async fn failures(host: &RunningHost, kind: &str) -> u64 {
    let metrics = reqwest::get(format!("http://{}/metrics", host.admin_addr)).await.unwrap().text().await.unwrap();
    let prefix = format!(r#"gatehouse_guest_failures_total{{component="guest",kind="{kind}"}} "#);
    metrics.lines().find_map(|l| l.strip_prefix(&prefix)).map_or(0, |n| n.parse().unwrap())
}

#[tokio::test]
async fn a_guest_recursing_without_end_traps_on_its_stack_only() {
    let db = TestDatabase::create().await;
    let host = start(&db).await;
    let (status, body) = get(&host, "/guest/recurse/10").await;
    assert!(status == 200 && body["ok"].is_u64(), "a shallow recursion answers: {body}");
    let (status, body) = get(&host, "/guest/recurse/100000000").await;
    assert_eq!((status, &body["detail"]), (500, &json!("component failed")));
    assert_still_serving(&host).await;
    assert_connections_returned(&host).await;
    host.shutdown().await;
}

#[tokio::test]
async fn a_response_over_the_limit_is_refused_or_cut_never_passed_whole() {
    let db = TestDatabase::create().await;
    let host = start(&db).await;
    let response = reqwest::get(host.url("/guest/huge/1000")).await.unwrap();
    assert_eq!(response.bytes().await.unwrap().len(), 1000, "under the limit it passes");

    // Declared in the head: nothing is sent but the host's own answer.
    let (status, body) = get(&host, "/guest/huge-declared/2000000").await;
    assert_eq!((status, &body["detail"]), (502, &json!("component response larger than 1048576 bytes")));

    // Streamed: the head has gone, so the body is cut at the limit and
    // never ends as if complete.
    let response = reqwest::get(host.url("/guest/huge/2000000")).await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert!(response.bytes().await.is_err(), "a cut body must not read as complete");
    assert_eq!(failures(&host, "response_too_large").await, 2);
    assert_still_serving(&host).await;
    assert_connections_returned(&host).await;
    host.shutdown().await;
}

#[tokio::test]
async fn a_flood_of_rows_is_refused_past_what_the_guest_could_hold_and_its_session_closed() {
    let db = TestDatabase::create().await;
    // One pooled connection: if the flooded session were drained or kept,
    // the next request would wait for it.
    let host = start_with(&db, 1).await;
    let (status, body) = get(&host, "/guest/db/flood").await;
    assert_eq!(status, 200, "{body}");
    let error = body["error"].as_str().unwrap_or_default();
    assert!(error.contains("larger than this component may hold (33554432 bytes)"), "{body}");
    assert_connections_returned(&host).await;
    let (_, body) = get(&host, "/guest/db/roundtrip").await;
    assert!(body["ok"]["row"].is_array(), "the next request gets a connection: {body}");
    assert_connections_returned(&host).await;
    host.shutdown().await;
}

#[tokio::test]
async fn a_trapping_guest_fails_its_request_only() {
    let db = TestDatabase::create().await;
    let host = start(&db).await;
    let (status, body) = get(&host, "/guest/trap").await;
    assert_eq!(status, 500);
    assert_eq!(body["detail"], "component failed");
    assert_still_serving(&host).await;
    assert_connections_returned(&host).await;
    host.shutdown().await;
}

/// Waits for the row the looping guest writes just before it spins. Until
/// the guest yields, this task cannot run either.

#[test]
fn a_looping_guest_is_interrupted_with_504() {
    // One thread, shared by the test, the host and the spinning guest, that
    // looks for I/O between every two tasks: other requests are served while
    // the guest spins only if the spinning guest yields.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().event_interval(1).build().unwrap();
    runtime.block_on(async {
        let db = TestDatabase::create().await;
        let host = start(&db).await;
        let spinning = tokio::spawn(reqwest::get(host.url("/guest/loop")));
        wait_until_guest_spins(&db).await;
        assert_still_serving(&host).await;
        assert!(!spinning.is_finished(), "the spinning guest was answered before the others");
        let response = spinning.await.unwrap().expect("request");
        assert_eq!(response.status().as_u16(), 504);
        assert_eq!(response.json::<Value>().await.unwrap()["detail"], "component ran past its time budget");
        assert_still_serving(&host).await;
        assert_connections_returned(&host).await;
        host.shutdown().await;
    });
}

/// The threads of the low-priority runtime in this process: each one's
/// scheduling policy and nice value, and the CPU time (in clock ticks) all
/// of them have used.
fn low_priority_threads() -> (Vec<(u32, i64)>, u64) {
    let (mut scheduling, mut ticks) = (Vec::new(), 0);
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else { continue };
        let Some((head, rest)) = stat.rsplit_once(") ") else { continue };
        if !head.ends_with(&format!("({}", host::executor::LOW_THREAD_NAME)) {
            continue;
        }
        // After the name: state is field 3, utime 14, stime 15, nice 19,
        // policy 41.
        let fields: Vec<&str> = rest.split(' ').collect();
        ticks += fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        scheduling.push((fields[38].parse().unwrap(), fields[16].parse().unwrap()));
    }
    (scheduling, ticks)
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn a_low_priority_component_runs_on_the_threads_served_last_with_everything_granted() {
    let db = TestDatabase::create().await;
    let host = start(&db).await;
    // Its database sessions (from pools of its own), transactions and
    // key-value store work as they do for the others.
    for route in ["db/roundtrip", "db/transaction"] {
        let (status, body) = get(&host, &format!("/background/{route}")).await;
        assert!(status == 200 && body.get("ok").is_some(), "{route}: {body}");
        assert_eq!(body, get(&host, &format!("/guest/{route}")).await.1, "{route}");
    }
    assert_eq!(get(&host, "/background/kv/set/colour/blue").await, (200, json!({ "ok": "set" })));
    assert_eq!(get(&host, "/guest/kv/get/colour").await, (200, json!({ "ok": "blue" })), "the same store");
    let metrics = reqwest::get(format!("http://{}/metrics", host.admin_addr)).await.unwrap().text().await.unwrap();
    assert!(metrics.contains(r#"gatehouse_db_pool_connections{database="app",priority="low",state="idle"}"#));

    // A guest that spins burns the low-priority threads' CPU, not the
    // server's, and its budget still ends it.
    let (_, before) = low_priority_threads();
    let spinning = tokio::spawn(reqwest::get(host.url("/background/loop")));
    wait_until_guest_spins(&db).await;
    assert_still_serving(&host).await;
    assert_eq!(spinning.await.unwrap().expect("request").status().as_u16(), 504);
    let (scheduling, after) = low_priority_threads();
    // SCHED_IDLE is policy 5.
    assert!(
        !scheduling.is_empty() && scheduling.iter().all(|s| *s == (5, 19)),
        "low-priority threads are SCHED_IDLE at nice 19: {scheduling:?}"
    );
    assert!(after > before, "the spinning guest used no CPU on the low-priority threads");
    assert_connections_returned(&host).await;
    host.shutdown().await;
}

#[tokio::test]
async fn a_guest_exhausting_memory_fails_its_request_only() {
    let db = TestDatabase::create().await;
    let host = start(&db).await;
    let (status, _) = get(&host, "/guest/oom").await;
    assert_eq!(status, 500);
    assert_still_serving(&host).await;
    assert_connections_returned(&host).await;
    host.shutdown().await;
}

#[tokio::test]
async fn a_component_has_limits_of_its_own() {
    let db = TestDatabase::create().await;
    let host = start(&db).await;
    let spinning = tokio::spawn(reqwest::get(host.url("/single/loop")));
    wait_until_guest_spins(&db).await;
    let busy = reqwest::get(host.url("/single/echo")).await.unwrap();
    assert_eq!(busy.status().as_u16(), 503);
    assert_eq!(busy.headers()["retry-after"], "1");
    let body: Value = busy.json().await.unwrap();
    assert_eq!(body["detail"], "component busy, retry shortly");
    assert_still_serving(&host).await;
    // The slot is the guest's until it has ended.
    assert_eq!(spinning.await.unwrap().unwrap().status().as_u16(), 504);
    assert_eq!(get(&host, "/single/echo").await.0, 200);
    // Its own database limit, below the host's.
    assert_eq!(get(&host, "/guest/db/open-many/2").await, (200, json!({ "ok": 2 })));
    let (_, body) = get(&host, "/single/db/open-many/2").await;
    assert!(body["error"].as_str().is_some_and(|e| e.contains("at most 1 open connections")), "{body}");
    host.shutdown().await;
}

#[tokio::test]
async fn oversized_bodies_are_refused_with_413() {
    let db = TestDatabase::create().await;
    let host = start(&db).await;
    let client = reqwest::Client::new();
    let small = client.post(host.url("/guest/echo")).body(vec![b'x'; 4096]).send().await.unwrap();
    assert_eq!(small.status().as_u16(), 200);
    let large = client.post(host.url("/guest/echo")).body(vec![b'x'; 4097]).send().await.unwrap();
    assert_eq!(large.status().as_u16(), 413);
    host.shutdown().await;
}

#[tokio::test]
async fn a_guest_reads_only_its_own_variables() {
    let db = TestDatabase::create().await;
    let host = start(&db).await;
    assert_eq!(get(&host, "/guest/variable/greeting").await, (200, json!({ "ok": "hello" })));
    // The auth component's signing key is not the guest's to read.
    let (status, body) = get(&host, "/guest/variable/secret_key").await;
    assert_eq!(status, 404);
    assert!(body["error"].as_str().unwrap().contains("Undefined"), "{body}");
    let (_, body) = get(&host, "/guest/variable/Not-Valid").await;
    assert!(body["error"].as_str().unwrap().contains("InvalidName"), "{body}");
    host.shutdown().await;
}

#[tokio::test]
async fn a_guest_opens_only_granted_databases_by_name() {
    let db = TestDatabase::create().await;
    let host = start(&db).await;
    assert_eq!(get(&host, "/guest/db/open/app").await, (200, json!({ "ok": "opened" })));
    for address in ["other", "postgres%3A%2F%2Fpostgres%40127.0.0.1%2Fpostgres"] {
        let (_, body) = get(&host, &format!("/guest/db/open/{address}")).await;
        let error = body["error"].as_str().unwrap_or_default();
        assert!(error.contains("ConnectionFailed") && error.contains("not granted"), "{body}");
    }
    host.shutdown().await;
}

#[tokio::test]
async fn a_request_holds_a_bounded_number_of_connections() {
    let db = TestDatabase::create().await;
    let host = start_with(&db, 8).await;
    assert_eq!(get(&host, "/guest/db/open-many/4").await, (200, json!({ "ok": 4 })));
    let (_, body) = get(&host, "/guest/db/open-many/5").await;
    let error = body["error"].as_str().unwrap_or_default();
    assert!(error.starts_with("connection 5:") && error.contains("at most 4 open connections"), "{body}");
    // Connections are counted per request: the next one starts from zero.
    assert_eq!(get(&host, "/guest/db/open-many/4").await, (200, json!({ "ok": 4 })));
    host.shutdown().await;
}

#[tokio::test]
async fn a_transaction_left_open_is_never_handed_to_the_next_request() {
    let db = TestDatabase::create().await;
    // One pooled connection: the next request would get the same session.
    let host = start_with(&db, 1).await;
    let (status, body) = get(&host, "/guest/db/leave-transaction-open").await;
    assert_eq!(status, 200, "{body}");
    for _ in 0..3 {
        let (status, body) = get(&host, "/guest/db/count-marker").await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["ok"], json!({ "count": "DbValue::Int64(0)", "outside_transaction": true }));
    }
    host.shutdown().await;
}

#[tokio::test]
async fn a_statement_running_past_the_budget_is_stopped_and_its_slot_freed() {
    let db = TestDatabase::create().await;
    // One pooled connection: a pinned one would starve every request after.
    let host = start_with(&db, 1).await;
    let (status, body) = get(&host, "/guest/db/sleep").await;
    assert_eq!(status, 504, "{body}");
    let (_, body) = get(&host, "/guest/db/roundtrip").await;
    assert!(body["ok"]["row"].is_array(), "the next request gets a connection: {body}");
    // The server stops the sleeping statement once its client is gone.
    let mut still_sleeping = 1;
    for _ in 0..50 {
        still_sleeping = sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(60)' AND state = 'active'",
        )
        .fetch_one(&mut db.connect().await)
        .await
        .unwrap();
        if still_sleeping == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(still_sleeping, 0, "the statement outlived its request");
    assert_connections_returned(&host).await;
    host.shutdown().await;
}

#[tokio::test]
async fn session_settings_a_guest_changes_do_not_reach_the_next_request() {
    let db = TestDatabase::create().await;
    let host = start_with(&db, 1).await;
    let (_, before) = get(&host, "/guest/db/application-name").await;
    assert_eq!(get(&host, "/guest/db/set-application-name").await, (200, json!({ "ok": "set" })));
    let (status, after) = get(&host, "/guest/db/application-name").await;
    assert_eq!(status, 200);
    assert_ne!(after["ok"], json!("DbValue::Str(\"changed by a guest\")"));
    assert_eq!(after, before);
    host.shutdown().await;
}

async fn user_count(db: &TestDatabase) -> i64 {
    sqlx::query_scalar(r#"SELECT count(*) FROM "user""#).fetch_one(&mut db.connect().await).await.unwrap()
}

#[tokio::test]
async fn the_first_superuser_is_created_once() {
    let db = TestDatabase::create().await;
    let host = start(&db).await;
    host.shutdown().await;
    let again = start(&db).await;
    assert_eq!(user_count(&db).await, 1);
    let (hash, superuser): (String, bool) =
        sqlx::query_as(r#"SELECT hashed_password, is_superuser FROM "user" WHERE email = $1"#)
            .bind(ADMIN_EMAIL)
            .fetch_one(&mut db.connect().await)
            .await
            .unwrap();
    assert!(superuser);
    assert!(bcrypt::verify(ADMIN_PASSWORD, &hash).unwrap());
    again.shutdown().await;
}

#[tokio::test]
async fn bad_logins_get_clear_errors_and_write_nothing() {
    let db = TestDatabase::create().await;
    let host = start(&db).await;
    let client = reqwest::Client::new();
    let login = host.url("/auth/api/v1/login/access-token");
    let form = |user: &str, password: &str| [("username", user.to_owned()), ("password", password.to_owned())];

    let cases: Vec<(reqwest::RequestBuilder, u16, Value)> = vec![
        (client.post(&login).form(&form(ADMIN_EMAIL, "wrong")), 400, json!("Incorrect email or password")),
        (client.post(&login).form(&form("nobody@example.com", "x")), 400, json!("Incorrect email or password")),
        (
            client.post(&login).form(&[("username", ADMIN_EMAIL)]),
            422,
            json!([{ "type": "missing", "loc": ["body", "password"], "msg": "Field required" }]),
        ),
        (client.post(&login).header("content-type", "application/json").body(r#"{"username": "#), 422, Value::Null),
        (client.get(&login), 405, json!("Method Not Allowed")),
    ];
    for (request, status, detail) in cases {
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), status);
        let body: Value = response.json().await.unwrap();
        if detail.is_null() {
            assert_eq!(body["detail"][0]["type"], "json_invalid", "{body}");
        } else {
            assert_eq!(body["detail"], detail);
        }
    }
    assert_eq!(user_count(&db).await, 1);

    let ok = client.post(&login).form(&form(ADMIN_EMAIL, ADMIN_PASSWORD)).send().await.unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    let token: Value = ok.json().await.unwrap();
    assert_eq!(token["token_type"], "bearer");
    host.shutdown().await;
}

#[tokio::test]
async fn items_need_an_identity_and_valid_input() {
    let db = TestDatabase::create().await;
    let host = start(&db).await;
    let client = reqwest::Client::new();
    let items = host.url("/items/api/v1/items/");
    let anonymous = client.post(&items).json(&json!({ "title": "x" })).send().await.unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);

    let admin_id: uuid::Uuid =
        sqlx::query_scalar(r#"SELECT id FROM "user""#).fetch_one(&mut db.connect().await).await.unwrap();
    // Straight to the host, as the proxy would send it: signed.
    let as_admin = |request: reqwest::RequestBuilder| {
        let built = request.try_clone().unwrap().build().unwrap();
        let url = built.url();
        let target = url.query().map_or_else(|| url.path().to_owned(), |q| format!("{}?{q}", url.path()));
        identity_headers(built.method().as_str(), &target, &admin_id.to_string())
            .into_iter()
            .fold(request, |request, (name, value)| request.header(name, value))
    };
    let forged = client.post(&items).header("x-gatehouse-user-id", admin_id.to_string()).json(&json!({ "title": "x" }));
    assert_eq!(forged.send().await.unwrap().status().as_u16(), 401, "an unsigned identity is not believed");
    let too_long = as_admin(client.post(&items)).json(&json!({ "title": "x".repeat(256) })).send().await.unwrap();
    assert_eq!(too_long.status().as_u16(), 422);
    let empty = as_admin(client.post(&items)).json(&json!({ "title": "" })).send().await.unwrap();
    assert_eq!(empty.status().as_u16(), 422);
    let item_count: i64 =
        sqlx::query_scalar("SELECT count(*) FROM item").fetch_one(&mut db.connect().await).await.unwrap();
    assert_eq!(item_count, 0, "rejected input must write nothing");

    let created = as_admin(client.post(&items)).json(&json!({ "title": "kept" })).send().await.unwrap();
    assert_eq!(created.status().as_u16(), 200);
    let item: Value = created.json().await.unwrap();
    let page = as_admin(client.get(host.url("/items/api/v1/items/?skip=0&limit=1"))).send().await.unwrap();
    let page: Value = page.json().await.unwrap();
    assert_eq!((page["count"].as_i64(), page["data"][0]["id"].as_str()), (Some(1), item["id"].as_str()));
    let past_end = as_admin(client.get(host.url("/items/api/v1/items/?skip=5"))).send().await.unwrap();
    assert_eq!(past_end.json::<Value>().await.unwrap(), json!({ "data": [], "count": 1 }));
    let path = format!("/items/api/v1/items/{}", item["id"].as_str().unwrap());
    let updated = as_admin(client.put(host.url(&path))).json(&json!({ "description": "d" })).send().await.unwrap();
    let updated: Value = updated.json().await.unwrap();
    assert_eq!((updated["title"].as_str(), updated["description"].as_str()), (Some("kept"), Some("d")));
    let deleted = as_admin(client.delete(host.url(&path))).send().await.unwrap();
    assert_eq!(deleted.status().as_u16(), 200);
    let gone = as_admin(client.get(host.url(&path))).send().await.unwrap();
    assert_eq!(gone.status().as_u16(), 404);
    let malformed = as_admin(client.get(host.url("/items/api/v1/items/not-a-uuid"))).send().await.unwrap();
    assert_eq!(malformed.status().as_u16(), 422);
    host.shutdown().await;
}

#[test]
fn components_are_where_the_tests_expect() {
    assert!(Path::new(&components_dir()).join("test_guest.wasm").is_file());
}
