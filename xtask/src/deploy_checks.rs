//! The checks of `deploy/` (the Helm chart and the images) and `terraform/`,
//! run by `cargo xtask test`. Their tools are Python packages pinned with
//! hashes in `deploy/checks/requirements.txt` (helm-python-sdk carries
//! Helm's own Go SDK, so no helm binary is needed), installed into
//! `target/deploy-venv` when it is missing or the pins changed. The local
//! rehearsal of a rollout (`deploy/checks/rehearse.py`) runs in that venv too.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};

use crate::prerequisites::{Package, ensure_packages};
use crate::{command_succeeds, components_dir, project_root, run, run_quiet, step};

const REQUIREMENTS: &str = "deploy/checks/requirements.txt";
const SCRIPTS: [&str; 2] = ["deploy/checks/check_deploy.py", "terraform/checks/check_terraform.py"];
const REHEARSAL: &str = "deploy/checks/rehearse.py";

/// Debian's `venv` module, for a Python that lacks it.
const PYTHON_VENV: Package =
    Package { name: "python3-venv", present: || command_succeeds("python3", &["-c", "import ensurepip, venv"]) };

/// Renders, lints and scans the chart, the Dockerfiles and the Terraform
/// code; every script runs even when one fails.
pub fn run_deploy_checks() -> anyhow::Result<()> {
    step("deploy and infrastructure checks (Helm chart, images, Terraform)");
    let python = ensure_venv()?;
    let mut failed = Vec::new();
    for script in SCRIPTS {
        let mut check = Command::new(&python);
        check.arg(script).current_dir(project_root());
        if run(check).is_err() {
            failed.push(script);
        }
    }
    if !failed.is_empty() {
        bail!("failed: {}", failed.join(", "));
    }
    Ok(())
}

/// The local rehearsal: what the dev overlay deploys, configured from the
/// chart's rendering, run as processes on a fresh database of the server at
/// `server_url`; the host replicas restarted one by one and the proxy
/// upgraded under load. Fails if a request is lost.
pub fn run_rehearsal(server_url: &str) -> anyhow::Result<()> {
    step("local rehearsal: the dev overlay as processes, a rolling restart and a proxy upgrade under load");
    let python = ensure_venv()?;
    // The tests built these (each package's integration tests need its
    // binary); building them again here would build with other features.
    let bin_dir = project_root().join("target/debug");
    for binary in ["gatehouse-proxy", "gatehouse-host", "gatehouse-setup"] {
        anyhow::ensure!(bin_dir.join(binary).is_file(), "target/debug/{binary} is missing: run the tests first");
    }
    let mut rehearse = Command::new(&python);
    rehearse
        .arg(REHEARSAL)
        .current_dir(project_root())
        .env("GATEHOUSE_REHEARSAL_DATABASE_URL", server_url)
        .env("GATEHOUSE_REHEARSAL_BIN_DIR", bin_dir)
        .env("GATEHOUSE_COMPONENTS_DIR", components_dir());
    run(rehearse)
}

/// The venv's Python, made and filled first if needed. The installed pins
/// are kept beside it, so a changed requirements file means a fresh venv.
fn ensure_venv() -> anyhow::Result<PathBuf> {
    let root = project_root();
    let venv = root.join("target/deploy-venv");
    let python = venv.join("bin/python");
    let stamp = venv.join("installed-requirements.txt");
    let wanted = std::fs::read(root.join(REQUIREMENTS)).with_context(|| format!("reading {REQUIREMENTS}"))?;
    if python.is_file() && std::fs::read(&stamp).is_ok_and(|installed| installed == wanted) {
        return Ok(python);
    }
    ensure_packages(&[&PYTHON_VENV])?;
    eprintln!("installing the check tools into target/deploy-venv (pinned in {REQUIREMENTS})");
    if venv.exists() {
        std::fs::remove_dir_all(&venv).context("removing the old target/deploy-venv")?;
    }
    run_quiet(python_command(&["-m", "venv"], &venv))?;
    let mut install = Command::new(&python);
    install
        .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--require-hashes", "--no-deps", "-r"])
        .arg(root.join(REQUIREMENTS));
    run_quiet(install)?;
    std::fs::write(&stamp, wanted)?;
    Ok(python)
}

fn python_command(args: &[&str], target: &Path) -> Command {
    let mut c = Command::new("python3");
    c.args(args).arg(target);
    c
}
