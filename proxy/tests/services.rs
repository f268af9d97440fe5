//! The auth, users and items services as clients meet them: through the
//! proxy binary (with the configuration `cargo xtask run` uses), the host
//! and the real components, on a real PostgreSQL, in both path layouts.

use std::path::Path;

use serde_json::{Value, json};
use sqlx::PgConnection;
use testkit::{
    ADMIN_EMAIL, ADMIN_PASSWORD, ApiClient, ProxyProcess, RunningHost, TestDatabase, services_manifest, test_jwks,
};

/// The two ways a client may name a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// `/users/api/v1/users/me`: the original design's per-service prefixes.
    PerService,
    /// `/api/v1/users/me`: the FastAPI template's single origin.
    SingleOrigin,
}

const LAYOUTS: [Layout; 2] = [Layout::PerService, Layout::SingleOrigin];

impl Layout {
    /// `path` is written per service (`/users/api/v1/...`).
    fn path(self, path: &str) -> String {
        match self {
            Layout::PerService => path.to_owned(),
            Layout::SingleOrigin => {
                let rest = ["/auth", "/users", "/items"].iter().find_map(|p| path.strip_prefix(p));
                rest.filter(|r| r.starts_with("/api/v1/"))
                    .unwrap_or_else(|| panic!("{path} has no single-origin form"))
                    .to_owned()
            }
        }
    }
}

struct Platform {
    db: TestDatabase,
    host: RunningHost,
    proxy: ProxyProcess,
    api: ApiClient,
}

impl Platform {
    async fn start() -> Self {
        Self::start_with(&[]).await
    }

    async fn start_with(env: &[(&str, &str)]) -> Self {
        let db = TestDatabase::create().await;
        let host = RunningHost::start_services_with(&db, &services_manifest("", 8), env).await;
        let proxy = ProxyProcess::start(Path::new(env!("CARGO_BIN_EXE_gatehouse-proxy")), host.addr, &test_jwks(&[]));
        let api = ApiClient::new(format!("http://{}", proxy.addr));
        Self { db, host, proxy, api }
    }

    async fn call(
        &self,
        layout: Layout,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let (status, body) = self.api.call(method, &layout.path(path), token, body.as_ref()).await;
        assert_no_secrets(&body);
        (status, body)
    }

    /// Signs a user up and logs them in: `(id, token)`.
    async fn sign_up(&self, layout: Layout, email: &str, password: &str) -> (String, String) {
        let body = json!({ "email": email, "password": password, "full_name": "Test User" });
        let (status, user) = self.call(layout, "POST", "/users/api/v1/users/signup", None, Some(body)).await;
        assert_eq!(status, 200, "sign-up of {email}: {user}");
        let (status, token) = self.api.login_at(&layout.path("/auth/api/v1/login/access-token"), email, password).await;
        assert_eq!(status, 200, "login of {email}: {token}");
        (user["id"].as_str().unwrap().to_owned(), token["access_token"].as_str().unwrap().to_owned())
    }

    async fn admin_token(&self) -> String {
        self.api.token(ADMIN_EMAIL, ADMIN_PASSWORD).await
    }

    async fn conn(&self) -> PgConnection {
        self.db.connect().await
    }

    async fn stop(self) {
        drop(self.proxy);
        self.host.shutdown().await;
    }
}

/// No answer may carry a password hash, or even the field's name.
fn assert_no_secrets(body: &Value) {
    let text = body.to_string();
    for needle in ["hashed_password", "$2b$", "$2a$", "$argon2"] {
        assert!(!text.contains(needle), "an answer carries {needle}: {text}");
    }
}

fn detail(body: &Value) -> &str {
    body["detail"].as_str().unwrap_or_else(|| panic!("no string detail in {body}"))
}

