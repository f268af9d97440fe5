//! The auth service: logs users in with their email and password, issues the
//! access tokens the edge proxy verifies and publishes their public keys,
//! and recovers lost passwords by mail.
//!
//! Routes (as the service sees them, after the `/auth` prefix); the proxy
//! requires a token on `login/test-token` and
//! `password-recovery-html-content`. `openapi.json` describes each one.

mod recovery;
mod tokens;

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use service::passwords::{self, Verified};
use service::router::{self, Params, Route};
use service::validate::Validator;
use service::{ApiError, ApiResult, Database, json_response};
use spin_sdk::http::{Method, Request, Response};
use spin_sdk::http_component;
use uuid::Uuid;

use crate::recovery::{RECOVERY_SENT, ResetToken};
use crate::tokens::Signer;

const OPENAPI: &str = include_str!("../openapi.json");

const ROUTES: &[Route] = &[
    Route::new(Method::Post, "/api/v1/login/access-token", login),
    Route::new(Method::Get, "/api/v1/login/test-token", test_token),
    Route::new(Method::Post, "/api/v1/login/test-token", test_token),
    Route::new(Method::Post, "/api/v1/password-recovery/{email}", recover_password),
    Route::new(Method::Post, "/api/v1/reset-password/", reset_password),
    Route::new(Method::Post, "/api/v1/password-recovery-html-content/{email}", recovery_html_content),
    Route::new(Method::Get, "/api/v1/.well-known/jwks.json", jwks),
    Route::new(Method::Get, "/api/v1/utils/health-check/", health_check),
    Route::new(Method::Get, "/health", service::health),
    Route::new(Method::Get, "/openapi.json", openapi),
];

#[http_component]
fn handle(req: Request) -> Response {
    service::respond(router::dispatch(ROUTES, &req))
}

/// The credentials of a login, from an OAuth2 password form (as the original
/// service took them) or from JSON.
#[derive(Debug, Deserialize)]
struct Credentials {
    #[serde(alias = "email")]
    username: String,
    password: String,
}

#[derive(Debug, Serialize)]
struct Token {
    access_token: String,
    token_type: &'static str,
}

fn login(req: &Request, _: &Params) -> ApiResult {
    let credentials = parse_credentials(req)?;
    let mut v = Validator::new();
    // PostgreSQL text cannot hold NUL: refuse it before it reaches a query.
    v.text("username", &credentials.username, 0, usize::MAX);
    v.text("password", &credentials.password, 0, usize::MAX);
    v.finish()?;
    let db = Database::open()?;
    let row = db.query_one(
        r#"SELECT id, hashed_password, is_active FROM "user" WHERE lower(email) = $1"#,
        &[credentials.username.to_lowercase().into()],
    )?;
    let Some(row) = row else {
        // Same cost as a real check; the answer is the same as a wrong password.
        passwords::burn_one_check(&credentials.password);
        return Err(incorrect_credentials());
    };
    let id: Uuid = service::column(&row, 0)?;
    let hashed_password: String = service::column(&row, 1)?;
    let is_active: bool = service::column(&row, 2)?;
    let verified = passwords::verify_password(&credentials.password, &hashed_password);
    if !verified.matches() {
        return Err(incorrect_credentials());
    }
    if !is_active {
        return Err(ApiError::new(400, "Inactive user"));
    }
    if verified == Verified::YesRehash {
        // An argon2id hash from the original platform, or an old bcrypt
        // cost: replace it now that the password is known to be right.
        let fresh = passwords::hash_password(&credentials.password)?;
        db.execute(
            r#"UPDATE "user" SET hashed_password = $2 WHERE id = $1 AND hashed_password = $3"#,
            &[id.into(), fresh.into(), hashed_password.into()],
        )?;
    }
    let signer = Signer::from_variables()?;
    let access_token = signer.sign(&tokens::claims_for(id, now_unix())?)?;
    Ok(json_response(200, &Token { access_token, token_type: "bearer" }))
}

fn incorrect_credentials() -> ApiError {
    ApiError::new(400, "Incorrect email or password")
}

fn parse_credentials(req: &Request) -> ApiResult<Credentials> {
    if service::has_content_type(req, "application/json") {
        return service::parse_json(req.body());
    }
    parse_form(req.body())
}

