//! A Spin application as its authors ship it (`spin.toml`, version 2, the
//! components built unmodified from spin-sdk 5 and 7), run by the real host
//! binary with `--from` and a runtime-config file, on a real database.

use std::path::Path;

use serde_json::{Value, json};
use testkit::{SpinAppProcess, TestDatabase, components_dir, wait_until_guest_spins};

fn host_binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_gatehouse-host"))
}

/// The address the app's code opens, as Spin apps write it: never dialled,
/// looked up in the runtime config.
const DB_ADDRESS: &str = "host=localhost user=postgres dbname=spin_dev";

fn spin_toml() -> String {
    let dir = components_dir();
    format!(
        r#"
spin_manifest_version = 2

[application]
name = "hello-spin"
version = "1.0.0"
authors = ["A Spin author"]
description = "Two components, two SDK generations"

[application.trigger.http]
base = "/"

[variables]
greeting = {{ default = "hello" }}
db_address = {{ default = "{DB_ADDRESS}" }}
api_key = {{ required = true, secret = true }}

[[trigger.http]]
route = "/hello/:planet/..."
component = "hello"

[[trigger.http]]
route = "/p3/..."
component = "newer"

[[trigger.http]]
route = "/stranger/..."
component = "stranger"

[component.hello]
source = "{p2}"
allowed_outbound_hosts = ["postgres://localhost:5432"]
key_value_stores = ["default"]
environment = {{ DB_URL = "{DB_ADDRESS}" }}
[component.hello.variables]
greeting = "{{{{ greeting }}}}, {{{{ api_key }}}}"
database = "{{{{ db_address }}}}"
[component.hello.build]
command = "cargo build --target wasm32-wasip2 --release"

[component.newer]
source = "{p3}"
allowed_outbound_hosts = ["postgres://localhost"]
key_value_stores = ["default"]
[component.newer.variables]
greeting = "{{{{ greeting }}}}"
database = "{{{{ db_address }}}}"

# The same guest, with no outbound hosts allowed: the address is not its to open.
[component.stranger]
source = "{p2}"
[component.stranger.variables]
database = "{{{{ db_address }}}}"
"#,
        p2 = dir.join("test_guest.wasm").display(),
        p3 = dir.join("spin7_guest.wasm").display(),
    )
}

const RUNTIME_CONFIG: &str = r#"
[limits]
timeout_ms = 5000

[postgres."host=localhost user=postgres dbname=spin_dev"]
url_env = "SPIN_APP_DATABASE_URL"

[key_value_store.default]
type = "postgres"
url_env = "SPIN_APP_DATABASE_URL"
"#;

async fn get(app: &SpinAppProcess, path: &str) -> (u16, Value) {
    let response = reqwest::get(app.url(path)).await.expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_spin_app_runs_as_shipped() {
    let db = TestDatabase::create().await;
    let env = [("SPIN_APP_DATABASE_URL", db.url.as_str()), ("SPIN_VARIABLE_API_KEY", "s3cret")];
    let mut app = SpinAppProcess::start(host_binary(), &spin_toml(), RUNTIME_CONFIG, &env);

    // Routes with parameters, and the headers Spin gives a component.
    let (status, body) = get(&app, "/hello/earth/echo").await;
    assert_eq!(status, 200, "{body}");
    let spin = &body["ok"]["spin"];
    assert_eq!(spin["spin-path-match-planet"], "earth", "{spin}");
    assert_eq!(spin["spin-path-info"], "/echo");
    assert_eq!(spin["spin-matched-route"], "/hello/:planet/...");
    assert_eq!(spin["spin-component-route"], "/hello/:planet");

    // Variables templated from application variables and the environment.
    assert_eq!(get(&app, "/hello/earth/variable/greeting").await, (200, json!({ "ok": "hello, s3cret" })));
    assert_eq!(get(&app, "/p3/variable/greeting").await, (200, json!({ "ok": "hello" })));
    assert_eq!(get(&app, "/hello/mars/env/DB_URL").await, (200, json!({ "ok": DB_ADDRESS })));

    // The Spin address reaches the database the runtime config names, from
    // both generations; a component whose allow-list lacks it gets nothing.
    let (status, body) = get(&app, "/hello/earth/db/v3").await;
    assert_eq!((status, &body["ok"]["row"][0]), (200, &json!("DbValue::Int32(42)")), "{body}");
    assert_eq!(get(&app, "/p3/db/execute").await, (200, json!({ "ok": 2 })));
    let (_, body) = get(&app, "/stranger/db/roundtrip").await;
    assert!(body["error"].as_str().is_some_and(|e| e.contains("not granted")), "{body}");

    // One key-value store for the app.
    assert_eq!(get(&app, "/p3/kv/set/visits/3").await, (200, json!({ "ok": "set" })));
    assert_eq!(get(&app, "/hello/earth/kv/get/visits").await, (200, json!({ "ok": "3" })));

    assert_eq!(get(&app, "/elsewhere").await.0, 404);
    assert!(app.is_running());
}

#[tokio::test]
async fn a_required_variable_left_unset_stops_the_start_with_its_name() {
    let dir = std::env::temp_dir().join(format!("gatehouse-spin-check-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("spin.toml"), spin_toml()).unwrap();
    std::fs::write(dir.join("gatehouse.toml"), RUNTIME_CONFIG).unwrap();
    let output = std::process::Command::new(host_binary())
        .arg("--from")
        .arg(dir.join("spin.toml"))
        .arg("--runtime-config-file")
        .arg(dir.join("gatehouse.toml"))
        .arg("--check")
        .env_remove("SPIN_VARIABLE_API_KEY")
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("SPIN_VARIABLE_API_KEY"), "{stderr}");
}

#[tokio::test]
async fn sigterm_stops_new_connections_and_lets_requests_in_flight_finish() {
    let db = TestDatabase::create().await;
    let spin = format!(
        r#"
spin_manifest_version = 2
[application]
name = "drain"
[[trigger.http]]
route = "/guest/..."
component = "guest"
[component.guest]
source = "{}"
allowed_outbound_hosts = ["postgres://localhost:5432"]
variables = {{ database = "{DB_ADDRESS}" }}
"#,
        components_dir().join("test_guest.wasm").display()
    );
    let runtime = format!("[server]\ndrain_seconds = 20\n[limits]\ntimeout_ms = 2000\n{RUNTIME_CONFIG}")
        .replace("[limits]\ntimeout_ms = 5000\n", "");
    let env = [("SPIN_APP_DATABASE_URL", db.url.as_str())];
    let mut app = SpinAppProcess::start(host_binary(), &spin, &runtime, &env);

    // A request that runs until its 2 s budget ends, then answers 504.
    let in_flight = tokio::spawn(reqwest::get(app.url("/guest/loop")));
    wait_until_guest_spins(&db).await;
    app.terminate();
    // New connections are refused soon after the signal...
    let addr = app.addr;
    let refused = tokio::task::spawn_blocking(move || {
        (0..100).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(20));
            std::net::TcpStream::connect(addr).is_err()
        })
    })
    .await
    .unwrap();
    assert!(refused, "still accepting after SIGTERM");
    // ...while the one in flight gets its whole answer, then the host exits.
    let answer = in_flight.await.unwrap().expect("the request in flight is answered");
    assert_eq!(answer.status().as_u16(), 504);
    assert!(answer.bytes().await.is_ok(), "a complete body");
    assert!(tokio::task::spawn_blocking(move || app.wait_exit(std::time::Duration::from_secs(10))).await.unwrap());
}
