//! Bearer token verification at the edge: HS256 JWTs signed by the auth
//! service, whose `sub` is the user's id.

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("Not authenticated")]
    Missing,
    #[error("Could not validate credentials")]
    Invalid,
}

/// Who the caller is, once the token checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The user id (`sub`), a UUID in its canonical text form.
    pub user_id: String,
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
}

/// The key and rules every token is checked against.
pub struct TokenVerifier {
    key: DecodingKey,
    validation: Validation,
}

impl TokenVerifier {
    pub fn new(secret: &[u8], leeway_seconds: u64) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = leeway_seconds;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Self { key: DecodingKey::from_secret(secret), validation }
    }

    /// Checks an `Authorization` header value (`Bearer <jwt>`).
    pub fn verify_bearer_token(&self, authorization: Option<&[u8]>) -> Result<Identity, AuthError> {
        let header = authorization.ok_or(AuthError::Missing)?;
        let header = std::str::from_utf8(header).map_err(|_| AuthError::Invalid)?;
        let (scheme, token) = header.trim().split_once(' ').ok_or(AuthError::Missing)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(AuthError::Missing);
        }
        let data = jsonwebtoken::decode::<Claims>(token.trim(), &self.key, &self.validation)
            .map_err(|_| AuthError::Invalid)?;
        // Services key everything on the UUID; anything else is forged or foreign.
        let user_id = canonical_uuid(&data.claims.sub).ok_or(AuthError::Invalid)?;
        Ok(Identity { user_id })
    }
}

/// The lower-case hyphenated form of a UUID, or `None` if `text` is not one.
fn canonical_uuid(text: &str) -> Option<String> {
    let hex: String = text.chars().filter(|c| *c != '-').collect();
    let groups = [8, 4, 4, 4, 12];
    let shaped = text.len() == 36
        && text.split('-').map(str::len).eq(groups.iter().copied())
        && hex.len() == 32
        && hex.chars().all(|c| c.is_ascii_hexdigit());
    shaped.then(|| text.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header, encode};
    use serde_json::json;

    const SECRET: &[u8] = b"edge-test-secret";
    const USER: &str = "0b6f1d8e-4c39-4f8a-9a55-3f2b1c7d9e10";

    fn now() -> u64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
    }

    fn token(claims: serde_json::Value, secret: &[u8], alg: Algorithm) -> String {
        encode(&Header::new(alg), &claims, &EncodingKey::from_secret(secret)).unwrap()
    }

    fn bearer(t: &str) -> Vec<u8> {
        format!("Bearer {t}").into_bytes()
    }

    #[test]
    fn accepts_a_valid_token() {
        let v = TokenVerifier::new(SECRET, 0);
        let t = token(json!({"sub": USER, "exp": now() + 60}), SECRET, Algorithm::HS256);
        assert_eq!(v.verify_bearer_token(Some(&bearer(&t))), Ok(Identity { user_id: USER.into() }));
    }

    #[test]
    fn missing_or_other_scheme_is_missing() {
        let v = TokenVerifier::new(SECRET, 0);
        assert_eq!(v.verify_bearer_token(None), Err(AuthError::Missing));
        assert_eq!(v.verify_bearer_token(Some(b"Basic abc")), Err(AuthError::Missing));
        assert_eq!(v.verify_bearer_token(Some(b"Bearer")), Err(AuthError::Missing));
    }

    #[test]
    fn rejects_wrong_key_expired_tampered_and_foreign_subjects() {
        let v = TokenVerifier::new(SECRET, 0);
        let cases = [
            token(json!({"sub": USER, "exp": now() + 60}), b"other-key", Algorithm::HS256),
            token(json!({"sub": USER, "exp": now() - 10}), SECRET, Algorithm::HS256),
            token(json!({"sub": USER}), SECRET, Algorithm::HS256),
            token(json!({"sub": "admin", "exp": now() + 60}), SECRET, Algorithm::HS256),
            token(json!({"sub": USER, "exp": now() + 60}), SECRET, Algorithm::HS512),
            "not.a.jwt".to_string(),
        ];
        for t in &cases {
            assert_eq!(v.verify_bearer_token(Some(&bearer(t))), Err(AuthError::Invalid), "{t}");
        }
    }

    #[test]
    fn a_changed_payload_breaks_the_signature() {
        let v = TokenVerifier::new(SECRET, 0);
        let t = token(json!({"sub": USER, "exp": now() + 60}), SECRET, Algorithm::HS256);
        let mut parts: Vec<String> = t.split('.').map(str::to_owned).collect();
        let other =
            token(json!({"sub": "11111111-2222-3333-4444-555555555555", "exp": now() + 60}), b"x", Algorithm::HS256);
        parts[1] = other.split('.').nth(1).unwrap().to_owned();
        assert_eq!(v.verify_bearer_token(Some(&bearer(&parts.join(".")))), Err(AuthError::Invalid));
    }

    #[test]
    fn uuids_are_canonicalised() {
        assert_eq!(canonical_uuid(&USER.to_uppercase()).as_deref(), Some(USER));
        assert_eq!(canonical_uuid("0b6f1d8e4c394f8a9a553f2b1c7d9e10"), None);
        assert_eq!(canonical_uuid("zb6f1d8e-4c39-4f8a-9a55-3f2b1c7d9e10"), None);
    }
}
