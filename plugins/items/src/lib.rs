//! The items service: each user's items in the `item` table. Superusers see
//! and change every item; other users only their own.
//!
//! Routes (as the service sees them, after the `/items` prefix), all but
//! `/health` and `/openapi.json` behind the edge proxy's token check; the
//! OpenAPI document in `openapi.json` describes each one.

use serde::{Deserialize, Serialize};
use service::router::{self, Params, Route};
use service::validate::{MAX_TEXT_CHARS, Patch, Validator};
use service::{ApiError, ApiResult, Database, UserPublic, json_response};
use spin_sdk::http::{Method, Request, Response};
use spin_sdk::http_component;
use spin_sdk::pg4::{DbValue, ParameterValue};
use uuid::Uuid;

/// This service's OpenAPI document, served at `/openapi.json`.
const OPENAPI: &str = include_str!("../openapi.json");

const ROUTES: &[Route] = &[
    Route::new(Method::Get, "/api/v1/items/", list_items),
    Route::new(Method::Post, "/api/v1/items/", create_item),
    Route::new(Method::Get, "/api/v1/items/{id}", read_item),
    Route::new(Method::Put, "/api/v1/items/{id}", update_item),
    Route::new(Method::Delete, "/api/v1/items/{id}", delete_item),
    Route::new(Method::Get, "/health", service::health),
    Route::new(Method::Get, "/openapi.json", openapi),
];

#[http_component]
fn handle(req: Request) -> Response {
    service::respond(router::dispatch(ROUTES, &req))
}

#[derive(Debug, Serialize)]
struct ItemPublic {
    id: Uuid,
    title: String,
    description: Option<String>,
    owner_id: Uuid,
    created_at: String,
}

impl ItemPublic {
    const COLUMNS: &'static str = "id, title, description, owner_id, created_at";

    fn from_row(row: &[DbValue]) -> ApiResult<Self> {
        Ok(Self {
            id: service::column(row, 0)?,
            title: service::column(row, 1)?,
            description: service::column(row, 2)?,
            owner_id: service::column(row, 3)?,
            created_at: service::timestamp(row, 4)?,
        })
    }
}

#[derive(Debug, Serialize)]
struct ItemsPublic {
    data: Vec<ItemPublic>,
    count: i64,
}

/// A new item. Anything else in the body (`owner_id`, `id`, ...) is ignored.
#[derive(Debug, Deserialize)]
struct ItemCreate {
    title: String,
    description: Option<String>,
}

/// A partial update: fields left out stay as they are.
#[derive(Debug, Deserialize)]
struct ItemUpdate {
    #[serde(default)]
    title: Patch<String>,
    #[serde(default)]
    description: Patch<String>,
}

fn check_description(v: &mut Validator, description: Option<&String>) {
    if let Some(description) = description {
        v.text("description", description, 0, MAX_TEXT_CHARS);
    }
}

fn list_items(req: &Request, _: &Params) -> ApiResult {
    let (db, user) = service::caller(req)?;
    let (skip, limit) = service::paging(req.query())?;
    // $1 is the owner to keep, or NULL for a superuser, who sees every item.
    let owner: ParameterValue = if user.is_superuser { ParameterValue::DbNull } else { user.id.into() };
    let filter = "WHERE ($1::uuid IS NULL OR owner_id = $1)";
    // The page carries the total, so the usual case is one query.
    let sql = format!(
        "SELECT {cols}, count(*) OVER () FROM item {filter} ORDER BY created_at DESC, id DESC OFFSET $2 LIMIT $3",
        cols = ItemPublic::COLUMNS
    );
    let rows = db.query(&sql, &[owner.clone(), skip.into(), limit.into()])?.rows;
    let count = match rows.first() {
        Some(row) => service::column(row, 5)?,
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

fn create_item(req: &Request, _: &Params) -> ApiResult {
    let (db, user) = service::caller(req)?;
    let body: ItemCreate = service::parse_json(req.body())?;
    let mut v = Validator::new();
    v.text("title", &body.title, 1, MAX_TEXT_CHARS);
    check_description(&mut v, body.description.as_ref());
    v.finish()?;
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

fn read_item(req: &Request, params: &Params) -> ApiResult {
    let (db, user) = service::caller(req)?;
    let id = router::parse_uuid_param(params, "id")?;
    Ok(json_response(200, &owned_item(&db, &user, id)?))
}

fn update_item(req: &Request, params: &Params) -> ApiResult {
    let (db, user) = service::caller(req)?;
    let id = router::parse_uuid_param(params, "id")?;
    let body: ItemUpdate = service::parse_json(req.body())?;
    let mut v = Validator::new();
    v.not_null("title", &body.title);
    if let Some(title) = body.title.value() {
        v.text("title", title, 1, MAX_TEXT_CHARS);
    }
    check_description(&mut v, body.description.value());
    v.finish()?;
    let item = owned_item(&db, &user, id)?;
    let title = match body.title {
        Patch::Value(title) => title,
        _ => item.title,
    };
    let description = match body.description {
        Patch::Absent => item.description,
        Patch::Null => None,
        Patch::Value(description) => Some(description),
    };
    let sql = format!(
        "UPDATE item SET title = $2, description = $3, updated_at = now() WHERE id = $1 RETURNING {}",
        ItemPublic::COLUMNS
    );
    let row = db
        .query_one(&sql, &[id.into(), title.into(), optional_text(description)])?
        .ok_or_else(|| ApiError::not_found("Item"))?;
    Ok(json_response(200, &ItemPublic::from_row(&row)?))
}

fn delete_item(req: &Request, params: &Params) -> ApiResult {
    let (db, user) = service::caller(req)?;
    let id = router::parse_uuid_param(params, "id")?;
    owned_item(&db, &user, id)?;
    db.execute("DELETE FROM item WHERE id = $1", &[id.into()])?;
    Ok(service::message("Item deleted successfully"))
}

fn openapi(_: &Request, _: &Params) -> ApiResult {
    Ok(service::openapi_response(OPENAPI))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openapi_document_lists_exactly_the_routes() {
        let problems = service::openapi::mismatches(OPENAPI, ROUTES);
        assert!(problems.is_empty(), "{problems:#?}");
    }
}
