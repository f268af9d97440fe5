//! Keeps the proxy's public keys in step with the auth service's JWKS:
//! fetched at start and every refresh period in the background, and once
//! more (at most every `min_interval`) when a token names a `kid` not held.
//! Fetches are single flight; a failed fetch keeps the keys already held.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use crate::token::KeyStore;

pub struct JwksFetcher {
    url: String,
    store: Arc<KeyStore>,
    http: reqwest::Client,
    min_interval: Duration,
    /// Held while fetching (single flight); the time of the last attempt.
    last_attempt: tokio::sync::Mutex<Option<Instant>>,
}

impl JwksFetcher {
    pub fn new(url: String, store: Arc<KeyStore>, min_interval: Duration) -> Self {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().expect("an HTTP client");
        Self { url, store, http, min_interval, last_attempt: tokio::sync::Mutex::new(None) }
    }

    /// Fetches the key set unless a fetch happened within the minimum
    /// interval; concurrent callers wait for the one fetch in flight.
    /// Returns whether this call fetched new keys.
    pub async fn refresh(&self) -> bool {
        let mut last = self.last_attempt.lock().await;
        if last.is_some_and(|at| at.elapsed() < self.min_interval) {
            return false;
        }
        *last = Some(Instant::now());
        match self.fetch().await {
            Ok(count) => {
                tracing::info!(url = %self.url, keys = count, "token keys fetched");
                true
            }
            Err(e) => {
                tracing::warn!(url = %self.url, error = %e, "cannot fetch token keys; keeping those held");
                false
            }
        }
    }

    async fn fetch(&self) -> Result<usize, String> {
        let response = self.http.get(&self.url).send().await.map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("answered {}", response.status()));
        }
        let text = response.text().await.map_err(|e| e.to_string())?;
        self.store.replace_fetched(&text).map_err(|e| e.to_string())
    }
}

/// The periodic refresh, as a Pingora background service.
pub struct JwksRefresher {
    pub fetcher: Arc<JwksFetcher>,
    pub period: Duration,
}

#[async_trait]
impl BackgroundService for JwksRefresher {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        loop {
            // A forced refresh: the minimum interval guards on-demand fetches only.
            *self.fetcher.last_attempt.lock().await = None;
            self.fetcher.refresh().await;
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(self.period) => {}
            }
        }
    }
}
