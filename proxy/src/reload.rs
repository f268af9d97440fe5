//! Reloading the configuration without a restart: on SIGHUP, or when the
//! file changes, it is read and checked whole; if it holds, a new
//! [`Policy`] (routes, per-request limits, trusted proxies, rate limits,
//! compression, CORS, retries) is compiled and swapped in. Requests under
//! way finish with the policy they started with, and no connection is
//! touched. A file that does not hold, or that changes what only a restart
//! can (listen addresses, upstream servers, token verification, the
//! identity key), is refused with a log line, and the old policy serves on.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use crate::config::ProxyConfig;
use crate::gateway::{Policy, PolicyCell};
use crate::tls::Certificates;

pub struct Reloader {
    path: PathBuf,
    /// What a reload may not change, as loaded at start.
    fixed: String,
    cell: PolicyCell,
    poll: Option<Duration>,
    /// The TLS certificate, read again with the configuration.
    certificates: Option<Arc<Certificates>>,
}

/// The parts of a configuration only a restart applies, as text to compare.
fn fixed_parts(config: &ProxyConfig) -> String {
    let upstreams: Vec<_> = config.upstream.iter().map(|(name, u)| (name, &u.addresses)).collect();
    // (Listen addresses may be set on the command line instead; a changed
    // one in the file is not applied either way.)
    let listeners = (&config.upgrade_socket, &config.tls, config.h2c);
    format!("{:?} {:?} {:?} {:?} {:?}", upstreams, config.jwt, config.identity_key_env, config.drain_seconds, listeners)
}

fn modified(path: &PathBuf) -> Option<(SystemTime, u64)> {
    std::fs::metadata(path).ok().and_then(|m| Some((m.modified().ok()?, m.len())))
}

impl Reloader {
    pub fn new(
        path: PathBuf,
        config: &ProxyConfig,
        cell: PolicyCell,
        poll: Option<Duration>,
        certificates: Option<Arc<Certificates>>,
    ) -> Self {
        Self { path, fixed: fixed_parts(config), cell, poll, certificates }
    }

    /// Serves the certificate files' new pair, if they changed.
    fn reload_certificates(&self, reason: &str) {
        match self.certificates.as_ref().map(|c| c.reload_if_changed()) {
            Some(Ok(true)) => tracing::info!(reason, "TLS certificate reloaded"),
            Some(Err(why)) => {
                tracing::error!(reason, error = %why, "TLS certificate refused: still serving the one before")
            }
            Some(Ok(false)) | None => {}
        }
    }

    fn reload(&self) -> Result<(), String> {
        let config = ProxyConfig::load(&self.path).map_err(|e| {
            let cause = std::error::Error::source(&e).map(|c| format!(": {c}")).unwrap_or_default();
            format!("{e}{cause}")
        })?;
        if fixed_parts(&config) != self.fixed {
            return Err("upstream servers, token verification, the identity key and the drain time change \
                 only with a restart (or a graceful upgrade)"
                .into());
        }
        self.cell.replace(Policy::new(&config));
        Ok(())
    }
}

#[async_trait]
impl BackgroundService for Reloader {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hangup) = signal(SignalKind::hangup()) else {
            tracing::warn!("no SIGHUP handler: reload on signal is off");
            return;
        };
        let mut seen = modified(&self.path);
        loop {
            let reason = tokio::select! {
                _ = hangup.recv() => {
                    self.reload_certificates("SIGHUP");
                    "SIGHUP"
                }
                () = async {
                    match self.poll {
                        Some(every) => tokio::time::sleep(every).await,
                        None => std::future::pending().await,
                    }
                } => {
                    self.reload_certificates("the files changed");
                    if modified(&self.path) == seen {
                        continue;
                    }
                    "the file changed"
                }
                _ = shutdown.changed() => return,
            };
            seen = modified(&self.path);
            match self.reload() {
                Ok(()) => tracing::info!(reason, path = %self.path.display(), "configuration reloaded"),
                Err(why) => {
                    tracing::error!(reason, error = %why, "reload refused: still serving the configuration loaded before")
                }
            }
        }
    }
}
