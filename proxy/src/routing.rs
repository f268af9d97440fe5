//! Which route a (normalised) request path belongs to. Plain functions, no I/O.

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AuthPolicy;

    fn table() -> RouteTable {
        let route = |prefix: &str, auth| RouteConfig {
            prefix: prefix.into(),
            rewrite: None,
            upstream: Some("u".into()),
            files: None,
            auth,
            max_body_bytes: None,
            upgrade: false,
            rate_limits: Vec::new(),
            cors: None,
        };
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
            upstream: Some("u".into()),
            files: None,
            auth: AuthPolicy::Required,
            max_body_bytes: None,
            upgrade: false,
            rate_limits: Vec::new(),
            cors: None,
        }]);
        assert!(no_root.find("/other").is_none());
    }

    #[test]
    fn rewrites_replace_the_matched_prefix_only() {
        let route = |prefix: &str, rewrite: &str| RouteConfig {
            prefix: prefix.into(),
            rewrite: Some(rewrite.into()),
            upstream: Some("u".into()),
            files: None,
            auth: AuthPolicy::Public,
            max_body_bytes: None,
            upgrade: false,
            rate_limits: Vec::new(),
            cors: None,
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

    /// What the services behind the deployed configuration treat as
    /// needing a caller: their view of a path is its non-empty segments.
    fn protected(upstream_path: &str) -> bool {
        let segments: Vec<&str> = upstream_path.split('/').filter(|s| !s.is_empty()).collect();
        let public = [
            &["users", "api", "v1", "users", "signup"][..],
            &["users", "health"],
            &["users", "openapi.json"],
            &["items", "health"],
            &["items", "openapi.json"],
        ];
        match segments.as_slice() {
            s if public.contains(&s) => false,
            ["users", ..] | ["items", ..] => true,
            ["auth", "api", "v1", "login", "test-token", ..] => true,
            ["auth", "api", "v1", "password-recovery-html-content", ..] => true,
            _ => false,
        }
    }

    fn deployed_routes() -> RouteTable {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/proxy.toml")).unwrap();
        RouteTable::new(crate::config::ProxyConfig::parse(&text).unwrap().route)
    }

    /// Paths of protected handlers, in both layouts, to be respelt.
    const PROTECTED: [&str; 8] = [
        "/auth/api/v1/login/test-token",
        "/api/v1/login/test-token",
        "/auth/api/v1/password-recovery-html-content/a@b.co",
        "/users/api/v1/users/me",
        "/api/v1/users/me",
        "/api/v1/users/00000000-0000-4000-8000-000000000000",
        "/items/api/v1/items/",
        "/api/v1/items/x",
    ];

    /// Spellings that change the bytes but, resolved, not the path.
    const NOISE: [&str; 8] = ["", ".", "%2e", "x/..", "x/%2e%2e", "x/%2E.", "signup/..", "health/.."];

    /// `path` with `noise` segments inserted before segment `at`, and the
    /// byte at `escape` (if a letter) written as a percent-escape.
    fn respell(path: &str, insertions: &[(usize, usize)], escape: usize) -> String {
        let mut segments: Vec<String> = path.split('/').skip(1).map(str::to_owned).collect();
        for &(at, noise) in insertions {
            let at = at % (segments.len() + 1);
            segments.insert(at, NOISE[noise % NOISE.len()].to_owned());
        }
        let joined = format!("/{}", segments.join("/"));
        match joined.as_bytes().get(escape % joined.len()) {
            Some(b) if b.is_ascii_alphabetic() => {
                let i = escape % joined.len();
                format!("{}%{:02x}{}", &joined[..i], b, &joined[i + 1..])
            }
            _ => joined,
        }
    }

    proptest::proptest! {
        /// No spelling of a protected path reaches its handler through a
        /// public route: the route is chosen on the normalised path, and
        /// that same path is what goes upstream.
        #[test]
        fn no_spelling_reaches_a_protected_handler_through_a_public_route(
            base in 0..PROTECTED.len(),
            insertions in proptest::collection::vec((0usize..10, 0usize..NOISE.len()), 0..4),
            escape in 0usize..80,
        ) {
            let table = deployed_routes();
            let path = respell(PROTECTED[base], &insertions, escape);
            if let Ok(normalised) = crate::path::normalise_path(&path)
                && let Some(route) = table.find(&normalised)
                && route.auth == AuthPolicy::Public
                && route.upstream.is_some()
            {
                let upstream = route.upstream_path(&normalised);
                proptest::prop_assert!(!protected(&upstream), "{path} -> {normalised} -> {upstream} is public");
            }
        }
    }

    #[test]
    fn the_protected_view_is_not_empty() {
        // Guards the property above against a `protected` that says no to everything.
        let table = deployed_routes();
        for path in ["/users/api/v1/users/me", "/api/v1/items/", "/auth/api/v1/login/test-token"] {
            assert!(protected(&table.find(path).unwrap().upstream_path(path)), "{path}");
            assert_eq!(table.find(path).unwrap().auth, AuthPolicy::Required, "{path}");
        }
    }
}
