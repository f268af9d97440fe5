//! The web frontend in a real browser: Debian's Chromium, driven by the
//! Node scripts in `frontend/e2e/`, against the proxy binary serving the
//! exported pages (`frontend/out`) and routing the API to the host with the
//! real components, on a real PostgreSQL, with the mailer delivering to a
//! real SMTP server.
//!
//! Needs `frontend/out` (`npm run build` in `frontend/`) and its
//! `node_modules`; without them the test says so and passes, unless
//! `GATEHOUSE_REQUIRE_FRONTEND=1` (as `cargo xtask test` sets) makes it fail.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use testkit::{
    ADMIN_EMAIL, ADMIN_PASSWORD, MailerProcess, ProxyProcess, RunningHost, SmtpServer, TEST_KEY_ID, TestDatabase,
    services_manifest, test_jwks, test_signing_key,
};

/// The browser tests' own time limit, well above what they take.
const BROWSER_TESTS_TIMEOUT: Duration = Duration::from_secs(600);

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn chromium() -> PathBuf {
    std::env::var_os("GATEHOUSE_CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

/// What the browser tests need and is missing, if anything.
fn missing_prerequisite(frontend: &Path) -> Option<String> {
    if !frontend.join("out/index.html").is_file() {
        return Some("no frontend/out: build it with `npm ci && npm run build` in frontend/".into());
    }
    if !frontend.join("node_modules/playwright-core").is_dir() {
        return Some("no frontend/node_modules: run `npm ci` in frontend/".into());
    }
    if !chromium().is_file() {
        return Some(format!("no Chromium at {} (Debian's `chromium` package)", chromium().display()));
    }
    if !Command::new("node").arg("--version").output().is_ok_and(|o| o.status.success()) {
        return Some("no `node` on PATH (Debian's `nodejs` package)".into());
    }
    None
}

/// The mailer binary, built beside the proxy by `cargo test --workspace`.
fn mailer_binary() -> PathBuf {
    let mailer = Path::new(env!("CARGO_BIN_EXE_gatehouse-proxy")).with_file_name("gatehouse-mailer");
    assert!(mailer.is_file(), "no mailer binary at {}: build it first (`cargo build -p mailer`)", mailer.display());
    mailer
}

/// A token for the first superuser, signed with the platform's key, whose
/// time ran out a minute ago.
async fn expired_admin_token(db: &TestDatabase) -> String {
    let id: uuid::Uuid = sqlx::query_scalar(r#"SELECT id FROM "user" WHERE email = $1"#)
        .bind(ADMIN_EMAIL)
        .fetch_one(&mut db.connect().await)
        .await
        .expect("the first superuser");
    let now = jsonwebtoken::get_current_timestamp() as i64;
    let claims = json!({
        "sub": id.to_string(), "iat": now - 3600, "exp": now - 60, "iss": "gatehouse", "aud": "gatehouse",
    });
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(TEST_KEY_ID.into());
    let key = ed25519_dalek::SigningKey::from_pkcs8_pem(&test_signing_key().private_pem).unwrap();
    let der = key.to_pkcs8_der().unwrap();
    jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ed_der(der.as_bytes())).unwrap()
}

/// Reads a child's output to the end on a thread of its own.
fn collect(mut stream: impl std::io::Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = stream.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

#[tokio::test]
async fn the_web_pages_work_in_a_real_browser() {
    let frontend = repository().join("frontend");
    if let Some(missing) = missing_prerequisite(&frontend) {
        assert!(
            std::env::var("GATEHOUSE_REQUIRE_FRONTEND").as_deref() != Ok("1"),
            "the browser tests cannot run: {missing}"
        );
        eprintln!("SKIPPED: the browser tests of the web frontend: {missing} (`cargo xtask test` does it all)");
        return;
    }

    let db = TestDatabase::create().await;
    let smtp = SmtpServer::start();
    let mut mailer = MailerProcess::start(&mailer_binary(), &db.url, smtp.addr);
    let host = RunningHost::start_services(&db, &services_manifest("", 8)).await;
    let proxy = ProxyProcess::start(Path::new(env!("CARGO_BIN_EXE_gatehouse-proxy")), host.addr, &test_jwks(&[]));

    // The pages are there before a browser is started for them.
    let home = reqwest::get(proxy.url("/")).await.expect("GET /");
    assert_eq!(home.status().as_u16(), 200, "the proxy serves frontend/out at /");
    assert!(home.headers()["content-type"].to_str().unwrap().starts_with("text/html"));

    let artifacts = repository().join("target/test-artifacts/frontend");
    let _ = std::fs::remove_dir_all(&artifacts);
    // Mail the SMTP server received, one file each, for the scripts to read.
    let mail = artifacts.join("mail");
    std::fs::create_dir_all(&mail).unwrap();
    let expired = expired_admin_token(&db).await;

    let mut node = Command::new("node")
        .current_dir(&frontend)
        .args(["--test", "--test-reporter=spec", "e2e/frontend.test.mjs"])
        .env("GATEHOUSE_BASE_URL", format!("http://{}", proxy.addr))
        .env("GATEHOUSE_ADMIN_EMAIL", ADMIN_EMAIL)
        .env("GATEHOUSE_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("GATEHOUSE_EXPIRED_TOKEN", &expired)
        .env("GATEHOUSE_MAILDIR", &mail)
        .env("GATEHOUSE_ARTIFACTS", &artifacts)
        .env("GATEHOUSE_CHROMIUM", chromium())
        .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting node");
    let stdout = collect(node.stdout.take().unwrap());
    let stderr = collect(node.stderr.take().unwrap());

    // The host serves on this test's runtime: wait without blocking it.
    let deadline = Instant::now() + BROWSER_TESTS_TIMEOUT;
    let mut delivered = 0;
    let status = loop {
        for (n, message) in smtp.received().iter().enumerate().skip(delivered) {
            std::fs::write(mail.join(format!("{n:03}.eml")), message).unwrap();
            delivered = n + 1;
        }
        if let Some(status) = node.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = node.kill();
            let _ = node.wait();
            break None;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let (stdout, stderr) = (stdout.join().unwrap(), stderr.join().unwrap());
    println!("{stdout}");
    eprintln!("{stderr}");
    println!("screenshots in {}", artifacts.join("screenshots").display());

    let status = status.unwrap_or_else(|| panic!("the browser tests did not finish within {BROWSER_TESTS_TIMEOUT:?}"));
    if !status.success() {
        let log = proxy.log();
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        panic!("the browser tests failed ({status}); the proxy's last log lines:\n{}", tail.join("\n"));
    }
    assert!(mailer.is_running(), "the mailer kept running");
    drop(proxy);
    host.shutdown().await;
}
