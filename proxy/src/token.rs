//! Bearer token verification at the edge: JWTs signed by the auth service,
//! whose `sub` is the user's id.
//!
//! EdDSA (Ed25519) by default, with the public keys of a JWKS chosen by the
//! token's `kid`: a retired key keeps verifying for as long as the key set
//! lists it. HS256 with a shared secret is the alternative. Either way the
//! algorithm is fixed by configuration, never taken from the token, and
//! `exp`, `nbf`, `iss` and `aud` are checked.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("Not authenticated")]
    Missing,
    #[error("Could not validate credentials")]
    Invalid,
    /// Signed with a `kid` the proxy does not know (yet): worth one look
    /// at the auth service's key set before refusing.
    #[error("Could not validate credentials")]
    UnknownKey,
}

/// A key set the proxy cannot use; found at start-up, not per request.
#[derive(Debug, thiserror::Error)]
pub enum KeySetError {
    #[error("the key set is not a JWKS document: {0}")]
    Parse(serde_json::Error),
    #[error("key `{kid}`: {problem}")]
    Key { kid: String, problem: String },
    #[error("the key set has no keys")]
    Empty,
}

/// Who the caller is, once the token checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The user id (`sub`), a UUID in its canonical text form.
    pub user_id: String,
}

/// The claims read besides the library's own checks. Typed strictly: an
/// `exp` or `nbf` that is a string, a float or negative fails here.
#[derive(Deserialize)]
#[allow(dead_code)]
struct Claims {
    sub: String,
    exp: u64,
    #[serde(default)]
    nbf: Option<u64>,
    /// When the token was issued; one from the future is refused.
    #[serde(default)]
    iat: Option<u64>,
}

/// What every token must satisfy besides its signature.
#[derive(Debug, Clone)]
pub struct TokenRules {
    pub issuer: String,
    pub audience: String,
    pub leeway_seconds: u64,
}

enum Keys {
    Secret(DecodingKey),
    Public(Arc<KeyStore>),
}

/// Public keys by `kid`: those configured, and those last fetched from the
/// auth service's JWKS (replaced as a whole by each successful fetch).
#[derive(Default)]
pub struct KeyStore {
    configured: HashMap<String, DecodingKey>,
    fetched: RwLock<Arc<HashMap<String, DecodingKey>>>,
    /// Bumped by every change of the fetched keys, so a token verified
    /// with a key since withdrawn is checked again.
    generation: AtomicU64,
}

impl KeyStore {
    fn get(&self, kid: &str) -> Option<DecodingKey> {
        self.configured
            .get(kid)
            .cloned()
            .or_else(|| self.fetched.read().unwrap_or_else(|e| e.into_inner()).get(kid).cloned())
    }

    /// Replaces the fetched keys with those of `jwks`; on an unusable
    /// document the keys already held stay.
    pub fn replace_fetched(&self, jwks: &str) -> Result<usize, KeySetError> {
        let keys = parse_jwks(jwks)?;
        let count = keys.len();
        let mut fetched = self.fetched.write().unwrap_or_else(|e| e.into_inner());
        let changed = fetched.len() != keys.len()
            || keys.iter().any(|(kid, key)| fetched.get(kid).is_none_or(|held| held.as_bytes() != key.as_bytes()));
        if changed {
            *fetched = Arc::new(keys);
            self.generation.fetch_add(1, Ordering::Relaxed);
        }
        Ok(count)
    }
}

/// The Ed25519 keys of a JWKS document, each with its `kid`.
fn parse_jwks(jwks: &str) -> Result<HashMap<String, DecodingKey>, KeySetError> {
    let set: JwkSet = serde_json::from_str(jwks).map_err(KeySetError::Parse)?;
    let mut keys = HashMap::new();
    for jwk in &set.keys {
        let kid = jwk.common.key_id.clone().unwrap_or_default();
        let problem = |problem: &str| KeySetError::Key { kid: kid.clone(), problem: problem.into() };
        if kid.is_empty() {
            return Err(problem("no `kid`"));
        }
        if !matches!(jwk.algorithm, jsonwebtoken::jwk::AlgorithmParameters::OctetKeyPair(_)) {
            return Err(problem("not an Ed25519 (OKP) key"));
        }
        let key = DecodingKey::from_jwk(jwk).map_err(|e| problem(&e.to_string()))?;
        if keys.insert(kid.clone(), key).is_some() {
            return Err(problem("listed twice"));
        }
    }
    if keys.is_empty() {
        return Err(KeySetError::Empty);
    }
    Ok(keys)
}

