//! What the commands need from the machine, and installing what is missing
//! when we may (root on Debian); otherwise one line saying what to do.

use std::path::Path;
use std::process::Command;

use anyhow::{Context as _, bail};

use crate::{command_succeeds, run};

/// A Debian package and how to tell it is already there.
pub struct Package {
    pub name: &'static str,
    pub present: fn() -> bool,
}

pub const CMAKE: Package = Package { name: "cmake", present: || on_path("cmake") };
pub const POSTGRESQL: Package = Package { name: "postgresql", present: || postgres_bin_dir().is_some() };
/// The private PostgreSQL server's TLS certificate is made with it.
pub const OPENSSL: Package = Package { name: "openssl", present: || on_path("openssl") };
/// A real SMTP server for the mail tests (Debian's Python runs it).
pub const AIOSMTPD: Package =
    Package { name: "python3-aiosmtpd", present: || command_succeeds(SMTP_SERVER_PYTHON, &["-c", "import aiosmtpd"]) };
/// The Python that Debian's `python3-aiosmtpd` belongs to.
pub const SMTP_SERVER_PYTHON: &str = "/usr/bin/python3";
/// Node.js and npm build the web frontend (`frontend/`) and run its tests.
pub const NODEJS: Package = Package { name: "nodejs", present: || on_path("node") };
pub const NPM: Package = Package { name: "npm", present: || on_path("npm") };
/// The browser the frontend's tests drive, headless; never downloaded.
pub const CHROMIUM: Package = Package { name: "chromium", present: || Path::new(CHROMIUM_BINARY).is_file() };
pub const CHROMIUM_BINARY: &str = "/usr/bin/chromium";

pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

pub use devpg::{is_root, postgres_bin_dir};

/// Installs the missing packages with apt-get when running as root.
pub fn ensure_packages(packages: &[&Package]) -> anyhow::Result<()> {
    let missing: Vec<&str> = packages.iter().filter(|p| !(p.present)()).map(|p| p.name).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let list = missing.join(" ");
    if !is_root() || !on_path("apt-get") {
        bail!("missing: {list} (install with `sudo apt-get install {list}`)");
    }
    eprintln!("installing {list} from Debian's packages");
    let apt = |args: &[&str]| {
        let mut cmd = Command::new("apt-get");
        cmd.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        cmd
    };
    run(apt(&["-q", "update"]))?;
    let mut install = apt(&["-q", "install", "-y", "--no-install-recommends"]);
    install.args(&missing);
    run(install).with_context(|| format!("installing {list}"))?;
    Ok(())
}

/// Adds the `wasm32-wasip2` target the plugins are built for.
pub fn ensure_wasm_target() -> anyhow::Result<()> {
    let installed = Command::new("rustup").args(["target", "list", "--installed"]).output();
    match installed {
        Ok(out) if String::from_utf8_lossy(&out.stdout).lines().any(|l| l.trim() == "wasm32-wasip2") => Ok(()),
        Ok(_) => {
            eprintln!("adding the wasm32-wasip2 target");
            run({
                let mut c = Command::new("rustup");
                c.args(["target", "add", "wasm32-wasip2"]);
                c
            })
        }
        Err(_) if command_succeeds("rustc", &["--print", "target-libdir", "--target", "wasm32-wasip2"]) => Ok(()),
        Err(_) => {
            bail!("missing: the wasm32-wasip2 Rust target (install rustup, then `rustup target add wasm32-wasip2`)")
        }
    }
}
