//! Access tokens: signed by this service alone, verified by the edge proxy.
//!
//! EdDSA (Ed25519) by default: the private key is a Spin variable from a
//! secret, and its public half is published as a JWKS together with retired
//! keys, which keep verifying until an operator removes them. HS256 with a
//! secret shared with the proxy remains an option. Claims: `sub` (the user
//! id), `exp`, `iat`, `iss`, `aud`, `jti`.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use service::{ApiError, ApiResult};
use uuid::Uuid;

/// `"EdDSA"` (default) or `"HS256"`.
const ALGORITHM_VARIABLE: &str = "jwt_algorithm";
/// PKCS#8 PEM of the Ed25519 signing key.
const PRIVATE_KEY_VARIABLE: &str = "jwt_private_key";
/// The `kid` of the signing key, as the proxy's key set names it.
const KEY_ID_VARIABLE: &str = "jwt_key_id";
/// A JWKS (`{"keys": [...]}`) of retired public keys, still published.
const RETIRED_KEYS_VARIABLE: &str = "jwt_retired_keys";
/// The HS256 secret, shared with the proxy, when that is the algorithm.
const SECRET_KEY_VARIABLE: &str = "secret_key";
const ISSUER_VARIABLE: &str = "jwt_issuer";
const AUDIENCE_VARIABLE: &str = "jwt_audience";
/// Token lifetime in minutes; the original default was eight days.
const EXPIRE_MINUTES_VARIABLE: &str = "access_token_expire_minutes";

pub const DEFAULT_ISSUER: &str = "gatehouse";
pub const DEFAULT_AUDIENCE: &str = "gatehouse";
const DEFAULT_EXPIRE_MINUTES: u64 = 60 * 24 * 8;

#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub exp: u64,
    pub iat: u64,
    pub iss: String,
    pub aud: String,
    pub jti: String,
}

/// How tokens are signed, read from the service's variables.
pub enum Signer {
    EdDsa { key: Box<ed25519_dalek::SigningKey>, kid: String },
    Hs256 { secret: Vec<u8> },
}

impl Signer {
    pub fn from_variables() -> ApiResult<Self> {
        let algorithm = service::variable_or(ALGORITHM_VARIABLE, "EdDSA");
        let required = |name: &str| {
            spin_sdk::variables::get(name)
                .ok()
                .filter(|v| !v.is_empty())
                .ok_or_else(|| ApiError::internal("token signing", format!("variable `{name}` is not set")))
        };
        match algorithm.as_str() {
            "EdDSA" => {
                let pem = required(PRIVATE_KEY_VARIABLE)?;
                let key = ed25519_dalek::SigningKey::from_pkcs8_pem(&pem)
                    .map_err(|e| ApiError::internal("token signing: reading the Ed25519 key", e))?;
                Ok(Signer::EdDsa { key: Box::new(key), kid: required(KEY_ID_VARIABLE)? })
            }
            "HS256" => Ok(Signer::Hs256 { secret: required(SECRET_KEY_VARIABLE)?.into_bytes() }),
            other => Err(ApiError::internal("token signing", format!("unknown algorithm `{other}`"))),
        }
    }

    pub fn sign(&self, claims: &Claims) -> ApiResult<String> {
        let (header, key) = match self {
            Signer::EdDsa { key, kid } => {
                let der = key.to_pkcs8_der().map_err(|e| ApiError::internal("token signing", e))?;
                let mut header = Header::new(Algorithm::EdDSA);
                header.kid = Some(kid.clone());
                (header, EncodingKey::from_ed_der(der.as_bytes()))
            }
            Signer::Hs256 { secret } => (Header::new(Algorithm::HS256), EncodingKey::from_secret(secret)),
        };
        jsonwebtoken::encode(&header, claims, &key).map_err(|e| ApiError::internal("signing a token", e))
    }

    /// The public key set: the signing key's public half (EdDSA only; an
    /// HS256 secret is never published) and every retired key.
    pub fn jwks(&self, retired: &str) -> ApiResult<Value> {
        let mut keys = Vec::new();
        if let Signer::EdDsa { key, kid } = self {
            keys.push(public_jwk(&key.verifying_key(), kid));
        }
        if !retired.trim().is_empty() {
            let retired: Value =
                serde_json::from_str(retired).map_err(|e| ApiError::internal("reading retired keys", e))?;
            let retired = retired["keys"]
                .as_array()
                .ok_or_else(|| ApiError::internal("reading retired keys", "no `keys` array"))?;
            keys.extend(retired.iter().cloned());
        }
        Ok(json!({ "keys": keys }))
    }
}

