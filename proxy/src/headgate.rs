//! The request head as it arrives, before Pingora parses it. Pingora's
//! parser refuses some heads (more than 256 fields, absolute-form targets)
//! with a bare 400 before any hook runs; the gate reads the whole head
//! first, so those get the proxy's own `{"detail": ...}` answer, and an
//! absolute-form target is turned into the origin form RFC 9112 §3.2.2
//! describes: the target's authority replaces any `Host` header.
//!
//! Pure functions over bytes: the stream that feeds them is in
//! `connections.rs`.

use crate::framing::{HeadError, HeadLimits, check_head};
use crate::gateway::SECURITY_HEADERS;

/// What is known after the bytes read so far.
#[derive(Debug, PartialEq, Eq)]
pub enum Scan {
    /// No complete head yet, and not too large.
    NeedMore,
    /// The head, ready for the parser (rewritten to origin form if it was
    /// absolute), followed by whatever came after it.
    Complete(Vec<u8>),
    /// Refused: answer with [`refusal`] and close.
    Refused(HeadError),
}

/// Looks at the bytes received since the head began.
pub fn scan_head(received: &[u8], limits: &HeadLimits) -> Scan {
    // RFC 9112 §2.2: empty lines before the request line are ignored.
    let mut start = 0;
    while received[start..].starts_with(b"\r\n") {
        start += 2;
    }
    let received = &received[start..];
    let Some(end) = head_end(received) else {
        return if received.len() > limits.max_head_bytes {
            Scan::Refused(HeadError { status: 431, detail: "Request header fields too large" })
        } else {
            Scan::NeedMore
        };
    };
    let (head, rest) = received.split_at(end);
    if let Err(e) = check_head(head, limits) {
        return Scan::Refused(e);
    }
    match origin_form(head) {
        Ok(mut head) => {
            head.extend_from_slice(rest);
            Scan::Complete(head)
        }
        Err(e) => Scan::Refused(e),
    }
}

/// Where the head ends: after the first empty line, CRLF or bare LF (a bare
/// LF is refused later, with the right message).
fn head_end(bytes: &[u8]) -> Option<usize> {
    bytes.iter().enumerate().find_map(|(i, b)| {
        if *b != b'\n' {
            return None;
        }
        match &bytes[i + 1..] {
            [b'\n', ..] => Some(i + 2),
            [b'\r', b'\n', ..] => Some(i + 3),
            _ => None,
        }
    })
}

fn unsupported_target() -> HeadError {
    HeadError { status: 400, detail: "Malformed request: unsupported request target" }
}

/// The head with an origin-form target: unchanged for `/path` and `*`; for
/// `http://authority/path` the path, with `Host: authority` in place of
/// every `Host` the client sent. Any other form (authority-form, other
/// schemes, user info) is refused: this is not a forward proxy.
fn origin_form(head: &[u8]) -> Result<Vec<u8>, HeadError> {
    // `check_head` has made sure the head is text with CRLF line endings.
    let text = std::str::from_utf8(head).map_err(|_| unsupported_target())?;
    let (request_line, fields) = text.split_once("\r\n").ok_or_else(unsupported_target)?;
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HeadError { status: 400, detail: "Malformed request: invalid request line" });
    };
    if target.starts_with('/') || (target == "*" && method == "OPTIONS") {
        return Ok(head.to_vec());
    }
    let (scheme, rest) = target.split_once("://").ok_or_else(unsupported_target)?;
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return Err(unsupported_target());
    }
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(split);
    if authority.is_empty() || authority.contains('@') || !authority.bytes().all(is_authority_byte) {
        return Err(unsupported_target());
    }
    let path = match path {
        "" => "/".to_owned(),
        p if p.starts_with('?') => format!("/{p}"),
        p => p.to_owned(),
    };
    let mut out = format!("{method} {path} {version}\r\nHost: {authority}\r\n");
    for line in fields.split("\r\n").filter(|l| !l.is_empty()) {
        let is_host = line.split_once(':').is_some_and(|(name, _)| name.eq_ignore_ascii_case("host"));
        if !is_host {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str("\r\n");
    Ok(out.into_bytes())
}

/// RFC 3986 `host [":" port]`: registered names, IPv4, bracketed IPv6.
fn is_authority_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:[]%".contains(&b)
}

