//! The host's admin listener over a real socket: liveness, readiness that
//! follows the database (and heals with it), and metrics a scraper reads.

use sqlx::{Connection, Executor, PgConnection};
use testkit::{RunningHost, TestDatabase, services_manifest};

async fn admin_get(host: &RunningHost, path: &str) -> (u16, String) {
    let response = reqwest::get(format!("http://{}{path}", host.admin_addr)).await.expect("admin request");
    (response.status().as_u16(), response.text().await.unwrap_or_default())
}

/// Lets `database` take connections or not, and ends the ones it has.
async fn allow_connections(database: &str, allow: bool) {
    let url = std::env::var("DATABASE_URL").expect("DATABASE_URL");
    let mut admin = PgConnection::connect(&url).await.unwrap();
    admin.execute(format!(r#"ALTER DATABASE "{database}" ALLOW_CONNECTIONS {allow}"#).as_str()).await.unwrap();
    if !allow {
        let terminate = format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{database}'");
        admin.execute(terminate.as_str()).await.unwrap();
    }
}

#[tokio::test]
async fn readiness_follows_the_database_and_heals_with_it() {
    let db = TestDatabase::create().await;
    let host = RunningHost::start_services(&db, &services_manifest("timeout_ms = 4000", 4)).await;
    assert_eq!(admin_get(&host, "/healthz").await.0, 200);
    assert_eq!(admin_get(&host, "/readyz").await.0, 200);
    assert_eq!(admin_get(&host, "/nowhere").await.0, 404);

    allow_connections(&db.name, false).await;
    let (status, body) = admin_get(&host, "/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("database `app` does not answer"), "{body}");
    assert_eq!(admin_get(&host, "/healthz").await.0, 200, "alive, only not ready");

    allow_connections(&db.name, true).await;
    let (status, body) = admin_get(&host, "/readyz").await;
    assert_eq!(status, 200, "ready again without a restart: {body}");
    let response = reqwest::get(host.url("/guest/db/roundtrip")).await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    host.shutdown().await;
}

#[tokio::test]
async fn metrics_count_requests_failures_and_pool_connections() {
    let db = TestDatabase::create().await;
    let host = RunningHost::start_services(&db, &services_manifest("timeout_ms = 4000", 4)).await;
    for path in ["/guest/echo", "/guest/echo", "/guest/trap", "/nowhere"] {
        let _ = reqwest::get(host.url(path)).await.unwrap().bytes().await;
    }
    let (status, text) = admin_get(&host, "/metrics").await;
    assert_eq!(status, 200);
    for line in [
        "gatehouse_requests_total{component=\"guest\",status=\"200\"} 2",
        "gatehouse_requests_total{component=\"guest\",status=\"500\"} 1",
        "gatehouse_guest_failures_total{component=\"guest\",kind=\"trap\"} 1",
        "gatehouse_response_head_seconds_count{component=\"guest\"} 3",
        "gatehouse_unrouted_requests_total 1",
        "gatehouse_db_pool_connections{database=\"app\",state=\"idle\"}",
    ] {
        assert!(text.contains(line), "{line} missing from\n{text}");
    }
    host.shutdown().await;
}
