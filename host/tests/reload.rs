//! Reloading the real host binary over real sockets: a changed manifest is
//! swapped in while a request in flight finishes on the old one, and a bad
//! one is refused while the old keeps serving.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use testkit::{HostProcess, components_dir, test_compile_cache};

fn manifest(greeting: &str, extra: &str) -> String {
    format!(
        r#"
        [server]
        reload_poll_seconds = 1
        compile_cache = {cache:?}
        [component.guest]
        route = "/guest/..."
        file = {file:?}
        [component.guest.variables]
        greeting = "{greeting}"
        {extra}
        "#,
        cache = test_compile_cache().display().to_string(),
        file = components_dir().join("test_guest.wasm").display().to_string(),
    )
}

async fn get(host: &HostProcess, path: &str) -> (u16, Value) {
    let response = reqwest::get(host.url(path)).await.expect("request");
    (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
}

async fn wait_for(host: &HostProcess, path: &str, expected: (u16, Value)) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = get(host, path).await;
        if got == expected {
            return;
        }
        assert!(Instant::now() < deadline, "{path} still answers {got:?}, not {expected:?}\n{}", host.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_for_log(host: &HostProcess, text: &str, occurrences: usize) {
    testkit::wait_for_log(|| host.log(), text, occurrences, Duration::from_secs(30)).await;
}

#[tokio::test]
async fn a_changed_manifest_is_swapped_in_under_way_and_a_bad_one_refused() {
    let binary = Path::new(env!("CARGO_BIN_EXE_gatehouse-host"));
    let mut host = HostProcess::start(binary, &manifest("first", ""), &[]);
    assert_eq!(get(&host, "/guest/variable/greeting").await, (200, json!({ "ok": "first" })));

    // A request under way when the file changes finishes where it began.
    let url = host.url("/guest/sleep/3000");
    let in_flight = tokio::spawn(async move {
        let response = reqwest::get(url).await.expect("request");
        (response.status().as_u16(), response.json::<Value>().await.unwrap_or(Value::Null))
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    host.write_manifest(&manifest("second", ""));
    wait_for(&host, "/guest/variable/greeting", (200, json!({ "ok": "second" }))).await;
    assert!(!in_flight.is_finished(), "the slow request ended before the reload");
    assert_eq!(in_flight.await.unwrap(), (200, json!({ "ok": "first" })), "finished on the old components");

    // A manifest that does not parse, and one naming a missing component:
    // each refused with a line saying so, the last good one still serving.
    host.write_manifest(&manifest("third", "misspelt_key = true"));
    host.signal("HUP");
    wait_for_log(&host, "reload refused", 1).await;
    host.write_manifest(&manifest("third", "").replace("test_guest.wasm", "no_such_component.wasm"));
    host.signal("HUP");
    wait_for_log(&host, "reload refused", 2).await;
    assert_eq!(get(&host, "/guest/variable/greeting").await, (200, json!({ "ok": "second" })));
    assert!(host.log().contains("misspelt_key"), "the refusal names the cause:\n{}", host.log());

    // Fixed again, by signal, with a component added.
    let added = format!(
        "[component.again]\nroute = \"/again/...\"\nfile = {:?}\n[component.again.variables]\ngreeting = \"added\"",
        components_dir().join("test_guest.wasm").display().to_string()
    );
    host.write_manifest(&manifest("fourth", &added));
    host.signal("HUP");
    wait_for(&host, "/again/variable/greeting", (200, json!({ "ok": "added" }))).await;
    assert_eq!(get(&host, "/guest/variable/greeting").await, (200, json!({ "ok": "fourth" })));
    assert!(host.is_running());
}