/// The `type` of each entry of a 422.
fn error_kinds(body: &Value) -> Vec<String> {
    body["detail"]
        .as_array()
        .unwrap_or_else(|| panic!("not a 422 list: {body}"))
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn sign_up_profile_password_and_account_in_both_layouts() {
    let p = Platform::start().await;
    for layout in LAYOUTS {
        let email = format!("Someone.{layout:?}@Example.com");
        let (id, token) = p.sign_up(layout, &email, "first-password").await;
        let t = Some(token.as_str());

        let (status, me) = p.call(layout, "GET", "/users/api/v1/users/me", t, None).await;
        assert_eq!(status, 200, "{me}");
        assert_eq!(me["email"], email.to_lowercase(), "emails are stored in lower case");
        assert_eq!(
            (me["id"].as_str(), me["is_superuser"].as_bool(), me["is_active"].as_bool()),
            (Some(id.as_str()), Some(false), Some(true))
        );
        assert!(me["created_at"].as_str().unwrap().ends_with('Z'), "{me}");
        let (status, same) = p.call(layout, "GET", "/auth/api/v1/login/test-token", t, None).await;
        assert_eq!((status, &same), (200, &me));
        let (status, same) = p.call(layout, "POST", "/auth/api/v1/login/test-token", t, None).await;
        assert_eq!((status, &same), (200, &me));

        // The same email in another case is the same account.
        let body = json!({ "email": email.to_uppercase(), "password": "another-password" });
        let (status, taken) = p.call(layout, "POST", "/users/api/v1/users/signup", None, Some(body)).await;
        assert_eq!((status, detail(&taken)), (400, "The user with this email already exists in the system"));
        let (status, _) = p
            .api
            .login_at(&layout.path("/auth/api/v1/login/access-token"), &email.to_uppercase(), "first-password")
            .await;
        assert_eq!(status, 200, "login ignores the email's case");

        // PATCH and its PUT alias change only what is sent.
        let (status, renamed) =
            p.call(layout, "PATCH", "/users/api/v1/users/me", t, Some(json!({ "full_name": "Renamed" }))).await;
        assert_eq!((status, renamed["full_name"].as_str(), &renamed["email"]), (200, Some("Renamed"), &me["email"]));
        let new_email = format!("moved.{layout:?}@example.org").to_lowercase();
        let (status, moved) =
            p.call(layout, "PUT", "/users/api/v1/users/me", t, Some(json!({ "email": new_email }))).await;
        assert_eq!(
            (status, moved["email"].as_str(), moved["full_name"].as_str()),
            (200, Some(new_email.as_str()), Some("Renamed"))
        );
        let (status, cleared) =
            p.call(layout, "PATCH", "/users/api/v1/users/me", t, Some(json!({ "full_name": null }))).await;
        assert_eq!((status, &cleared["full_name"]), (200, &Value::Null));
        let (status, conflict) = p
            .call(layout, "PATCH", "/users/api/v1/users/me", t, Some(json!({ "email": ADMIN_EMAIL.to_uppercase() })))
            .await;
        assert_eq!((status, detail(&conflict)), (409, "User with this email already exists"));

        // Password changes, with the template's refusals.
        let change = |current: &str, new: &str| json!({ "current_password": current, "new_password": new });
        let path = "/users/api/v1/users/me/password";
        let (status, body) = p.call(layout, "PATCH", path, t, Some(change("wrong-password", "second-password"))).await;
        assert_eq!((status, detail(&body)), (400, "Incorrect password"));
        let (status, body) = p.call(layout, "PATCH", path, t, Some(change("first-password", "first-password"))).await;
        assert_eq!((status, detail(&body)), (400, "New password cannot be the same as the current one"));
        let (status, body) = p.call(layout, "PATCH", path, t, Some(change("first-password", &"x".repeat(73)))).await;
        assert_eq!((status, error_kinds(&body)), (422, vec!["string_too_long".to_owned()]));
        let (status, body) = p.call(layout, "PATCH", path, t, Some(change("first-password", "second-password"))).await;
        assert_eq!((status, body), (200, json!({ "message": "Password updated successfully" })));
        let login = layout.path("/auth/api/v1/login/access-token");
        assert_eq!(p.api.login_at(&login, &new_email, "first-password").await.0, 400);
        assert_eq!(p.api.login_at(&login, &new_email, "second-password").await.0, 200);

        // Deleting the account takes the items with it, and the token dies.
        let (status, item) = p.call(layout, "POST", "/items/api/v1/items/", t, Some(json!({ "title": "mine" }))).await;
        assert_eq!(status, 200, "{item}");
        let (status, body) = p.call(layout, "DELETE", "/users/api/v1/users/me", t, None).await;
        assert_eq!((status, body), (200, json!({ "message": "User deleted successfully" })));
        let (status, body) = p.call(layout, "GET", "/users/api/v1/users/me", t, None).await;
        assert_eq!((status, detail(&body)), (404, "User not found"));
        let items: i64 = sqlx::query_scalar("SELECT count(*) FROM item WHERE owner_id = $1::uuid")
            .bind(&id)
            .fetch_one(&mut p.conn().await)
            .await
            .unwrap();
        assert_eq!(items, 0, "the user's items went with them");
    }
    p.stop().await;
}

#[tokio::test]
async fn superusers_administer_users_and_the_database_decides_who_is_one() {
    let p = Platform::start().await;
    let admin = p.admin_token().await;
    let a = Some(admin.as_str());
    for layout in LAYOUTS {
        let email = format!("managed.{layout:?}@example.com").to_lowercase();
        let body =
            json!({ "email": email, "password": "managed-password", "full_name": "Managed", "is_superuser": false });
        let (status, user) = p.call(layout, "POST", "/users/api/v1/users/", a, Some(body.clone())).await;
        assert_eq!(status, 200, "{user}");
        let (status, again) = p.call(layout, "POST", "/users/api/v1/users/", a, Some(body)).await;
        assert_eq!((status, detail(&again)), (400, "The user with this email already exists in the system."));
        let id = user["id"].as_str().unwrap();
        let user_path = format!("/users/api/v1/users/{id}");
        let (status, read) = p.call(layout, "GET", &user_path, a, None).await;
        assert_eq!((status, &read), (200, &user));

        // Promoted in the database, the user's existing token gains the right at once.
        let token = p.api.token(&email, "managed-password").await;
        let t = Some(token.as_str());
        let (status, _) = p.call(layout, "GET", "/users/api/v1/users/", t, None).await;
        assert_eq!(status, 403);
        let (status, promoted) = p.call(layout, "PATCH", &user_path, a, Some(json!({ "is_superuser": true }))).await;
        assert_eq!(
            (status, promoted["is_superuser"].as_bool(), promoted["full_name"].as_str()),
            (200, Some(true), Some("Managed"))
        );
        let (status, listed) = p.call(layout, "GET", "/users/api/v1/users/", t, None).await;
        assert_eq!(status, 200, "{listed}");

        // Deactivated, the same token stops working, and so does logging in.
        let (status, _) =
            p.call(layout, "PATCH", &user_path, a, Some(json!({ "is_active": false, "is_superuser": false }))).await;
        assert_eq!(status, 200);
        let (status, body) = p.call(layout, "GET", "/users/api/v1/users/me", t, None).await;
        assert_eq!((status, detail(&body)), (400, "Inactive user"));
        let (status, body) =
            p.api.login_at(&layout.path("/auth/api/v1/login/access-token"), &email, "managed-password").await;
        assert_eq!((status, detail(&body)), (400, "Inactive user"));

        // A superuser may set a password; absent fields stay as they were.
        let (status, body) = p
            .call(layout, "PATCH", &user_path, a, Some(json!({ "password": "reset-by-admin", "is_active": true })))
            .await;
        assert_eq!(
            (status, body["email"].as_str(), body["full_name"].as_str()),
            (200, Some(email.as_str()), Some("Managed"))
        );
        assert_eq!(
            p.api.login_at(&layout.path("/auth/api/v1/login/access-token"), &email, "reset-by-admin").await.0,
            200
        );

        // Deleting a user removes their items too.
        let token = p.api.token(&email, "reset-by-admin").await;
        let (status, _) =
            p.call(layout, "POST", "/items/api/v1/items/", Some(&token), Some(json!({ "title": "x" }))).await;
        assert_eq!(status, 200);
        let (status, body) = p.call(layout, "DELETE", &user_path, a, None).await;
        assert_eq!((status, body), (200, json!({ "message": "User deleted successfully" })));
        let (status, body) = p.call(layout, "GET", &user_path, a, None).await;
        assert_eq!((status, detail(&body)), (404, "User not found"));
        let (status, body) = p.call(layout, "PATCH", &user_path, a, Some(json!({ "full_name": "ghost" }))).await;
        assert_eq!((status, detail(&body)), (404, "The user with this id does not exist in the system"));
        let orphans: i64 = sqlx::query_scalar("SELECT count(*) FROM item WHERE owner_id = $1::uuid")
            .bind(id)
            .fetch_one(&mut p.conn().await)
            .await
            .unwrap();
        assert_eq!(orphans, 0);
    }

    // Lists are newest first, paged, with the total.
    for n in 0..3 {
        let body = json!({ "email": format!("page{n}@example.com"), "password": "page-password" });
        assert_eq!(p.call(Layout::PerService, "POST", "/users/api/v1/users/", a, Some(body)).await.0, 200);
    }
    let (status, page) = p.call(Layout::SingleOrigin, "GET", "/users/api/v1/users/?skip=0&limit=2", a, None).await;
    assert_eq!(status, 200);
    assert_eq!(page["count"], 4, "the admin and three users: {page}");
    let emails: Vec<_> = page["data"].as_array().unwrap().iter().map(|u| u["email"].as_str().unwrap()).collect();
    assert_eq!(emails, ["page2@example.com", "page1@example.com"]);
    let (_, past) = p.call(Layout::PerService, "GET", "/users/api/v1/users/?skip=10", a, None).await;
    assert_eq!((past["data"].as_array().map(Vec::len), past["count"].as_i64()), (Some(0), Some(4)));
    let (status, body) = p.call(Layout::PerService, "GET", "/users/api/v1/users/?limit=1001", a, None).await;
    assert_eq!((status, error_kinds(&body)), (422, vec!["less_than_equal".to_owned()]));
    p.stop().await;
}

#[tokio::test]
async fn items_follow_the_template_with_patch_semantics_on_put() {
    let p = Platform::start().await;
    for layout in LAYOUTS {
        let (_, token) = p.sign_up(layout, &format!("items.{layout:?}@example.com"), "items-password").await;
        let t = Some(token.as_str());
        let mut ids = Vec::new();
        for n in 0..3 {
            let body = json!({ "title": format!("item {n}"), "description": format!("about {n}") });
            let (status, item) = p.call(layout, "POST", "/items/api/v1/items/", t, Some(body)).await;
            assert_eq!(status, 200, "{item}");
            assert!(item["created_at"].as_str().unwrap().ends_with('Z'));
            ids.push(item["id"].as_str().unwrap().to_owned());
        }
        let (status, page) = p.call(layout, "GET", "/items/api/v1/items/?skip=1&limit=1", t, None).await;
        assert_eq!(status, 200);
        assert_eq!(page["count"], 3);
        assert_eq!(page["data"][0]["title"], "item 1", "newest first: {page}");

        let item = format!("/items/api/v1/items/{}", ids[0]);
        let (status, updated) = p.call(layout, "PUT", &item, t, Some(json!({ "title": "renamed" }))).await;
        assert_eq!(
            (status, updated["title"].as_str(), updated["description"].as_str()),
            (200, Some("renamed"), Some("about 0"))
        );
        let (status, updated) = p.call(layout, "PUT", &item, t, Some(json!({ "description": null }))).await;
        assert_eq!((status, updated["title"].as_str(), &updated["description"]), (200, Some("renamed"), &Value::Null));
        let (status, body) = p.call(layout, "PUT", &item, t, Some(json!({ "title": null }))).await;
        assert_eq!(status, 422, "{body}");
        let (status, body) = p.call(layout, "DELETE", &item, t, None).await;
        assert_eq!((status, body), (200, json!({ "message": "Item deleted successfully" })));
        let (status, body) = p.call(layout, "GET", &item, t, None).await;
        assert_eq!((status, detail(&body)), (404, "Item not found"));
        let (status, body) = p.call(layout, "GET", "/items/api/v1/items/not-a-uuid", t, None).await;
        assert_eq!((status, &body["detail"][0]["loc"]), (422, &json!(["path", "id"])));
    }
    p.stop().await;
}

#[tokio::test]
async fn bad_input_is_a_422_in_fastapis_layout_and_writes_nothing() {
    let p = Platform::start().await;
    let (_, token) = p.sign_up(Layout::PerService, "valid@example.com", "valid-password").await;
    let t = Some(token.as_str());
    let before = p.db.snapshot().await;
    let cases: Vec<(&str, &str, Value, &[&str])> = vec![
        ("POST", "/items/api/v1/items/", json!({}), &["missing"]),
        ("POST", "/items/api/v1/items/", json!({ "title": "" }), &["string_too_short"]),
        ("POST", "/items/api/v1/items/", json!({ "title": "x".repeat(256) }), &["string_too_long"]),
        ("POST", "/items/api/v1/items/", json!({ "title": "a\u{0}b" }), &["string_pattern_mismatch"]),
        (
            "POST",
            "/items/api/v1/items/",
            json!({ "title": "ok", "description": "nul \u{0} inside" }),
            &["string_pattern_mismatch"],
        ),
        (
            "POST",
            "/items/api/v1/items/",
            json!({ "title": "ok", "description": "é".repeat(256) }),
            &["string_too_long"],
        ),
        ("POST", "/items/api/v1/items/", json!({ "title": 5 }), &["value_error"]),
        (
            "POST",
            "/users/api/v1/users/signup",
            json!({ "email": "not-an-email", "password": "long-enough" }),
            &["value_error"],
        ),
        (
            "POST",
            "/users/api/v1/users/signup",
            json!({ "email": "short@example.com", "password": "seven77" }),
            &["string_too_short"],
        ),
        (
            "POST",
            "/users/api/v1/users/signup",
            json!({ "email": "long@example.com", "password": "€".repeat(25) }),
            &["string_too_long"],
        ),
        (
            "POST",
            "/users/api/v1/users/signup",
            json!({ "email": "x@example.com", "password": "p\u{0}ssword" }),
            &["string_pattern_mismatch"],
        ),
        (
            "POST",
            "/users/api/v1/users/signup",
            json!({ "email": "bad", "password": "short" }),
            &["value_error", "string_too_short"],
        ),
        (
            "POST",
            "/users/api/v1/users/signup",
            json!({ "email": "n@example.com", "password": "long-enough", "full_name": "a\u{0}" }),
            &["string_pattern_mismatch"],
        ),
        ("PATCH", "/users/api/v1/users/me", json!({ "email": "nope" }), &["value_error"]),
        ("PATCH", "/users/api/v1/users/me", json!({ "full_name": "x".repeat(256) }), &["string_too_long"]),
        (
            "POST",
            "/auth/api/v1/reset-password/",
            json!({ "token": "t", "new_password": "short" }),
            &["string_too_short"],
        ),
    ];
    for layout in LAYOUTS {
        for (method, path, body, kinds) in &cases {
            let (status, answer) = p.call(layout, method, path, t, Some(body.clone())).await;
            assert_eq!(status, 422, "{method} {path} {body}: {answer}");
            assert_eq!(error_kinds(&answer), *kinds, "{method} {path} {body}: {answer}");
            for entry in answer["detail"].as_array().unwrap() {
                assert!(entry["msg"].is_string() && entry["loc"][0] == "body", "{entry}");
            }
        }
        // A NUL in a login is refused before it reaches a query.
        let login = layout.path("/auth/api/v1/login/access-token");
        let (status, body) = p.api.login_at(&login, "valid@example.com\u{0}", "valid-password").await;
        assert_eq!((status, error_kinds(&body)), (422, vec!["string_pattern_mismatch".to_owned()]));
        let (status, body) = p.api.call("POST", &login, None, None).await;
        assert_eq!((status, error_kinds(&body)), (422, vec!["missing".to_owned(), "missing".to_owned()]));
    }
    assert_eq!(p.db.snapshot().await, before, "refused input changed the data");
    p.stop().await;
}

#[tokio::test]
async fn passwords_are_bcrypt_limited_to_72_bytes_and_unknown_emails_answer_alike() {
    let p = Platform::start().await;
    let real = "r".repeat(72);
    p.sign_up(Layout::PerService, "long@example.com", &real).await;
    let hash: String = sqlx::query_scalar(r#"SELECT hashed_password FROM "user" WHERE email = 'long@example.com'"#)
        .fetch_one(&mut p.conn().await)
        .await
        .unwrap();
    assert!(hash.starts_with("$2b$12$"), "bcrypt at cost 12: {hash}");
    for layout in LAYOUTS {
        let login = layout.path("/auth/api/v1/login/access-token");
        // bcrypt alone reads only 72 bytes and would accept this one.
        let (status, body) = p.api.login_at(&login, "long@example.com", &format!("{real}-and-22-bytes-more!!!")).await;
        assert_eq!((status, detail(&body)), (400, "Incorrect email or password"));
        let wrong = p.api.login_at(&login, "long@example.com", "wrong-password").await;
        let unknown = p.api.login_at(&login, "nobody@example.com", "wrong-password").await;
        assert_eq!(wrong, unknown, "an unknown email is answered as a wrong password");
        assert_eq!(p.api.login_at(&login, "LONG@example.com", &real).await.0, 200);
    }
    p.stop().await;
}

#[tokio::test]
async fn privileged_fields_are_never_applied() {
    let p = Platform::start().await;
    let (a_id, a) = p.sign_up(Layout::PerService, "a@example.com", "a-password").await;
    let (b_id, _) = p.sign_up(Layout::PerService, "b@example.com", "b-password").await;
    let forged = json!({
        "id": b_id, "is_superuser": true, "is_active": false, "hashed_password": "$2b$04$forged",
        "owner_id": b_id, "created_at": "2000-01-01T00:00:00Z",
    });
    for layout in LAYOUTS {
        let mut signup = forged.clone();
        signup["email"] = json!(format!("sneaky.{layout:?}@example.com"));
        signup["password"] = json!("sneaky-password");
        let (status, user) = p.call(layout, "POST", "/users/api/v1/users/signup", None, Some(signup)).await;
        assert_eq!(
            (status, user["is_superuser"].as_bool(), user["is_active"].as_bool()),
            (200, Some(false), Some(true))
        );
        assert_ne!(user["id"], json!(b_id));
        assert!(!user["created_at"].as_str().unwrap().starts_with("2000"));

        let mut me = forged.clone();
        me["full_name"] = json!("still me");
        let (status, user) = p.call(layout, "PATCH", "/users/api/v1/users/me", Some(&a), Some(me)).await;
        assert_eq!(status, 200, "{user}");
        assert_eq!(
            (user["id"].as_str(), user["is_superuser"].as_bool(), user["is_active"].as_bool()),
            (Some(a_id.as_str()), Some(false), Some(true))
        );

        let mut item = forged.clone();
        item["title"] = json!("mine");
        let (status, created) = p.call(layout, "POST", "/items/api/v1/items/", Some(&a), Some(item.clone())).await;
        assert_eq!((status, created["owner_id"].as_str()), (200, Some(a_id.as_str())), "{created}");
        let path = format!("/items/api/v1/items/{}", created["id"].as_str().unwrap());
        let (status, updated) = p.call(layout, "PUT", &path, Some(&a), Some(item)).await;
        assert_eq!((status, updated["owner_id"].as_str(), &updated["id"]), (200, Some(a_id.as_str()), &created["id"]));
    }
    let hash: String = sqlx::query_scalar(r#"SELECT hashed_password FROM "user" WHERE id = $1::uuid"#)
        .bind(&a_id)
        .fetch_one(&mut p.conn().await)
        .await
        .unwrap();
    assert!(hash.starts_with("$2b$12$"), "the forged hash was not stored");
    assert_eq!(p.api.login_at("/auth/api/v1/login/access-token", "a@example.com", "a-password").await.0, 200);
    p.stop().await;
}

#[tokio::test]
async fn text_round_trips_byte_for_byte_and_statements_are_parameterised() {
    let p = Platform::start().await;
    let (_, token) = p.sign_up(Layout::PerService, "text@example.com", "text-password").await;
    let t = Some(token.as_str());
    let titles = [
        "'; DROP TABLE item; --",
        r#"Robert"); DELETE FROM "user" WHERE ('1' = '1"#,
        "$1 $2 %s %% \\x00 \\\\",
        "🦀 emoji 👩‍👩‍👧‍👦 and flags 🇫🇷",
        "مرحبا بالعالم RTL \u{202e}reversed\u{202c}",
        "zero\u{200b}width\u{feff}joiner\u{200d}",
        "line one\nline two\ttabbed\r\n",
        "Ünïcödé ñ 漢字 かな",
    ];
    for layout in LAYOUTS {
        for title in titles {
            let body = json!({ "title": title, "description": title });
            let (status, item) = p.call(layout, "POST", "/items/api/v1/items/", t, Some(body)).await;
            assert_eq!(status, 200, "{title:?}: {item}");
            let path = format!("/items/api/v1/items/{}", item["id"].as_str().unwrap());
            let (_, read) = p.call(layout, "GET", &path, t, None).await;
            assert_eq!((read["title"].as_str(), read["description"].as_str()), (Some(title), Some(title)));
        }
    }
    let stored: Vec<String> =
        sqlx::query_scalar("SELECT title FROM item").fetch_all(&mut p.conn().await).await.unwrap();
    for title in titles {
        assert_eq!(stored.iter().filter(|s| *s == title).count(), 2, "{title:?} stored as sent");
    }
    let users: i64 = sqlx::query_scalar(r#"SELECT count(*) FROM "user""#).fetch_one(&mut p.conn().await).await.unwrap();
    assert_eq!(users, 2);
    p.stop().await;
}

#[tokio::test]
async fn sign_up_can_be_switched_off() {
    let p = Platform::start_with(&[("USERS_OPEN_REGISTRATION", "false")]).await;
    for layout in LAYOUTS {
        let body = json!({ "email": "closed@example.com", "password": "closed-password" });
        let (status, body) = p.call(layout, "POST", "/users/api/v1/users/signup", None, Some(body)).await;
        assert_eq!((status, detail(&body)), (403, "Open user registration is forbidden on this server"));
    }
    let users: i64 = sqlx::query_scalar(r#"SELECT count(*) FROM "user""#).fetch_one(&mut p.conn().await).await.unwrap();
    assert_eq!(users, 1, "only the first superuser");
    p.stop().await;
}

#[tokio::test]
async fn health_keys_and_documents_are_public() {
    let p = Platform::start().await;
    for service in ["auth", "users", "items"] {
        let (status, body) = p.api.call("GET", &format!("/{service}/health"), None, None).await;
        assert_eq!((status, body), (200, json!({ "status": "ok" })), "{service}");
    }
    let (status, body) = p.api.call("GET", "/api/v1/utils/health-check/", None, None).await;
    assert_eq!((status, body), (200, json!(true)));

    let published = testkit::test_signing_key().public_jwk.clone();
    for path in ["/.well-known/jwks.json", "/auth/api/v1/.well-known/jwks.json"] {
        let (status, jwks) = p.api.call("GET", path, None, None).await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(jwks["keys"][0]["kid"], published["kid"], "{jwks}");
        assert_eq!(jwks["keys"][0]["x"], published["x"], "{jwks}");
        assert!(jwks["keys"][0].get("d").is_none(), "no private part: {jwks}");
    }
    p.stop().await;
}

/// Every route a service's OpenAPI document lists is answered by that
/// service through the proxy (the services' unit tests check the converse).
#[tokio::test]
async fn every_documented_route_is_answered() {
    let p = Platform::start().await;
    let admin = p.admin_token().await;
    for service in ["auth", "users", "items"] {
        let (status, doc) = p.api.call("GET", &format!("/{service}/openapi.json"), None, None).await;
        assert_eq!(status, 200, "{service}");
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"), "{doc}");
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                let concrete = path
                    .replace("{user_id}", "00000000-0000-4000-8000-000000000000")
                    .replace("{id}", "00000000-0000-4000-8000-000000000000")
                    .replace("{email}", "nobody@example.com");
                let full = format!("/{service}{concrete}");
                let (status, body) = p.api.call(&method.to_uppercase(), &full, Some(&admin), Some(&json!({}))).await;
                let unrouted = status == 405 || (status == 404 && body["detail"] == "Not Found");
                assert!(!unrouted, "{method} {full} is documented but not routed: {status} {body}");
            }
        }
    }
    p.stop().await;
}
