//! Response compression at the edge: gzip or zstd (brotli when enabled),
//! among those the client accepts (`Accept-Encoding`), for answers whose
//! type compresses well and whose size makes it worth it. Pingora's compression module does
//! the encoding; this decides when.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompressionConfig {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Bodies smaller than this (as declared) go as they are.
    #[serde(default = "default_min_bytes")]
    pub min_bytes: u64,
    /// Media types compressed: exact (`application/json`) or a prefix
    /// ending in `/` (`text/`).
    #[serde(default = "default_types")]
    pub types: Vec<String>,
    /// Levels: gzip 1-9, brotli 1-11, zstd 1-22; 0 leaves one out.
    #[serde(default = "default_gzip")]
    pub gzip_level: u32,
    /// Off by default: the brotli encoder of the Pingora pinned (0.9)
    /// flushes at the end of a body but never finishes the stream, which a
    /// strict decoder refuses. Clients accepting brotli get gzip or zstd.
    #[serde(default)]
    pub brotli_level: u32,
    #[serde(default = "default_zstd")]
    pub zstd_level: u32,
}

impl Default for CompressionConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            min_bytes: default_min_bytes(),
            types: default_types(),
            gzip_level: default_gzip(),
            brotli_level: 0,
            zstd_level: default_zstd(),
        }
    }
}

fn yes() -> bool {
    true
}
fn default_min_bytes() -> u64 {
    1024
}
fn default_types() -> Vec<String> {
    ["application/json", "text/", "application/javascript", "application/xml", "image/svg+xml", "application/wasm"]
        .map(String::from)
        .to_vec()
}
fn default_gzip() -> u32 {
    6
}
fn default_zstd() -> u32 {
    3
}

impl CompressionConfig {
    /// The coding to answer with, from the client's `Accept-Encoding` as
    /// RFC 9110 reads it (q-values, `*`, `q=0` refusals), among those
    /// enabled; on a tie, zstd, then brotli, then gzip.
    pub fn negotiate(&self, accept: Option<&str>) -> Option<&'static str> {
        let enabled = [("zstd", self.zstd_level), ("br", self.brotli_level), ("gzip", self.gzip_level)];
        let mut best: Option<(&'static str, f32)> = None;
        for (coding, level) in enabled {
            let q = weight(accept, coding);
            if level > 0 && q > 0.0 && best.is_none_or(|(_, b)| q > b) {
                best = Some((coding, q));
            }
        }
        best.map(|(coding, _)| coding)
    }

    /// Whether an answer of this `content-type` and declared length is
    /// compressed (an undeclared length, a stream, may be).
    pub fn worth_it(&self, content_type: Option<&str>, content_length: Option<u64>) -> bool {
        if !self.enabled || content_length.is_some_and(|n| n < self.min_bytes) {
            return false;
        }
        let Some(media_type) = content_type.and_then(|t| t.split(';').next()).map(|t| t.trim().to_ascii_lowercase())
        else {
            return false;
        };
        self.types.iter().any(|t| if t.ends_with('/') { media_type.starts_with(t.as_str()) } else { media_type == *t })
    }
}

/// The weight (q-value) `accept`, an `Accept-Encoding`, gives `coding`:
/// its own, else that of `*`, else 0 (an unparsable q-value refuses it).
pub fn weight(accept: Option<&str>, coding: &str) -> f32 {
    let offers = accept.into_iter().flat_map(|a| a.split(',')).filter_map(|entry| {
        let mut parts = entry.split(';').map(str::trim);
        let name = parts.next()?.to_ascii_lowercase();
        let q = parts
            .find_map(|p| p.strip_prefix("q=").or_else(|| p.strip_prefix("Q=")))
            .map_or(Some(1.0), |q| q.parse::<f32>().ok())
            .unwrap_or(0.0);
        (!name.is_empty()).then_some((name, q))
    });
    let mut any = None;
    for (name, q) in offers {
        if name == coding {
            return q;
        }
        if name == "*" {
            any = Some(q);
        }
    }
    any.unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clients_preference_among_the_enabled_codings() {
        let c = CompressionConfig::default();
        assert_eq!(c.negotiate(Some("gzip, deflate, br, zstd")), Some("zstd"), "a browser's list: a tie");
        assert_eq!(c.negotiate(Some("br, gzip")), Some("gzip"), "brotli is off by default");
        assert_eq!(c.negotiate(Some("zstd;q=0.5, gzip;q=1.0")), Some("gzip"));
        assert_eq!(c.negotiate(Some("gzip;q=0, *")), Some("zstd"));
        assert_eq!(c.negotiate(Some("*;q=0")), None);
        assert_eq!(c.negotiate(Some("identity")), None);
        assert_eq!(c.negotiate(Some("gzip;q=nonsense")), None);
        assert_eq!(c.negotiate(None), None);
        let with_brotli = CompressionConfig { brotli_level: 4, ..c };
        assert_eq!(with_brotli.negotiate(Some("br, gzip;q=0.8")), Some("br"));
    }

    #[test]
    fn compressed_by_type_and_size() {
        let c = CompressionConfig::default();
        assert!(c.worth_it(Some("application/json"), Some(4096)));
        assert!(c.worth_it(Some("text/html; charset=utf-8"), None), "a stream of a compressible type");
        assert!(c.worth_it(Some("Application/JSON"), Some(2048)));
        assert!(!c.worth_it(Some("application/json"), Some(100)), "too small");
        assert!(!c.worth_it(Some("image/png"), Some(1 << 20)), "already compressed");
        assert!(!c.worth_it(Some("application/octet-stream"), Some(1 << 20)));
        assert!(!c.worth_it(None, Some(1 << 20)), "unknown type");
        assert!(!CompressionConfig { enabled: false, ..c }.worth_it(Some("text/plain"), Some(1 << 20)));
    }
}
