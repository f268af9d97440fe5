//! The development token signing key: an Ed25519 key pair, its private half
//! as PKCS#8 PEM for the auth service, its public half as a JWKS for the
//! proxy.

use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};

/// A fresh key pair as PKCS#8 PEM.
pub fn generate_pem() -> anyhow::Result<String> {
    let seed: [u8; 32] = devpg::random_bytes(32)?.try_into().expect("32 bytes");
    let key = SigningKey::from_bytes(&seed);
    Ok(key.to_pkcs8_pem(Default::default()).context("encoding the signing key")?.to_string())
}

/// The key id and the one-key JWKS of a PEM private key. The id is the
/// start of the public key, so a new key pair gets a new id.
pub fn public_jwks(private_pem: &str) -> anyhow::Result<(String, String)> {
    let key = SigningKey::from_pkcs8_pem(private_pem).context("reading the signing key")?;
    let public = key.verifying_key();
    let kid = format!("dev-{}", public.as_bytes()[..6].iter().map(|b| format!("{b:02x}")).collect::<String>());
    let x = URL_SAFE_NO_PAD.encode(public.as_bytes());
    let jwks =
        format!(r#"{{"keys":[{{"kty":"OKP","crv":"Ed25519","alg":"EdDSA","use":"sig","kid":"{kid}","x":"{x}"}}]}}"#);
    Ok((kid, jwks))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_reads_back_and_names_itself() {
        let pem = generate_pem().unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        let (kid, jwks) = public_jwks(&pem).unwrap();
        assert!(kid.starts_with("dev-") && kid.len() == 16, "{kid}");
        assert!(jwks.contains(&kid) && !jwks.contains("\"d\""), "{jwks}");
        assert_ne!(public_jwks(&generate_pem().unwrap()).unwrap().0, kid);
    }
}
