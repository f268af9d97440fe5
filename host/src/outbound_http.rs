//! Outbound HTTP from guests (`wasi:http/outgoing-handler` in WASIp2,
//! `wasi:http/client` in WASIp3), denied unless the component's
//! `allowed_outbound_hosts` lists the destination, in Spin's syntax:
//!
//! ```toml
//! allowed_outbound_hosts = [
//!   "https://api.example.com",     # the scheme's default port (443)
//!   "http://localhost:3000",
//!   "https://*.example.com",       # any subdomain (not example.com itself)
//!   "http://127.0.0.1:8000-8010",  # a port range
//!   "*://10.0.0.0/8:*",            # any scheme, a network, any port
//!   "postgres://db:5432",          # other schemes are not HTTP's concern
//! ]
//! ```
//!
//! Whatever the list says, the host's own listeners are never reachable
//! from a guest: that would let a guest call any component, past the proxy.
//! Names are resolved here and every address checked; a plain `http`
//! request then goes to the checked address, so a name that resolves
//! differently a moment later cannot slip past.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};

use http::uri::{Authority, Scheme};
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

/// One entry of `allowed_outbound_hosts`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AllowedHost {
    /// `None`: any scheme (`*://`).
    scheme: Option<String>,
    host: HostPattern,
    ports: PortPattern,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Any,
    Exact(String),
    /// `*.example.com`, stored as `.example.com`.
    Subdomains(String),
    Network {
        addr: IpAddr,
        prefix: u8,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PortPattern {
    Any,
    /// The scheme's default port: written without a port.
    Default,
    Range(u16, u16),
}

/// A component's outbound allow-list; empty denies everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedHosts {
    entries: Vec<AllowedHost>,
}

impl AllowedHosts {
    /// Parses Spin's `allowed_outbound_hosts`; the error names the entry.
    pub fn parse(entries: &[String]) -> Result<Self, String> {
        let entries =
            entries.iter().map(|e| parse_entry(e).map_err(|why| format!("`{e}` in allowed_outbound_hosts: {why}")));
        Ok(Self { entries: entries.collect::<Result<_, _>>()? })
    }

    /// Whether a connection to `host:port` over `scheme` may go out, given
    /// the addresses the host resolves to (every one must be allowed).
    pub fn allows_connection(&self, scheme: &str, host: &str, port: u16, resolved: &[IpAddr]) -> bool {
        self.entries.iter().any(|entry| {
            let scheme_ok = entry.scheme.as_deref().is_none_or(|s| s == scheme);
            let port_ok = match entry.ports {
                PortPattern::Any => true,
                PortPattern::Default => port == default_port(scheme),
                PortPattern::Range(low, high) => (low..=high).contains(&port),
            };
            let host_ok = match &entry.host {
                HostPattern::Any => true,
                HostPattern::Exact(name) => *name == host,
                HostPattern::Subdomains(suffix) => host.ends_with(suffix.as_str()),
                HostPattern::Network { addr, prefix } => {
                    !resolved.is_empty() && resolved.iter().all(|ip| in_network(*ip, *addr, *prefix))
                }
            };
            scheme_ok && port_ok && host_ok
        })
    }

    /// Whether any entry could allow `scheme` at all (saves a DNS lookup).
    fn mentions(&self, scheme: &str) -> bool {
        self.entries.iter().any(|e| e.scheme.as_deref().is_none_or(|s| s == scheme))
    }
}

fn default_port(scheme: &str) -> u16 {
    match scheme {
        "https" => 443,
        "postgres" | "postgresql" => 5432,
        "mysql" => 3306,
        "redis" => 6379,
        "mqtt" => 1883,
        _ => 80,
    }
}

fn parse_entry(entry: &str) -> Result<AllowedHost, &'static str> {
    let (scheme, rest) = entry.split_once("://").ok_or("no scheme (write `https://host`)")?;
    let scheme = match scheme {
        "*" => None,
        s if !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b)) => {
            Some(s.to_ascii_lowercase())
        }
        _ => return Err("invalid scheme"),
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains('/') && rest.parse::<IpAddr>().is_err() && !looks_like_network(rest) {
        return Err("a path is not allowed here");
    }
    if rest.contains("{{") {
        return Err("template variables are not supported");
    }
    let (host, port) = split_port(rest);
    let ports = match port {
        None => {
            if scheme.is_none() {
                return Err("`*://` needs a port (`*://host:*`)");
            }
            PortPattern::Default
        }
        Some("*") => PortPattern::Any,
        Some(p) => match p.split_once('-') {
            Some((low, high)) => {
                let (low, high) = (low.parse().map_err(|_| "invalid port")?, high.parse().map_err(|_| "invalid port")?);
                if low > high {
                    return Err("invalid port range");
                }
                PortPattern::Range(low, high)
            }
            None => {
                let port = p.parse().map_err(|_| "invalid port")?;
                PortPattern::Range(port, port)
            }
        },
    };
    let host = host.to_ascii_lowercase();
    let host = if host == "*" {
        HostPattern::Any
    } else if host == "self" || host == "self.alt" {
        return Err("requests to the application itself are not supported");
    } else if let Some(suffix) = host.strip_prefix("*.") {
        if suffix.is_empty() || suffix.contains('*') {
            return Err("invalid host");
        }
        HostPattern::Subdomains(format!(".{suffix}"))
    } else if let Some((addr, prefix)) = host.split_once('/') {
        let addr: IpAddr = addr.trim_matches(['[', ']']).parse().map_err(|_| "invalid network")?;
        let prefix: u8 = prefix.parse().map_err(|_| "invalid network")?;
        if prefix > if addr.is_ipv4() { 32 } else { 128 } {
            return Err("invalid network");
        }
        HostPattern::Network { addr, prefix }
    } else {
        if host.is_empty() || host.contains('*') {
            return Err("invalid host");
        }
        HostPattern::Exact(host.trim_matches(['[', ']']).to_owned())
    };
    Ok(AllowedHost { scheme, host, ports })
}