/// Reads `username` and `password` from an urlencoded form, answering a
/// missing field as FastAPI did.
fn parse_form(body: &[u8]) -> ApiResult<Credentials> {
    let mut username = None;
    let mut password = None;
    for (key, value) in form_urlencoded::parse(body) {
        match key.as_ref() {
            "username" => username = Some(value.into_owned()),
            "password" => password = Some(value.into_owned()),
            _ => {}
        }
    }
    let mut v = Validator::new();
    for (field, value) in [("username", &username), ("password", &password)] {
        if value.is_none() {
            v.error(&["body", field], "missing", "Field required", None);
        }
    }
    v.finish()?;
    Ok(Credentials { username: username.unwrap_or_default(), password: password.unwrap_or_default() })
}

fn now_unix() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn test_token(req: &Request, _: &Params) -> ApiResult {
    let (_, user) = service::caller(req)?;
    Ok(json_response(200, &user))
}

/// Queues a recovery mail when the email belongs to an active user; the
/// answer never tells whether it does.
fn recover_password(_: &Request, params: &Params) -> ApiResult {
    let email = params.get("email").to_lowercase();
    let db = Database::open()?;
    if !email.contains('\0') {
        recovery::queue_recovery(&db, &email)?;
    }
    Ok(service::message(RECOVERY_SENT))
}

fn reset_password(req: &Request, _: &Params) -> ApiResult {
    let body: recovery::NewPassword = service::parse_json(req.body())?;
    let mut v = Validator::new();
    v.text("token", &body.token, 0, usize::MAX);
    v.password("new_password", &body.new_password);
    v.finish()?;
    let db = Database::open()?;
    let invalid = || ApiError::new(400, "Invalid token");
    let (_, is_active) = recovery::token_owner(&db, &body.token)?.ok_or_else(invalid)?;
    if !is_active {
        return Err(ApiError::new(400, "Inactive user"));
    }
    let hashed = passwords::hash_password(&body.new_password)?;
    if !recovery::consume_token(&db, &body.token, hashed)? {
        return Err(invalid());
    }
    Ok(service::message("Password updated successfully"))
}

/// The recovery mail a user would get, for a superuser to look at; its
/// link works like a mailed one.
fn recovery_html_content(req: &Request, params: &Params) -> ApiResult {
    let (db, user) = service::caller(req)?;
    service::require_superuser(&user)?;
    let email = params.get("email").to_lowercase();
    let row = db.query_one(r#"SELECT id, email FROM "user" WHERE lower(email) = $1"#, &[email.into()])?;
    let Some(row) = row else {
        return Err(ApiError::not_found_detail("The user with this username does not exist in the system."));
    };
    let (id, email): (Uuid, String) = (service::column(&row, 0)?, service::column(&row, 1)?);
    let token = ResetToken::generate()?;
    let hours = recovery::expire_hours()?;
    recovery::store_token(&db, &token, id, hours)?;
    let mail = recovery::recovery_mail(&email, &token.token, hours);
    Ok(Response::builder()
        .status(200)
        .header("content-type", "text/html; charset=utf-8")
        .header("subject", mail.subject)
        .header("cache-control", "no-store")
        .body(mail.html)
        .build())
}

fn jwks(_: &Request, _: &Params) -> ApiResult {
    let keys = Signer::from_variables()?.jwks(&tokens::retired_keys())?;
    let body = serde_json::to_vec(&keys).map_err(|e| ApiError::internal("writing the key set", e))?;
    Ok(Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .header("cache-control", "public, max-age=300")
        .body(body)
        .build())
}

/// The template's `GET /utils/health-check/`: `true`.
fn health_check(_: &Request, _: &Params) -> ApiResult {
    Ok(json_response(200, &true))
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
    fn form_without_fields_is_422_on_each() {
        let err = parse_form(b"").unwrap_err();
        assert_eq!(err.status, 422);
        assert_eq!(err.detail[0]["loc"], serde_json::json!(["body", "username"]));
        assert_eq!(err.detail[1]["loc"], serde_json::json!(["body", "password"]));
    }

    #[test]
    fn form_decodes_percent_escapes() {
        let c = parse_form(b"username=a%40b.c&password=p%26ss").unwrap();
        assert_eq!((c.username.as_str(), c.password.as_str()), ("a@b.c", "p&ss"));
    }
}
