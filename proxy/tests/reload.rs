//! Reloading the proxy's configuration under steady load, over real
//! sockets: a changed file is applied (here, a new route) without refusing
//! a connection or losing a request; a file that does not hold, or that
//! changes what only a restart can, is refused and the old one serves on.

use std::path::Path;
use std::time::{Duration, Instant};

use testkit::{ProxyProcess, RunningHost, SteadyLoad, TestDatabase, services_manifest, test_jwks};

async fn status(proxy: &ProxyProcess, path: &str) -> u16 {
    reqwest::get(proxy.url(path)).await.unwrap().status().as_u16()
}

async fn wait_for_status(proxy: &ProxyProcess, path: &str, expected: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while status(proxy, path).await != expected {
        assert!(Instant::now() < deadline, "{path} never answered {expected}\n{}", proxy.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_for_log(proxy: &ProxyProcess, text: &str, occurrences: usize) {
    testkit::wait_for_log(|| proxy.log(), text, occurrences, Duration::from_secs(20)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_configuration_applies_under_load_and_a_bad_one_is_refused() {
    let db = TestDatabase::create().await;
    let host = RunningHost::start_services(&db, &services_manifest("", 4)).await;
    let proxy = ProxyProcess::start(Path::new(env!("CARGO_BIN_EXE_gatehouse-proxy")), host.addr, &test_jwks(&[]));
    let original = std::fs::read_to_string(proxy.config_path()).unwrap();
    assert_eq!(status(&proxy, "/renamed/echo").await, 404);

    // Steady load on keep-alive connections all along.
    let load = SteadyLoad::start(&proxy.url("/guest/echo"), 4);

    // A new route, picked up from the file alone.
    let route = "\n[[route]]\nprefix = \"/renamed\"\nrewrite = \"/guest\"\nupstream = \"runtime\"\nauth = \"public\"\n";
    proxy.write_config(&format!("{original}{route}"));
    wait_for_status(&proxy, "/renamed/echo", 200).await;

    // Refused: a file that does not parse, and one moving the upstream.
    proxy.write_config(&format!("{original}{route}\nmisspelt = true\n"));
    proxy.signal("HUP");
    wait_for_log(&proxy, "reload refused", 1).await;
    let moved = original.replace(&host.addr.to_string(), "127.0.0.1:1");
    proxy.write_config(&format!("{moved}{route}"));
    proxy.signal("HUP");
    wait_for_log(&proxy, "change only with a restart", 1).await;
    assert_eq!(status(&proxy, "/renamed/echo").await, 200, "the last good configuration serves on");

    // And back, by signal: the route is gone again.
    proxy.write_config(&original);
    proxy.signal("HUP");
    wait_for_status(&proxy, "/renamed/echo", 404).await;

    let (ok, failed) = load.stop().await;
    assert!(failed.is_empty(), "{} requests failed during reloads: {:?}", failed.len(), &failed[..failed.len().min(5)]);
    assert!(ok > 100, "the load ran: {ok}");
}
