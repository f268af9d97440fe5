//! Spin's HTTP route syntax, and the headers Spin gives a component about
//! the route that matched, so a component routes the same way here as on
//! Spin.
//!
//! - `/hello` matches that path only (a trailing slash aside);
//! - `/hello/...` matches `/hello` and everything under it; `/...` all;
//! - `/hello/:planet` captures a segment as `spin-path-match-planet`, and
//!   combines with a trailing `/...`.
//!
//! When several routes match, an exact route beats a wildcard, and then
//! the route with more literal segments, then more segments, wins.

use http::{HeaderMap, HeaderName, HeaderValue};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
}

/// One component's route, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutePattern {
    /// As written in the manifest: `spin-raw-component-route`.
    raw: String,
    segments: Vec<Segment>,
    wildcard: bool,
}

/// A path matched against a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch {
    /// `spin-path-match-<name>` values, by name.
    pub params: Vec<(String, String)>,
    /// The part of the path the wildcard took: `spin-path-info`.
    pub path_info: String,
}

impl RoutePattern {
    pub fn parse(raw: &str) -> Result<Self, String> {
        if !raw.starts_with('/') {
            return Err(format!("route `{raw}` must start with `/`"));
        }
        let (prefix, wildcard) = match raw.strip_suffix("/...").or_else(|| raw.strip_suffix("/*")) {
            Some(prefix) => (prefix, true),
            None => (raw.strip_suffix('/').unwrap_or(raw), false),
        };
        let mut segments = Vec::new();
        let mut names = Vec::new();
        for part in prefix.split('/').skip(1) {
            if part.is_empty() || part == "..." || part.contains('*') {
                return Err(format!("route `{raw}`: empty or wildcard segment before the end"));
            }
            match part.strip_prefix(':') {
                Some(name) => {
                    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
                        return Err(format!("route `{raw}`: invalid parameter name `{name}`"));
                    }
                    if names.contains(&name) {
                        return Err(format!("route `{raw}`: parameter `{name}` appears twice"));
                    }
                    names.push(name);
                    segments.push(Segment::Param(name.to_owned()));
                }
                None => segments.push(Segment::Literal(part.to_owned())),
            }
        }
        Ok(Self { raw: raw.to_owned(), segments, wildcard })
    }

    pub fn raw(&self) -> &str {
        &self.raw
    }

    /// The route without its trailing wildcard: `spin-component-route`.
    pub fn without_wildcard(&self) -> &str {
        self.raw.strip_suffix("/...").or_else(|| self.raw.strip_suffix("/*")).unwrap_or(&self.raw)
    }

    /// Matches a request path (no query).
    pub fn matches(&self, path: &str) -> Option<RouteMatch> {
        let trimmed = path.strip_prefix('/')?;
        let mut parts = if trimmed.is_empty() { Vec::new() } else { trimmed.split('/').collect::<Vec<_>>() };
        let trailing_slash = path.len() > 1 && path.ends_with('/');
        if trailing_slash {
            parts.pop();
        }
        if parts.len() < self.segments.len() || (!self.wildcard && parts.len() != self.segments.len()) {
            return None;
        }
        let mut params = Vec::new();
        for (segment, part) in self.segments.iter().zip(&parts) {
            match segment {
                Segment::Literal(literal) if literal == part => {}
                Segment::Param(name) if !part.is_empty() => params.push((name.clone(), (*part).to_owned())),
                _ => return None,
            }
        }
        let rest = &parts[self.segments.len()..];
        let path_info = if !self.wildcard {
            String::new()
        } else {
            let mut info: String = rest.iter().map(|p| format!("/{p}")).collect();
            if path.ends_with('/') {
                info.push('/');
            }
            info
        };
        Some(RouteMatch { params, path_info })
    }

    /// Orders routes most specific first.
    fn specificity(&self) -> (bool, usize, usize) {
        let literals = self.segments.iter().filter(|s| matches!(s, Segment::Literal(_))).count();
        (!self.wildcard, literals, self.segments.len())
    }
}

/// Picks the most specific of the routes matching `path`.
pub fn best_match<'a, T>(
    routes: impl IntoIterator<Item = (&'a RoutePattern, T)>,
    path: &str,
) -> Option<(&'a RoutePattern, T, RouteMatch)> {
    routes
        .into_iter()
        .filter_map(|(route, value)| route.matches(path).map(|m| (route, value, m)))
        .max_by_key(|(route, _, _)| route.specificity())
}

/// What the headers describe besides the route.
pub struct RequestFacts<'a> {
    pub full_url: &'a str,
    pub client_addr: Option<std::net::SocketAddr>,
}