/// The keys and rules every token is checked against.
pub struct TokenVerifier {
    keys: Keys,
    validation: Validation,
    max_token_bytes: usize,
    cache: VerifiedTokens,
}

/// Tokens already verified, by their whole text (never the signature
/// alone: a known signature on another payload must not hit), with the
/// identity and the last second they are good for. Bounded: when full,
/// expired entries go, and if none had expired, all of them.
#[derive(Default)]
struct VerifiedTokens {
    capacity: usize,
    entries: Mutex<HashMap<Box<str>, Verified>>,
}

struct Verified {
    identity: Identity,
    /// `exp` plus the leeway.
    valid_until: u64,
    key_generation: u64,
}

impl VerifiedTokens {
    fn get(&self, token: &str, now: u64, key_generation: u64) -> Option<Identity> {
        if self.capacity == 0 {
            return None;
        }
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let hit = entries.get(token)?;
        (now <= hit.valid_until && hit.key_generation == key_generation).then(|| hit.identity.clone())
    }

    fn insert(&self, token: &str, verified: Verified, now: u64) {
        if self.capacity == 0 {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= self.capacity {
            entries.retain(|_, v| now <= v.valid_until);
            if entries.len() >= self.capacity {
                entries.clear();
            }
        }
        entries.insert(token.into(), verified);
    }
}

/// Longest token accepted unless configured otherwise.
const DEFAULT_MAX_TOKEN_BYTES: usize = 8 * 1024;

impl TokenVerifier {
    /// HS256 with a secret shared with the auth service.
    pub fn hs256(secret: &[u8], rules: &TokenRules) -> Self {
        Self {
            keys: Keys::Secret(DecodingKey::from_secret(secret)),
            validation: validation(Algorithm::HS256, rules),
            max_token_bytes: DEFAULT_MAX_TOKEN_BYTES,
            cache: VerifiedTokens::default(),
        }
    }

    /// EdDSA with the Ed25519 keys of a JWKS document; each needs a `kid`.
    pub fn eddsa(jwks: &str, rules: &TokenRules) -> Result<Self, KeySetError> {
        Ok(Self::eddsa_with_store(KeyStore { configured: parse_jwks(jwks)?, ..KeyStore::default() }, rules))
    }

    /// EdDSA with keys only fetched later (see [`TokenVerifier::key_store`]).
    pub fn eddsa_fetched(rules: &TokenRules) -> Self {
        Self::eddsa_with_store(KeyStore::default(), rules)
    }

    fn eddsa_with_store(store: KeyStore, rules: &TokenRules) -> Self {
        Self {
            keys: Keys::Public(Arc::new(store)),
            validation: validation(Algorithm::EdDSA, rules),
            max_token_bytes: DEFAULT_MAX_TOKEN_BYTES,
            cache: VerifiedTokens::default(),
        }
    }

    /// The public keys, for the fetcher that keeps them fresh.
    pub fn key_store(&self) -> Option<Arc<KeyStore>> {
        match &self.keys {
            Keys::Public(store) => Some(store.clone()),
            Keys::Secret(_) => None,
        }
    }

    /// Refuses tokens longer than `bytes` before any parsing.
    pub fn with_max_token_bytes(mut self, bytes: usize) -> Self {
        self.max_token_bytes = bytes;
        self
    }

    /// Remembers up to `entries` verified tokens until they expire (0: none).
    pub fn with_cache(mut self, entries: usize) -> Self {
        self.cache = VerifiedTokens { capacity: entries, ..VerifiedTokens::default() };
        self
    }

    fn key_generation(&self) -> u64 {
        match &self.keys {
            Keys::Public(store) => store.generation.load(Ordering::Relaxed),
            Keys::Secret(_) => 0,
        }
    }

