//! The proxy in front of three runtime replicas, over real sockets: one is
//! killed under steady load and no GET is lost (connection failures and
//! idempotent requests cut short are tried on another replica); when it
//! comes back on its address it is used again.

use std::path::Path;
use std::time::Duration;

use testkit::{HostProcess, ProxyProcess, SteadyLoad, components_dir, test_compile_cache, test_jwks};

/// A replica: the test guest alone, no database.
fn manifest() -> String {
    format!(
        "[server]\ncompile_cache = {:?}\n[component.guest]\nroute = \"/guest/...\"\nfile = {:?}\n",
        test_compile_cache().display().to_string(),
        components_dir().join("test_guest.wasm").display().to_string()
    )
}

fn host_binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_gatehouse-proxy")).parent().unwrap().join("gatehouse-host").leak()
}

async fn served_by(host: &HostProcess) -> u64 {
    let metrics = reqwest::get(format!("http://{}/metrics", host.admin_addr)).await.unwrap().text().await.unwrap();
    let prefix = r#"gatehouse_requests_total{component="guest",status="200"} "#;
    metrics.lines().find_map(|l| l.strip_prefix(prefix)).map_or(0, |n| n.parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_under_load_loses_no_get_and_is_used_again_when_back() {
    assert!(host_binary().is_file(), "build the host first: cargo build -p host");
    let mut hosts: Vec<HostProcess> = (0..3).map(|_| HostProcess::start(host_binary(), &manifest(), &[])).collect();
    let addresses: Vec<_> = hosts.iter().map(|h| h.addr).collect();
    let proxy = ProxyProcess::start_for(
        Path::new(env!("CARGO_BIN_EXE_gatehouse-proxy")),
        &addresses,
        &test_jwks(&[]),
        &[
            ("health_check_seconds", "1"),
            ("upstream.runtime.health_check_path", "\"/guest/env/UNSET\""),
            ("eject_seconds", "2"),
        ],
    );
    let load = SteadyLoad::start(&proxy.url("/guest/echo"), 4);
    tokio::time::sleep(Duration::from_secs(1)).await;
    hosts[1].signal("KILL");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let back = HostProcess::start_at(host_binary(), &manifest(), &[], addresses[1]);
    // Health checks run every second: give the proxy a few to see it.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (ok, failed) = load.stop().await;
    assert!(
        failed.is_empty(),
        "{} of {} GETs failed: {:?}",
        failed.len(),
        ok + failed.len() as u64,
        &failed[..failed.len().min(5)]
    );
    assert!(ok > 100, "the load ran: {ok} requests");
    assert!(served_by(&back).await > 0, "the replica that came back was used again");
    let metrics = reqwest::get(format!("http://{}/metrics", proxy.admin_addr)).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("gatehouse_proxy_upstream_retries_total{upstream=\"runtime\"}"), "{metrics}");
    hosts[1] = back;
}

#[tokio::test]
async fn an_upstream_named_by_a_host_name_is_resolved_and_served() {
    let host = HostProcess::start(host_binary(), &manifest(), &[]);
    let by_name = format!("[\"localhost:{}\"]", host.addr.port());
    let proxy = ProxyProcess::start_for(
        Path::new(env!("CARGO_BIN_EXE_gatehouse-proxy")),
        &[host.addr],
        &test_jwks(&[]),
        &[("addresses", &by_name), ("health_check_seconds", "1")],
    );
    let client = reqwest::Client::new();
    for _ in 0..20 {
        let response = client.get(proxy.url("/guest/echo")).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 200, "{}", proxy.log());
    }
    assert!(served_by(&host).await >= 20);
}

/// With one server busy on a slow request, where the next ten go: the
/// busy server's share of them.
async fn share_of_the_busy_server(balance: &str) -> u64 {
    let servers = [testkit::NativeUpstream::start().await, testkit::NativeUpstream::start().await];
    let overrides = [("balance", balance)];
    let addrs = [servers[0].addr, servers[1].addr];
    let proxy =
        ProxyProcess::start_for(Path::new(env!("CARGO_BIN_EXE_gatehouse-proxy")), &addrs, &test_jwks(&[]), &overrides);
    let slow = tokio::spawn(reqwest::get(proxy.url("/guest/slow/3000")));
    while servers.iter().map(|s| s.requests()).sum::<u64>() == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let busy = servers.iter().position(|s| s.requests() == 1).unwrap();
    let client = reqwest::Client::new();
    for _ in 0..10 {
        let response = client.get(proxy.url("/guest/fast")).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 200);
    }
    let share = servers[busy].requests() - 1;
    assert_eq!(slow.await.unwrap().unwrap().status().as_u16(), 200);
    share
}

#[tokio::test]
async fn least_connections_keeps_requests_off_a_busy_server() {
    assert_eq!(share_of_the_busy_server("\"least_connections\"").await, 0);
    // In turn, the busy server gets its turns: the choice above was not chance.
    assert!(share_of_the_busy_server("\"round_robin\"").await >= 4);
}
