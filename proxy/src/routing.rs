//! Which route a request path belongs to. Plain functions, no I/O.

use crate::config::RouteConfig;

/// Routes ordered longest prefix first, so the most specific one wins.
pub struct RouteTable {
    routes: Vec<RouteConfig>,
}

impl RouteTable {
    pub fn new(mut routes: Vec<RouteConfig>) -> Self {
        routes.sort_by_key(|r| std::cmp::Reverse(r.prefix.len()));
        Self { routes }
    }

    /// The route whose prefix covers `path` on whole segments.
    pub fn find(&self, path: &str) -> Option<&RouteConfig> {
        self.routes.iter().find(|r| covers(&r.prefix, path))
    }
}

impl RouteConfig {
    /// The path sent upstream for `path`, which this route covers: the
    /// matched prefix replaced by `rewrite`, or `path` itself.
    pub fn upstream_path(&self, path: &str) -> String {
        let Some(rewrite) = &self.rewrite else { return path.to_owned() };
        let rest = if self.prefix == "/" { path } else { &path[self.prefix.len()..] };
        match (rewrite.as_str(), rest) {
            (_, "") => rewrite.clone(),
            ("/", rest) => rest.to_owned(),
            (rewrite, rest) => format!("{rewrite}{rest}"),
        }
    }
}

fn covers(prefix: &str, path: &str) -> bool {
    prefix == "/" || path.strip_prefix(prefix).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Whether a path is safe to route as written: absolute, and free of `.`
/// and `..` segments (plain or percent-encoded) that an upstream might
/// resolve into a different route than the one checked here.
pub fn is_normalised(path: &str) -> bool {
    path.starts_with('/')
        && path.split('/').all(|segment| {
            let decoded = segment.to_ascii_lowercase().replace("%2e", ".");
            decoded != "." && decoded != ".." && !segment.to_ascii_lowercase().contains("%2f")
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AuthPolicy;

    fn table() -> RouteTable {
        let route =
            |prefix: &str, auth| RouteConfig { prefix: prefix.into(), rewrite: None, upstream: "u".into(), auth };
        RouteTable::new(vec![
            route("/", AuthPolicy::Public),
            route("/auth", AuthPolicy::Public),
            route("/auth/api/v1/login/test-token", AuthPolicy::Required),
            route("/items", AuthPolicy::Required),
        ])
    }

    #[test]
    fn longest_prefix_wins() {
        let t = table();
        assert_eq!(t.find("/auth/api/v1/login/access-token").unwrap().prefix, "/auth");
        assert_eq!(t.find("/auth/api/v1/login/test-token").unwrap().prefix, "/auth/api/v1/login/test-token");
        assert_eq!(t.find("/items/api/v1/items/").unwrap().prefix, "/items");
        assert_eq!(t.find("/items").unwrap().auth, AuthPolicy::Required);
    }

    #[test]
    fn prefixes_match_whole_segments() {
        let t = table();
        assert_eq!(t.find("/itemsx").unwrap().prefix, "/");
        assert_eq!(t.find("/").unwrap().prefix, "/");
        let no_root = RouteTable::new(vec![RouteConfig {
            prefix: "/items".into(),
            rewrite: None,
            upstream: "u".into(),
            auth: AuthPolicy::Required,
        }]);
        assert!(no_root.find("/other").is_none());
    }

    #[test]
    fn rewrites_replace_the_matched_prefix_only() {
        let route = |prefix: &str, rewrite: &str| RouteConfig {
            prefix: prefix.into(),
            rewrite: Some(rewrite.into()),
            upstream: "u".into(),
            auth: AuthPolicy::Public,
        };
        let items = route("/api/v1/items", "/items/api/v1/items");
        assert_eq!(items.upstream_path("/api/v1/items"), "/items/api/v1/items");
        assert_eq!(items.upstream_path("/api/v1/items/"), "/items/api/v1/items/");
        assert_eq!(items.upstream_path("/api/v1/items/42"), "/items/api/v1/items/42");
        let jwks = route("/.well-known/jwks.json", "/auth/api/v1/.well-known/jwks.json");
        assert_eq!(jwks.upstream_path("/.well-known/jwks.json"), "/auth/api/v1/.well-known/jwks.json");
        assert_eq!(route("/app", "/").upstream_path("/app/x"), "/x");
        assert_eq!(route("/app", "/").upstream_path("/app"), "/");
        assert_eq!(route("/", "/site").upstream_path("/x"), "/site/x");
        let plain = RouteConfig { rewrite: None, ..items };
        assert_eq!(plain.upstream_path("/api/v1/items/42"), "/api/v1/items/42");
    }

    #[test]
    fn dot_segments_are_refused() {
        assert!(is_normalised("/items/api/v1/items/"));
        assert!(!is_normalised("/auth/../items/api/v1/items"));
        assert!(!is_normalised("/auth/%2E%2e/items"));
        assert!(!is_normalised("/auth/./x"));
        assert!(!is_normalised("/auth%2f..%2fitems"));
        assert!(!is_normalised("items"));
    }
}
