//! Identity reaches a component only from the proxy. The proxy signs each
//! request (see its `identity.rs` for the format): an HMAC-SHA256, with a
//! key only the two share, over the method, path and query, user id,
//! request id and a timestamp. Here the proof is checked, in constant time
//! and within a small clock window; a request without a valid one has every
//! `x-gatehouse-*` header removed before the guest sees it, so a request
//! sent straight to the host cannot claim to be anyone.

use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use http::HeaderMap;
use sha2::Sha256;

const PREFIX: &str = "x-gatehouse-";
const USER_ID: &str = "x-gatehouse-user-id";
const REQUEST_ID: &str = "x-gatehouse-request-id";
const TIMESTAMP: &str = "x-gatehouse-timestamp";
const SIGNATURE: &str = "x-gatehouse-signature";

/// Shorter keys are refused at start-up.
pub const MIN_KEY_BYTES: usize = 32;
/// How far the proxy's clock and ours may disagree, in seconds.
const CLOCK_WINDOW_SECONDS: u64 = 30;

/// Checks the proxy's proof; without a key, no request carries identity.
#[derive(Clone, Default)]
pub struct IdentityVerifier {
    key: Option<Vec<u8>>,
}

/// What became of a request's identity headers.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Signed by the proxy: the user id (if any) and request id stay.
    Proven,
    /// No proof was offered: any identity headers were removed.
    Unsigned,
    /// A proof that does not hold (forged, altered, or too old).
    Refused,
}

impl IdentityVerifier {
    /// `None` for a key shorter than [`MIN_KEY_BYTES`].
    pub fn new(key: Option<&[u8]>) -> Option<Self> {
        match key {
            Some(key) if key.len() < MIN_KEY_BYTES => None,
            key => Some(Self { key: key.map(<[u8]>::to_vec) }),
        }
    }

    pub fn has_key(&self) -> bool {
        self.key.is_some()
    }

    /// Keeps the identity headers only when their proof holds; removes the
    /// proof itself either way (a guest has no use for it).
    pub fn admit(&self, method: &str, path_and_query: &str, headers: &mut HeaderMap) -> Verdict {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let verdict = self.check(method, path_and_query, headers, now);
        let keep: &[&str] = if verdict == Verdict::Proven { &[USER_ID, REQUEST_ID] } else { &[] };
        let remove: Vec<_> = headers
            .keys()
            .filter(|name| name.as_str().starts_with(PREFIX) && !keep.contains(&name.as_str()))
            .cloned()
            .collect();
        for name in remove {
            headers.remove(name);
        }
        verdict
    }

    fn check(&self, method: &str, path_and_query: &str, headers: &HeaderMap, now: u64) -> Verdict {
        let one = |name: &str| {
            let mut values = headers.get_all(name).iter();
            match (values.next(), values.next()) {
                (Some(value), None) => value.to_str().ok(),
                _ => None,
            }
        };
        let Some(signature) = headers.get(SIGNATURE) else { return Verdict::Unsigned };
        let (Some(key), Some(signature), Some(request_id), Some(timestamp)) =
            (&self.key, signature.to_str().ok().and_then(hex), one(REQUEST_ID), one(TIMESTAMP))
        else {
            return Verdict::Refused;
        };
        let user_id = match headers.get_all(USER_ID).iter().count() {
            0 => "",
            1 => match one(USER_ID) {
                Some(user_id) => user_id,
                None => return Verdict::Refused,
            },
            _ => return Verdict::Refused,
        };
        let Ok(stamp) = timestamp.parse::<u64>() else { return Verdict::Refused };
        if stamp.abs_diff(now) > CLOCK_WINDOW_SECONDS {
            return Verdict::Refused;
        }
        let mac = mac(key, method, path_and_query, user_id, request_id, timestamp);
        // `verify_slice` compares in constant time.
        if mac.verify_slice(&signature).is_ok() { Verdict::Proven } else { Verdict::Refused }
    }
}

fn mac(
    key: &[u8],
    method: &str,
    path_and_query: &str,
    user_id: &str,
    request_id: &str,
    timestamp: &str,
) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(
        format!("gatehouse-identity-v1\n{method}\n{path_and_query}\n{user_id}\n{request_id}\n{timestamp}").as_bytes(),
    );
    mac
}

