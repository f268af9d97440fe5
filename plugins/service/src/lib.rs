//! What every Gatehouse service shares: the `{"detail": ...}` error shape of
//! the original FastAPI services, JSON bodies, the caller's identity as the
//! edge proxy passes it on, and the database connection.
//!
//! Everything here is plain code over spin-sdk types, so a service built on
//! it runs on the Gatehouse host and on Spin alike.

pub mod mail;
pub mod openapi;
pub mod passwords;
pub mod router;
pub mod validate;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use spin_sdk::http::{Request, Response};
use spin_sdk::pg4::{Connection, DbValue, Decode, ParameterValue, PgError, QueryError, RowSet};
use uuid::Uuid;

/// Header carrying the user id the edge proxy verified from the bearer token.
/// The proxy removes any copy a client sends, so a service may trust it.
pub const USER_ID_HEADER: &str = "x-gatehouse-user-id";

/// Spin variable naming the database to open: on the Gatehouse host, a name
/// the manifest grants; on Spin, a connection string.
pub const DATABASE_VARIABLE: &str = "database";

/// An error answered to the client as `{"detail": ...}` with a status code.
#[derive(Debug)]
pub struct ApiError {
    pub status: u16,
    pub detail: Value,
}

impl ApiError {
    pub fn new(status: u16, detail: impl Into<String>) -> Self {
        Self { status, detail: Value::String(detail.into()) }
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(404, format!("{what} not found"))
    }

    /// A 404 with the original's own wording.
    pub fn not_found_detail(detail: &str) -> Self {
        Self::new(404, detail)
    }

    pub fn unauthenticated() -> Self {
        Self::new(401, "Not authenticated")
    }

    /// A failure that is not the client's doing. The cause is written to the
    /// host's log; the client learns only that it happened.
    pub fn internal(context: &str, cause: impl std::fmt::Display) -> Self {
        eprintln!("{context}: {cause}");
        Self::new(500, "Internal server error")
    }

    /// A request body that did not validate, in FastAPI's 422 shape.
    pub fn validation(loc: &[&str], kind: &str, msg: impl Into<String>) -> Self {
        let mut location = vec![Value::from("body")];
        location.extend(loc.iter().map(|part| Value::from(*part)));
        Self { status: 422, detail: json!([{ "type": kind, "loc": location, "msg": msg.into() }]) }
    }

    /// The request was understood but the caller may not do it.
    pub fn forbidden(detail: &str) -> Self {
        Self::new(403, detail)
    }

    pub fn into_response(self) -> Response {
        json_response(self.status, &json!({ "detail": self.detail }))
    }
}

pub type ApiResult<T = Response> = Result<T, ApiError>;

/// Turns a handler's result into the response the client sees.
pub fn respond(result: ApiResult) -> Response {
    result.unwrap_or_else(ApiError::into_response)
}

pub fn json_response(status: u16, body: &impl Serialize) -> Response {
    // Serialising our own plain structs cannot fail.
    let body = serde_json::to_vec(body).unwrap_or_default();
    Response::builder().status(status).header("content-type", "application/json").body(body).build()
}

/// The request path as the service sees it: on Spin the part after the
/// component's route (`spin-path-info`), on the Gatehouse host the path
/// itself, from which the host already removed the route prefix.
pub fn service_path(req: &Request) -> String {
    match req.header("spin-path-info").and_then(|v| v.as_str()) {
        Some(info) => info.to_owned(),
        None => req.path().to_owned(),
    }
}

/// `GET /health`, a route every service has: `{"status": "ok"}` once the
/// database answers.
pub fn health(_: &Request, _: &router::Params) -> ApiResult {
    let db = Database::open()?;
    db.query("SELECT 1", &[])?;
    Ok(json_response(200, &json!({ "status": "ok" })))
}

/// A service's OpenAPI document as it is served.
pub fn openapi_response(document: &'static str) -> Response {
    Response::builder().status(200).header("content-type", "application/json").body(document).build()
}

/// The answer for a path a service knows but a method it does not.
pub fn method_not_allowed() -> ApiError {
    ApiError::new(405, "Method Not Allowed")
}

pub fn route_not_found() -> ApiError {
    ApiError::new(404, "Not Found")
}

/// Whether the request carries a body of this media type (parameters ignored).
pub fn has_content_type(req: &Request, media_type: &str) -> bool {
    req.header("content-type")
        .and_then(|v| v.as_str())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(media_type))
}

/// Parses a JSON body, answering bad input as FastAPI did: 422 with the
/// location and kind of the problem.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> ApiResult<T> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::validation(&[], "missing", "Field required"));
    }
    serde_json::from_slice(body).map_err(|e| json_error_to_api_error(&e))
}

fn json_error_to_api_error(e: &serde_json::Error) -> ApiError {
    use serde_json::error::Category;
    match e.classify() {
        Category::Data => {
            let msg = e.to_string();
            // serde words a missing field as "missing field `name` at line ..".
            match msg.strip_prefix("missing field `").and_then(|rest| rest.split('`').next()) {
                Some(field) => ApiError::validation(&[field], "missing", "Field required"),
                None => ApiError::validation(&[], "value_error", msg),
            }
        }
        Category::Syntax | Category::Eof | Category::Io => {
            ApiError::validation(&[], "json_invalid", format!("JSON decode error: {e}"))
        }
    }
}

