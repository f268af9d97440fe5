//! TLS termination at the edge, for deployments with no load balancer in
//! front: the certificate and key are read from files and read again when
//! they change (a renewed certificate, a rotated Secret), without a
//! restart; handshakes under way keep the pair they started with. A new
//! pair that does not load, or whose key does not match, is refused with a
//! log line and the old one serves on.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use pingora::tls::sign::CertifiedKey;
use pingora::tls::{ClientHello, CryptoProvider, ResolvesServerCert};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Address of the TLS listener (beside the plain `listen` one).
    pub listen: std::net::SocketAddr,
    /// PEM files: the certificate chain (leaf first) and its private key;
    /// relative to the configuration file's folder.
    pub certificate: PathBuf,
    pub private_key: PathBuf,
    /// Offer HTTP/2 (ALPN `h2`, then `http/1.1`).
    #[serde(default = "yes")]
    pub h2: bool,
}

fn yes() -> bool {
    true
}

/// The certificate served now, by path, as a rustls resolver.
pub struct Certificates {
    certificate: PathBuf,
    private_key: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
    /// The files' modification times and sizes when last loaded.
    loaded: Mutex<Option<Stamp>>,
}

type Stamp = [(SystemTime, u64); 2];

impl std::fmt::Debug for Certificates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certificates").field("certificate", &self.certificate).finish_non_exhaustive()
    }
}

impl Certificates {
    pub fn load(config: &TlsConfig) -> Result<Arc<Self>, String> {
        let stamp = stamp(&config.certificate, &config.private_key);
        let key = read_pair(&config.certificate, &config.private_key)?;
        Ok(Arc::new(Self {
            certificate: config.certificate.clone(),
            private_key: config.private_key.clone(),
            current: RwLock::new(Arc::new(key)),
            loaded: Mutex::new(stamp),
        }))
    }

    /// Reads the files again if they changed since last read: whether a
    /// new pair is served now, or why it was refused.
    pub fn reload_if_changed(&self) -> Result<bool, String> {
        let now = stamp(&self.certificate, &self.private_key);
        let mut loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        if now.is_none() || now == *loaded {
            return Ok(false);
        }
        // Tried once per change: a refused pair is not read again until it
        // changes once more.
        *loaded = now;
        let key = read_pair(&self.certificate, &self.private_key)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(key);
        Ok(true)
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().unwrap_or_else(|e| e.into_inner()).clone())
    }
}

fn stamp(certificate: &Path, private_key: &Path) -> Option<Stamp> {
    let one = |p: &Path| std::fs::metadata(p).ok().and_then(|m| Some((m.modified().ok()?, m.len())));
    Some([one(certificate)?, one(private_key)?])
}

/// The pair in these files, checked to belong together. Errors name the
/// files, never their contents.
fn read_pair(certificate: &Path, private_key: &Path) -> Result<CertifiedKey, String> {
    pingora::tls::install_default_crypto_provider();
    let (cert, key) = (certificate.display().to_string(), private_key.display().to_string());
    let (chain, key_der) = pingora::tls::load_certs_and_key_files(&cert, &key)
        .map_err(|e| format!("TLS: cannot read {cert} or {key}: {e}"))?
        .ok_or_else(|| format!("TLS: {cert} holds no certificate or {key} no private key"))?;
    let provider = CryptoProvider::get_default().ok_or("TLS: no cryptography provider")?;
    CertifiedKey::from_der(chain, key_der, provider)
        .map_err(|e| format!("TLS: the key in {key} does not fit the certificate in {cert}: {e}"))
}
