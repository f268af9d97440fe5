//! The proxy's proof to the host that a request came through it: an
//! HMAC-SHA256, with a key only the two share, over what the request says
//! about itself. The host keeps `x-gatehouse-user-id` only when the proof
//! checks out (see the host's `identity.rs`, which reads the same format):
//!
//! ```text
//! x-gatehouse-user-id:    the verified user, or absent
//! x-gatehouse-request-id: a fresh id per request
//! x-gatehouse-timestamp:  seconds since the Unix epoch
//! x-gatehouse-signature:  hex(HMAC-SHA256(key, "gatehouse-identity-v1\n" +
//!                         method \n path-and-query \n user-id \n request-id \n timestamp))
//! ```

use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const REQUEST_ID_HEADER: &str = "x-gatehouse-request-id";
pub const TIMESTAMP_HEADER: &str = "x-gatehouse-timestamp";
pub const SIGNATURE_HEADER: &str = "x-gatehouse-signature";

/// Shorter keys are refused at start-up.
pub const MIN_KEY_BYTES: usize = 32;

/// What a request proves about itself to the host.
pub struct Claim<'a> {
    pub method: &'a str,
    pub path_and_query: &'a str,
    pub user_id: &'a str,
    pub request_id: &'a str,
    pub timestamp: u64,
}

/// Signs requests with the key shared with the host.
pub struct IdentitySigner {
    key: Vec<u8>,
}

impl IdentitySigner {
    pub fn new(key: &[u8]) -> Option<Self> {
        (key.len() >= MIN_KEY_BYTES).then(|| Self { key: key.to_vec() })
    }

    pub fn sign(&self, claim: &Claim) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes keys of any length");
        let Claim { method, path_and_query, user_id, request_id, timestamp } = claim;
        mac.update(
            format!("gatehouse-identity-v1\n{method}\n{path_and_query}\n{user_id}\n{request_id}\n{timestamp}")
                .as_bytes(),
        );
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut signature = String::with_capacity(64);
        for byte in mac.finalize().into_bytes() {
            signature.push(HEX[usize::from(byte >> 4)] as char);
            signature.push(HEX[usize::from(byte & 0x0f)] as char);
        }
        signature
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same vector is checked by the host's verifier: the two ends
    /// agree on the format.
    #[test]
    fn signs_the_shared_test_vector() {
        let signer = IdentitySigner::new(b"0123456789abcdef0123456789abcdef").unwrap();
        let claim = Claim {
            method: "GET",
            path_and_query: "/items/api/v1/items/?skip=0",
            user_id: "0b6f1d8e-4c39-4f8a-9a55-3f2b1c7d9e10",
            request_id: "5f0c2a4e-1b7d-4c1e-9a0b-3c8d7e6f5a41",
            timestamp: 1_800_000_000,
        };
        assert_eq!(signer.sign(&claim), "351434e32291927169f2dfae60389e71f77282c02c2e120452fdc14d6483f021");
        assert!(IdentitySigner::new(b"short").is_none());
    }
}
