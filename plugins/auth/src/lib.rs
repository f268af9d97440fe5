//! The auth service: checks an email and password against the bcrypt hash in
//! the `user` table and issues a signed JWT (HS256) for the edge proxy to
//! verify.
//!
//! Routes (as the service sees them, after the `/auth` prefix):
//! - `POST /api/v1/login/access-token` — form or JSON `username`/`password`
//! - `GET|POST /api/v1/login/test-token` — the caller, from the verified token
//! - `GET /health`

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use service::{ApiError, ApiResult, Database, json_response};
use spin_sdk::http::{Method, Request, Response};
use spin_sdk::http_component;
use spin_sdk::pg4::ParameterValue;
use uuid::Uuid;

/// Spin variable holding the HS256 signing key the proxy verifies with.
const SECRET_KEY_VARIABLE: &str = "secret_key";
/// Spin variable with the token lifetime; the original default was eight days.
const EXPIRE_MINUTES_VARIABLE: &str = "access_token_expire_minutes";
const DEFAULT_EXPIRE_MINUTES: u64 = 60 * 24 * 8;

/// A bcrypt hash (cost 12) of a random password nobody knows. Checking a
/// login for an unknown email against it costs as much as checking a real
/// one, so response times do not reveal which emails exist.
const UNKNOWN_USER_HASH: &str = "$2b$12$w1nIe9vNmjIbNwiBpX5jBu2x2OoPMc6kMqf2rOe0HqB.AVTxmaNDa";

#[http_component]
fn handle(req: Request) -> Response {
    service::respond(route(&req))
}

fn route(req: &Request) -> ApiResult {
    let path = service::service_path(req);
    match service::segments(&path).as_slice() {
        ["api", "v1", "login", "access-token"] => match req.method() {
            Method::Post => login(req),
            _ => Err(service::method_not_allowed()),
        },
        ["api", "v1", "login", "test-token"] => match req.method() {
            Method::Get | Method::Post => test_token(req),
            _ => Err(service::method_not_allowed()),
        },
        ["health"] => health(),
        _ => Err(service::route_not_found()),
    }
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

/// The claims the proxy checks: `sub` is the user id, `exp` a Unix time.
#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
}

fn login(req: &Request) -> ApiResult {
    let credentials = parse_credentials(req)?;
    let db = Database::open()?;
    let row = db.query_one(
        r#"SELECT id, hashed_password, is_active FROM "user" WHERE email = $1"#,
        &[ParameterValue::Str(credentials.username.clone())],
    )?;
    let Some(row) = row else {
        // Same cost as a real check; the answer is the same as a wrong password.
        let _ = bcrypt::verify(&credentials.password, UNKNOWN_USER_HASH);
        return Err(incorrect_credentials());
    };
    let id: Uuid = service::column(&row, 0)?;
    let hashed_password: String = service::column(&row, 1)?;
    let is_active: bool = service::column(&row, 2)?;
    // A hash that does not parse cannot match any password.
    if !bcrypt::verify(&credentials.password, &hashed_password).unwrap_or(false) {
        return Err(incorrect_credentials());
    }
    if !is_active {
        return Err(ApiError::new(400, "Inactive user"));
    }
    let access_token = issue_token(id, now_unix())?;
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
    let missing = |field| ApiError::validation(&[field], "missing", "Field required");
    Ok(Credentials {
        username: username.ok_or_else(|| missing("username"))?,
        password: password.ok_or_else(|| missing("password"))?,
    })
}

fn issue_token(user_id: Uuid, now: u64) -> ApiResult<String> {
    let secret =
        spin_sdk::variables::get(SECRET_KEY_VARIABLE).map_err(|e| ApiError::internal("reading the signing key", e))?;
    let minutes = match spin_sdk::variables::get(EXPIRE_MINUTES_VARIABLE) {
        Ok(value) => value.parse::<u64>().map_err(|e| ApiError::internal("reading the token lifetime", e))?,
        Err(_) => DEFAULT_EXPIRE_MINUTES,
    };
    sign_token(user_id, now + minutes * 60, secret.as_bytes())
}

fn sign_token(user_id: Uuid, exp: u64, secret: &[u8]) -> ApiResult<String> {
    let claims = Claims { sub: user_id.to_string(), exp };
    jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &jsonwebtoken::EncodingKey::from_secret(secret))
        .map_err(|e| ApiError::internal("signing a token", e))
}

fn now_unix() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn test_token(req: &Request) -> ApiResult {
    let db = Database::open()?;
    let user = service::current_user(&db, req)?;
    Ok(json_response(200, &user))
}

fn health() -> ApiResult {
    let db = Database::open()?;
    db.query("SELECT 1", &[])?;
    Ok(json_response(200, &serde_json::json!({ "status": "ok" })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation, decode};

    #[test]
    fn unknown_user_hash_is_a_valid_cost_12_hash() {
        // verify() errors on a malformed hash; Ok(false) proves it parsed.
        assert_eq!(bcrypt::verify("anything", UNKNOWN_USER_HASH).ok(), Some(false));
        assert!(UNKNOWN_USER_HASH.starts_with("$2b$12$"));
    }

    #[test]
    fn signed_token_carries_subject_and_expiry() {
        let id = Uuid::from_u128(0x1234_5678_9abc_def0_1234_5678_9abc_def0);
        let exp = now_unix() + 600;
        let token = sign_token(id, exp, b"test-secret").unwrap();
        let data = decode::<Claims>(
            &token,
            &DecodingKey::from_secret(b"test-secret"),
            &Validation::new(jsonwebtoken::Algorithm::HS256),
        )
        .unwrap();
        assert_eq!(data.claims.sub, id.to_string());
        assert_eq!(data.claims.exp, exp);
    }

    #[test]
    fn form_without_password_is_422_on_password() {
        let err = parse_form(b"username=a%40b.c").unwrap_err();
        assert_eq!(err.status, 422);
        assert_eq!(err.detail[0]["loc"], serde_json::json!(["body", "password"]));
    }

    #[test]
    fn form_decodes_percent_escapes() {
        let c = parse_form(b"username=a%40b.c&password=p%26ss").unwrap();
        assert_eq!((c.username.as_str(), c.password.as_str()), ("a@b.c", "p&ss"));
    }
}
