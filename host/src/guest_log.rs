//! A guest's stdout and stderr, turned into the host's log lines, tagged
//! with the component's name and the request's span. A guest cannot flood
//! the log: over-long lines are cut, and output never blocks it.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

/// Longest line kept; the rest of a longer line is dropped.
const MAX_LINE: usize = 4096;

#[derive(Clone)]
pub struct GuestLog {
    component: Arc<str>,
    stream: &'static str,
}

impl GuestLog {
    pub fn new(component: Arc<str>, stream: &'static str) -> Self {
        Self { component, stream }
    }
}

impl IsTerminal for GuestLog {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestLog {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(LineWriter { log: self.clone(), line: Vec::new(), truncated: false })
    }
}

struct LineWriter {
    log: GuestLog,
    line: Vec<u8>,
    truncated: bool,
}

impl LineWriter {
    fn emit(&mut self) {
        let text = String::from_utf8_lossy(&self.line);
        let text = text.trim_end_matches('\r');
        let cut = if self.truncated { " [cut]" } else { "" };
        // Standard output is the guest's own chatter; standard error is how
        // a guest (and Rust's panic hook) reports trouble.
        if self.log.stream == "stderr" {
            tracing::warn!(component = %self.log.component, stream = self.log.stream, "guest: {text}{cut}");
        } else {
            tracing::info!(component = %self.log.component, stream = self.log.stream, "guest: {text}{cut}");
        }
        self.line.clear();
        self.truncated = false;
    }

    fn push(&mut self, bytes: &[u8]) {
        for piece in bytes.split_inclusive(|b| *b == b'\n') {
            let (content, ends_line) = match piece.strip_suffix(b"\n") {
                Some(content) => (content, true),
                None => (piece, false),
            };
            let room = MAX_LINE.saturating_sub(self.line.len());
            self.line.extend_from_slice(&content[..content.len().min(room)]);
            self.truncated |= content.len() > room;
            if ends_line {
                self.emit();
            }
        }
    }
}

impl AsyncWrite for LineWriter {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.get_mut().push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        if !self.line.is_empty() {
            self.emit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writer() -> LineWriter {
        LineWriter { log: GuestLog::new("t".into(), "stderr"), line: Vec::new(), truncated: false }
    }

    #[test]
    fn long_lines_are_cut_and_the_next_line_starts_fresh() {
        let mut w = writer();
        w.push(&vec![b'x'; MAX_LINE + 10]);
        assert_eq!(w.line.len(), MAX_LINE);
        assert!(w.truncated);
        w.push(b"\nnext");
        assert_eq!((w.line.as_slice(), w.truncated), (&b"next"[..], false));
    }

    #[test]
    fn lines_split_across_writes_are_joined() {
        let mut w = writer();
        w.push(b"hel");
        w.push(b"lo\nwor");
        assert_eq!(w.line, b"wor");
    }
}
