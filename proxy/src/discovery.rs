//! Upstream servers found by name: each `host:port` of an upstream is
//! resolved again every `resolve_seconds`, so a Kubernetes Service's
//! address, or every pod behind a headless Service, is followed as it
//! changes. A name that does not resolve keeps no server of its own; if no
//! name resolves, the servers known before are kept.

use std::collections::{BTreeSet, HashMap};

use async_trait::async_trait;
use pingora::lb::Backend;
use pingora::lb::discovery::ServiceDiscovery;
use pingora::{Error, ErrorType, Result};

pub struct DnsDiscovery {
    addresses: Vec<String>,
}

impl DnsDiscovery {
    pub fn new(addresses: Vec<String>) -> Self {
        Self { addresses }
    }
}

#[async_trait]
impl ServiceDiscovery for DnsDiscovery {
    async fn discover(&self) -> Result<(BTreeSet<Backend>, HashMap<u64, bool>)> {
        let mut found = BTreeSet::new();
        for address in &self.addresses {
            match tokio::net::lookup_host(address.as_str()).await {
                Ok(addrs) => {
                    for addr in addrs {
                        found.insert(Backend::new(&addr.to_string())?);
                    }
                }
                Err(e) => tracing::warn!(%address, error = %e, "upstream address does not resolve"),
            }
        }
        if found.is_empty() {
            // An error keeps the servers found before.
            return Error::e_explain(ErrorType::ConnectNoRoute, "no upstream address resolves");
        }
        Ok((found, HashMap::new()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn names_and_literal_addresses_resolve_and_nothing_resolving_is_an_error() {
        let discovery = DnsDiscovery::new(vec!["localhost:8081".into(), "10.1.2.3:9000".into()]);
        let (found, _) = discovery.discover().await.unwrap();
        let found: Vec<String> = found.iter().map(|b| b.addr.to_string()).collect();
        assert!(found.contains(&"127.0.0.1:8081".to_owned()), "{found:?}");
        assert!(found.contains(&"10.1.2.3:9000".to_owned()), "{found:?}");
        let nothing = DnsDiscovery::new(vec!["no-such-host.invalid:80".into()]);
        assert!(nothing.discover().await.is_err());
    }
}
