//! A service's routes as data: method, path template, handler. The same
//! table answers requests and is checked against the service's OpenAPI
//! document, so the two cannot drift apart.

use spin_sdk::http::{Method, Request};

use crate::{ApiError, ApiResult};

/// What a handler gets besides the request: the path parameters.
pub type Handler = fn(&Request, &Params) -> ApiResult;

pub struct Route {
    pub method: Method,
    /// `/api/v1/users/{user_id}`: literal segments and `{name}` parameters.
    /// A trailing slash is optional when matching, as in the original.
    pub path: &'static str,
    pub handler: Handler,
}

impl Route {
    pub const fn new(method: Method, path: &'static str, handler: Handler) -> Self {
        Self { method, path, handler }
    }
}

/// Path parameters by name, percent-decoded.
#[derive(Debug, Default)]
pub struct Params {
    values: Vec<(&'static str, String)>,
}

impl Params {
    /// The parameter `name`; routes only name parameters their path has.
    pub fn get(&self, name: &str) -> &str {
        self.values.iter().find(|(n, _)| *n == name).map_or("", |(_, v)| v.as_str())
    }
}

/// Runs the first route whose path and method match: 405 if only the path
/// does, 404 if nothing does. Literal routes listed before parameterised
/// ones win (`/users/me` before `/users/{user_id}`).
pub fn dispatch(routes: &[Route], req: &Request) -> ApiResult {
    let path = crate::service_path(req);
    let segments = crate::segments(&path);
    let mut path_matched = false;
    for route in routes {
        let Some(params) = match_path(route.path, &segments) else { continue };
        if *req.method() == route.method || (route.method == Method::Get && *req.method() == Method::Head) {
            return (route.handler)(req, &params);
        }
        path_matched = true;
    }
    Err(if path_matched { crate::method_not_allowed() } else { crate::route_not_found() })
}

fn match_path(template: &'static str, segments: &[&str]) -> Option<Params> {
    let parts = crate::segments(template);
    if parts.len() != segments.len() {
        return None;
    }
    let mut params = Params::default();
    for (part, segment) in parts.iter().zip(segments) {
        match part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            Some(name) => params.values.push((name, percent_decode(segment)?)),
            None if part == segment => {}
            None => return None,
        }
    }
    Some(params)
}

/// Decodes `%XX` escapes; `None` if the result is not UTF-8.
fn percent_decode(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(hi), Some(lo)) => {
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// The answer for a path parameter that is not a UUID, as FastAPI gave it.
pub fn parse_uuid_param(params: &Params, name: &str) -> ApiResult<uuid::Uuid> {
    uuid::Uuid::parse_str(params.get(name)).map_err(|_| ApiError {
        status: 422,
        detail: serde_json::json!([{
            "type": "uuid_parsing",
            "loc": ["path", name],
            "msg": "Input should be a valid UUID",
        }]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_match_whole_segments_and_capture_parameters() {
        let p = match_path("/api/v1/users/{user_id}", &["api", "v1", "users", "abc"]).unwrap();
        assert_eq!(p.get("user_id"), "abc");
        assert!(match_path("/api/v1/users/{user_id}", &["api", "v1", "users"]).is_none());
        assert!(match_path("/api/v1/users/me", &["api", "v1", "users", "you"]).is_none());
        let p = match_path("/api/v1/password-recovery/{email}", &["api", "v1", "password-recovery", "a%40b.co"]);
        assert_eq!(p.unwrap().get("email"), "a@b.co");
    }

    #[test]
    fn percent_decoding_keeps_malformed_escapes_and_refuses_bad_utf8() {
        assert_eq!(percent_decode("100%").as_deref(), Some("100%"));
        assert_eq!(percent_decode("%e2%82%ac").as_deref(), Some("€"));
        assert_eq!(percent_decode("%ff"), None);
    }
}
