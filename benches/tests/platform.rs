//! `gatehouse-load` run briefly against the real platform: the host with the
//! real services on a real PostgreSQL, the proxy binary in front, and
//! `gatehouse-native` beside them. What it checks is not a speed but that
//! the suite measures what it says: the native yardstick answers as the
//! services do (the suite refuses to measure otherwise), and every phase
//! runs without a failed request.

use std::path::Path;

use serde_json::Value;
use testkit::{
    ADMIN_EMAIL, ADMIN_PASSWORD, ProxyProcess, RunningHost, TEST_IDENTITY_KEY, TempFolder, TestDatabase,
    services_manifest, test_jwks,
};

/// The proxy binary a workspace build puts beside this package's.
fn proxy_binary() -> std::path::PathBuf {
    let binary = Path::new(env!("CARGO_BIN_EXE_gatehouse-load")).with_file_name("gatehouse-proxy");
    assert!(binary.is_file(), "no {}: build the proxy too (cargo test --workspace does)", binary.display());
    binary
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suite_compares_the_platform_with_native_code_doing_the_same_work() {
    let db = TestDatabase::create().await;
    let host = RunningHost::start_services(&db, &services_manifest("", 8)).await;
    // Logins back to back are the point of one phase: no login limit here.
    let lifted = r#"{ per_second = 1000, burst = 1000, key = "ip" }"#;
    let proxy = ProxyProcess::start_with(
        &proxy_binary(),
        host.addr,
        &test_jwks(&[]),
        &[("login_ip", lifted), ("login_account", &lifted.replace("\"ip\"", "\"username\""))],
    );
    let out = TempFolder::with_files::<&str>(&[]);
    let native_listen = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();

    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_gatehouse-load"))
        .args(["--proxy", &proxy.addr.to_string(), "--host", &host.addr.to_string()])
        .args(["--proxy-pid", &proxy.pid().to_string()])
        .args(["--native", env!("CARGO_BIN_EXE_gatehouse-native"), "--native-listen", &native_listen.to_string()])
        .args(["--connections", "2", "--seconds", "1", "--rounds", "1"])
        .args(["--login-workers", "1", "--probe-rate", "10", "--login-seconds", "1"])
        .args(["--soak-seconds", "3", "--soak-rate", "20"])
        .arg("--out")
        .arg(&out.0)
        .env("DATABASE_URL", &db.url)
        .env("GATEHOUSE_IDENTITY_KEY", TEST_IDENTITY_KEY)
        .env("FIRST_SUPERUSER", ADMIN_EMAIL)
        .env("FIRST_SUPERUSER_PASSWORD", ADMIN_PASSWORD)
        .output()
        .await
        .expect("running gatehouse-load");
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{printed}\n{}", String::from_utf8_lossy(&output.stderr));
    let results: Value = serde_json::from_slice(&std::fs::read(out.0.join("results.json")).unwrap()).unwrap();

    // Three operations, each on the native server, the host and the proxy.
    let rows = results["full_stack"].as_array().unwrap();
    assert_eq!(rows.len(), 9, "{results:#}");
    for row in rows {
        assert!(row["ok"].as_u64().unwrap() > 0, "{row}");
        assert_eq!(row["errors"], 0, "{row}");
    }
    let targets: Vec<&str> = rows.iter().take(3).map(|r| r["target"].as_str().unwrap()).collect();
    assert_eq!(targets, ["native (axum + sqlx)", "host", "proxy → host"]);
    // The proxy's own CPU time is counted only where requests went through it.
    assert!(rows[2]["cpu_us_per_request"]["proxy"].as_f64().unwrap() > 0.0, "{}", rows[2]);

    let login = &results["login"];
    assert!(login["logins_per_second"].as_f64().unwrap() > 0.0, "{login}");
    assert_eq!(login["login_errors"], 0, "{login}");

    let memory = &results["memory"];
    assert!(memory["soak_requests"].as_u64().unwrap() > 0, "{memory}");
    assert_eq!(memory["soak_errors"], 0, "{memory}");
    let processes: Vec<&str> =
        memory["processes"].as_array().unwrap().iter().map(|p| p["process"].as_str().unwrap()).collect();
    assert_eq!(processes, ["proxy", "native"]);

    for chart in
        ["latency-items.svg", "latency-me.svg", "latency-create.svg", "login.svg", "memory.svg", "soak/throughput.svg"]
    {
        let svg = std::fs::read_to_string(out.0.join(chart)).unwrap_or_default();
        assert!(svg.starts_with("<svg"), "{chart} is not an SVG chart");
    }
    assert!(printed.contains("| GET /users/api/v1/users/me | proxy → host |"), "{printed}");
    host.shutdown().await;
}
