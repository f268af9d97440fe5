//! The runtime being served, replaced whole when the manifest or a
//! component changes. A request takes the runtime current when it arrives
//! and finishes on it, so a reload never cuts one; the old runtime goes
//! (its pools closed) once its last request has ended. A new runtime is
//! built completely (compiled, linked, databases connected) before it is
//! swapped in, so one that fails is refused and the old keeps serving.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use crate::runtime::Runtime;

pub struct Live {
    current: RwLock<Arc<Runtime>>,
    /// The host's listeners, which every runtime must refuse to call.
    own_listeners: Mutex<Vec<SocketAddr>>,
    draining: AtomicBool,
}

impl Live {
    pub fn new(runtime: Arc<Runtime>) -> Arc<Self> {
        Arc::new(Self {
            current: RwLock::new(runtime),
            own_listeners: Mutex::default(),
            draining: AtomicBool::new(false),
        })
    }

    /// The runtime new requests go to.
    pub fn current(&self) -> Arc<Runtime> {
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn add_own_listener(&self, addr: SocketAddr) {
        self.own_listeners.lock().unwrap_or_else(|e| e.into_inner()).push(addr);
        self.current().add_own_listener(addr);
    }

    /// Not ready any more: shutdown has begun. Reloads stop too.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
        self.current().start_draining();
    }

    /// Makes `runtime` current. Requests already running finish on the
    /// old one, whose pools are closed after the last of them.
    pub fn replace(&self, runtime: Arc<Runtime>) {
        for addr in self.own_listeners.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            runtime.add_own_listener(*addr);
        }
        if self.draining.load(Ordering::Relaxed) {
            runtime.start_draining();
        }
        let old = std::mem::replace(&mut *self.current.write().unwrap_or_else(|e| e.into_inner()), runtime);
        tokio::spawn(async move {
            while Arc::strong_count(&old) > 1 {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            old.close_pools().await;
        });
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }
}

/// What a reload reads, to tell whether anything changed: each file's
/// modification time and length (a Kubernetes ConfigMap update swaps a
/// symlink, which changes both as seen through it).
#[derive(Debug, PartialEq, Eq)]
pub struct Fingerprint(Vec<(PathBuf, Option<(SystemTime, u64)>)>);

impl Fingerprint {
    pub fn of(files: impl IntoIterator<Item = PathBuf>) -> Self {
        Self(
            files
                .into_iter()
                .map(|path| {
                    let seen = std::fs::metadata(&path).ok().and_then(|m| Some((m.modified().ok()?, m.len())));
                    (path, seen)
                })
                .collect(),
        )
    }
}

/// Reloads on SIGHUP, and when one of `files` changes if `poll` is set,
/// until draining starts. `reload` builds the new runtime and says which
/// files it came from; its error is logged and the old runtime keeps
/// serving.
pub async fn watch<F, Fut>(live: Arc<Live>, poll: Option<Duration>, files: Vec<PathBuf>, mut reload: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<(Arc<Runtime>, Vec<PathBuf>)>>,
{
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangup = match signal(SignalKind::hangup()) {
        Ok(hangup) => hangup,
        Err(e) => {
            tracing::warn!(error = %e, "no SIGHUP handler: reload on signal is off");
            return;
        }
    };
    let mut watched = files;
    let mut seen = Fingerprint::of(watched.clone());
    loop {
        let reason = tokio::select! {
            _ = hangup.recv() => "SIGHUP",
            () = sleep_or_forever(poll) => {
                let now = Fingerprint::of(watched.clone());
                if now == seen {
                    continue;
                }
                "a file changed"
            }
        };
        if live.is_draining() {
            return;
        }
        tracing::info!(reason, "reloading");
        // Whatever happens, these files as they are now have been tried.
        seen = Fingerprint::of(watched.clone());
        match reload().await {
            Ok((runtime, files)) => {
                live.replace(runtime);
                watched = files;
                seen = Fingerprint::of(watched.clone());
                tracing::info!("reloaded: new requests go to the new components");
            }
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "reload refused: still serving what was loaded before")
            }
        }
    }
}

async fn sleep_or_forever(poll: Option<Duration>) {
    match poll {
        Some(every) => tokio::time::sleep(every).await,
        None => std::future::pending().await,
    }
}
