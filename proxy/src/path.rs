//! The one normalised form of a request path. The route, the auth decision
//! and the path sent upstream are all taken from it, so no spelling of a
//! path can be judged as one route and served as another.
//!
//! Rules, in order:
//! - only visible ASCII is allowed (no control bytes, spaces or raw UTF-8);
//!   a path longer than [`MAX_PATH_BYTES`] is refused;
//! - `%XX` escapes of unreserved characters (`A-Z a-z 0-9 - . _ ~`) are
//!   decoded; other escapes are kept, with upper-case hex digits; an
//!   escaped `/`, `\`, NUL or a malformed escape is refused, as is a raw `\`;
//! - `;` (path parameters) is refused: no service uses them, and servers
//!   disagree on what they mean;
//! - empty segments are removed (`//` is `/`), `.` segments are removed, and
//!   `..` removes the segment before it; climbing above the root is refused;
//! - a trailing `/` is kept, since services may tell `/items/` from `/items`;
//! - case is kept: paths are case-sensitive, so `/AUTH` is not `/auth`.

use std::fmt;

/// Longest request path accepted, in bytes as sent.
pub const MAX_PATH_BYTES: usize = 4096;

/// Why a path was refused; each is a 400, or 414 when too long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    NotAbsolute,
    TooLong,
    InvalidCharacter,
    EncodedSeparator,
    MalformedEscape,
    Parameters,
    AboveRoot,
}

impl PathError {
    pub fn status(self) -> u16 {
        match self {
            PathError::TooLong => 414,
            _ => 400,
        }
    }
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PathError::NotAbsolute => "Invalid path: it must start with /",
            PathError::TooLong => "Request path too long",
            PathError::InvalidCharacter => "Invalid path: it contains a character that must be percent-encoded",
            PathError::EncodedSeparator => "Invalid path: encoded / or \\ are not accepted",
            PathError::MalformedEscape => "Invalid path: malformed percent-encoding",
            PathError::Parameters => "Invalid path: ; parameters are not accepted",
            PathError::AboveRoot => "Invalid path: .. goes above the root",
        })
    }
}

/// The normalised form of `path` (without the query), or why it is refused.
pub fn normalise_path(path: &str) -> Result<String, PathError> {
    if path.len() > MAX_PATH_BYTES {
        return Err(PathError::TooLong);
    }
    if !path.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    let mut segments: Vec<String> = Vec::new();
    let raw_segments: Vec<&str> = path[1..].split('/').collect();
    let last = raw_segments.len() - 1;
    let mut trailing_slash = false;
    for (i, raw) in raw_segments.iter().enumerate() {
        let segment = decode_unreserved(raw)?;
        match segment.as_str() {
            "" => trailing_slash = i == last && !segments.is_empty(),
            "." => trailing_slash = i == last && !segments.is_empty(),
            ".." => {
                segments.pop().ok_or(PathError::AboveRoot)?;
                trailing_slash = i == last && !segments.is_empty();
            }
            _ => {
                segments.push(segment);
                trailing_slash = false;
            }
        }
    }
    let mut normalised = String::with_capacity(path.len());
    for segment in &segments {
        normalised.push('/');
        normalised.push_str(segment);
    }
    if normalised.is_empty() || trailing_slash {
        normalised.push('/');
    }
    Ok(normalised)
}