/// The headers the proxy sends for a request by `user_id`, signed now with
/// `key`: for tests and tools that talk to the host directly.
pub fn signed_headers(key: &[u8], method: &str, path_and_query: &str, user_id: &str) -> Vec<(&'static str, String)> {
    let timestamp = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()).to_string();
    let request_id = uuid::Uuid::new_v4().to_string();
    let signature = mac(key, method, path_and_query, user_id, &request_id, &timestamp).finalize().into_bytes();
    let signature = signature.iter().map(|b| format!("{b:02x}")).collect();
    vec![(USER_ID, user_id.to_owned()), (REQUEST_ID, request_id), (TIMESTAMP, timestamp), (SIGNATURE, signature)]
}

fn hex(text: &str) -> Option<Vec<u8>> {
    if text.len() != 64 {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";
    const PATH: &str = "/items/api/v1/items/?skip=0";
    const NOW: u64 = 1_800_000_000;

    /// The proxy's test vector: the two ends agree on the format.
    fn signed() -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(USER_ID, HeaderValue::from_static("0b6f1d8e-4c39-4f8a-9a55-3f2b1c7d9e10"));
        headers.insert(REQUEST_ID, HeaderValue::from_static("5f0c2a4e-1b7d-4c1e-9a0b-3c8d7e6f5a41"));
        headers.insert(TIMESTAMP, HeaderValue::from_static("1800000000"));
        headers.insert(
            SIGNATURE,
            HeaderValue::from_static("351434e32291927169f2dfae60389e71f77282c02c2e120452fdc14d6483f021"),
        );
        headers
    }

    fn verifier() -> IdentityVerifier {
        IdentityVerifier::new(Some(KEY)).unwrap()
    }

    #[test]
    fn the_proxys_signature_is_proven() {
        assert_eq!(verifier().check("GET", PATH, &signed(), NOW), Verdict::Proven);
        assert_eq!(verifier().check("GET", PATH, &signed(), NOW + 30), Verdict::Proven);
    }

    #[test]
    fn anything_changed_or_stale_is_refused() {
        let v = verifier();
        assert_eq!(v.check("POST", PATH, &signed(), NOW), Verdict::Refused, "another method");
        assert_eq!(v.check("GET", "/items/api/v1/items/?skip=1", &signed(), NOW), Verdict::Refused, "another path");
        assert_eq!(v.check("GET", PATH, &signed(), NOW + 31), Verdict::Refused, "too old");
        assert_eq!(v.check("GET", PATH, &signed(), NOW - 31), Verdict::Refused, "from the future");
        let mut other_user = signed();
        other_user.insert(USER_ID, HeaderValue::from_static("11111111-2222-3333-4444-555555555555"));
        assert_eq!(v.check("GET", PATH, &other_user, NOW), Verdict::Refused, "another user");
        let mut twice = signed();
        twice.append(USER_ID, HeaderValue::from_static("11111111-2222-3333-4444-555555555555"));
        assert_eq!(v.check("GET", PATH, &twice, NOW), Verdict::Refused, "two user ids");
        let mut bad_hex = signed();
        bad_hex.insert(SIGNATURE, HeaderValue::from_static("zz"));
        assert_eq!(v.check("GET", PATH, &bad_hex, NOW), Verdict::Refused);
        let other_key = IdentityVerifier::new(Some(b"another key that is long enough!")).unwrap();
        assert_eq!(other_key.check("GET", PATH, &signed(), NOW), Verdict::Refused, "another key");
        let keyless = IdentityVerifier::new(None).unwrap();
        assert_eq!(keyless.check("GET", PATH, &signed(), NOW), Verdict::Refused, "no key: nothing is proven");
        assert!(IdentityVerifier::new(Some(b"short")).is_none());
    }

    #[test]
    fn unproven_identity_headers_are_removed() {
        let mut headers = HeaderMap::new();
        headers.insert(USER_ID, HeaderValue::from_static("forged"));
        headers.insert("x-gatehouse-superuser", HeaderValue::from_static("true"));
        headers.insert("accept", HeaderValue::from_static("*/*"));
        assert_eq!(verifier().admit("GET", PATH, &mut headers), Verdict::Unsigned);
        assert_eq!(headers.len(), 1, "{headers:?}");
        let mut headers = signed();
        assert_eq!(verifier().admit("GET", PATH, &mut headers), Verdict::Refused, "the clock is now, not 2027");
        assert!(headers.get(USER_ID).is_none());
    }
}