/// `host[:port]`, where an IPv6 host is bracketed (`[::1]:80`, `[fd00::]/8:*`).
fn split_port(text: &str) -> (&str, Option<&str>) {
    let after_host = if text.starts_with('[') { text.find(']').map_or(text.len(), |i| i + 1) } else { 0 };
    match text[after_host..].rfind(':') {
        Some(i) => (&text[..after_host + i], Some(&text[after_host + i + 1..])),
        None => (text, None),
    }
}

fn looks_like_network(text: &str) -> bool {
    text.split_once('/').is_some_and(|(addr, rest)| {
        addr.trim_matches(['[', ']']).parse::<IpAddr>().is_ok()
            && rest.split(':').next().is_some_and(|p| p.parse::<u8>().is_ok())
    })
}

fn in_network(ip: IpAddr, network: IpAddr, prefix: u8) -> bool {
    match (canonical(ip), canonical(network)) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

/// IPv4-mapped IPv6 addresses as the IPv4 address they are.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The addresses the host itself listens on, which no guest may call.
#[derive(Debug, Default)]
pub struct OwnListeners {
    addrs: RwLock<Vec<SocketAddr>>,
}

impl OwnListeners {
    pub fn add(&self, addr: SocketAddr) {
        self.addrs.write().unwrap_or_else(|e| e.into_inner()).push(addr);
    }

    /// `addr` reaches one of our listeners: same port, on an address of this
    /// machine (loopback, unspecified, or one a socket can be bound to).
    fn contains(&self, addr: SocketAddr) -> bool {
        let ip = canonical(addr.ip());
        let listeners = self.addrs.read().unwrap_or_else(|e| e.into_inner());
        listeners.iter().any(|own| {
            own.port() == addr.port()
                && (ip == canonical(own.ip())
                    || ip.is_loopback()
                    || ip.is_unspecified()
                    || std::net::UdpSocket::bind((ip, 0)).is_ok())
        })
    }
}

/// What one request's guest may reach; the store's `WasiHttpHooks`.
pub struct OutboundHttp {
    pub component: Arc<str>,
    pub allowed: Arc<AllowedHosts>,
    pub own: Arc<OwnListeners>,
}

type Sent = Box<
    dyn Future<
            Output = Result<
                (http::Response<WasiBody>, Box<dyn Future<Output = Result<(), HttpError>> + Send>),
                HttpError,
            >,
        > + Send,
>;

impl WasiHttpHooks for OutboundHttp {
    fn send_request(
        &mut self,
        mut request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> Sent {
        let component = self.component.clone();
        let allowed = self.allowed.clone();
        let own = self.own.clone();
        Box::new(async move {
            let destination = checked_destination(request.uri(), &allowed, &own).await.inspect_err(|e| {
                tracing::warn!(component = %component, uri = %redacted(request.uri()), error = ?e, "outbound request refused");
            })?;
            if request.uri().scheme() == Some(&Scheme::HTTP) {
                pin_to(&mut request, destination)?;
            }
            let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            use http_body_util::BodyExt;
            Ok((response.map(BodyExt::boxed_unsync), Box::new(io) as Box<dyn Future<Output = _> + Send>))
        })
    }
}

/// The address to connect to, once the allow-list and the own-listener
/// rule have both passed for every address the name resolves to.
async fn checked_destination(
    uri: &http::Uri,
    allowed: &AllowedHosts,
    own: &OwnListeners,
) -> Result<SocketAddr, HttpError> {
    let scheme = uri.scheme_str().unwrap_or("https").to_ascii_lowercase();
    let host = uri.host().ok_or(HttpError::HttpRequestUriInvalid)?.trim_matches(['[', ']']).to_ascii_lowercase();
    let port = uri.port_u16().unwrap_or_else(|| default_port(&scheme));
    if !allowed.mentions(&scheme) {
        return Err(HttpError::HttpRequestDenied);
    }
    let resolved: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|_| HttpError::DnsError { rcode: None, info_code: None })?
            .collect(),
    };
    let first = *resolved.first().ok_or(HttpError::DestinationNotFound)?;
    let ips: Vec<IpAddr> = resolved.iter().map(|a| canonical(a.ip())).collect();
    if !allowed.allows_connection(&scheme, &host, port, &ips) {
        return Err(HttpError::HttpRequestDenied);
    }
    if resolved.iter().any(|a| own.contains(*a)) {
        return Err(HttpError::DestinationIpProhibited);
    }
    Ok(first)
}

