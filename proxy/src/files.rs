//! Static files served at the edge: the web frontend's exported pages and
//! assets. A route names a `[files.<name>]` site instead of an upstream;
//! what a path resolves to, and how it is cached and encoded, is decided
//! here, without I/O beyond looking at the site's folder.
//!
//! A path `P` is, in order: the file `root/P`, `root/P.html`,
//! `root/P/index.html`; for a path whose last segment has no extension (a
//! client-side route), the site's `fallback` page if it has one; otherwise
//! its `not_found` page with status 404. Hidden files (a segment starting
//! with `.`) and anything a link leads outside the root are never served.

use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesConfig {
    /// The folder served; relative to the configuration file's folder.
    pub root: PathBuf,
    /// Page served with 404 for paths that resolve to nothing
    /// (`404.html`); without one, the proxy's own JSON 404.
    #[serde(default)]
    pub not_found: Option<String>,
    /// Page served with 200 for client-side routes that resolve to nothing
    /// (a single-page app's `index.html`). None by default: a static export
    /// has a page per route, and an unknown one is a 404.
    #[serde(default)]
    pub fallback: Option<String>,
    /// Path prefixes whose files are named by their content hash, cached
    /// for a year and never revalidated.
    #[serde(default = "default_immutable")]
    pub immutable: Vec<String>,
    /// How long other files (not HTML, which is always revalidated) are cached.
    #[serde(default = "default_max_age")]
    pub max_age_seconds: u64,
    /// The pages' `Content-Security-Policy`: scripts, styles and requests
    /// to this origin only.
    #[serde(default = "default_csp")]
    pub content_security_policy: String,
}

fn default_immutable() -> Vec<String> {
    vec!["/_next/static/".into()]
}

fn default_max_age() -> u64 {
    3600
}

fn default_csp() -> String {
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
     font-src 'self'; connect-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; \
     form-action 'self'"
        .into()
}

/// Encodings a file may also be stored in, next to it, by preference.
const PRECOMPRESSED: [(&str, &str); 3] = [("br", "br"), ("zstd", "zst"), ("gzip", "gz")];

/// A site compiled from its configuration: the root made absolute.
#[derive(Debug)]
pub struct Site {
    config: FilesConfig,
    /// The root with links resolved, when it exists.
    root: Option<PathBuf>,
}

/// What a request path resolved to.
#[derive(Debug, PartialEq, Eq)]
pub struct Found {
    pub file: PathBuf,
    pub status: u16,
    pub content_type: &'static str,
    pub cache_control: String,
}

/// One stored form of a found file: itself or a precompressed sibling.
#[derive(Debug, PartialEq, Eq)]
pub struct Representation {
    pub file: PathBuf,
    /// `Content-Encoding`, when precompressed.
    pub encoding: Option<&'static str>,
    pub len: u64,
    /// A strong validator: size, modification time and encoding.
    pub etag: String,
    /// Whether other encodings of it are stored (so answers vary by
    /// `Accept-Encoding`).
    pub varies: bool,
}

impl Site {
    pub fn new(config: FilesConfig) -> Self {
        let root = std::fs::canonicalize(&config.root).ok().filter(|r| r.is_dir());
        if root.is_none() {
            tracing::warn!(root = %config.root.display(), "the static files folder does not exist: its routes answer 404");
        }
        Self { config, root }
    }

    pub fn content_security_policy(&self) -> &str {
        &self.config.content_security_policy
    }

    /// What `path` (normalised, without the query) is answered with.
    pub fn resolve(&self, path: &str) -> Option<Found> {
        let root = self.root.as_ref()?;
        let relative = relative_path(path);
        let page =
            |name: &str, status| self.file(root, Path::new(name)).map(|file| self.found(file, name.to_owned(), status));
        if let Some(relative) = relative {
            // `/items/` is the page `/items` too.
            let mut candidates = Vec::with_capacity(3);
            let mut html = relative.clone().into_os_string();
            html.push(".html");
            if !path.ends_with('/') {
                candidates.push(relative.clone());
            }
            candidates.push(relative.join("index.html"));
            if !relative.as_os_str().is_empty() {
                candidates.push(PathBuf::from(html));
            }
            for candidate in candidates {
                if let Some(file) = self.file(root, &candidate) {
                    let shown = format!("/{}", candidate.display());
                    return Some(self.found(file, shown, 200));
                }
            }
            let last = path.rsplit('/').next().unwrap_or_default();
            if !last.contains('.')
                && let Some(found) = self.config.fallback.as_deref().and_then(|f| page(f, 200))
            {
                return Some(found);
            }
        }
        self.config.not_found.as_deref().and_then(|f| page(f, 404))
    }