/// An Ed25519 public key as a JWK (RFC 8037).
pub fn public_jwk(key: &ed25519_dalek::VerifyingKey, kid: &str) -> Value {
    json!({
        "kty": "OKP",
        "crv": "Ed25519",
        "x": URL_SAFE_NO_PAD.encode(key.as_bytes()),
        "kid": kid,
        "alg": "EdDSA",
        "use": "sig",
    })
}

pub fn retired_keys() -> String {
    service::variable_or(RETIRED_KEYS_VARIABLE, "")
}

/// The claims of a token for `user_id` issued at `now` (Unix seconds).
pub fn claims_for(user_id: Uuid, now: u64) -> ApiResult<Claims> {
    let minutes = match spin_sdk::variables::get(EXPIRE_MINUTES_VARIABLE) {
        Ok(value) => value.parse::<u64>().map_err(|e| ApiError::internal("reading the token lifetime", e))?,
        Err(_) => DEFAULT_EXPIRE_MINUTES,
    };
    Ok(Claims {
        sub: user_id.to_string(),
        exp: now + minutes * 60,
        iat: now,
        iss: service::variable_or(ISSUER_VARIABLE, DEFAULT_ISSUER),
        aud: service::variable_or(AUDIENCE_VARIABLE, DEFAULT_AUDIENCE),
        jti: Uuid::new_v4().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation, decode, decode_header};

    fn claims(exp: u64) -> Claims {
        Claims {
            sub: Uuid::from_u128(7).to_string(),
            exp,
            iat: 1,
            iss: DEFAULT_ISSUER.into(),
            aud: DEFAULT_AUDIENCE.into(),
            jti: Uuid::from_u128(9).to_string(),
        }
    }

    fn validation(alg: Algorithm) -> Validation {
        let mut v = Validation::new(alg);
        v.set_audience(&[DEFAULT_AUDIENCE]);
        v.set_issuer(&[DEFAULT_ISSUER]);
        v
    }

    #[test]
    fn eddsa_tokens_carry_the_kid_and_verify_with_the_published_key() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
        let signer = Signer::EdDsa { key: Box::new(key.clone()), kid: "k1".into() };
        let token = signer.sign(&claims(u64::MAX / 2)).unwrap();
        assert_eq!(decode_header(&token).unwrap().kid.as_deref(), Some("k1"));
        let jwks = signer.jwks("").unwrap();
        assert_eq!(jwks["keys"].as_array().unwrap().len(), 1);
        let x = jwks["keys"][0]["x"].as_str().unwrap();
        let decoding = DecodingKey::from_ed_components(x).unwrap();
        let data = decode::<Claims>(&token, &decoding, &validation(Algorithm::EdDSA)).unwrap();
        assert_eq!(data.claims.sub, Uuid::from_u128(7).to_string());
        // The published key holds nothing private.
        assert!(!jwks.to_string().contains(&URL_SAFE_NO_PAD.encode(key.to_bytes())));
    }

    #[test]
    fn retired_keys_are_published_after_the_current_one() {
        let signer =
            Signer::EdDsa { key: Box::new(ed25519_dalek::SigningKey::from_bytes(&[1u8; 32])), kid: "new".into() };
        let old = public_jwk(&ed25519_dalek::SigningKey::from_bytes(&[2u8; 32]).verifying_key(), "old");
        let jwks = signer.jwks(&json!({ "keys": [old] }).to_string()).unwrap();
        let kids: Vec<_> = jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap()).collect();
        assert_eq!(kids, ["new", "old"]);
    }

    #[test]
    fn hs256_is_still_available_and_publishes_nothing() {
        let signer = Signer::Hs256 { secret: b"shared".to_vec() };
        let token = signer.sign(&claims(u64::MAX / 2)).unwrap();
        let data = decode::<Claims>(&token, &DecodingKey::from_secret(b"shared"), &validation(Algorithm::HS256));
        assert!(data.is_ok());
        assert_eq!(signer.jwks("").unwrap(), json!({ "keys": [] }));
    }
}
