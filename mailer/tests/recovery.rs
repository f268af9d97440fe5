//! Password recovery end to end: the proxy and host with the real
//! components, this mailer, and a real SMTP server on loopback receiving
//! the mail whose link resets the password.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use testkit::{
    ADMIN_EMAIL, ADMIN_PASSWORD, ApiClient, MailerProcess, ProxyProcess, RunningHost, SmtpServer, TestDatabase,
    services_manifest, test_jwks,
};

fn mailer_binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_gatehouse-mailer"))
}

/// The proxy binary, built beside this one by `cargo test --workspace`.
fn proxy_binary() -> PathBuf {
    let proxy = mailer_binary().with_file_name("gatehouse-proxy");
    assert!(proxy.is_file(), "no proxy binary at {}: build it first (`cargo build -p proxy`)", proxy.display());
    proxy
}

/// Undoes quoted-printable soft line breaks and `=XX` escapes, enough to
/// read a link out of a mail body.
fn decode_quoted_printable(text: &str) -> String {
    let joined = text.replace("=\r\n", "").replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex)) {
            (b'=', Some(hi), Some(lo)) => {
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The token in the reset link of a page (a decoded mail, or the preview).
fn reset_token(body: &str) -> String {
    let start = body.find("/reset-password?token=").expect("a reset link in the mail") + "/reset-password?token=".len();
    body[start..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_').collect()
}

async fn outbox(db: &TestDatabase) -> Vec<(String, i32, bool, Option<String>)> {
    sqlx::query_as("SELECT recipient, attempts, sent_at IS NOT NULL, last_error FROM email_outbox ORDER BY id")
        .fetch_all(&mut db.connect().await)
        .await
        .unwrap()
}

async fn wait_until(db: &TestDatabase, what: &str, done: impl Fn(&[(String, i32, bool, Option<String>)]) -> bool) {
    for _ in 0..300 {
        if done(&outbox(db).await) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what}: outbox is {:?}", outbox(db).await);
}

struct Platform {
    db: TestDatabase,
    host: RunningHost,
    proxy: ProxyProcess,
    api: ApiClient,
}

async fn platform() -> Platform {
    let db = TestDatabase::create().await;
    let host = RunningHost::start_services(&db, &services_manifest("", 8)).await;
    let proxy = ProxyProcess::start(&proxy_binary(), host.addr, &test_jwks(&[]));
    let api = ApiClient::new(format!("http://{}", proxy.addr));
    Platform { db, host, proxy, api }
}

async fn sign_up(api: &ApiClient, email: &str, password: &str) {
    let body = json!({ "email": email, "password": password });
    let (status, user) = api.call("POST", "/api/v1/users/signup", None, Some(&body)).await;
    assert_eq!(status, 200, "{user}");
}

#[tokio::test]
async fn a_mailed_link_resets_the_password_once() {
    let p = platform().await;
    let smtp = SmtpServer::start();
    let mut mailer = MailerProcess::start(mailer_binary(), &p.db.url, smtp.addr);
    sign_up(&p.api, "forgetful@example.com", "old-password").await;

    // Known and unknown emails get the same answer; only one mail is written.
    let known = p.api.call("POST", "/api/v1/password-recovery/Forgetful@Example.com", None, None).await;
    let unknown = p.api.call("POST", "/auth/api/v1/password-recovery/nobody@example.com", None, None).await;
    assert_eq!(known.0, 200, "{}", known.1);
    assert_eq!(known, unknown, "the answer must not tell which emails exist");
    wait_until(&p.db, "the mail is sent", |rows| rows.len() == 1 && rows[0].2).await;
    let mails = smtp.wait_for(1, Duration::from_secs(10));
    assert_eq!(mails.len(), 1, "exactly one mail: {mails:?}");
    let mail = &mails[0];
    assert!(mail.contains("To: forgetful@example.com"), "{mail}");
    assert!(mail.contains("From: Gatehouse <noreply@example.com>"), "{mail}");
    let token = reset_token(&decode_quoted_printable(mail));
    assert!(token.len() >= 43, "a 256-bit token: {token}");
    let stored: Vec<u8> = sqlx::query_scalar("SELECT token_hash FROM password_reset_token")
        .fetch_one(&mut p.db.connect().await)
        .await
        .unwrap();
    assert_ne!(stored, token.as_bytes(), "only a digest of the token is kept");

    // Bad input first: nothing is spent.
    let reset = |token: &str, password: &str| json!({ "token": token, "new_password": password });
    let (status, body) = p.api.call("POST", "/api/v1/reset-password/", None, Some(&reset(&token, "short"))).await;
    assert_eq!(status, 422, "{body}");
    let (status, body) =
        p.api.call("POST", "/api/v1/reset-password/", None, Some(&reset("forged", "new-password"))).await;
    assert_eq!((status, &body["detail"]), (400, &json!("Invalid token")));

    let (status, body) =
        p.api.call("POST", "/api/v1/reset-password/", None, Some(&reset(&token, "new-password"))).await;
    assert_eq!((status, body), (200, json!({ "message": "Password updated successfully" })));
    let login = "/api/v1/login/access-token";
    assert_eq!(p.api.login_at(login, "forgetful@example.com", "old-password").await.0, 400);
    assert_eq!(p.api.login_at(login, "forgetful@example.com", "new-password").await.0, 200);
    let (status, body) =
        p.api.call("POST", "/auth/api/v1/reset-password/", None, Some(&reset(&token, "third-password"))).await;
    assert_eq!((status, &body["detail"]), (400, &json!("Invalid token")), "a token works once");
    assert_eq!(p.api.login_at(login, "forgetful@example.com", "new-password").await.0, 200);

    assert!(mailer.is_running());
    drop(p.proxy);
    p.host.shutdown().await;
}

#[tokio::test]
async fn mail_waits_in_the_outbox_until_the_smtp_server_answers() {
    let p = platform().await;
    // Nothing listens on this port yet.
    let addr: SocketAddr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let _mailer = MailerProcess::start(mailer_binary(), &p.db.url, addr);
    sign_up(&p.api, "patient@example.com", "old-password").await;
    let (status, _) = p.api.call("POST", "/api/v1/password-recovery/patient@example.com", None, None).await;
    assert_eq!(status, 200);
    wait_until(&p.db, "a failed attempt is recorded", |rows| {
        rows.len() == 1 && !rows[0].2 && rows[0].1 >= 1 && rows[0].3.is_some()
    })
    .await;

    let smtp = SmtpServer::start_on(addr);
    wait_until(&p.db, "the retry delivers", |rows| rows[0].2).await;
    let mails = smtp.wait_for(1, Duration::from_secs(10));
    assert_eq!(mails.len(), 1);
    let rows = outbox(&p.db).await;
    assert!(rows[0].1 >= 2, "delivered on a retry: {rows:?}");
    assert_eq!(rows[0].3, None, "the error is cleared once sent");
    drop(p.proxy);
    p.host.shutdown().await;
}

#[tokio::test]
async fn superusers_preview_the_recovery_mail() {
    let p = platform().await;
    sign_up(&p.api, "preview@example.com", "old-password").await;
    let admin = p.api.token(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let (status, html) =
        p.api.call("POST", "/api/v1/password-recovery-html-content/preview@example.com", Some(&admin), None).await;
    assert_eq!(status, 200);
    let html = html.as_str().expect("HTML, not JSON");
    assert!(html.contains("<a href=") && html.contains("preview@example.com"), "{html}");
    // The previewed link works like a mailed one.
    let token = reset_token(html);
    let body = json!({ "token": token, "new_password": "previewed-password" });
    let (status, _): (u16, Value) = p.api.call("POST", "/api/v1/reset-password/", None, Some(&body)).await;
    assert_eq!(status, 200);
    assert_eq!(p.api.login_at("/api/v1/login/access-token", "preview@example.com", "previewed-password").await.0, 200);
    let queued: i64 =
        sqlx::query_scalar("SELECT count(*) FROM email_outbox").fetch_one(&mut p.db.connect().await).await.unwrap();
    assert_eq!(queued, 0, "a preview sends nothing");
    drop(p.proxy);
    p.host.shutdown().await;
}

#[tokio::test]
async fn a_user_made_by_a_superuser_is_told_without_the_password() {
    let p = platform().await;
    let smtp = SmtpServer::start();
    let _mailer = MailerProcess::start(mailer_binary(), &p.db.url, smtp.addr);
    let admin = p.api.token(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let body = json!({ "email": "Newcomer@example.com", "password": "given-password-1" });
    let (status, user) = p.api.call("POST", "/api/v1/users/", Some(&admin), Some(&body)).await;
    assert_eq!(status, 200, "{user}");
    // A refused duplicate writes no second mail.
    let (status, _) = p.api.call("POST", "/api/v1/users/", Some(&admin), Some(&body)).await;
    assert_eq!(status, 400);
    let mails = smtp.wait_for(1, Duration::from_secs(15));
    assert_eq!(mails.len(), 1, "{mails:?}");
    let mail = decode_quoted_printable(&mails[0]);
    assert!(mail.contains("To: newcomer@example.com"), "{mail}");
    assert!(mail.contains("New account"), "{mail}");
    assert!(mail.contains("/recover-password"), "{mail}");
    assert!(!mail.contains("given-password-1"), "the password is never mailed: {mail}");
    wait_until(&p.db, "the mail is marked sent", |rows| rows.len() == 1 && rows[0].2).await;
    drop(p.proxy);
    p.host.shutdown().await;
}
