//! The web frontend (`frontend/`): installed with npm from its lock file,
//! checked (lint, unit tests, type check) and exported to `frontend/out`,
//! which the proxy serves at `/`. npm's cache and the packages stay inside
//! `frontend/` (both ignored by git).

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context as _, bail};

use crate::{project_root, run, step};

/// Next.js 16 needs Node.js 20.9 or newer.
const NODE_AT_LEAST: (u32, u32) = (20, 9);

fn frontend_dir() -> PathBuf {
    project_root().join("frontend")
}

fn npm(args: &[&str]) -> Command {
    let mut cmd = Command::new("npm");
    cmd.current_dir(frontend_dir())
        .args(args)
        .env("npm_config_cache", frontend_dir().join(".npm-cache"))
        .env("npm_config_fund", "false")
        .env("npm_config_audit", "false")
        .env("npm_config_update_notifier", "false")
        // Browsers come from Debian, never from a download.
        .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
        .env("NEXT_TELEMETRY_DISABLED", "1");
    cmd
}

fn check_node_version() -> anyhow::Result<()> {
    let out = Command::new("node").arg("--version").output().context("cannot run `node --version`")?;
    let version = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let mut parts = version.trim_start_matches('v').split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let found = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    if found < NODE_AT_LEAST {
        bail!(
            "the frontend needs Node.js {}.{} or newer, this machine has {version}: install a newer Node.js",
            NODE_AT_LEAST.0,
            NODE_AT_LEAST.1
        );
    }
    Ok(())
}

/// `npm ci` from the committed lock file, unless `node_modules` already
/// holds exactly what it names.
fn install() -> anyhow::Result<()> {
    check_node_version()?;
    let lock = std::fs::read(frontend_dir().join("package-lock.json")).context("reading frontend/package-lock.json")?;
    let installed = frontend_dir().join("node_modules/.installed-package-lock.json");
    if std::fs::read(&installed).is_ok_and(|done| done == lock) {
        return Ok(());
    }
    step("installing the frontend's packages (npm ci, from package-lock.json)");
    run(npm(&["ci", "--prefer-offline"]))?;
    std::fs::write(installed, lock)?;
    Ok(())
}

/// Installs and exports the frontend to `frontend/out`.
pub fn build() -> anyhow::Result<()> {
    install()?;
    step("building the frontend (Next.js static export to frontend/out)");
    run(npm(&["run", "build"]))
}

/// Lint, unit tests, the export and the type check: what the browser
/// tests, run with the Rust tests, then use.
pub fn check_and_build() -> anyhow::Result<()> {
    install()?;
    step("frontend lint (ESLint) and unit tests (Vitest)");
    run(npm(&["run", "lint"]))?;
    run(npm(&["test"]))?;
    build()?;
    // After the build, which writes the type declarations Next.js adds.
    step("frontend type check (tsc)");
    run(npm(&["run", "typecheck"]))
}
