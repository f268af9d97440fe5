//! `gatehouse-native`: three of the services' operations written natively
//! (axum and sqlx), the yardstick `gatehouse-load` measures the host and the
//! proxy against:
//!
//! - `GET /items/api/v1/items/` (`skip`, `limit`): the caller's items, newest
//!   first, with their count;
//! - `POST /items/api/v1/items/`: a new item of the caller's;
//! - `GET /users/api/v1/users/me`: the caller.
//!
//! The same work as the components, query for query: the caller comes from
//! the identity headers the proxy signs (checked with the host's own code),
//! is read from the database and must be active; answers have the services'
//! JSON shapes and `{"detail": ...}` errors. Never deployed.

use std::net::SocketAddr;

use anyhow::Context as _;
use axum::extract::{Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::serve::ListenerExt as _;
use axum::{Json, Router};
use clap::Parser;
use host::identity::{IdentityVerifier, Verdict};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use uuid::Uuid;

#[derive(Debug, Parser)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:8082")]
    listen: SocketAddr,
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: String,
    /// The same pool size as the host's database (`deploy/host.toml`).
    #[arg(long, default_value_t = 16)]
    max_connections: u32,
    /// Worker threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

/// The key the proxy signs identities with.
const IDENTITY_KEY_ENV: &str = "GATEHOUSE_IDENTITY_KEY";
const USER_ID_HEADER: &str = "x-gatehouse-user-id";
const DEFAULT_LIMIT: i64 = 100;
const MAX_LIMIT: i64 = 1000;
const MAX_TEXT_CHARS: usize = 255;

#[derive(Clone)]
struct App {
    pool: PgPool,
    identity: IdentityVerifier,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if args.threads > 0 {
        runtime.worker_threads(args.threads);
    }
    runtime.enable_all().build()?.block_on(serve(args))
}

async fn serve(args: Args) -> anyhow::Result<()> {
    let key = std::env::var(IDENTITY_KEY_ENV).with_context(|| format!("{IDENTITY_KEY_ENV} is not set"))?;
    let identity = IdentityVerifier::new(Some(key.as_bytes()))
        .with_context(|| format!("{IDENTITY_KEY_ENV} is shorter than 32 bytes"))?;
    let pool = PgPoolOptions::new()
        .max_connections(args.max_connections)
        .connect(&args.database_url)
        .await
        .context("connecting to the database")?;
    let app = App { pool, identity };
    let router = Router::new()
        .route("/items/api/v1/items/", get(list_items).post(create_item))
        .route("/users/api/v1/users/me", get(read_me))
        .with_state(app);
    let listener =
        tokio::net::TcpListener::bind(args.listen).await.with_context(|| format!("binding {}", args.listen))?;
    eprintln!("gatehouse-native listening on {}", args.listen);
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, router).await?;
    Ok(())
}

/// An answer with the services' `{"detail": ...}` shape.
struct ApiError(StatusCode, serde_json::Value);

impl ApiError {
    fn new(status: StatusCode, detail: &str) -> Self {
        Self(status, json!(detail))
    }

    fn internal(what: &str, e: impl std::fmt::Display) -> Self {
        eprintln!("{what}: {e}");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "detail": self.1 }))).into_response()
    }
}

type ApiResult<T> = Result<Json<T>, ApiError>;

#[derive(Serialize)]
struct UserPublic {
    id: Uuid,
    email: String,
    full_name: Option<String>,
    is_active: bool,
    is_superuser: bool,
    #[serde(serialize_with = "timestamp")]
    created_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Serialize)]
struct ItemPublic {
    id: Uuid,
    title: String,
    description: Option<String>,
    owner_id: Uuid,
    #[serde(serialize_with = "timestamp")]
    created_at: chrono::DateTime<chrono::Utc>,
}

/// An item's columns, as [`ItemPublic`] lists them.
type ItemRow = (Uuid, String, Option<String>, Uuid, chrono::DateTime<chrono::Utc>);

impl From<ItemRow> for ItemPublic {
    fn from((id, title, description, owner_id, created_at): ItemRow) -> Self {
        Self { id, title, description, owner_id, created_at }
    }
}

#[derive(Serialize)]
struct ItemsPublic {
    data: Vec<ItemPublic>,
    count: i64,
}

/// ISO 8601 in UTC with microseconds, as the services write it.
fn timestamp<S: serde::Serializer>(at: &chrono::DateTime<chrono::Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&at.format("%Y-%m-%dT%H:%M:%S%.6fZ"))
}

