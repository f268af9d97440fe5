//! Tracing of the calls guests make into the host, written by hand: which
//! interface and call, how long it took, and whether it succeeded. Never
//! what went in or came out: no SQL text, parameters, rows, keys, values or
//! variable values, which may be secrets. The events are emitted inside the
//! guest's span, so they carry its component and the proxy's request id.
//!
//! Target `gatehouse::host_call`, level DEBUG:
//! `RUST_LOG=info,gatehouse::host_call=debug` shows them.

use std::future::Future;
use std::time::Instant;

/// Runs one host call and records it.
pub(crate) async fn traced<T, E>(
    interface: &'static str,
    call: &'static str,
    work: impl Future<Output = Result<T, E>>,
) -> Result<T, E> {
    let started = Instant::now();
    let result = work.await;
    record(interface, call, result.is_ok(), started);
    result
}

/// Records a call that did not need to wait.
pub(crate) fn record(interface: &'static str, call: &'static str, ok: bool, started: Instant) {
    tracing::debug!(
        target: "gatehouse::host_call",
        interface,
        call,
        ok,
        elapsed_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
    );
}