    /// `relative` under the root, if it is a regular file there.
    fn file(&self, root: &Path, relative: &Path) -> Option<PathBuf> {
        let file = std::fs::canonicalize(root.join(relative)).ok()?;
        (file.starts_with(root) && file.is_file()).then_some(file)
    }

    fn found(&self, file: PathBuf, served_as: String, status: u16) -> Found {
        let content_type = content_type(&file);
        let cache_control = if content_type.starts_with("text/html") || status != 200 {
            "no-cache".to_owned()
        } else if self.config.immutable.iter().any(|p| served_as.starts_with(p.as_str())) {
            "public, max-age=31536000, immutable".to_owned()
        } else {
            format!("public, max-age={}", self.config.max_age_seconds)
        };
        Found { file, status, content_type, cache_control }
    }
}

impl Found {
    /// The stored form to send a client whose `Accept-Encoding` is
    /// `accept`: the precompressed sibling it weighs highest, else the file.
    pub fn representation(&self, accept: Option<&str>) -> std::io::Result<Representation> {
        let mut best: Option<(f32, Representation)> = None;
        let mut varies = false;
        for (encoding, suffix) in PRECOMPRESSED {
            let mut sibling = self.file.clone().into_os_string();
            sibling.push(".");
            sibling.push(suffix);
            let sibling = PathBuf::from(sibling);
            let Ok(meta) = std::fs::metadata(&sibling) else { continue };
            if !meta.is_file() {
                continue;
            }
            varies = true;
            let q = crate::compression::weight(accept, encoding);
            if q > 0.0 && best.as_ref().is_none_or(|(b, _)| q > *b) {
                let etag = etag(&meta, Some(encoding));
                best = Some((
                    q,
                    Representation { file: sibling, encoding: Some(encoding), len: meta.len(), etag, varies },
                ));
            }
        }
        let mut chosen = match best {
            Some((_, r)) => r,
            None => {
                let meta = std::fs::metadata(&self.file)?;
                Representation {
                    file: self.file.clone(),
                    encoding: None,
                    len: meta.len(),
                    etag: etag(&meta, None),
                    varies,
                }
            }
        };
        chosen.varies = varies;
        Ok(chosen)
    }
}

/// Whether a client holding `if_none_match` already has `etag`.
pub fn not_modified(if_none_match: Option<&str>, etag: &str) -> bool {
    if_none_match
        .is_some_and(|v| v.split(',').map(str::trim).any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag))
}

