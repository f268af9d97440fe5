//! How a server of an upstream pool is chosen for a request: in turn
//! (Pingora's round robin), or the one with the fewest requests in flight
//! from this proxy, for upstreams whose requests differ much in cost.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::Deserialize;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Balance {
    #[default]
    RoundRobin,
    LeastConnections,
}

/// Requests in flight to each server, counted from the choice of the
/// server to the end of the request.
#[derive(Default)]
pub struct InFlight {
    counts: Mutex<HashMap<SocketAddr, usize>>,
    /// Turns among servers tied for the fewest.
    turn: AtomicUsize,
}

impl InFlight {
    pub fn start(&self, server: SocketAddr) {
        *self.lock().entry(server).or_default() += 1;
    }

    pub fn end(&self, server: SocketAddr) {
        let mut counts = self.lock();
        if let Some(n) = counts.get_mut(&server) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(&server);
            }
        }
    }

    /// Of `candidates`, the one with the fewest requests in flight; those
    /// tied take turns.
    pub fn least<T>(&self, candidates: Vec<(SocketAddr, T)>) -> Option<T> {
        let counts: Vec<usize> = {
            let in_flight = self.lock();
            candidates.iter().map(|(addr, _)| in_flight.get(addr).copied().unwrap_or(0)).collect()
        };
        let index = least_loaded(&counts, self.turn.fetch_add(1, Ordering::Relaxed))?;
        candidates.into_iter().nth(index).map(|(_, t)| t)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, usize>> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The index of the smallest count; among equals, the `turn`-th (modulo).
fn least_loaded(counts: &[usize], turn: usize) -> Option<usize> {
    let fewest = *counts.iter().min()?;
    let tied: Vec<usize> = (0..counts.len()).filter(|&i| counts[i] == fewest).collect();
    Some(tied[turn % tied.len()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fewest_in_flight_win_and_ties_take_turns() {
        assert_eq!(least_loaded(&[], 0), None);
        assert_eq!(least_loaded(&[3, 1, 2], 7), Some(1));
        let picks: Vec<usize> = (0..4).map(|turn| least_loaded(&[0, 5, 0], turn).unwrap()).collect();
        assert_eq!(picks, [0, 2, 0, 2]);
    }

    #[test]
    fn requests_are_counted_from_start_to_end() {
        let in_flight = InFlight::default();
        let (a, b): (SocketAddr, SocketAddr) = ("127.0.0.1:1".parse().unwrap(), "127.0.0.1:2".parse().unwrap());
        in_flight.start(a);
        in_flight.start(a);
        in_flight.start(b);
        assert_eq!(in_flight.least(vec![(a, "a"), (b, "b")]), Some("b"));
        in_flight.end(a);
        in_flight.end(a);
        assert_eq!(in_flight.least(vec![(a, "a"), (b, "b")]), Some("a"));
        in_flight.end(b);
        in_flight.end(b);
        assert!(in_flight.lock().is_empty(), "an extra end is harmless");
    }
}
