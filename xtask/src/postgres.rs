//! A private PostgreSQL server for `run` and `test`: initialised on first use
//! in a folder of ours, listening on loopback only, password-protected, and
//! stopped with a fast shutdown when we are done.

use std::fs;
use std::io::Read as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::prerequisites::{is_root, postgres_bin_dir};

const SUPERUSER: &str = "postgres";

pub struct PostgresServer {
    bin: PathBuf,
    root: PathBuf,
    child: Option<Child>,
    pub port: u16,
    password: String,
    /// PostgreSQL refuses to run as root: as root we run it as `postgres`.
    as_postgres_user: bool,
}

impl PostgresServer {
    /// Starts the server kept in `root` (created and initialised if new).
    pub fn start(root: &Path) -> anyhow::Result<Self> {
        let bin = postgres_bin_dir()
            .context("missing: PostgreSQL server programs (install with `sudo apt-get install postgresql`)")?;
        let as_postgres_user = is_root();
        fs::create_dir_all(root)?;
        let root = root.canonicalize()?;
        let data = root.join("data");
        let password_file = root.join("password");
        if !password_file.exists() {
            fs::write(&password_file, random_hex(16)?)?;
        }
        let password = fs::read_to_string(&password_file)?.trim().to_owned();
        let mut server = Self { bin, root, child: None, port: free_port()?, password, as_postgres_user };
        if as_postgres_user {
            crate::run({
                let mut c = Command::new("chown");
                c.args(["-R", "postgres:postgres"]).arg(&server.root);
                c
            })
            .context("handing the database folder to the `postgres` user")?;
            let mut reachable = server.command_as_postgres("test");
            reachable.args(["-w"]).arg(&server.root);
            if !reachable.status().is_ok_and(|s| s.success()) {
                bail!(
                    "the `postgres` user cannot reach {} (a parent folder is private): clone the project \
                     where other users may enter, or set DATABASE_URL",
                    server.root.display()
                );
            }
        }
        if !data.join("PG_VERSION").exists() {
            let mut initdb = server.command("initdb");
            initdb
                .arg("-D")
                .arg(&data)
                .args(["-U", SUPERUSER, "--auth=scram-sha-256", "-E", "UTF8", "--no-sync", "--pwfile"])
                .arg(&password_file);
            crate::run_quiet(initdb).context("initdb failed")?;
        }
        let log = fs::File::create(server.root.join("server.log"))?;
        let mut postgres = server.command("postgres");
        postgres
            .arg("-D")
            .arg(&data)
            .args(["-h", "127.0.0.1", "-p", &server.port.to_string()])
            .args(["-c", "unix_socket_directories=", "-c", "fsync=off", "-c", "max_connections=200"])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        server.child = Some(postgres.spawn().context("starting postgres")?);
        server.wait_ready()?;
        Ok(server)
    }

    /// A program from PostgreSQL's folder, run as `postgres` when we are root.
    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if self.as_postgres_user { self.command_as_postgres(path) } else { Command::new(path) }
    }

    /// `program` run as the `postgres` user. setpriv execs, so the child's
    /// pid is the program's own and signals reach it directly.
    fn command_as_postgres(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=postgres", "--regid=postgres", "--init-groups", "--"]).arg(program);
        c
    }

    fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                bail!("postgres exited ({status}); its log:\n{}", self.log_tail());
            }
            let mut isready = Command::new(self.bin.join("pg_isready"));
            isready.args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string()]);
            if isready.status().is_ok_and(|s| s.success()) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("postgres did not become ready in 60 s; its log:\n{}", self.log_tail());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log_tail(&self) -> String {
        let log = fs::read_to_string(self.root.join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// The URL of `database` on this server, as the superuser.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://{SUPERUSER}:{}@127.0.0.1:{}/{database}", self.password, self.port)
    }

    /// Creates `database` unless it exists.
    pub fn ensure_database(&self, database: &str) -> anyhow::Result<()> {
        let psql = |sql: &str| {
            let mut c = Command::new(self.bin.join("psql"));
            c.args(["-X", "-q", "-t", "-A", "-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", SUPERUSER])
                .args(["-d", "postgres", "-v", "ON_ERROR_STOP=1", "-c", sql])
                .env("PGPASSWORD", &self.password);
            c
        };
        let exists = psql(&format!("SELECT 1 FROM pg_database WHERE datname = '{database}'")).output()?;
        if String::from_utf8_lossy(&exists.stdout).trim() != "1" {
            crate::run_quiet(psql(&format!("CREATE DATABASE \"{database}\"")))?;
        }
        Ok(())
    }

    /// Fast shutdown: rolls back open transactions and exits cleanly.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        let _ = Command::new("kill").args(["-INT", &child.id().to_string()]).status();
        let _ = child.wait();
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

pub fn random_hex(bytes: usize) -> anyhow::Result<String> {
    Ok(random_bytes(bytes)?.iter().map(|b| format!("{b:02x}")).collect())
}

pub fn random_bytes(count: usize) -> anyhow::Result<Vec<u8>> {
    let mut buf = vec![0u8; count];
    fs::File::open("/dev/urandom")?.read_exact(&mut buf)?;
    Ok(buf)
}