/// Sends a plain HTTP request to the address that was checked; the `Host`
/// header keeps the name.
fn pin_to(request: &mut http::Request<WasiBody>, destination: SocketAddr) -> Result<(), HttpError> {
    let authority: Authority = destination.to_string().parse().map_err(|_| HttpError::HttpRequestUriInvalid)?;
    let mut parts = request.uri().clone().into_parts();
    parts.authority = Some(authority);
    *request.uri_mut() = http::Uri::from_parts(parts).map_err(|_| HttpError::HttpRequestUriInvalid)?;
    Ok(())
}

/// A URI for the log: no query (it may hold secrets), no user info.
fn redacted(uri: &http::Uri) -> String {
    format!("{}://{}{}", uri.scheme_str().unwrap_or("?"), uri.host().unwrap_or("?"), uri.path())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(entries: &[&str]) -> AllowedHosts {
        AllowedHosts::parse(&entries.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    fn ip(s: &str) -> Vec<IpAddr> {
        vec![s.parse().unwrap()]
    }

    #[test]
    fn nothing_is_allowed_by_default() {
        let none = AllowedHosts::default();
        assert!(!none.allows_connection("https", "example.com", 443, &ip("93.184.216.34")));
        assert!(!none.mentions("http"));
    }

    #[test]
    fn spin_syntax_is_matched_as_spin_does() {
        let allowed = hosts(&[
            "https://api.example.com",
            "http://localhost:3000",
            "https://*.example.org",
            "http://127.0.0.1:8000-8010",
            "*://10.0.0.0/8:*",
            "postgres://db:5432",
        ]);
        let cases = [
            ("https", "api.example.com", 443, "192.0.2.1", true),
            ("https", "api.example.com", 8443, "192.0.2.1", false),
            ("http", "api.example.com", 80, "192.0.2.1", false),
            ("http", "localhost", 3000, "127.0.0.1", true),
            ("http", "localhost", 3001, "127.0.0.1", false),
            ("https", "a.b.example.org", 443, "192.0.2.1", true),
            ("https", "example.org", 443, "192.0.2.1", false),
            ("https", "evilexample.org", 443, "192.0.2.1", false),
            ("http", "127.0.0.1", 8005, "127.0.0.1", true),
            ("http", "127.0.0.1", 8011, "127.0.0.1", false),
            ("https", "internal", 9999, "10.1.2.3", true),
            ("https", "internal", 9999, "11.1.2.3", false),
            ("http", "db", 5432, "192.0.2.1", false),
        ];
        for (scheme, host, port, addr, expected) in cases {
            assert_eq!(
                allowed.allows_connection(scheme, host, port, &ip(addr)),
                expected,
                "{scheme}://{host}:{port} ({addr})"
            );
        }
        assert!(!allowed.allows_connection(
            "https",
            "internal",
            1,
            &["10.0.0.1".parse().unwrap(), "192.0.2.1".parse().unwrap()]
        ));
        assert!(hosts(&["*://*:*"]).allows_connection("http", "anything", 1, &ip("192.0.2.1")));
    }

    #[test]
    fn malformed_entries_are_refused_with_the_entry_named() {
        for entry in [
            "example.com",
            "https://",
            "*://example.com",
            "https://a.com:99999",
            "https://a.com:9-1",
            "http://self",
            "https://{{ host }}",
            "https://a.com/path",
            "https://a.*.com",
            "https://:80",
            "https://10.0.0.0/40:*",
        ] {
            let err = AllowedHosts::parse(&[entry.to_string()]).expect_err(entry);
            assert!(err.contains(entry), "{err}");
        }
        assert!(AllowedHosts::parse(&["https://[::1]:8443".into(), "http://[fd00::]/8:*".into()]).is_ok());
    }

    #[test]
    fn own_listeners_are_recognised_on_every_local_address() {
        let own = OwnListeners::default();
        own.add("127.0.0.1:8081".parse().unwrap());
        for addr in ["127.0.0.1:8081", "127.0.0.2:8081", "0.0.0.0:8081", "[::1]:8081", "[::ffff:127.0.0.1]:8081"] {
            assert!(own.contains(addr.parse().unwrap()), "{addr}");
        }
        assert!(!own.contains("127.0.0.1:8082".parse().unwrap()));
        assert!(!own.contains("192.0.2.1:8081".parse().unwrap()), "a documentation address is not this machine");
    }
}