    /// Checks an `Authorization` header value (`Bearer <jwt>`).
    pub fn verify_bearer_token(&self, authorization: Option<&[u8]>) -> Result<Identity, AuthError> {
        let header = authorization.ok_or(AuthError::Missing)?;
        let header = std::str::from_utf8(header).map_err(|_| AuthError::Invalid)?;
        let (scheme, token) = header.trim().split_once(' ').ok_or(AuthError::Missing)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(AuthError::Missing);
        }
        let token = token.trim();
        if token.len() > self.max_token_bytes {
            return Err(AuthError::Invalid);
        }
        let now = jsonwebtoken::get_current_timestamp();
        let key_generation = self.key_generation();
        if let Some(identity) = self.cache.get(token, now, key_generation) {
            return Ok(identity);
        }
        let key = match &self.keys {
            Keys::Secret(key) => key.clone(),
            Keys::Public(store) => {
                let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Invalid)?;
                // Only EdDSA is looked up: an unknown kid on anything else is
                // not worth fetching keys for.
                if header.alg != Algorithm::EdDSA {
                    return Err(AuthError::Invalid);
                }
                let kid = header.kid.ok_or(AuthError::Invalid)?;
                store.get(&kid).ok_or(AuthError::UnknownKey)?
            }
        };
        let data = jsonwebtoken::decode::<Claims>(token, &key, &self.validation).map_err(|_| AuthError::Invalid)?;
        if data.claims.iat.is_some_and(|iat| iat > now + self.validation.leeway) {
            return Err(AuthError::Invalid);
        }
        // Services key everything on the UUID; anything else is forged or foreign.
        let user_id = canonical_uuid(&data.claims.sub).ok_or(AuthError::Invalid)?;
        let identity = Identity { user_id };
        let valid_until = data.claims.exp.saturating_add(self.validation.leeway);
        self.cache.insert(token, Verified { identity: identity.clone(), valid_until, key_generation }, now);
        Ok(identity)
    }
}