fn etag(meta: &std::fs::Metadata, encoding: Option<&str>) -> String {
    let modified = meta.modified().ok().and_then(|m| m.duration_since(UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos());
    match encoding {
        Some(e) => format!("\"{:x}-{modified:x}-{e}\"", meta.len()),
        None => format!("\"{:x}-{modified:x}\"", meta.len()),
    }
}

/// `path` as a relative file path: its segments percent-decoded; `None`
/// if one is hidden, or decodes to a separator or a NUL.
fn relative_path(path: &str) -> Option<PathBuf> {
    let mut relative = PathBuf::new();
    for segment in path.split('/').filter(|s| !s.is_empty()) {
        let decoded = percent_decode(segment)?;
        if decoded.starts_with('.') || decoded.contains(['/', '\\', '\0']) {
            return None;
        }
        relative.push(decoded);
    }
    Some(relative)
}

fn percent_decode(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The media type of a file, by its extension.
pub fn content_type(file: &Path) -> &'static str {
    let extension = file.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    match extension.as_deref().unwrap_or_default() {
        "html" | "htm" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "webmanifest" => "application/manifest+json",
        "txt" => "text/plain; charset=utf-8",
        "xml" => "application/xml",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "avif" => "image/avif",
        "ico" => "image/x-icon",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "ttf" => "font/ttf",
        "wasm" => "application/wasm",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A folder like the frontend's export.
    struct Folder(testkit::TempFolder);

    impl Folder {
        fn new(files: &[(&str, &str)]) -> Self {
            Self(testkit::TempFolder::with_files(files))
        }

        fn site(&self, fallback: Option<&str>) -> Site {
            Site::new(FilesConfig {
                root: self.0.0.clone(),
                not_found: Some("404.html".into()),
                fallback: fallback.map(Into::into),
                immutable: default_immutable(),
                max_age_seconds: 60,
                content_security_policy: default_csp(),
            })
        }
    }

    fn served(site: &Site, path: &str) -> (String, u16) {
        let found = site.resolve(path).expect(path);
        (std::fs::read_to_string(found.file).unwrap(), found.status)
    }

    const EXPORT: [(&str, &str); 8] = [
        ("index.html", "home"),
        ("items.html", "items"),
        ("admin/index.html", "admin"),
        ("404.html", "missing"),
        ("_next/static/abc123/app.js", "js"),
        ("logo.svg", "svg"),
        (".env", "SECRET"),
        ("sub/.hidden", "hidden"),
    ];

    #[test]
    fn pages_are_found_by_path_html_and_index() {
        let folder = Folder::new(&EXPORT);
        let site = folder.site(None);
        assert_eq!(served(&site, "/"), ("home".into(), 200));
        assert_eq!(served(&site, "/items"), ("items".into(), 200));
        assert_eq!(served(&site, "/items.html"), ("items".into(), 200));
        assert_eq!(served(&site, "/admin"), ("admin".into(), 200));
        assert_eq!(served(&site, "/admin/"), ("admin".into(), 200));
        assert_eq!(served(&site, "/_next/static/abc123/app.js"), ("js".into(), 200));
        assert_eq!(served(&site, "/l%6fgo.svg"), ("svg".into(), 200), "escapes decoded");
    }

    #[test]
    fn unknown_paths_get_the_not_found_page_or_the_fallback() {
        let folder = Folder::new(&EXPORT);
        let site = folder.site(None);
        assert_eq!(served(&site, "/nowhere"), ("missing".into(), 404));
        assert_eq!(served(&site, "/items/"), ("items".into(), 200));
        assert_eq!(served(&site, "/logo.svg/"), ("missing".into(), 404));
        let spa = folder.site(Some("index.html"));
        assert_eq!(served(&spa, "/client/route"), ("home".into(), 200));
        assert_eq!(served(&spa, "/missing.js"), ("missing".into(), 404), "an asset is not a route");
    }

    #[test]
    fn hidden_files_and_escapes_from_the_root_are_never_served() {
        let folder = Folder::new(&EXPORT);
        let outside = Folder::new(&[("secret.txt", "outside")]);
        std::os::unix::fs::symlink(outside.0.0.join("secret.txt"), folder.0.0.join("link.txt")).unwrap();
        let site = folder.site(None);
        for path in ["/.env", "/sub/.hidden", "/%2eenv", "/link.txt", "/a%2f..%2f.env", "/bad%zz", "/nul%00"] {
            assert_eq!(served(&site, path), ("missing".into(), 404), "{path}");
        }
    }

    #[test]
    fn cache_headers_by_file_type() {
        let folder = Folder::new(&EXPORT);
        let site = folder.site(None);
        let cache = |path| site.resolve(path).unwrap().cache_control;
        assert_eq!(cache("/items"), "no-cache");
        assert_eq!(cache("/nowhere"), "no-cache");
        assert_eq!(cache("/_next/static/abc123/app.js"), "public, max-age=31536000, immutable");
        assert_eq!(cache("/logo.svg"), "public, max-age=60");
        assert_eq!(site.resolve("/logo.svg").unwrap().content_type, "image/svg+xml");
    }

    #[test]
    fn the_precompressed_form_the_client_weighs_highest() {
        let folder = Folder::new(&[("app.js", "plain"), ("app.js.br", "b"), ("app.js.gz", "g"), ("lone.css", "c")]);
        let site = folder.site(None);
        let app = site.resolve("/app.js").unwrap();
        let encoding = |accept| app.representation(accept).unwrap().encoding;
        assert_eq!(encoding(Some("gzip, deflate, br, zstd")), Some("br"));
        assert_eq!(encoding(Some("gzip")), Some("gzip"));
        assert_eq!(encoding(Some("br;q=0.5, gzip")), Some("gzip"));
        assert_eq!(encoding(Some("zstd")), None, "not stored as zstd");
        assert_eq!(encoding(None), None);
        let plain = app.representation(None).unwrap();
        assert!(plain.varies);
        assert_ne!(plain.etag, app.representation(Some("br")).unwrap().etag);
        assert!(!site.resolve("/lone.css").unwrap().representation(Some("br")).unwrap().varies);
    }

    #[test]
    fn validators_match_if_none_match() {
        assert!(not_modified(Some("\"a\""), "\"a\""));
        assert!(not_modified(Some("\"b\", W/\"a\""), "\"a\""));
        assert!(not_modified(Some("*"), "\"a\""));
        assert!(!not_modified(Some("\"b\""), "\"a\""));
        assert!(!not_modified(None, "\"a\""));
    }
}