/// The caller: the identity the proxy signed, read from the database, active.
async fn caller(app: &App, request: Request) -> Result<(UserPublic, axum::body::Body), ApiError> {
    let (mut parts, body) = request.into_parts();
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let unauthenticated = || ApiError::new(StatusCode::UNAUTHORIZED, "Not authenticated");
    if app.identity.admit(parts.method.as_str(), &target, &mut parts.headers) != Verdict::Proven {
        return Err(unauthenticated());
    }
    let id = parts
        .headers
        .get(USER_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| Uuid::parse_str(v).ok())
        .ok_or_else(unauthenticated)?;
    let (id, email, full_name, is_active, is_superuser, created_at) =
        sqlx::query_as(r#"SELECT id, email, full_name, is_active, is_superuser, created_at FROM "user" WHERE id = $1"#)
            .bind(id)
            .fetch_optional(&app.pool)
            .await
            .map_err(|e| ApiError::internal("reading the caller", e))?
            .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "User not found"))?;
    let user = UserPublic { id, email, full_name, is_active, is_superuser, created_at };
    if !user.is_active {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "Inactive user"));
    }
    Ok((user, body))
}

async fn read_me(State(app): State<App>, request: Request) -> ApiResult<UserPublic> {
    Ok(Json(caller(&app, request).await?.0))
}

#[derive(Deserialize)]
struct Paging {
    skip: Option<String>,
    limit: Option<String>,
}

/// `skip` and `limit` as the services read them: 422 naming the parameter.
fn paging(query: &Paging) -> Result<(i64, i64), ApiError> {
    let read = |name: &str, value: &Option<String>, default: i64, max: i64| -> Result<i64, ApiError> {
        let Some(value) = value else { return Ok(default) };
        match value.parse::<i64>() {
            Ok(n) if (0..=max).contains(&n) => Ok(n),
            _ => Err(ApiError(
                StatusCode::UNPROCESSABLE_ENTITY,
                json!([{ "loc": ["query", name], "type": "invalid", "msg": format!("Input should be between 0 and {max}") }]),
            )),
        }
    };
    Ok((read("skip", &query.skip, 0, i64::MAX)?, read("limit", &query.limit, DEFAULT_LIMIT, MAX_LIMIT)?))
}

async fn list_items(State(app): State<App>, Query(query): Query<Paging>, request: Request) -> ApiResult<ItemsPublic> {
    let (user, _) = caller(&app, request).await?;
    let (skip, limit) = paging(&query)?;
    let owner = (!user.is_superuser).then_some(user.id);
    let filter = "WHERE ($1::uuid IS NULL OR owner_id = $1)";
    type Counted = (Uuid, String, Option<String>, Uuid, chrono::DateTime<chrono::Utc>, i64);
    let rows: Vec<Counted> = sqlx::query_as(&format!(
        "SELECT id, title, description, owner_id, created_at, count(*) OVER () FROM item {filter} \
         ORDER BY created_at DESC, id DESC OFFSET $2 LIMIT $3"
    ))
    .bind(owner)
    .bind(skip)
    .bind(limit)
    .fetch_all(&app.pool)
    .await
    .map_err(|e| ApiError::internal("listing items", e))?;
    let count = match rows.first() {
        Some(row) => row.5,
        None if skip > 0 => sqlx::query_scalar(&format!("SELECT count(*) FROM item {filter}"))
            .bind(owner)
            .fetch_one(&app.pool)
            .await
            .map_err(|e| ApiError::internal("counting items", e))?,
        None => 0,
    };
    let data = rows
        .into_iter()
        .map(|(id, title, description, owner_id, created_at, _)| {
            ItemPublic::from((id, title, description, owner_id, created_at))
        })
        .collect();
    Ok(Json(ItemsPublic { data, count }))
}

#[derive(Deserialize)]
struct ItemCreate {
    title: String,
    description: Option<String>,
}

async fn create_item(State(app): State<App>, request: Request) -> ApiResult<ItemPublic> {
    let (user, body) = caller(&app, request).await?;
    let bytes = axum::body::to_bytes(body, 1 << 20)
        .await
        .map_err(|_| ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "Request body too large"))?;
    let item: ItemCreate = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!([{ "loc": ["body"], "type": "json_invalid", "msg": format!("JSON decode error: {e}") }]),
        )
    })?;
    let too_long = |text: &str| text.chars().count() > MAX_TEXT_CHARS;
    if item.title.is_empty() || too_long(&item.title) || item.description.as_deref().is_some_and(too_long) {
        return Err(ApiError(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!([{ "loc": ["body"], "type": "string_length", "msg": "title: 1 to 255 characters, description at most 255" }]),
        ));
    }
    let created: ItemRow = sqlx::query_as(
        "INSERT INTO item (title, description, owner_id) VALUES ($1, $2, $3) \
         RETURNING id, title, description, owner_id, created_at",
    )
    .bind(&item.title)
    .bind(&item.description)
    .bind(user.id)
    .fetch_one(&app.pool)
    .await
    .map_err(|e| ApiError::internal("creating an item", e))?;
    Ok(Json(created.into()))
}
