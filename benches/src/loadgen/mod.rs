//! `gatehouse-loadgen`, a load generator for any URL: what it sends
//! ([`scenario`]), how ([`runner`]: closed or open loop, HTTP/1.1 or
//! HTTP/2, over TLS or not) and what it reports ([`report`]: JSON, a
//! summary, SVG charts).

pub mod report;
pub mod runner;
pub mod scenario;

pub use report::Report;
pub use runner::{Credentials, HttpVersion, Mode, Outcome, RunOptions, latency_histogram, run, run_until};
pub use scenario::Scenario;