fn validation(algorithm: Algorithm, rules: &TokenRules) -> Validation {
    let mut validation = Validation::new(algorithm);
    validation.leeway = rules.leeway_seconds;
    validation.validate_nbf = true;
    validation.set_issuer(&[&rules.issuer]);
    validation.set_audience(&[&rules.audience]);
    validation.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
    validation
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
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use ed25519_dalek::pkcs8::EncodePrivateKey;
    use jsonwebtoken::{EncodingKey, Header, encode};
    use serde_json::json;

    const SECRET: &[u8] = b"edge-test-secret";
    const USER: &str = "0b6f1d8e-4c39-4f8a-9a55-3f2b1c7d9e10";

    fn rules() -> TokenRules {
        TokenRules { issuer: "gatehouse".into(), audience: "gatehouse".into(), leeway_seconds: 0 }
    }

    fn now() -> u64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
    }

    fn claims(extra: serde_json::Value) -> serde_json::Value {
        let mut c = json!({"sub": USER, "exp": now() + 60, "iss": "gatehouse", "aud": "gatehouse"});
        c.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        c
    }

    fn hs(claims: serde_json::Value, secret: &[u8], alg: Algorithm) -> String {
        encode(&Header::new(alg), &claims, &EncodingKey::from_secret(secret)).unwrap()
    }

    fn ed_key(seed: u8) -> ed25519_dalek::SigningKey {
        ed25519_dalek::SigningKey::from_bytes(&[seed; 32])
    }

    fn ed(claims: serde_json::Value, key: &ed25519_dalek::SigningKey, kid: Option<&str>) -> String {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = kid.map(str::to_owned);
        let der = key.to_pkcs8_der().unwrap();
        encode(&header, &claims, &EncodingKey::from_ed_der(der.as_bytes())).unwrap()
    }

    fn jwks(keys: &[(&ed25519_dalek::SigningKey, &str)]) -> String {
        let keys: Vec<_> = keys
            .iter()
            .map(|(key, kid)| {
                json!({"kty": "OKP", "crv": "Ed25519", "kid": kid,
                       "x": URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes())})
            })
            .collect();
        json!({ "keys": keys }).to_string()
    }

    fn bearer(t: &str) -> Vec<u8> {
        format!("Bearer {t}").into_bytes()
    }

    #[test]
    fn accepts_a_valid_token() {
        let v = TokenVerifier::hs256(SECRET, &rules());
        let t = hs(claims(json!({})), SECRET, Algorithm::HS256);
        assert_eq!(v.verify_bearer_token(Some(&bearer(&t))), Ok(Identity { user_id: USER.into() }));
    }

    #[test]
    fn missing_or_other_scheme_is_missing() {
        let v = TokenVerifier::hs256(SECRET, &rules());
        assert_eq!(v.verify_bearer_token(None), Err(AuthError::Missing));
        assert_eq!(v.verify_bearer_token(Some(b"Basic abc")), Err(AuthError::Missing));
        assert_eq!(v.verify_bearer_token(Some(b"Bearer")), Err(AuthError::Missing));
    }

    #[test]
    fn rejects_wrong_key_expired_early_foreign_and_tampered() {
        let v = TokenVerifier::hs256(SECRET, &rules());
        let cases = [
            hs(claims(json!({})), b"other-key", Algorithm::HS256),
            hs(claims(json!({"exp": now() - 10})), SECRET, Algorithm::HS256),
            hs(json!({"sub": USER, "iss": "gatehouse", "aud": "gatehouse"}), SECRET, Algorithm::HS256),
            hs(claims(json!({"nbf": now() + 600})), SECRET, Algorithm::HS256),
            hs(claims(json!({"iat": now() + 600})), SECRET, Algorithm::HS256),
            hs(claims(json!({"exp": (now() + 60).to_string()})), SECRET, Algorithm::HS256),
            hs(claims(json!({"exp": -1})), SECRET, Algorithm::HS256),
            hs(claims(json!({"exp": (now() + 60) as f64 + 0.5})), SECRET, Algorithm::HS256),
            hs(claims(json!({"exp": 1e300})), SECRET, Algorithm::HS256),
            hs(claims(json!({"sub": 42})), SECRET, Algorithm::HS256),
            hs(claims(json!({"iss": "someone-else"})), SECRET, Algorithm::HS256),
            hs(claims(json!({"aud": "another-app"})), SECRET, Algorithm::HS256),
            hs(json!({"sub": USER, "exp": now() + 60}), SECRET, Algorithm::HS256),
            hs(claims(json!({"sub": "admin"})), SECRET, Algorithm::HS256),
            hs(claims(json!({})), SECRET, Algorithm::HS512),
            "not.a.jwt".to_string(),
        ];
        for t in &cases {
            assert_eq!(v.verify_bearer_token(Some(&bearer(t))), Err(AuthError::Invalid), "{t}");
        }
    }

    #[test]
    fn a_changed_payload_breaks_the_signature() {
        let v = TokenVerifier::hs256(SECRET, &rules());
        let t = hs(claims(json!({})), SECRET, Algorithm::HS256);
        let mut parts: Vec<String> = t.split('.').map(str::to_owned).collect();
        let other = hs(claims(json!({"sub": "11111111-2222-3333-4444-555555555555"})), b"x", Algorithm::HS256);
        parts[1] = other.split('.').nth(1).unwrap().to_owned();
        assert_eq!(v.verify_bearer_token(Some(&bearer(&parts.join(".")))), Err(AuthError::Invalid));
    }

    #[test]
    fn eddsa_picks_the_key_by_kid_and_keeps_retired_keys_working() {
        let (current, retired, stranger) = (ed_key(1), ed_key(2), ed_key(3));
        let v = TokenVerifier::eddsa(&jwks(&[(&current, "k2"), (&retired, "k1")]), &rules()).unwrap();
        for (key, kid) in [(&current, "k2"), (&retired, "k1")] {
            let t = ed(claims(json!({})), key, Some(kid));
            assert_eq!(v.verify_bearer_token(Some(&bearer(&t))), Ok(Identity { user_id: USER.into() }), "{kid}");
        }
        let refused = [
            ed(claims(json!({})), &stranger, Some("k2")),
            ed(claims(json!({})), &current, Some("k1")),
            ed(claims(json!({})), &current, None),
            ed(claims(json!({"nbf": now() + 600})), &current, Some("k2")),
            // An HS256 token "signed" with the public key must not pass.
            hs(claims(json!({})), current.verifying_key().as_bytes(), Algorithm::HS256),
        ];
        for t in &refused {
            assert_eq!(v.verify_bearer_token(Some(&bearer(t))), Err(AuthError::Invalid), "{t}");
        }
        let unknown = ed(claims(json!({})), &current, Some("k9"));
        assert_eq!(v.verify_bearer_token(Some(&bearer(&unknown))), Err(AuthError::UnknownKey));
    }

    #[test]
    fn fetched_keys_verify_and_replace_each_other() {
        let (old, new) = (ed_key(4), ed_key(5));
        let v = TokenVerifier::eddsa_fetched(&rules());
        let t_old = ed(claims(json!({})), &old, Some("old"));
        assert_eq!(v.verify_bearer_token(Some(&bearer(&t_old))), Err(AuthError::UnknownKey), "nothing fetched yet");
        let store = v.key_store().unwrap();
        store.replace_fetched(&jwks(&[(&old, "old")])).unwrap();
        assert!(v.verify_bearer_token(Some(&bearer(&t_old))).is_ok());
        assert!(store.replace_fetched("{not json").is_err());
        assert!(v.verify_bearer_token(Some(&bearer(&t_old))).is_ok(), "a bad fetch keeps the keys held");
        store.replace_fetched(&jwks(&[(&new, "new")])).unwrap();
        assert_eq!(
            v.verify_bearer_token(Some(&bearer(&t_old))),
            Err(AuthError::UnknownKey),
            "removed keys stop working"
        );
        assert!(v.verify_bearer_token(Some(&bearer(&ed(claims(json!({})), &new, Some("new"))))).is_ok());
    }

    #[test]
    fn the_cache_serves_only_the_same_token_while_its_key_and_time_hold() {
        let (key, other) = (ed_key(6), ed_key(7));
        let v = TokenVerifier::eddsa_fetched(&rules()).with_cache(2);
        let store = v.key_store().unwrap();
        store.replace_fetched(&jwks(&[(&key, "k")])).unwrap();
        let t = ed(claims(json!({})), &key, Some("k"));
        assert!(v.verify_bearer_token(Some(&bearer(&t))).is_ok());
        assert!(v.verify_bearer_token(Some(&bearer(&t))).is_ok(), "served from the cache");
        // The cached signature on another payload is not a hit.
        let mut parts: Vec<String> = t.split('.').map(str::to_owned).collect();
        parts[1] = URL_SAFE_NO_PAD.encode(claims(json!({"sub": "11111111-2222-3333-4444-555555555555"})).to_string());
        assert_eq!(v.verify_bearer_token(Some(&bearer(&parts.join(".")))), Err(AuthError::Invalid));
        // The same keys fetched again keep the cache; withdrawn ones empty it.
        store.replace_fetched(&jwks(&[(&key, "k")])).unwrap();
        assert_eq!(store.generation.load(Ordering::Relaxed), 1);
        store.replace_fetched(&jwks(&[(&other, "o")])).unwrap();
        assert_eq!(v.verify_bearer_token(Some(&bearer(&t))), Err(AuthError::UnknownKey));
    }

    #[test]
    fn cached_tokens_expire_and_the_cache_stays_bounded() {
        let v = TokenVerifier::hs256(SECRET, &rules()).with_cache(2);
        let verified = |user: &str, valid_until| Verified {
            identity: Identity { user_id: user.into() },
            valid_until,
            key_generation: 0,
        };
        let now = now();
        v.cache.insert("a", verified("a", now + 10), now);
        assert!(v.cache.get("a", now + 10, 0).is_some());
        assert!(v.cache.get("a", now + 11, 0).is_none(), "past exp");
        assert!(v.cache.get("a", now, 1).is_none(), "other keys");
        v.cache.insert("b", verified("b", now - 1), now);
        v.cache.insert("c", verified("c", now + 10), now);
        assert!(v.cache.get("a", now, 0).is_some(), "only the expired entry made room");
        v.cache.insert("d", verified("d", now + 10), now);
        assert_eq!(v.cache.entries.lock().unwrap().len(), 1, "full of live entries: emptied");
    }

    #[test]
    fn unusable_key_sets_are_refused_at_start() {
        assert!(TokenVerifier::eddsa("{", &rules()).is_err());
        assert!(matches!(TokenVerifier::eddsa(r#"{"keys": []}"#, &rules()), Err(KeySetError::Empty)));
        let no_kid = jwks(&[(&ed_key(1), "")]);
        assert!(TokenVerifier::eddsa(&no_kid, &rules()).is_err());
        let twice = jwks(&[(&ed_key(1), "a"), (&ed_key(2), "a")]);
        assert!(TokenVerifier::eddsa(&twice, &rules()).is_err());
    }

    #[test]
    fn oversized_tokens_are_refused_unread() {
        let v = TokenVerifier::hs256(SECRET, &rules()).with_max_token_bytes(64);
        let t = hs(claims(json!({})), SECRET, Algorithm::HS256);
        assert!(t.len() > 64);
        assert_eq!(v.verify_bearer_token(Some(&bearer(&t))), Err(AuthError::Invalid));
    }

    #[test]
    fn uuids_are_canonicalised() {
        assert_eq!(canonical_uuid(&USER.to_uppercase()).as_deref(), Some(USER));
        assert_eq!(canonical_uuid("0b6f1d8e4c394f8a9a553f2b1c7d9e10"), None);
        assert_eq!(canonical_uuid("zb6f1d8e-4c39-4f8a-9a55-3f2b1c7d9e10"), None);
    }
}
