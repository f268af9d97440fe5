//! Cross-origin requests, for routes that name a policy: preflights
//! (`OPTIONS` with `Access-Control-Request-Method`) are answered at the
//! edge, before any token check or upstream; the answers to actual
//! requests from an allowed origin carry the `Access-Control-*` headers.
//! A route without a policy gets none of this: one origin for pages and
//! API needs no CORS, and none is allowed by default.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorsPolicy {
    /// Origins allowed, exactly as browsers send them
    /// (`https://app.example.com`), or `"*"` for any (not with
    /// `credentials`).
    pub origins: Vec<String>,
    #[serde(default = "default_methods")]
    pub methods: Vec<String>,
    /// Request headers a page may send (lower case).
    #[serde(default = "default_headers")]
    pub headers: Vec<String>,
    /// Response headers a page may read beyond the simple ones.
    #[serde(default = "default_expose")]
    pub expose_headers: Vec<String>,
    /// How long a browser may cache a preflight's answer.
    #[serde(default = "default_max_age")]
    pub max_age_seconds: u64,
    /// Whether cookies and `Authorization` may go with the requests.
    #[serde(default)]
    pub credentials: bool,
}

fn default_methods() -> Vec<String> {
    ["GET", "POST", "PUT", "PATCH", "DELETE"].map(String::from).to_vec()
}
fn default_headers() -> Vec<String> {
    ["authorization", "content-type", "x-request-id"].map(String::from).to_vec()
}
fn default_expose() -> Vec<String> {
    vec!["x-request-id".into()]
}
fn default_max_age() -> u64 {
    600
}

/// A preflight's verdict.
#[derive(Debug, PartialEq, Eq)]
pub enum Preflight {
    /// Allowed: answer 204 with these headers.
    Allowed(Vec<(&'static str, String)>),
    /// The origin, method or a header is not allowed: 403, and the browser
    /// will not send the request.
    Refused(&'static str),
}

impl CorsPolicy {
    pub fn validate(&self) -> Result<(), String> {
        if self.origins.is_empty() {
            return Err("`origins` is empty".into());
        }
        if self.credentials && self.origins.iter().any(|o| o == "*") {
            return Err("`\"*\"` cannot allow any origin with credentials".into());
        }
        if let Some(bad) = self
            .origins
            .iter()
            .find(|o| *o != "*" && !(o.starts_with("https://") || o.starts_with("http://")) || o.ends_with('/'))
        {
            return Err(format!("origin `{bad}` is not `scheme://host[:port]`"));
        }
        Ok(())
    }

    fn allows_origin(&self, origin: &str) -> bool {
        self.origins.iter().any(|o| o == "*" || o.eq_ignore_ascii_case(origin))
    }

    /// The origin to name in `Access-Control-Allow-Origin`.
    fn allow_origin(&self, origin: &str) -> String {
        if self.origins.iter().any(|o| o == "*") && !self.credentials { "*".into() } else { origin.to_owned() }
    }

    /// Answers a preflight from `origin` for `method` with `headers` (the
    /// comma-separated `Access-Control-Request-Headers`).
    pub fn preflight(&self, origin: &str, method: &str, headers: Option<&str>) -> Preflight {
        if !self.allows_origin(origin) {
            return Preflight::Refused("CORS: origin not allowed");
        }
        if !self.methods.iter().any(|m| m.eq_ignore_ascii_case(method)) {
            return Preflight::Refused("CORS: method not allowed");
        }
        let requested = headers.unwrap_or("").split(',').map(str::trim).filter(|h| !h.is_empty());
        for header in requested {
            if !self.headers.iter().any(|h| h.eq_ignore_ascii_case(header)) {
                return Preflight::Refused("CORS: header not allowed");
            }
        }
        let mut out = vec![
            ("access-control-allow-origin", self.allow_origin(origin)),
            ("access-control-allow-methods", self.methods.join(", ")),
            ("access-control-allow-headers", self.headers.join(", ")),
            ("access-control-max-age", self.max_age_seconds.to_string()),
            ("vary", "Origin".into()),
        ];
        if self.credentials {
            out.push(("access-control-allow-credentials", "true".into()));
        }
        Preflight::Allowed(out)
    }

    /// The headers an actual request's answer gets, if `origin` is allowed.
    pub fn response_headers(&self, origin: &str) -> Vec<(&'static str, String)> {
        if !self.allows_origin(origin) {
            return vec![("vary", "Origin".into())];
        }
        let mut out = vec![("access-control-allow-origin", self.allow_origin(origin)), ("vary", "Origin".into())];
        if !self.expose_headers.is_empty() {
            out.push(("access-control-expose-headers", self.expose_headers.join(", ")));
        }
        if self.credentials {
            out.push(("access-control-allow-credentials", "true".into()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(origins: &[&str], credentials: bool) -> CorsPolicy {
        CorsPolicy {
            origins: origins.iter().map(|o| o.to_string()).collect(),
            methods: default_methods(),
            headers: default_headers(),
            expose_headers: default_expose(),
            max_age_seconds: 600,
            credentials,
        }
    }

    #[test]
    fn preflights_are_answered_for_allowed_origins_methods_and_headers_only() {
        let p = policy(&["https://app.example.com"], true);
        let Preflight::Allowed(headers) =
            p.preflight("https://app.example.com", "PATCH", Some("Authorization, content-type"))
        else {
            panic!("refused")
        };
        assert!(headers.contains(&("access-control-allow-origin", "https://app.example.com".into())));
        assert!(headers.contains(&("access-control-allow-credentials", "true".into())));
        assert_eq!(p.preflight("https://evil.example", "GET", None), Preflight::Refused("CORS: origin not allowed"));
        assert_eq!(
            p.preflight("https://app.example.com", "TRACE", None),
            Preflight::Refused("CORS: method not allowed")
        );
        assert_eq!(
            p.preflight("https://app.example.com", "GET", Some("x-secret")),
            Preflight::Refused("CORS: header not allowed")
        );
    }

    #[test]
    fn any_origin_is_star_without_credentials_and_refused_with_them() {
        let any = policy(&["*"], false);
        assert_eq!(any.response_headers("https://x.example")[0], ("access-control-allow-origin", "*".into()));
        assert!(policy(&["*"], true).validate().is_err());
        assert!(policy(&["app.example.com"], false).validate().is_err());
        assert!(policy(&["https://app.example.com/"], false).validate().is_err());
        assert!(policy(&[], false).validate().is_err());
        let one = policy(&["https://app.example.com"], false);
        assert_eq!(one.response_headers("https://other.example"), [("vary", "Origin".to_owned())]);
    }
}