/// The user id the edge proxy verified, or 401 when the request did not come
/// through a route that requires a token.
pub fn caller_id(req: &Request) -> ApiResult<Uuid> {
    let value = req.header(USER_ID_HEADER).and_then(|v| v.as_str()).ok_or_else(ApiError::unauthenticated)?;
    Uuid::parse_str(value).map_err(|_| ApiError::unauthenticated())
}

/// A connection to the database this service was granted.
pub struct Database {
    conn: Connection,
}

impl Database {
    pub fn open() -> ApiResult<Self> {
        let address = spin_sdk::variables::get(DATABASE_VARIABLE)
            .map_err(|e| ApiError::internal("reading the database variable", e))?;
        let conn = Connection::open(&address).map_err(|e| ApiError::internal("opening the database", e))?;
        Ok(Self { conn })
    }

    pub fn query(&self, statement: &str, params: &[ParameterValue]) -> ApiResult<RowSet> {
        self.conn.query(statement, params).map_err(|e| ApiError::internal("query failed", e))
    }

    pub fn execute(&self, statement: &str, params: &[ParameterValue]) -> ApiResult<u64> {
        self.conn.execute(statement, params).map_err(|e| ApiError::internal("statement failed", e))
    }

    /// Runs a query expected to return at most one row.
    pub fn query_one(&self, statement: &str, params: &[ParameterValue]) -> ApiResult<Option<Vec<DbValue>>> {
        Ok(self.query(statement, params)?.rows.into_iter().next())
    }

    /// Like [`Database::query_one`], but a unique violation (two users with
    /// one email, written at the same moment) is `Err(Conflict)` for the
    /// caller to answer, not a 500.
    pub fn query_one_unique(
        &self,
        statement: &str,
        params: &[ParameterValue],
    ) -> ApiResult<Result<Option<Vec<DbValue>>, Conflict>> {
        match self.conn.query(statement, params) {
            Ok(rows) => Ok(Ok(rows.rows.into_iter().next())),
            Err(PgError::QueryFailed(QueryError::DbError(e))) if e.code == UNIQUE_VIOLATION => Ok(Err(Conflict)),
            Err(e) => Err(ApiError::internal("query failed", e)),
        }
    }

    /// Runs `work` in a transaction: committed if it returns `Ok`, rolled
    /// back otherwise, so an error leaves nothing half-written.
    pub fn transaction<T>(&self, work: impl FnOnce(&Self) -> ApiResult<T>) -> ApiResult<T> {
        self.execute("BEGIN", &[])?;
        match work(self) {
            Ok(value) => {
                self.execute("COMMIT", &[])?;
                Ok(value)
            }
            Err(e) => {
                // If the rollback fails too, the host closes the session
                // rather than pool it inside a transaction.
                let _ = self.conn.execute("ROLLBACK", &[]);
                Err(e)
            }
        }
    }
}

/// SQLSTATE of a unique constraint violation.
const UNIQUE_VIOLATION: &str = "23505";

/// A write refused because it would duplicate a unique value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conflict;

/// Decodes column `index` of a row, treating a mismatch as a host-side fault.
pub fn column<T: Decode>(row: &[DbValue], index: usize) -> ApiResult<T> {
    let value = row.get(index).ok_or_else(|| ApiError::internal("decoding a row", format!("no column {index}")))?;
    T::decode(value).map_err(|e| ApiError::internal("decoding a row", e))
}

/// A user as every service may show it: never the password hash.
#[derive(Debug, Serialize)]
pub struct UserPublic {
    pub id: Uuid,
    pub email: String,
    pub full_name: Option<String>,
    pub is_active: bool,
    pub is_superuser: bool,
    pub created_at: String,
}

impl UserPublic {
    /// The columns `from_row` expects, in order.
    pub const COLUMNS: &'static str = r#"id, email, full_name, is_active, is_superuser, created_at"#;

    pub fn from_row(row: &[DbValue]) -> ApiResult<Self> {
        Ok(Self {
            id: column(row, 0)?,
            email: column(row, 1)?,
            full_name: column(row, 2)?,
            is_active: column(row, 3)?,
            is_superuser: column(row, 4)?,
            created_at: timestamp(row, 5)?,
        })
    }
}

/// A `timestamptz` column as ISO 8601 in UTC (`2026-11-27T07:00:00.123456Z`),
/// as pydantic writes an aware datetime.
pub fn timestamp(row: &[DbValue], index: usize) -> ApiResult<String> {
    let at: chrono::NaiveDateTime = column(row, index)?;
    Ok(at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string())
}

/// The answer to a superuser-only route for anyone else.
pub fn require_superuser(user: &UserPublic) -> ApiResult<()> {
    if user.is_superuser { Ok(()) } else { Err(ApiError::new(403, "The user doesn't have enough privileges")) }
}

