//! `gatehouse-healthcheck ADDRESS [PATH]`: exits 0 when `GET PATH` (default
//! `/healthz`) on ADDRESS answers 200 within two seconds, 1 otherwise.
//!
//! The images have no shell and no curl, so their `HEALTHCHECK` runs this.
//! It is built with plain `rustc` in the image build (the standard library
//! only), which keeps it out of the workspace.

use std::io::{Read as _, Write as _};
use std::net::{TcpStream, ToSocketAddrs as _};
use std::process::ExitCode;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(2);

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(address) = args.next() else {
        eprintln!("usage: gatehouse-healthcheck ADDRESS [PATH]");
        return ExitCode::from(2);
    };
    let path = args.next().unwrap_or_else(|| "/healthz".to_owned());
    match probe(&address, &path) {
        Ok(()) => ExitCode::SUCCESS,
        Err(problem) => {
            eprintln!("unhealthy: {problem}");
            ExitCode::FAILURE
        }
    }
}

fn probe(address: &str, path: &str) -> Result<(), String> {
    let socket = address
        .to_socket_addrs()
        .map_err(|e| format!("{address}: {e}"))?
        .next()
        .ok_or_else(|| format!("{address}: no address"))?;
    let mut stream = TcpStream::connect_timeout(&socket, TIMEOUT).map_err(|e| format!("{address}: {e}"))?;
    stream.set_read_timeout(Some(TIMEOUT)).map_err(|e| e.to_string())?;
    stream.set_write_timeout(Some(TIMEOUT)).map_err(|e| e.to_string())?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n").map_err(|e| e.to_string())?;
    let mut head = [0u8; 64];
    let mut read = 0;
    while read < 12 {
        match stream.read(&mut head[read..]) {
            Ok(0) => break,
            Ok(n) => read += n,
            Err(e) => return Err(format!("{address}: {e}")),
        }
    }
    let status_line = String::from_utf8_lossy(&head[..read]);
    let status = status_line.split(' ').nth(1).unwrap_or("none");
    if status == "200" { Ok(()) } else { Err(format!("{address}{path} answered {status}")) }
}