/// The whole answer to a refused head; the connection closes after it.
pub fn refusal(e: &HeadError) -> Vec<u8> {
    let reason = match e.status {
        431 => "Request Header Fields Too Large",
        _ => "Bad Request",
    };
    let body = serde_json::json!({ "detail": e.detail }).to_string();
    let mut answer = format!(
        "HTTP/1.1 {} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
        e.status,
        body.len()
    );
    for (name, value) in SECURITY_HEADERS {
        answer.push_str(&format!("{name}: {value}\r\n"));
    }
    answer.push_str("\r\n");
    answer.push_str(&body);
    answer.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: HeadLimits = HeadLimits { max_headers: 4, max_head_bytes: 256 };

    fn complete(raw: &str) -> String {
        match scan_head(raw.as_bytes(), &LIMITS) {
            Scan::Complete(head) => String::from_utf8(head).unwrap(),
            other => panic!("{raw:?}: {other:?}"),
        }
    }

    fn refused(raw: &[u8]) -> HeadError {
        match scan_head(raw, &LIMITS) {
            Scan::Refused(e) => e,
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(raw)),
        }
    }

    #[test]
    fn partial_heads_wait_for_more() {
        for raw in ["", "GET / HTTP/1.1", "GET / HTTP/1.1\r\nHost: x\r\n", "GET / HTTP/1.1\r\nHost: x\r\n\r"] {
            assert_eq!(scan_head(raw.as_bytes(), &LIMITS), Scan::NeedMore, "{raw:?}");
        }
    }

    #[test]
    fn origin_form_passes_unchanged_with_what_follows() {
        let raw = "POST /a?b=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi";
        assert_eq!(complete(raw), raw);
        assert_eq!(complete("\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n"), "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(complete("OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n"), "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n");
    }

    #[test]
    fn absolute_form_becomes_origin_form_with_the_target_host() {
        let cases = [
            (
                "GET http://example.com/a/b?c HTTP/1.1\r\nHost: other\r\n\r\n",
                "GET /a/b?c HTTP/1.1\r\nHost: example.com\r\n\r\n",
            ),
            (
                "GET HTTPS://example.com:8443 HTTP/1.1\r\nX: 1\r\n\r\n",
                "GET / HTTP/1.1\r\nHost: example.com:8443\r\nX: 1\r\n\r\n",
            ),
            (
                "GET http://[::1]:80?q HTTP/1.1\r\nhost: a\r\nHOST: b\r\n\r\n",
                "GET /?q HTTP/1.1\r\nHost: [::1]:80\r\n\r\n",
            ),
        ];
        for (raw, expected) in cases {
            assert_eq!(complete(raw), expected, "{raw:?}");
        }
    }

    #[test]
    fn other_targets_are_refused() {
        for target in ["example.com:443", "ftp://example.com/", "http://user@example.com/", "http:///x", "*", "x/y"] {
            let raw = format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n");
            assert_eq!(refused(raw.as_bytes()).status, 400, "{target}");
        }
        assert_eq!(refused(b"GET  / HTTP/1.1\r\nHost: x\r\n\r\n").status, 400);
    }

    #[test]
    fn oversized_heads_are_refused_before_they_end() {
        let endless = format!("GET / HTTP/1.1\r\nX: {}", "a".repeat(300));
        assert_eq!(refused(endless.as_bytes()).status, 431);
        let many = format!("GET / HTTP/1.1\r\n{}\r\n", "X: 1\r\n".repeat(5));
        assert_eq!(refused(many.as_bytes()).status, 431);
    }

    #[test]
    fn framing_is_checked_on_the_whole_head() {
        assert_eq!(refused(b"GET / HTTP/1.1\nHost: x\n\n").status, 400);
        let both = b"POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(refused(both).status, 400);
    }

    #[test]
    fn refusals_are_json_and_close_the_connection() {
        let answer = String::from_utf8(refusal(&HeadError { status: 431, detail: "too many" })).unwrap();
        assert!(answer.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"), "{answer}");
        assert!(answer.contains("connection: close\r\n"));
        assert!(answer.contains("x-content-type-options: nosniff\r\n"));
        assert!(answer.ends_with("\r\n\r\n{\"detail\":\"too many\"}"), "{answer}");
    }
}
