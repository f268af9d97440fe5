//! Who may do what: anonymous, user A, user B and a superuser, against
//! every route, on their own object, someone else's and a missing one, in
//! both path layouts. Every cell is asserted; after every refused write the
//! data is read again and must be unchanged.

use std::path::Path;

use serde_json::{Value, json};
use testkit::{
    ADMIN_EMAIL, ADMIN_PASSWORD, ApiClient, ProxyProcess, RunningHost, TestDatabase, services_manifest, test_jwks,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Actor {
    Anonymous,
    A,
    B,
    Super,
}
use Actor::*;

/// The object a route's `{id}` names, from the actor's point of view.
#[derive(Debug, Clone, Copy)]
enum Target {
    /// The route names no object.
    None,
    /// User A / A's item.
    OfA,
    /// User B / B's item.
    OfB,
    /// The superuser.
    OfSuper,
    Missing,
}

struct Cell {
    actor: Actor,
    method: &'static str,
    /// Per-service path; `{user}`, `{item}` and `{email}` filled from the target.
    path: &'static str,
    target: Target,
    body: Option<Value>,
    status: u16,
    /// The `detail` expected with a refusal.
    detail: Option<&'static str>,
}

fn cell(actor: Actor, method: &'static str, path: &'static str, target: Target, status: u16) -> Cell {
    Cell { actor, method, path, target, body: None, status, detail: None }
}

impl Cell {
    fn body(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }

    fn detail(mut self, detail: &'static str) -> Self {
        self.detail = Some(detail);
        self
    }
}

const NOT_AUTHENTICATED: &str = "Not authenticated";
const NOT_SUPER: &str = "The user doesn't have enough privileges";
const NOT_OWNER: &str = "Not enough permissions";
const NO_SELF_DELETE: &str = "Super users are not allowed to delete themselves";

/// The matrix, minus the writes that succeed destructively (those run last,
/// in `destructive_cells`).
fn cells() -> Vec<Cell> {
    let user_patch = json!({ "full_name": "changed" });
    let item_put = json!({ "title": "changed" });
    let new_item = json!({ "title": "new" });
    let new_user = || json!({ "email": format!("made.{}@example.com", uuid::Uuid::new_v4().simple()), "password": "made-password" });
    let mut cells = vec![
        // users: list and create are for superusers.
        cell(Anonymous, "GET", "/users/api/v1/users/", Target::None, 401).detail(NOT_AUTHENTICATED),
        cell(A, "GET", "/users/api/v1/users/", Target::None, 403).detail(NOT_SUPER),
        cell(B, "GET", "/users/api/v1/users/", Target::None, 403).detail(NOT_SUPER),
        cell(Super, "GET", "/users/api/v1/users/", Target::None, 200),
        cell(Anonymous, "POST", "/users/api/v1/users/", Target::None, 401).body(new_user()),
        cell(A, "POST", "/users/api/v1/users/", Target::None, 403).body(new_user()).detail(NOT_SUPER),
        cell(B, "POST", "/users/api/v1/users/", Target::None, 403).body(new_user()).detail(NOT_SUPER),
        cell(Super, "POST", "/users/api/v1/users/", Target::None, 200).body(new_user()),
        // Sign-up is open to anyone, token or not.
        cell(Anonymous, "POST", "/users/api/v1/users/signup", Target::None, 200).body(new_user()),
        cell(A, "POST", "/users/api/v1/users/signup", Target::None, 200).body(new_user()),
        // Your own profile.
        cell(Anonymous, "GET", "/users/api/v1/users/me", Target::None, 401),
        cell(A, "GET", "/users/api/v1/users/me", Target::None, 200),
        cell(Super, "GET", "/users/api/v1/users/me", Target::None, 200),
        cell(Anonymous, "PATCH", "/users/api/v1/users/me", Target::None, 401).body(user_patch.clone()),
        cell(Anonymous, "PUT", "/users/api/v1/users/me", Target::None, 401).body(user_patch.clone()),
        cell(A, "PATCH", "/users/api/v1/users/me", Target::None, 200).body(json!({ "full_name": "A" })),
        cell(Anonymous, "PATCH", "/users/api/v1/users/me/password", Target::None, 401)
            .body(json!({ "current_password": "x", "new_password": "changed-password" })),
        cell(Anonymous, "DELETE", "/users/api/v1/users/me", Target::None, 401),
        cell(Super, "DELETE", "/users/api/v1/users/me", Target::None, 403).detail(NO_SELF_DELETE),
        // Someone by id: yourself, or anyone as a superuser.
        cell(Anonymous, "GET", "/users/api/v1/users/{user}", Target::OfA, 401),
        cell(A, "GET", "/users/api/v1/users/{user}", Target::OfA, 200),
        cell(A, "GET", "/users/api/v1/users/{user}", Target::OfB, 403).detail(NOT_SUPER),
        cell(A, "GET", "/users/api/v1/users/{user}", Target::OfSuper, 403).detail(NOT_SUPER),
        cell(A, "GET", "/users/api/v1/users/{user}", Target::Missing, 403).detail(NOT_SUPER),
        cell(Super, "GET", "/users/api/v1/users/{user}", Target::OfA, 200),
        cell(Super, "GET", "/users/api/v1/users/{user}", Target::Missing, 404).detail("User not found"),
        cell(Anonymous, "PATCH", "/users/api/v1/users/{user}", Target::OfA, 401).body(user_patch.clone()),
        cell(A, "PATCH", "/users/api/v1/users/{user}", Target::OfA, 403).body(user_patch.clone()).detail(NOT_SUPER),
        cell(A, "PATCH", "/users/api/v1/users/{user}", Target::OfB, 403).body(user_patch.clone()).detail(NOT_SUPER),
        cell(A, "PATCH", "/users/api/v1/users/{user}", Target::OfSuper, 403)
            .body(json!({ "is_superuser": false }))
            .detail(NOT_SUPER),
        cell(A, "PATCH", "/users/api/v1/users/{user}", Target::Missing, 403).body(user_patch.clone()).detail(NOT_SUPER),
        cell(Super, "PATCH", "/users/api/v1/users/{user}", Target::Missing, 404)
            .body(user_patch.clone())
            .detail("The user with this id does not exist in the system"),
        cell(Super, "PATCH", "/users/api/v1/users/{user}", Target::OfB, 200).body(json!({ "full_name": "B" })),
        cell(Anonymous, "DELETE", "/users/api/v1/users/{user}", Target::OfB, 401),
        cell(A, "DELETE", "/users/api/v1/users/{user}", Target::OfB, 403).detail(NOT_SUPER),
        cell(A, "DELETE", "/users/api/v1/users/{user}", Target::OfA, 403).detail(NOT_SUPER),
        cell(A, "DELETE", "/users/api/v1/users/{user}", Target::Missing, 403).detail(NOT_SUPER),
        cell(Super, "DELETE", "/users/api/v1/users/{user}", Target::OfSuper, 403).detail(NO_SELF_DELETE),
        cell(Super, "DELETE", "/users/api/v1/users/{user}", Target::Missing, 404).detail("User not found"),
        // items: your own, or all as a superuser; someone else's is a 400, as in the original.
        cell(Anonymous, "GET", "/items/api/v1/items/", Target::None, 401),
        cell(A, "GET", "/items/api/v1/items/", Target::None, 200),
        cell(Anonymous, "POST", "/items/api/v1/items/", Target::None, 401).body(new_item.clone()),
        cell(Anonymous, "GET", "/items/api/v1/items/{item}", Target::OfA, 401),
        cell(A, "GET", "/items/api/v1/items/{item}", Target::OfA, 200),
        cell(A, "GET", "/items/api/v1/items/{item}", Target::OfB, 400).detail(NOT_OWNER),
        cell(B, "GET", "/items/api/v1/items/{item}", Target::OfA, 400).detail(NOT_OWNER),
        cell(A, "GET", "/items/api/v1/items/{item}", Target::Missing, 404).detail("Item not found"),
        cell(Super, "GET", "/items/api/v1/items/{item}", Target::OfA, 200),
        cell(Anonymous, "PUT", "/items/api/v1/items/{item}", Target::OfA, 401).body(item_put.clone()),
        cell(A, "PUT", "/items/api/v1/items/{item}", Target::OfA, 200).body(json!({ "title": "A's" })),
        cell(A, "PUT", "/items/api/v1/items/{item}", Target::OfB, 400).body(item_put.clone()).detail(NOT_OWNER),
        cell(A, "PUT", "/items/api/v1/items/{item}", Target::Missing, 404)
            .body(item_put.clone())
            .detail("Item not found"),
        cell(Super, "PUT", "/items/api/v1/items/{item}", Target::OfB, 200).body(json!({ "title": "B's" })),
        cell(Anonymous, "DELETE", "/items/api/v1/items/{item}", Target::OfA, 401),
        cell(A, "DELETE", "/items/api/v1/items/{item}", Target::OfB, 400).detail(NOT_OWNER),
        cell(B, "DELETE", "/items/api/v1/items/{item}", Target::OfA, 400).detail(NOT_OWNER),
        cell(A, "DELETE", "/items/api/v1/items/{item}", Target::Missing, 404).detail("Item not found"),
        // auth
        cell(Anonymous, "GET", "/auth/api/v1/login/test-token", Target::None, 401),
        cell(Anonymous, "POST", "/auth/api/v1/login/test-token", Target::None, 401),
        cell(B, "GET", "/auth/api/v1/login/test-token", Target::None, 200),
        cell(Anonymous, "POST", "/auth/api/v1/password-recovery-html-content/{email}", Target::OfA, 401),
        cell(A, "POST", "/auth/api/v1/password-recovery-html-content/{email}", Target::OfB, 403).detail(NOT_SUPER),
        cell(A, "POST", "/auth/api/v1/password-recovery-html-content/{email}", Target::OfA, 403).detail(NOT_SUPER),
        cell(Super, "POST", "/auth/api/v1/password-recovery-html-content/{email}", Target::Missing, 404)
            .detail("The user with this username does not exist in the system."),
    ];
    cells.push(cell(A, "POST", "/items/api/v1/items/", Target::None, 200).body(new_item));
    cells
}

/// Successful deletions, run after everything else.
fn destructive_cells() -> Vec<Cell> {
    vec![
        cell(A, "DELETE", "/items/api/v1/items/{item}", Target::OfA, 200),
        cell(Super, "DELETE", "/items/api/v1/items/{item}", Target::OfB, 200),
        cell(Super, "DELETE", "/users/api/v1/users/{user}", Target::OfB, 200),
        cell(A, "DELETE", "/users/api/v1/users/me", Target::None, 200),
    ]
}

struct World {
    api: ApiClient,
    db: TestDatabase,
    tokens: [(Actor, String); 3],
    users: [(Actor, String, String); 3],
    items: [(Actor, String); 2],
}

impl World {
    fn token(&self, actor: Actor) -> Option<&str> {
        self.tokens.iter().find(|(a, _)| *a == actor).map(|(_, t)| t.as_str())
    }

    fn fill(&self, path: &str, target: Target) -> String {
        let owner = match target {
            Target::None => return path.to_owned(),
            Target::OfA => Some(A),
            Target::OfB => Some(B),
            Target::OfSuper => Some(Super),
            Target::Missing => None,
        };
        let missing = "00000000-0000-4000-8000-00000000dead".to_owned();
        let user = owner.and_then(|o| self.users.iter().find(|(a, _, _)| *a == o));
        let item = owner.and_then(|o| self.items.iter().find(|(a, _)| *a == o)).map(|(_, id)| id.clone());
        path.replace("{user}", user.map_or(&missing, |(_, id, _)| id))
            .replace("{item}", &item.unwrap_or_else(|| missing.clone()))
            .replace("{email}", user.map_or("missing@example.com", |(_, _, email)| email))
    }

    async fn check(&self, cell: &Cell, layout_single_origin: bool) {
        let mut path = self.fill(cell.path, cell.target);
        if layout_single_origin {
            path = ["/auth", "/users", "/items"].iter().find_map(|p| path.strip_prefix(p)).unwrap().to_owned();
        }
        let writes = cell.method != "GET";
        let before = if writes && cell.status >= 400 { Some(self.db.snapshot().await) } else { None };
        let (status, body) = self.api.call(cell.method, &path, self.token(cell.actor), cell.body.as_ref()).await;
        let what = format!("{:?} {} {path} ({:?})", cell.actor, cell.method, cell.target);
        assert_eq!(status, cell.status, "{what}: {body}");
        if let Some(detail) = cell.detail {
            assert_eq!(body["detail"], detail, "{what}");
        }
        let text = body.to_string();
        assert!(!text.contains("hashed_password") && !text.contains("$2b$"), "{what} shows a hash: {text}");
        if let Some(before) = before {
            assert_eq!(self.db.snapshot().await, before, "{what} was refused but changed the data");
        }
    }
}

async fn world(db: TestDatabase, api: ApiClient) -> World {
    let mut users = Vec::new();
    let mut tokens = Vec::new();
    for (actor, email, password) in [(A, "a@example.com", "a-password"), (B, "b@example.com", "b-password")] {
        let body = json!({ "email": email, "password": password });
        let (status, user) = api.call("POST", "/users/api/v1/users/signup", None, Some(&body)).await;
        assert_eq!(status, 200, "{user}");
        users.push((actor, user["id"].as_str().unwrap().to_owned(), email.to_owned()));
        tokens.push((actor, api.token(email, password).await));
    }
    let admin = api.token(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let (_, me) = api.call("GET", "/users/api/v1/users/me", Some(&admin), None).await;
    users.push((Super, me["id"].as_str().unwrap().to_owned(), ADMIN_EMAIL.to_owned()));
    tokens.push((Super, admin));
    let mut items = Vec::new();
    for (actor, token) in &tokens[..2] {
        let (status, item) =
            api.call("POST", "/items/api/v1/items/", Some(token), Some(&json!({ "title": "owned" }))).await;
        assert_eq!(status, 200);
        items.push((*actor, item["id"].as_str().unwrap().to_owned()));
    }
    World {
        api,
        db,
        tokens: tokens.try_into().unwrap_or_else(|_| unreachable!()),
        users: users.try_into().unwrap_or_else(|_| unreachable!()),
        items: items.try_into().unwrap_or_else(|_| unreachable!()),
    }
}

#[tokio::test]
async fn every_actor_on_every_route() {
    for single_origin in [false, true] {
        let db = TestDatabase::create().await;
        let host = RunningHost::start_services(&db, &services_manifest("", 8)).await;
        let proxy = ProxyProcess::start(Path::new(env!("CARGO_BIN_EXE_gatehouse-proxy")), host.addr, &test_jwks(&[]));
        let world = world(db, ApiClient::new(format!("http://{}", proxy.addr))).await;
        for cell in cells().iter().chain(&destructive_cells()) {
            world.check(cell, single_origin).await;
        }
        // What the destructive cells did, and nothing more.
        let (status, _) = world.api.call("GET", "/users/api/v1/users/me", world.token(A), None).await;
        assert_eq!(status, 404, "A deleted themself");
        let (status, _) = world.api.call("GET", "/users/api/v1/users/me", world.token(B), None).await;
        assert_eq!(status, 404, "the superuser deleted B");
        let (status, me) = world.api.call("GET", "/users/api/v1/users/me", world.token(Super), None).await;
        assert_eq!((status, me["is_superuser"].as_bool()), (200, Some(true)));
        drop(proxy);
        host.shutdown().await;
    }
}