/// One segment with escapes of unreserved characters decoded and the
/// others kept in upper case.
fn decode_unreserved(segment: &str) -> Result<String, PathError> {
    let bytes = segment.as_bytes();
    let mut out = String::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'%' => {
                let hex = |b: Option<&u8>| b.and_then(|b| (*b as char).to_digit(16));
                let (Some(hi), Some(lo)) = (hex(bytes.get(i + 1)), hex(bytes.get(i + 2))) else {
                    return Err(PathError::MalformedEscape);
                };
                let decoded = (hi * 16 + lo) as u8;
                match decoded {
                    b'/' | b'\\' => return Err(PathError::EncodedSeparator),
                    0 => return Err(PathError::InvalidCharacter),
                    _ if is_unreserved(decoded) => out.push(decoded as char),
                    _ => {
                        out.push('%');
                        out.push_str(&format!("{decoded:02X}"));
                    }
                }
                i += 3;
            }
            b';' => return Err(PathError::Parameters),
            b'\\' => return Err(PathError::EncodedSeparator),
            b'#' | b'?' => return Err(PathError::InvalidCharacter),
            0x21..=0x7e => {
                out.push(b as char);
                i += 1;
            }
            _ => return Err(PathError::InvalidCharacter),
        }
    }
    Ok(out)
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Whether a query string is safe to pass on as it is: visible ASCII only.
pub fn query_is_valid(query: &str) -> bool {
    query.len() <= MAX_PATH_BYTES && query.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b'#')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_forms() {
        let cases = [
            ("/", "/"),
            ("/items", "/items"),
            ("/items/", "/items/"),
            ("/items/api/v1/items/", "/items/api/v1/items/"),
            ("//items", "/items"),
            ("/auth//api/v1/login/test-token", "/auth/api/v1/login/test-token"),
            ("/auth/api/v1/login//test-token/", "/auth/api/v1/login/test-token/"),
            ("/auth/./api/v1/login/test-token", "/auth/api/v1/login/test-token"),
            ("/auth/x/../api/v1/login/test-token", "/auth/api/v1/login/test-token"),
            ("/auth/../items/api/v1/items", "/items/api/v1/items"),
            ("/auth/%2e%2E/items", "/items"),
            ("/auth/%2e/api", "/auth/api"),
            ("/%61uth/api", "/auth/api"),
            ("/items/%7e%2D%5f", "/items/~-_"),
            ("/users/api/v1/users/a%40b.co", "/users/api/v1/users/a%40b.co"),
            ("/users/a%3cb", "/users/a%3Cb"),
            ("/AUTH/api", "/AUTH/api"),
            ("/items/..", "/"),
            ("/items/.", "/items/"),
            ("/a/b/../../", "/"),
            ("/.well-known/jwks.json", "/.well-known/jwks.json"),
        ];
        for (path, expected) in cases {
            assert_eq!(normalise_path(path).as_deref(), Ok(expected), "{path}");
        }
    }

    #[test]
    fn refusals() {
        let cases = [
            ("items", PathError::NotAbsolute),
            ("", PathError::NotAbsolute),
            ("*", PathError::NotAbsolute),
            ("/..", PathError::AboveRoot),
            ("/auth/../../items", PathError::AboveRoot),
            ("/%2e%2e/x", PathError::AboveRoot),
            ("/auth%2f..%2fitems", PathError::EncodedSeparator),
            ("/auth%2Fapi", PathError::EncodedSeparator),
            ("/auth%5capi", PathError::EncodedSeparator),
            ("/auth\\api", PathError::EncodedSeparator),
            ("/items;jsessionid=1/api", PathError::Parameters),
            ("/items/api/v1/items;", PathError::Parameters),
            ("/items/%zz", PathError::MalformedEscape),
            ("/items/%4", PathError::MalformedEscape),
            ("/items/%00", PathError::InvalidCharacter),
            ("/items/a b", PathError::InvalidCharacter),
            ("/items/\u{e9}", PathError::InvalidCharacter),
            ("/items/\t", PathError::InvalidCharacter),
            ("/items#frag", PathError::InvalidCharacter),
        ];
        for (path, expected) in cases {
            assert_eq!(normalise_path(path), Err(expected), "{path:?}");
        }
        assert_eq!(normalise_path(&format!("/{}", "a".repeat(MAX_PATH_BYTES))), Err(PathError::TooLong));
        assert_eq!(PathError::TooLong.status(), 414);
    }

    #[test]
    fn normalising_twice_changes_nothing() {
        for path in ["/a//b/./c/../d/", "/%7Ex/%3c", "/auth/%2e%2e/items/"] {
            let once = normalise_path(path).unwrap();
            assert_eq!(normalise_path(&once).unwrap(), once);
        }
    }

    #[test]
    fn queries_are_visible_ascii() {
        assert!(query_is_valid("skip=0&limit=10&q=%20x"));
        assert!(!query_is_valid("a=b c"));
        assert!(!query_is_valid("a=\u{0}"));
    }
}