/// Sets every header Spin gives a component, after removing any `spin-*`
/// header the client sent.
pub fn set_spin_headers(headers: &mut HeaderMap, route: &RoutePattern, matched: &RouteMatch, facts: &RequestFacts) {
    let client_sent: Vec<_> = headers.keys().filter(|k| k.as_str().starts_with("spin-")).cloned().collect();
    for name in client_sent {
        headers.remove(name);
    }
    let mut set = |name: &str, value: &str| {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::from_str(value)) {
            headers.insert(name, value);
        }
    };
    set("spin-full-url", facts.full_url);
    set("spin-path-info", &matched.path_info);
    set("spin-matched-route", route.raw());
    set("spin-base-path", "/");
    set("spin-raw-component-route", route.raw());
    set("spin-component-route", route.without_wildcard());
    if let Some(addr) = facts.client_addr {
        set("spin-client-addr", &addr.to_string());
    }
    for (name, value) in &matched.params {
        set(&format!("spin-path-match-{}", name.to_ascii_lowercase()), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(raw: &str) -> RoutePattern {
        RoutePattern::parse(raw).unwrap()
    }

    #[test]
    fn wildcards_take_the_rest_as_path_info() {
        let r = route("/foo/...");
        let cases = [("/foo", ""), ("/foo/", "/"), ("/foo/bar", "/bar"), ("/foo/bar/", "/bar/"), ("/foo/a/b", "/a/b")];
        for (path, info) in cases {
            assert_eq!(r.matches(path).map(|m| m.path_info), Some(info.to_owned()), "{path}");
        }
        assert_eq!(r.matches("/foobar"), None);
        assert_eq!(r.without_wildcard(), "/foo");
        let all = route("/...");
        assert_eq!(all.matches("/").unwrap().path_info, "/");
        assert_eq!(all.matches("/x/y").unwrap().path_info, "/x/y");
    }

    #[test]
    fn exact_routes_match_one_path() {
        let r = route("/foo/bar");
        assert!(r.matches("/foo/bar").is_some());
        assert!(r.matches("/foo/bar/").is_some());
        assert!(r.matches("/foo").is_none());
        assert!(r.matches("/foo/bar/baz").is_none());
        assert!(route("/").matches("/").is_some());
        assert!(route("/").matches("/x").is_none());
    }

    #[test]
    fn parameters_are_captured() {
        let r = route("/hello/:planet/...");
        let m = r.matches("/hello/earth/moon").unwrap();
        assert_eq!(m.params, [("planet".to_owned(), "earth".to_owned())]);
        assert_eq!(m.path_info, "/moon");
        assert_eq!(r.without_wildcard(), "/hello/:planet");
        assert!(route("/hello/:planet").matches("/hello").is_none());
        assert!(route("/hello/:planet").matches("/hello//").is_none());
    }

    #[test]
    fn the_most_specific_route_wins() {
        let routes = [route("/..."), route("/one/..."), route("/one/two/..."), route("/one/:x"), route("/one/two")];
        let pick = |path| best_match(routes.iter().map(|r| (r, r.raw())), path).map(|(_, raw, _)| raw);
        assert_eq!(pick("/one/two"), Some("/one/two"));
        assert_eq!(pick("/one/two/three"), Some("/one/two/..."));
        assert_eq!(pick("/one/three"), Some("/one/:x"));
        assert_eq!(pick("/one/three/four"), Some("/one/..."));
        assert_eq!(pick("/elsewhere"), Some("/..."));
    }

    #[test]
    fn malformed_routes_are_refused() {
        for raw in ["foo", "/a//b", "/a/.../b", "/:", "/:x/:x", "/a*/b"] {
            assert!(RoutePattern::parse(raw).is_err(), "{raw}");
        }
    }

    #[test]
    fn every_spin_header_is_set_and_client_copies_removed() {
        let r = route("/foo/:userid/...");
        let matched = r.matches("/foo/42/bar").unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("spin-path-match-userid", HeaderValue::from_static("forged"));
        headers.insert("spin-anything", HeaderValue::from_static("forged"));
        let facts = RequestFacts {
            full_url: "http://example.com/foo/42/bar?a=1",
            client_addr: Some("127.0.0.1:8777".parse().unwrap()),
        };
        set_spin_headers(&mut headers, &r, &matched, &facts);
        let expected = [
            ("spin-full-url", "http://example.com/foo/42/bar?a=1"),
            ("spin-path-info", "/bar"),
            ("spin-matched-route", "/foo/:userid/..."),
            ("spin-base-path", "/"),
            ("spin-raw-component-route", "/foo/:userid/..."),
            ("spin-component-route", "/foo/:userid"),
            ("spin-client-addr", "127.0.0.1:8777"),
            ("spin-path-match-userid", "42"),
        ];
        for (name, value) in expected {
            assert_eq!(headers[name], value, "{name}");
        }
        assert_eq!(headers.len(), expected.len(), "nothing the client sent survives");
    }
}
