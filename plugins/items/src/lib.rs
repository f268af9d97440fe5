//! The items service: each user's items in the `item` table. Superusers see
//! and change every item; other users only their own.
//!
//! Routes (as the service sees them, after the `/items` prefix), all behind
//! the edge proxy's token check:
//! - `GET  /api/v1/items/?skip=&limit=` — `{"data": [...], "count": n}`
//! - `POST /api/v1/items/` — `{"title": .., "description": ..}`
//! - `GET|PUT|DELETE /api/v1/items/{id}`

use serde::{Deserialize, Serialize};
use service::{ApiError, ApiResult, Database, UserPublic, json_response};
use spin_sdk::http::{Method, Request, Response};
use spin_sdk::http_component;
use spin_sdk::pg4::{DbValue, ParameterValue};
use uuid::Uuid;

/// Longest title or description the original schema accepted.
const MAX_TEXT_LEN: usize = 255;
const DEFAULT_LIMIT: i64 = 100;

#[http_component]
fn handle(req: Request) -> Response {
    service::respond(route(&req))
}

fn route(req: &Request) -> ApiResult {
    let path = service::service_path(req);
    match service::segments(&path).as_slice() {
        ["api", "v1", "items"] => match req.method() {
            Method::Get => list_items(req),
            Method::Post => create_item(req),
            _ => Err(service::method_not_allowed()),
        },
        ["api", "v1", "items", id] => {
            let id = service::parse_path_id(id)?;
            match req.method() {
                Method::Get => read_item(req, id),
                Method::Put => update_item(req, id),
                Method::Delete => delete_item(req, id),
                _ => Err(service::method_not_allowed()),
            }
        }
        _ => Err(service::route_not_found()),
    }
}

#[derive(Debug, Serialize)]
struct ItemPublic {
    id: Uuid,
    title: String,
    description: Option<String>,
    owner_id: Uuid,
}

impl ItemPublic {
    const COLUMNS: &'static str = "id, title, description, owner_id";

    fn from_row(row: &[DbValue]) -> ApiResult<Self> {
        Ok(Self {
            id: service::column(row, 0)?,
            title: service::column(row, 1)?,
            description: service::column(row, 2)?,
            owner_id: service::column(row, 3)?,
        })
    }
}

#[derive(Debug, Serialize)]
struct ItemsPublic {
    data: Vec<ItemPublic>,
    count: i64,
}

#[derive(Debug, Deserialize)]
struct ItemCreate {
    title: String,
    description: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ItemUpdate {
    title: Option<String>,
    description: Option<String>,
}

fn validate_title(title: &str) -> ApiResult<()> {
    if title.is_empty() {
        return Err(ApiError::validation(&["title"], "string_too_short", "String should have at least 1 character"));
    }
    validate_length("title", title)
}

fn validate_length(field: &str, value: &str) -> ApiResult<()> {
    if value.chars().count() > MAX_TEXT_LEN {
        return Err(ApiError::validation(
            &[field],
            "string_too_long",
            format!("String should have at most {MAX_TEXT_LEN} characters"),
        ));
    }
    Ok(())
}

/// Reads `skip` and `limit` from the query string, answering 422 for values
/// that are not non-negative integers.
fn paging(query: &str) -> ApiResult<(i64, i64)> {
    let mut skip = 0;
    let mut limit = DEFAULT_LIMIT;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let target = match key {
            "skip" => &mut skip,
            "limit" => &mut limit,
            _ => continue,
        };
        *target = value.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| ApiError {
            status: 422,
            detail: serde_json::json!([{
                "type": "int_parsing",
                "loc": ["query", key],
                "msg": "Input should be a valid non-negative integer",
            }]),
        })?;
    }
    Ok((skip, limit))
}

fn list_items(req: &Request) -> ApiResult {
    let (skip, limit) = paging(req.query())?;
    let db = Database::open()?;
    let user = service::current_user(&db, req)?;
    // $1 is the owner to keep, or NULL for a superuser, who sees every item.
    let owner: ParameterValue = if user.is_superuser { ParameterValue::DbNull } else { user.id.into() };
    let filter = "WHERE ($1::uuid IS NULL OR owner_id = $1)";
    // The page carries the total, so the usual case is one query.
    let sql = format!(
        "SELECT {cols}, count(*) OVER () FROM item {filter} ORDER BY created_at, id OFFSET $2 LIMIT $3",
        cols = ItemPublic::COLUMNS
    );
    let rows = db.query(&sql, &[owner.clone(), skip.into(), limit.into()])?.rows;
    let count = match rows.first() {
        Some(row) => service::column(row, 4)?,
        // Past the last page there is no row to carry the total; ask for it.
        None if skip > 0 => match db.query_one(&format!("SELECT count(*) FROM item {filter}"), &[owner])? {
            Some(row) => service::column(&row, 0)?,
            None => 0,
        },
        None => 0,
    };
    let data = rows.iter().map(|row| ItemPublic::from_row(row)).collect::<ApiResult<_>>()?;
    Ok(json_response(200, &ItemsPublic { data, count }))
}

