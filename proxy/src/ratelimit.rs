//! Token-bucket rate limits, and the client address they are keyed by.
//! Plain functions and data; the clock is passed in.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Deserialize;

/// What a limit counts requests by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RateKey {
    /// The client's address.
    Ip,
    /// The verified user (on routes that require a token), else the address.
    User,
    /// The account a login or recovery names (the form's `username`, or
    /// the email in the path), so one account cannot be guessed at from
    /// many addresses; requests naming none are counted by address.
    Username,
}

/// A named limit from the configuration:
///
/// ```toml
/// [rate_limit.login]
/// per_second = 0.2   # the sustained rate
/// burst = 5          # requests allowed at once
/// key = "username"
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateRule {
    pub per_second: f64,
    pub burst: f64,
    pub key: RateKey,
}

struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// One rule's buckets, one per key. The map is bounded: past `max_keys`,
/// buckets that have refilled (and so hold no state worth keeping) go.
pub struct RateLimiter {
    pub rule: RateRule,
    buckets: Mutex<HashMap<String, Bucket>>,
    max_keys: usize,
}

impl RateLimiter {
    pub fn new(rule: RateRule) -> Self {
        Self { rule, buckets: Mutex::new(HashMap::new()), max_keys: 100_000 }
    }

    /// Takes one token for `key`, or says how long until one is there.
    pub fn check(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let RateRule { per_second, burst, .. } = self.rule;
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= self.max_keys && !buckets.contains_key(key) {
            buckets.retain(|_, b| b.tokens + now.duration_since(b.updated).as_secs_f64() * per_second < burst);
            if buckets.len() >= self.max_keys {
                // Every tracked key is active: refuse rather than forget them.
                return Err(Duration::from_secs(1));
            }
        }
        let bucket = buckets.entry(key.to_owned()).or_insert(Bucket { tokens: burst, updated: now });
        let refilled = bucket.tokens + now.duration_since(bucket.updated).as_secs_f64() * per_second;
        bucket.tokens = refilled.min(burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / per_second))
        }
    }
}

/// An IPv4 or IPv6 network, `10.0.0.0/8` or `fd00::/8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl std::str::FromStr for Network {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (addr, prefix) = text.split_once('/').unwrap_or((text, ""));
        let addr: IpAddr = addr.parse().map_err(|_| format!("`{text}` is not an address or network"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix =
            if prefix.is_empty() { max } else { prefix.parse().map_err(|_| format!("`{text}`: bad prefix"))? };
        if prefix > max {
            return Err(format!("`{text}`: prefix longer than the address"));
        }
        Ok(Self { addr, prefix })
    }
}

impl<'de> Deserialize<'de> for Network {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

impl Network {
    pub fn contains(&self, ip: IpAddr) -> bool {
        let bits = |ip: IpAddr| -> u128 {
            match ip {
                IpAddr::V4(v4) => u32::from(v4) as u128,
                IpAddr::V6(v6) => u128::from(v6),
            }
        };
        let width = if self.addr.is_ipv4() { 32 } else { 128 };
        if self.addr.is_ipv4() != ip.is_ipv4() {
            return false;
        }
        if self.prefix == 0 {
            return true;
        }
        let shift = width - self.prefix as u32;
        bits(self.addr) >> shift == bits(ip) >> shift
    }
}

/// The client's address: the connection's peer, unless that peer is a
/// trusted proxy (the load balancer), in which case the right-most address
/// of `X-Forwarded-For` that is not itself a trusted proxy. Addresses a
/// client wrote itself, to the left, are never believed.
pub fn client_ip(peer: IpAddr, forwarded_for: &[&str], trusted: &[Network]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let chain = forwarded_for.iter().flat_map(|v| v.split(',')).map(str::trim).collect::<Vec<_>>();
    for entry in chain.iter().rev() {
        match entry.parse::<IpAddr>() {
            Ok(ip) if is_trusted(ip) => continue,
            Ok(ip) => return ip,
            // A malformed entry: nothing to its left can be attributed.
            Err(_) => break,
        }
    }
    peer
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(per_second: f64, burst: f64) -> RateLimiter {
        RateLimiter::new(RateRule { per_second, burst, key: RateKey::Ip })
    }

    #[test]
    fn a_burst_then_the_sustained_rate() {
        let l = limiter(2.0, 3.0);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(l.check("a", t0), Ok(()));
        }
        let wait = l.check("a", t0).unwrap_err();
        assert!((wait.as_secs_f64() - 0.5).abs() < 1e-6, "{wait:?}");
        assert_eq!(l.check("b", t0), Ok(()), "keys are counted apart");
        assert_eq!(l.check("a", t0 + Duration::from_millis(500)), Ok(()));
        assert!(l.check("a", t0 + Duration::from_millis(500)).is_err());
        // Idle time refills, up to the burst only.
        let later = t0 + Duration::from_secs(60);
        for _ in 0..3 {
            assert_eq!(l.check("a", later), Ok(()));
        }
        assert!(l.check("a", later).is_err());
    }

    #[test]
    fn the_key_map_stays_bounded() {
        let mut l = limiter(1.0, 1.0);
        l.max_keys = 2;
        let t0 = Instant::now();
        assert!(l.check("a", t0).is_ok() && l.check("b", t0).is_ok());
        assert!(l.check("c", t0).is_err(), "both tracked keys are still active");
        let later = t0 + Duration::from_secs(5);
        assert!(l.check("c", later).is_ok(), "refilled buckets made room");
        assert!(l.buckets.lock().unwrap().len() <= 2);
    }

    #[test]
    fn networks_match_by_prefix() {
        let n: Network = "10.0.0.0/8".parse().unwrap();
        assert!(n.contains("10.1.2.3".parse().unwrap()));
        assert!(!n.contains("11.0.0.1".parse().unwrap()));
        assert!(!n.contains("::1".parse().unwrap()));
        let one: Network = "127.0.0.1".parse().unwrap();
        assert!(one.contains("127.0.0.1".parse().unwrap()) && !one.contains("127.0.0.2".parse().unwrap()));
        let v6: Network = "fd00::/8".parse().unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<Network>().is_err() && "nope".parse::<Network>().is_err());
    }

    #[test]
    fn forwarded_addresses_count_only_behind_a_trusted_proxy() {
        let trusted: Vec<Network> = vec!["10.0.0.0/8".parse().unwrap()];
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        // Straight from the internet: the header is the client's own words.
        assert_eq!(client_ip(ip("203.0.113.9"), &["1.2.3.4"], &trusted), ip("203.0.113.9"));
        // Through the load balancer: the address it saw, not what the client wrote before it.
        assert_eq!(client_ip(ip("10.0.0.5"), &["1.2.3.4, 198.51.100.7"], &trusted), ip("198.51.100.7"));
        assert_eq!(client_ip(ip("10.0.0.5"), &["198.51.100.7", "10.0.0.9"], &trusted), ip("198.51.100.7"));
        assert_eq!(client_ip(ip("10.0.0.5"), &[], &trusted), ip("10.0.0.5"));
        assert_eq!(client_ip(ip("10.0.0.5"), &["garbage"], &trusted), ip("10.0.0.5"));
    }
}