/// `{"message": ...}`, the original services' answer to a completed action.
pub fn message(text: &str) -> Response {
    json_response(200, &json!({ "message": text }))
}

/// A variable the manifest may set, or `default` when it does not.
pub fn variable_or(name: &str, default: &str) -> String {
    spin_sdk::variables::get(name).unwrap_or_else(|_| default.to_owned())
}

/// The page size a list answers when the client names none.
pub const DEFAULT_LIMIT: i64 = 100;
/// The largest page a list answers; a larger `limit` is a 422.
pub const MAX_LIMIT: i64 = 1000;

/// Reads `skip` and `limit` from the query string: non-negative integers,
/// `limit` at most [`MAX_LIMIT`]; anything else is a 422 naming the parameter.
pub fn paging(query: &str) -> ApiResult<(i64, i64)> {
    let mut skip = 0;
    let mut limit = DEFAULT_LIMIT;
    let mut problems = validate::Validator::new();
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        let (target, max) = match key.as_ref() {
            "skip" => (&mut skip, i64::MAX),
            "limit" => (&mut limit, MAX_LIMIT),
            _ => continue,
        };
        match value.parse::<i64>() {
            Ok(n) if n < 0 => problems.error(
                &["query", &key],
                "greater_than_equal",
                "Input should be greater than or equal to 0",
                Some(json!({ "ge": 0 })),
            ),
            Ok(n) if n > max => problems.error(
                &["query", &key],
                "less_than_equal",
                format!("Input should be less than or equal to {max}"),
                Some(json!({ "le": max })),
            ),
            Ok(n) => *target = n,
            Err(_) => problems.error(
                &["query", &key],
                "int_parsing",
                "Input should be a valid integer, unable to parse string as an integer",
                None,
            ),
        }
    }
    problems.finish()?;
    Ok((skip, limit))
}

/// The caller as a user record: 404 if the user behind a valid token was
/// deleted, 400 if deactivated, as the original `get_current_user` answered.
pub fn current_user(db: &Database, req: &Request) -> ApiResult<UserPublic> {
    let id = caller_id(req)?;
    let sql = format!(r#"SELECT {} FROM "user" WHERE id = $1"#, UserPublic::COLUMNS);
    let row = db.query_one(&sql, &[id.into()])?.ok_or_else(|| ApiError::not_found("User"))?;
    let user = UserPublic::from_row(&row)?;
    if !user.is_active {
        return Err(ApiError::new(400, "Inactive user"));
    }
    Ok(user)
}

/// The database and the caller, as most handlers start.
pub fn caller(req: &Request) -> ApiResult<(Database, UserPublic)> {
    let db = Database::open()?;
    let user = current_user(&db, req)?;
    Ok((db, user))
}

/// Splits a path into its segments, ignoring a trailing slash so that
/// `/api/v1/items` and `/api/v1/items/` name the same resource.
pub fn segments(path: &str) -> Vec<&str> {
    path.split('/').filter(|s| !s.is_empty()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Body {
        title: String,
    }

    #[test]
    fn missing_field_points_at_the_field() {
        let err = parse_json::<Body>(br#"{"description": "x"}"#).unwrap_err();
        assert_eq!(err.status, 422);
        assert_eq!(err.detail[0]["loc"], json!(["body", "title"]));
        assert_eq!(err.detail[0]["type"], "missing");
    }

    #[test]
    fn malformed_json_is_422_json_invalid() {
        let err = parse_json::<Body>(b"{not json").unwrap_err();
        assert_eq!(err.status, 422);
        assert_eq!(err.detail[0]["type"], "json_invalid");
    }

    #[test]
    fn empty_body_is_422_missing() {
        let err = parse_json::<Body>(b"  ").unwrap_err();
        assert_eq!((err.status, err.detail[0]["type"].as_str()), (422, Some("missing")));
    }

    #[test]
    fn wrong_type_is_422_value_error() {
        let err = parse_json::<Body>(br#"{"title": 5}"#).unwrap_err();
        assert_eq!((err.status, err.detail[0]["type"].as_str()), (422, Some("value_error")));
    }

    #[test]
    fn paging_defaults_bounds_and_names_the_parameter() {
        assert_eq!(paging("").unwrap(), (0, DEFAULT_LIMIT));
        assert_eq!(paging("skip=5&limit=10&other=x").unwrap(), (5, 10));
        assert_eq!(paging(&format!("limit={MAX_LIMIT}")).unwrap(), (0, MAX_LIMIT));
        let err = paging(&format!("limit={}", MAX_LIMIT + 1)).unwrap_err();
        assert_eq!((err.status, err.detail[0]["type"].as_str()), (422, Some("less_than_equal")));
        let err = paging("limit=-1&skip=abc").unwrap_err();
        assert_eq!(err.detail[0]["loc"], json!(["query", "limit"]));
        assert_eq!(err.detail[1]["loc"], json!(["query", "skip"]));
    }

    #[test]
    fn segments_ignore_trailing_slash() {
        assert_eq!(segments("/api/v1/items/"), vec!["api", "v1", "items"]);
        assert_eq!(segments("/api/v1/items"), vec!["api", "v1", "items"]);
    }
}
