//! What the host writes to its log at the most verbose level: every host
//! call a guest makes is there, inside the span of the request it serves,
//! and nothing the guest passed or received is — no SQL text, no
//! parameter, no variable's value (a signing key), no password.
//!
//! One test in this binary: it installs the process's log subscriber.

use std::io::Write;
use std::sync::{Arc, Mutex};

use testkit::{
    ADMIN_EMAIL, ADMIN_PASSWORD, ApiClient, RunningHost, TestDatabase, identity_headers, services_manifest,
    test_signing_key,
};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test]
async fn at_trace_level_host_calls_carry_their_request_and_nothing_a_guest_passed() {
    let captured = Captured::default();
    // Everything at TRACE but the compiler's own chatter.
    let filter = "trace,cranelift_codegen=off,cranelift_frontend=off,regalloc2=off,wasmtime_internal_cranelift=off";
    tracing_subscriber::fmt()
        .json()
        .with_current_span(true)
        .with_span_list(true)
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(captured.clone())
        .init();

    let db = TestDatabase::create().await;
    let host = RunningHost::start_services(&db, &services_manifest("", 4)).await;
    // Logging in reads the signing key (a variable) and the user's row.
    let client = ApiClient::new(format!("http://{}", host.addr));
    let (status, body) = client.login_at("/auth/api/v1/login/access-token", ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(status, 200, "{body}");
    // A guest query with parameters, under a request id the proxy proved.
    let headers = identity_headers("GET", "/guest/db/roundtrip", "11111111-1111-4111-8111-111111111111");
    let request_id = headers.iter().find(|(name, _)| *name == "x-gatehouse-request-id").unwrap().1.clone();
    let mut request = reqwest::Client::new().get(host.url("/guest/db/roundtrip"));
    for (name, value) in &headers {
        request = request.header(*name, value);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    host.shutdown().await;

    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let calls: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|line| line["target"] == "gatehouse::host_call")
        .collect();
    let in_request = |interface: &str, call: &str, request_id: Option<&str>| {
        calls.iter().any(|line| {
            line["fields"]["interface"] == interface
                && line["fields"]["call"] == call
                && line["fields"]["ok"] == true
                && request_id.is_none_or(|id| line["span"]["request_id"] == id)
                && line["span"]["component"].is_string()
        })
    };
    assert!(in_request("variables", "get", None), "{calls:#?}");
    assert!(in_request("postgres", "open", Some(&request_id)), "{calls:#?}");
    assert!(in_request("postgres", "query", Some(&request_id)), "{calls:#?}");

    let private_key_body = test_signing_key().private_pem.lines().nth(1).unwrap().to_owned();
    for secret in
        [private_key_body.as_str(), ADMIN_PASSWORD, "héllo", "0b6f1d8e-4c39-4f8a-9a55-3f2b1c7d9e10", "SELECT $1"]
    {
        assert!(!log.contains(secret), "the log holds {secret:?}");
    }
}
