//! The users service: open sign-up, the caller's own profile, password and
//! account, and user administration for superusers.
//!
//! Routes (as the service sees them, after the `/users` prefix); the edge
//! proxy requires a token on all but sign-up, `/health` and `/openapi.json`.
//! `openapi.json` describes each one.

use serde::Deserialize;
use service::mail;
use service::passwords::{hash_password, verify_password};
use service::router::{self, Params, Route};
use service::validate::{MAX_TEXT_CHARS, Patch, Validator};
use service::{ApiError, ApiResult, Database, UserPublic, json_response};
use spin_sdk::http::{Method, Request, Response};
use spin_sdk::http_component;
use spin_sdk::pg4::ParameterValue;
use uuid::Uuid;

const OPENAPI: &str = include_str!("../openapi.json");

/// Spin variable switching open sign-up off (`"false"`); on by default.
const OPEN_REGISTRATION_VARIABLE: &str = "users_open_registration";

const ROUTES: &[Route] = &[
    Route::new(Method::Get, "/api/v1/users/", list_users),
    Route::new(Method::Post, "/api/v1/users/", create_user),
    Route::new(Method::Post, "/api/v1/users/signup", signup),
    Route::new(Method::Get, "/api/v1/users/me", read_me),
    Route::new(Method::Patch, "/api/v1/users/me", update_me),
    Route::new(Method::Put, "/api/v1/users/me", update_me),
    Route::new(Method::Delete, "/api/v1/users/me", delete_me),
    Route::new(Method::Patch, "/api/v1/users/me/password", update_password_me),
    Route::new(Method::Get, "/api/v1/users/{user_id}", read_user),
    Route::new(Method::Patch, "/api/v1/users/{user_id}", update_user),
    Route::new(Method::Delete, "/api/v1/users/{user_id}", delete_user),
    Route::new(Method::Get, "/health", service::health),
    Route::new(Method::Get, "/openapi.json", openapi),
];

#[http_component]
fn handle(req: Request) -> Response {
    service::respond(router::dispatch(ROUTES, &req))
}

const EMAIL_TAKEN_ON_CREATE: &str = "The user with this email already exists in the system.";
const EMAIL_TAKEN_ON_SIGNUP: &str = "The user with this email already exists in the system";
const EMAIL_TAKEN_ON_UPDATE: &str = "User with this email already exists";
const NO_SELF_DELETE: &str = "Super users are not allowed to delete themselves";

/// A user made by a superuser. Anything not named here is ignored.
#[derive(Debug, Deserialize)]
struct UserCreate {
    email: String,
    password: String,
    full_name: Option<String>,
    #[serde(default = "yes")]
    is_active: bool,
    #[serde(default)]
    is_superuser: bool,
}

fn yes() -> bool {
    true
}

/// A user signing themself up: never active-flag or superuser fields.
#[derive(Debug, Deserialize)]
struct UserRegister {
    email: String,
    password: String,
    full_name: Option<String>,
}

/// What a user may change of themself.
#[derive(Debug, Deserialize)]
struct UserUpdateMe {
    #[serde(default)]
    full_name: Patch<String>,
    #[serde(default)]
    email: Patch<String>,
}

/// What a superuser may change of anyone.
#[derive(Debug, Deserialize)]
struct UserUpdate {
    #[serde(default)]
    email: Patch<String>,
    #[serde(default)]
    password: Patch<String>,
    #[serde(default)]
    full_name: Patch<String>,
    #[serde(default)]
    is_active: Patch<bool>,
    #[serde(default)]
    is_superuser: Patch<bool>,
}

#[derive(Debug, Deserialize)]
struct UpdatePassword {
    current_password: String,
    new_password: String,
}

fn check_full_name(v: &mut Validator, full_name: Option<&String>) {
    if let Some(name) = full_name {
        v.text("full_name", name, 0, MAX_TEXT_CHARS);
    }
}

fn optional_text(value: Option<String>) -> ParameterValue {
    value.map(ParameterValue::Str).unwrap_or(ParameterValue::DbNull)
}

