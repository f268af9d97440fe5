//! Gatehouse's edge proxy, on Pingora, as a library: the binary
//! (`gatehouse-proxy`, `main.rs`) puts these parts together, and the
//! benchmarks measure them one by one. Each module is one concern; the
//! decisions (paths, routes, tokens, heads) are plain functions.

pub mod balance;
pub mod compression;
pub mod config;
pub mod connections;
pub mod cors;
pub mod discovery;
pub mod files;
pub mod framing;
pub mod gateway;
pub mod headgate;
pub mod identity;
pub mod jwks;
pub mod metrics;
pub mod path;
pub mod ratelimit;
pub mod reload;
pub mod routing;
pub mod tls;
pub mod token;
