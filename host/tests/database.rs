//! The host against a PostgreSQL server of the test's own: TLS verified
//! against the manifest's CA, and a server restarting under load, which the
//! host survives without a restart of its own.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sqlx::Connection as _;
use testkit::{PrivatePostgres, RunningHost, components_dir, test_compile_cache};

/// The test guest alone, on the private server's `app` database.
fn manifest(database_settings: &str) -> host::Manifest {
    let text = format!(
        r#"
        [server]
        compile_cache = {cache:?}
        [database.app]
        url_env = "APP_DATABASE_URL"
        acquire_timeout_ms = 1000
        {database_settings}
        [component.guest]
        route = "/guest/..."
        file = "test_guest.wasm"
        databases = ["app"]
        [component.guest.variables]
        database = "app"
        "#,
        cache = test_compile_cache().display().to_string(),
    );
    host::Manifest::parse(&text, &components_dir()).expect("test manifest")
}

async fn start(postgres: &PrivatePostgres, database_settings: &str) -> anyhow::Result<RunningHost> {
    let url = postgres.url();
    RunningHost::start(&manifest(database_settings), move |k| (k == "APP_DATABASE_URL").then(|| url.clone())).await
}

async fn get(host: &RunningHost, path: &str) -> Value {
    reqwest::get(host.url(path)).await.expect("request").json().await.unwrap_or(Value::Null)
}

#[tokio::test]
async fn tls_to_postgres_is_verified_against_the_manifests_ca() {
    let postgres = PrivatePostgres::start();
    let tls = postgres.server.tls_dir();

    let ca = tls.join("ca.pem").display().to_string();
    let host = start(&postgres, &format!("ssl_mode = \"verify-full\"\nssl_root_cert = {ca:?}")).await.unwrap();
    assert_eq!(get(&host, "/guest/db/tls").await, json!({ "ok": true }), "the guest's session is encrypted");
    host.shutdown().await;

    // A server whose certificate does not chain to the CA given is refused.
    let other = tls.join("other-ca.pem").display().to_string();
    let refused = start(&postgres, &format!("ssl_mode = \"verify-full\"\nssl_root_cert = {other:?}")).await;
    let error = format!("{:#}", refused.err().expect("an unverified server is refused"));
    assert!(error.contains("database `app`: cannot connect"), "{error}");
    assert!(!error.contains(&postgres.url()), "the URL (and its password) stays out of the error: {error}");

    // And the setting is what decides: without TLS, the session is plain.
    let host = start(&postgres, "ssl_mode = \"disable\"").await.unwrap();
    assert_eq!(get(&host, "/guest/db/tls").await, json!({ "ok": false }));
    host.shutdown().await;
}

/// One request of the steady load: when it started and ended, and whether
/// the guest's database round trip worked.
struct Outcome {
    started: Instant,
    ok: bool,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarting_under_load_heals_without_restarting_the_host() {
    let mut postgres = PrivatePostgres::start();
    let url = postgres.url();
    let started_at = || async {
        let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
        sqlx::query_scalar::<_, String>("SELECT pg_postmaster_start_time()::text").fetch_one(&mut conn).await.unwrap()
    };
    let first_start = started_at().await;
    let host = Arc::new(start(&postgres, "").await.unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for _ in 0..4 {
        let (host, stop) = (host.clone(), stop.clone());
        workers.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut outcomes = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                let body: Value = match client.get(host.url("/guest/db/roundtrip")).send().await {
                    Ok(response) => response.json().await.unwrap_or(Value::Null),
                    Err(_) => Value::Null,
                };
                outcomes.push(Outcome { started, ok: body["ok"].is_object() });
            }
            outcomes
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let down = Instant::now();
    tokio::task::block_in_place(|| postgres.server.restart()).expect("restarting PostgreSQL");
    let up = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    let mut outcomes = Vec::new();
    for worker in workers {
        outcomes.extend(worker.await.unwrap());
    }

    assert_ne!(started_at().await, first_start, "the server really restarted");
    let failed = outcomes.iter().filter(|o| !o.ok).count();
    eprintln!("{} requests, {failed} failed around the restart ({:?} down)", outcomes.len(), up - down);

    let before = outcomes.iter().filter(|o| o.started < down).collect::<Vec<_>>();
    assert!(before.iter().filter(|o| o.ok).count() > 10, "load ran before the restart");
    // Errors only for requests sent while the server was down, or in the
    // moment the pool takes to see it back.
    let heal = up + Duration::from_secs(1);
    let late_failures = outcomes.iter().filter(|o| !o.ok && o.started > heal).count();
    let after = outcomes.iter().filter(|o| o.started > heal).count();
    assert_eq!(late_failures, 0, "{late_failures} of {after} requests failed after the server was back");
    assert!(after > 10, "load ran after the restart");
    let early_failures = before.iter().filter(|o| !o.ok && o.started < down - Duration::from_millis(500)).count();
    assert_eq!(early_failures, 0, "requests failed before the server went down");
    let admin = reqwest::get(format!("http://{}/readyz", host.admin_addr)).await.unwrap();
    assert_eq!(admin.status().as_u16(), 200, "ready again, without a restart of the host");
}
