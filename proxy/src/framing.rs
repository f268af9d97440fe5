//! Checks of a request head as the client sent it (the raw bytes, before
//! any parser's leniency), refusing what could frame the request one way
//! here and another way upstream, and heads larger than the host accepts.

/// What a head may hold; the host refuses more than 100 headers.
#[derive(Debug, Clone, Copy)]
pub struct HeadLimits {
    pub max_headers: usize,
    pub max_head_bytes: usize,
}

/// Why a head was refused: `status` is 400 or 431.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadError {
    pub status: u16,
    pub detail: &'static str,
}

fn bad(detail: &'static str) -> HeadError {
    HeadError { status: 400, detail }
}

/// Refuses a head that is too large, or whose body framing is ambiguous:
/// both `Content-Length` and `Transfer-Encoding`, several `Content-Length`s,
/// a `Transfer-Encoding` other than exactly `chunked`, `Transfer-Encoding`
/// on HTTP/1.0, bare LF line endings, obsolete line folding, or whitespace
/// before a header's colon.
/// The same limits for a head that came decoded (HTTP/2): its fields'
/// count, and their size as HTTP/2 counts it (name, value and 32 bytes).
pub fn check_fields(headers: &http::HeaderMap, limits: &HeadLimits) -> Result<(), HeadError> {
    if headers.len() > limits.max_headers {
        return Err(HeadError { status: 431, detail: "Too many request header fields" });
    }
    let size: usize = headers.iter().map(|(name, value)| name.as_str().len() + value.len() + 32).sum();
    if size > limits.max_head_bytes {
        return Err(HeadError { status: 431, detail: "Request header fields too large" });
    }
    Ok(())
}

pub fn check_head(raw: &[u8], limits: &HeadLimits) -> Result<(), HeadError> {
    if raw.len() > limits.max_head_bytes {
        return Err(HeadError { status: 431, detail: "Request header fields too large" });
    }
    // Every line must end in CRLF.
    for (i, b) in raw.iter().enumerate() {
        if *b == b'\n' && (i == 0 || raw[i - 1] != b'\r') {
            return Err(bad("Malformed request: line endings must be CRLF"));
        }
        if *b == b'\r' && raw.get(i + 1) != Some(&b'\n') {
            return Err(bad("Malformed request: stray carriage return"));
        }
    }
    let text = std::str::from_utf8(raw).map_err(|_| bad("Malformed request: header bytes are not text"))?;
    let mut lines = text.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let http10 = request_line.ends_with("HTTP/1.0");
    let (mut headers, mut content_lengths, mut transfer_encodings) = (0usize, Vec::new(), Vec::new());
    for line in lines.take_while(|l| !l.is_empty()) {
        if line.starts_with([' ', '\t']) {
            return Err(bad("Malformed request: obsolete line folding"));
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(bad("Malformed request: a header line without a colon"));
        };
        if name.is_empty() || name.ends_with([' ', '\t']) || !name.bytes().all(is_token_byte) {
            return Err(bad("Malformed request: invalid header name"));
        }
        headers += 1;
        let value = value.trim_matches([' ', '\t']);
        if name.eq_ignore_ascii_case("content-length") {
            content_lengths.push(value);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            transfer_encodings.push(value);
        }
    }
    if headers > limits.max_headers {
        return Err(HeadError { status: 431, detail: "Too many request header fields" });
    }
    if !transfer_encodings.is_empty() {
        if !content_lengths.is_empty() {
            return Err(bad("Malformed request: both Content-Length and Transfer-Encoding"));
        }
        if http10 {
            return Err(bad("Malformed request: Transfer-Encoding on HTTP/1.0"));
        }
        if transfer_encodings.len() > 1 || !transfer_encodings[0].eq_ignore_ascii_case("chunked") {
            return Err(bad("Malformed request: only Transfer-Encoding: chunked is accepted"));
        }
    }
    match content_lengths.as_slice() {
        [] => {}
        [one] if !one.is_empty() && one.len() <= 18 && one.bytes().all(|b| b.is_ascii_digit()) => {}
        [_] => return Err(bad("Malformed request: invalid Content-Length")),
        _ => return Err(bad("Malformed request: more than one Content-Length")),
    }
    Ok(())
}

/// RFC 9110 `tchar`.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: HeadLimits = HeadLimits { max_headers: 4, max_head_bytes: 512 };

    fn head(lines: &[&str]) -> Vec<u8> {
        format!("{}\r\n\r\n", lines.join("\r\n")).into_bytes()
    }

    #[test]
    fn plain_heads_pass() {
        let ok = [
            head(&["GET /items HTTP/1.1", "Host: x"]),
            head(&["POST /items HTTP/1.1", "Host: x", "Content-Length: 12"]),
            head(&["POST /items HTTP/1.1", "Host: x", "Transfer-Encoding: chunked"]),
            head(&["POST /items HTTP/1.1", "Host: x", "transfer-encoding:  Chunked "]),
            head(&["GET / HTTP/1.0"]),
        ];
        for raw in &ok {
            assert_eq!(check_head(raw, &LIMITS), Ok(()), "{}", String::from_utf8_lossy(raw));
        }
    }

    #[test]
    fn ambiguous_framing_is_refused() {
        let refused = [
            head(&["POST / HTTP/1.1", "Host: x", "Content-Length: 5", "Transfer-Encoding: chunked"]),
            head(&["POST / HTTP/1.1", "Host: x", "Content-Length: 5", "Content-Length: 6"]),
            head(&["POST / HTTP/1.1", "Host: x", "Content-Length: 5", "Content-Length: 5"]),
            head(&["POST / HTTP/1.1", "Host: x", "Content-Length: 5, 5"]),
            head(&["POST / HTTP/1.1", "Host: x", "Content-Length: +5"]),
            head(&["POST / HTTP/1.1", "Host: x", "Transfer-Encoding: xchunked"]),
            head(&["POST / HTTP/1.1", "Host: x", "Transfer-Encoding: chunked, identity"]),
            head(&["POST / HTTP/1.1", "Host: x", "Transfer-Encoding: chunked", "Transfer-Encoding: chunked"]),
            head(&["POST / HTTP/1.1", "Host: x", "Transfer-Encoding : chunked"]),
            head(&["POST / HTTP/1.1", "Host: x", "Transfer-Encoding:\tchunked", " identity"]),
            head(&["POST / HTTP/1.0", "Transfer-Encoding: chunked"]),
            b"GET / HTTP/1.1\nHost: x\n\n".to_vec(),
            b"GET / HTTP/1.1\r\nHost: x\n\r\n".to_vec(),
            b"GET / HTTP/1.1\r\nHost: x\rY: z\r\n\r\n".to_vec(),
            head(&["GET / HTTP/1.1", "Host: x", "Bad Name: y"]),
        ];
        for raw in &refused {
            let err = check_head(raw, &LIMITS).expect_err(&String::from_utf8_lossy(raw));
            assert_eq!(err.status, 400, "{}", String::from_utf8_lossy(raw));
        }
    }

    #[test]
    fn large_heads_are_431() {
        let many = head(&["GET / HTTP/1.1", "A: 1", "B: 2", "C: 3", "D: 4", "E: 5"]);
        assert_eq!(check_head(&many, &LIMITS).unwrap_err().status, 431);
        let long = format!("GET / HTTP/1.1\r\nA: {}\r\n\r\n", "x".repeat(600)).into_bytes();
        assert_eq!(check_head(&long, &LIMITS).unwrap_err().status, 431);
    }
}