fn user_by_id(db: &Database, id: Uuid) -> ApiResult<Option<UserPublic>> {
    let sql = format!(r#"SELECT {} FROM "user" WHERE id = $1"#, UserPublic::COLUMNS);
    db.query_one(&sql, &[id.into()])?.map(|row| UserPublic::from_row(&row)).transpose()
}

/// Whether another user than `except` has `email` (already lower-cased).
fn email_taken(db: &Database, email: &str, except: Option<Uuid>) -> ApiResult<bool> {
    let except: ParameterValue = except.map_or(ParameterValue::DbNull, Into::into);
    let row = db.query_one(
        r#"SELECT 1 FROM "user" WHERE lower(email) = $1 AND ($2::uuid IS NULL OR id <> $2)"#,
        &[email.to_owned().into(), except],
    )?;
    Ok(row.is_some())
}

/// A new user: `taken` answers a duplicate email, whether it is found
/// before hashing or only by the unique index at insert time.
fn insert_user(db: &Database, new: NewUser, taken: ApiError) -> ApiResult<UserPublic> {
    let hashed = hash_password(&new.password)?;
    let sql = format!(
        r#"INSERT INTO "user" (email, hashed_password, full_name, is_active, is_superuser)
           VALUES ($1, $2, $3, $4, $5) RETURNING {}"#,
        UserPublic::COLUMNS
    );
    let params =
        [new.email.into(), hashed.into(), optional_text(new.full_name), new.is_active.into(), new.is_superuser.into()];
    match db.query_one_unique(&sql, &params)? {
        Ok(Some(row)) => UserPublic::from_row(&row),
        Ok(None) => Err(ApiError::internal("creating a user", "INSERT returned no row")),
        Err(service::Conflict) => Err(taken),
    }
}

struct NewUser {
    email: String,
    password: String,
    full_name: Option<String>,
    is_active: bool,
    is_superuser: bool,
}

fn list_users(req: &Request, _: &Params) -> ApiResult {
    let (db, user) = service::caller(req)?;
    service::require_superuser(&user)?;
    let (skip, limit) = service::paging(req.query())?;
    let sql = format!(
        r#"SELECT {}, count(*) OVER () FROM "user" ORDER BY created_at DESC, id DESC OFFSET $1 LIMIT $2"#,
        UserPublic::COLUMNS
    );
    let rows = db.query(&sql, &[skip.into(), limit.into()])?.rows;
    let count: i64 = match rows.first() {
        Some(row) => service::column(row, 6)?,
        None => match db.query_one(r#"SELECT count(*) FROM "user""#, &[])? {
            Some(row) => service::column(&row, 0)?,
            None => 0,
        },
    };
    let data = rows.iter().map(|row| UserPublic::from_row(row)).collect::<ApiResult<Vec<_>>>()?;
    Ok(json_response(200, &serde_json::json!({ "data": data, "count": count })))
}

fn create_user(req: &Request, _: &Params) -> ApiResult {
    let (db, user) = service::caller(req)?;
    service::require_superuser(&user)?;
    let body: UserCreate = service::parse_json(req.body())?;
    let mut v = Validator::new();
    let email = v.email("email", &body.email);
    v.password("password", &body.password);
    check_full_name(&mut v, body.full_name.as_ref());
    v.finish()?;
    if email_taken(&db, &email, None)? {
        return Err(ApiError::new(400, EMAIL_TAKEN_ON_CREATE));
    }
    let new = NewUser {
        email,
        password: body.password,
        full_name: body.full_name,
        is_active: body.is_active,
        is_superuser: body.is_superuser,
    };
    // The account and the mail telling its owner go together or not at all.
    let created = db.transaction(|db| {
        let created = insert_user(db, new, ApiError::new(400, EMAIL_TAKEN_ON_CREATE))?;
        mail::queue(db, &created.email, new_account_mail(&created.email))?;
        Ok(created)
    })?;
    Ok(json_response(200, &created))
}

/// Tells someone a superuser made them an account. Unlike the original's,
/// it never carries the password: it points to password recovery instead.
fn new_account_mail(email: &str) -> mail::Mail {
    let (project, host) = mail::project_and_host();
    let link = format!("{host}/recover-password");
    let intro = format!("An account on {project} was made for you. Your username is {email}.");
    let next = "Ask the person who made it for your password, or choose your own with password recovery.";
    mail::Mail {
        subject: format!("{project} - New account for user {email}"),
        text: format!("{intro}\n\n{next}\n{link}"),
        html: mail::html_document(&[&intro, next], Some(("Choose a password", &link))),
    }
}

fn signup(req: &Request, _: &Params) -> ApiResult {
    if service::variable_or(OPEN_REGISTRATION_VARIABLE, "true") != "true" {
        return Err(ApiError::forbidden("Open user registration is forbidden on this server"));
    }
    let body: UserRegister = service::parse_json(req.body())?;
    let mut v = Validator::new();
    let email = v.email("email", &body.email);
    v.password("password", &body.password);
    check_full_name(&mut v, body.full_name.as_ref());
    v.finish()?;
    let db = Database::open()?;
    if email_taken(&db, &email, None)? {
        return Err(ApiError::new(400, EMAIL_TAKEN_ON_SIGNUP));
    }
    let new =
        NewUser { email, password: body.password, full_name: body.full_name, is_active: true, is_superuser: false };
    let created = insert_user(&db, new, ApiError::new(400, EMAIL_TAKEN_ON_SIGNUP))?;
    Ok(json_response(200, &created))
}

fn read_me(req: &Request, _: &Params) -> ApiResult {
    let (_, user) = service::caller(req)?;
    Ok(json_response(200, &user))
}

/// Applies a profile change to `id`: fields left out stay as they are.
fn update_profile(db: &Database, id: Uuid, email: Option<String>, full_name: Patch<String>) -> ApiResult<UserPublic> {
    if let Some(email) = &email
        && email_taken(db, email, Some(id))?
    {
        return Err(ApiError::new(409, EMAIL_TAKEN_ON_UPDATE));
    }
    let (set_name, name) = match full_name {
        Patch::Absent => (false, ParameterValue::DbNull),
        Patch::Null => (true, ParameterValue::DbNull),
        Patch::Value(name) => (true, name.into()),
    };
    let sql = format!(
        r#"UPDATE "user" SET email = coalesce($2, email),
                  full_name = CASE WHEN $3 THEN $4 ELSE full_name END,
                  updated_at = now()
           WHERE id = $1 RETURNING {}"#,
        UserPublic::COLUMNS
    );
    let params = [id.into(), optional_text(email), set_name.into(), name];
    match db.query_one_unique(&sql, &params)? {
        Ok(Some(row)) => UserPublic::from_row(&row),
        Ok(None) => Err(ApiError::not_found("User")),
        Err(service::Conflict) => Err(ApiError::new(409, EMAIL_TAKEN_ON_UPDATE)),
    }
}

fn update_me(req: &Request, _: &Params) -> ApiResult {
    let (db, user) = service::caller(req)?;
    let body: UserUpdateMe = service::parse_json(req.body())?;
    let mut v = Validator::new();
    v.not_null("email", &body.email);
    let email = body.email.value().map(|email| v.email("email", email));
    check_full_name(&mut v, body.full_name.value());
    v.finish()?;
    let updated = update_profile(&db, user.id, email, body.full_name)?;
    Ok(json_response(200, &updated))
}

fn stored_hash(db: &Database, id: Uuid) -> ApiResult<String> {
    let row = db
        .query_one(r#"SELECT hashed_password FROM "user" WHERE id = $1"#, &[id.into()])?
        .ok_or_else(|| ApiError::not_found("User"))?;
    service::column(&row, 0)
}

fn set_password(db: &Database, id: Uuid, password: &str) -> ApiResult<()> {
    let hashed = hash_password(password)?;
    db.execute(
        r#"UPDATE "user" SET hashed_password = $2, updated_at = now() WHERE id = $1"#,
        &[id.into(), hashed.into()],
    )?;
    Ok(())
}

fn update_password_me(req: &Request, _: &Params) -> ApiResult {
    let (db, user) = service::caller(req)?;
    let body: UpdatePassword = service::parse_json(req.body())?;
    let mut v = Validator::new();
    v.password("new_password", &body.new_password);
    v.finish()?;
    if !verify_password(&body.current_password, &stored_hash(&db, user.id)?).matches() {
        return Err(ApiError::new(400, "Incorrect password"));
    }
    if body.current_password == body.new_password {
        return Err(ApiError::new(400, "New password cannot be the same as the current one"));
    }
    set_password(&db, user.id, &body.new_password)?;
    Ok(service::message("Password updated successfully"))
}

fn delete_me(req: &Request, _: &Params) -> ApiResult {
    let (db, user) = service::caller(req)?;
    if user.is_superuser {
        return Err(ApiError::forbidden(NO_SELF_DELETE));
    }
    // Items go with their owner (ON DELETE CASCADE), in the same statement.
    db.execute(r#"DELETE FROM "user" WHERE id = $1"#, &[user.id.into()])?;
    Ok(service::message("User deleted successfully"))
}

fn read_user(req: &Request, params: &Params) -> ApiResult {
    let (db, user) = service::caller(req)?;
    let id = router::parse_uuid_param(params, "user_id")?;
    if id == user.id {
        return Ok(json_response(200, &user));
    }
    service::require_superuser(&user)?;
    let found = user_by_id(&db, id)?.ok_or_else(|| ApiError::not_found("User"))?;
    Ok(json_response(200, &found))
}

fn update_user(req: &Request, params: &Params) -> ApiResult {
    let (db, user) = service::caller(req)?;
    service::require_superuser(&user)?;
    let id = router::parse_uuid_param(params, "user_id")?;
    let body: UserUpdate = service::parse_json(req.body())?;
    let mut v = Validator::new();
    v.not_null("email", &body.email);
    let email = body.email.value().map(|email| v.email("email", email));
    v.not_null("password", &body.password);
    if let Some(password) = body.password.value() {
        v.password("password", password);
    }
    check_full_name(&mut v, body.full_name.value());
    v.not_null("is_active", &body.is_active);
    v.not_null("is_superuser", &body.is_superuser);
    v.finish()?;
    if user_by_id(&db, id)?.is_none() {
        return Err(ApiError::not_found_detail("The user with this id does not exist in the system"));
    }
    // The profile, the flags and the password change together or not at all.
    let updated = db.transaction(|db| {
        let mut updated = update_profile(db, id, email, body.full_name)?;
        if let Some(password) = body.password.value() {
            set_password(db, id, password)?;
        }
        if !body.is_active.is_absent() || !body.is_superuser.is_absent() {
            let sql = format!(
                r#"UPDATE "user" SET is_active = coalesce($2, is_active), is_superuser = coalesce($3, is_superuser),
                          updated_at = now()
                   WHERE id = $1 RETURNING {}"#,
                UserPublic::COLUMNS
            );
            let flag = |p: &Patch<bool>| p.value().map_or(ParameterValue::DbNull, |b| (*b).into());
            let row = db
                .query_one(&sql, &[id.into(), flag(&body.is_active), flag(&body.is_superuser)])?
                .ok_or_else(|| ApiError::not_found("User"))?;
            updated = UserPublic::from_row(&row)?;
        }
        Ok(updated)
    })?;
    Ok(json_response(200, &updated))
}

fn delete_user(req: &Request, params: &Params) -> ApiResult {
    let (db, user) = service::caller(req)?;
    service::require_superuser(&user)?;
    let id = router::parse_uuid_param(params, "user_id")?;
    if user_by_id(&db, id)?.is_none() {
        return Err(ApiError::not_found("User"));
    }
    if id == user.id {
        return Err(ApiError::forbidden(NO_SELF_DELETE));
    }
    db.execute(r#"DELETE FROM "user" WHERE id = $1"#, &[id.into()])?;
    Ok(service::message("User deleted successfully"))
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

    #[test]
    fn privileged_fields_in_a_sign_up_are_ignored() {
        let body: UserRegister = serde_json::from_str(
            r#"{"email": "a@b.co", "password": "12345678", "is_superuser": true, "is_active": false, "id": "x"}"#,
        )
        .unwrap();
        assert_eq!(body.email, "a@b.co");
        let me: UserUpdateMe = serde_json::from_str(r#"{"is_superuser": true, "hashed_password": "x"}"#).unwrap();
        assert!(me.email.is_absent() && me.full_name.is_absent());
    }
}