fn create_item(req: &Request) -> ApiResult {
    let body: ItemCreate = service::parse_json(req.body())?;
    validate_title(&body.title)?;
    if let Some(description) = &body.description {
        validate_length("description", description)?;
    }
    let db = Database::open()?;
    let user = service::current_user(&db, req)?;
    let sql = format!(
        "INSERT INTO item (title, description, owner_id) VALUES ($1, $2, $3) RETURNING {}",
        ItemPublic::COLUMNS
    );
    let row = db
        .query_one(&sql, &[body.title.into(), optional_text(body.description), user.id.into()])?
        .ok_or_else(|| ApiError::internal("creating an item", "INSERT returned no row"))?;
    Ok(json_response(200, &ItemPublic::from_row(&row)?))
}

fn optional_text(value: Option<String>) -> ParameterValue {
    value.map(ParameterValue::Str).unwrap_or(ParameterValue::DbNull)
}

/// Loads an item the caller may see: 404 if there is none, 400 if it is
/// someone else's and the caller is not a superuser, as the original did.
fn owned_item(db: &Database, user: &UserPublic, id: Uuid) -> ApiResult<ItemPublic> {
    let sql = format!("SELECT {} FROM item WHERE id = $1", ItemPublic::COLUMNS);
    let row = db.query_one(&sql, &[id.into()])?.ok_or_else(|| ApiError::not_found("Item"))?;
    let item = ItemPublic::from_row(&row)?;
    if !user.is_superuser && item.owner_id != user.id {
        return Err(ApiError::new(400, "Not enough permissions"));
    }
    Ok(item)
}

fn read_item(req: &Request, id: Uuid) -> ApiResult {
    let db = Database::open()?;
    let user = service::current_user(&db, req)?;
    Ok(json_response(200, &owned_item(&db, &user, id)?))
}

fn update_item(req: &Request, id: Uuid) -> ApiResult {
    let body: ItemUpdate = service::parse_json(req.body())?;
    if let Some(title) = &body.title {
        validate_title(title)?;
    }
    if let Some(description) = &body.description {
        validate_length("description", description)?;
    }
    let db = Database::open()?;
    let user = service::current_user(&db, req)?;
    let item = owned_item(&db, &user, id)?;
    let sql = format!(
        "UPDATE item SET title = $2, description = $3, updated_at = CURRENT_TIMESTAMP \
         WHERE id = $1 RETURNING {}",
        ItemPublic::COLUMNS
    );
    let title = body.title.unwrap_or(item.title);
    let description = body.description.or(item.description);
    let row = db
        .query_one(&sql, &[id.into(), title.into(), optional_text(description)])?
        .ok_or_else(|| ApiError::not_found("Item"))?;
    Ok(json_response(200, &ItemPublic::from_row(&row)?))
}

fn delete_item(req: &Request, id: Uuid) -> ApiResult {
    let db = Database::open()?;
    let user = service::current_user(&db, req)?;
    owned_item(&db, &user, id)?;
    db.execute("DELETE FROM item WHERE id = $1", &[id.into()])?;
    Ok(json_response(200, &serde_json::json!({ "message": "Item deleted successfully" })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paging_defaults_and_parses() {
        assert_eq!(paging("").unwrap(), (0, DEFAULT_LIMIT));
        assert_eq!(paging("skip=5&limit=10&other=x").unwrap(), (5, 10));
    }

    #[test]
    fn paging_rejects_negative_and_garbage() {
        assert_eq!(paging("limit=-1").unwrap_err().status, 422);
        assert_eq!(paging("skip=abc").unwrap_err().detail[0]["loc"][1], "skip");
    }

    #[test]
    fn titles_are_bounded() {
        assert_eq!(validate_title("").unwrap_err().status, 422);
        assert!(validate_title(&"x".repeat(MAX_TEXT_LEN)).is_ok());
        assert_eq!(validate_title(&"x".repeat(MAX_TEXT_LEN + 1)).unwrap_err().status, 422);
    }
}
