//! A private PostgreSQL server for `cargo xtask run` and the tests:
//! initialised on first use in a folder of ours, listening on loopback
//! only, password-protected, offering TLS with a certificate of its own
//! test CA, and stopped with a fast shutdown when we are done. Tests also
//! restart it, to see clients heal.

use std::fs;
use std::io::Read as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

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
        server.ensure_tls()?;
        if as_postgres_user {
            run_quiet({
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
            run_quiet(initdb).context("initdb failed")?;
        }
        server.launch()?;
        Ok(server)
    }

    fn launch(&mut self) -> anyhow::Result<()> {
        let log = fs::OpenOptions::new().create(true).append(true).open(self.root.join("server.log"))?;
        let tls = self.tls_dir();
        let mut postgres = self.command("postgres");
        postgres
            .arg("-D")
            .arg(self.root.join("data"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-c", "unix_socket_directories=", "-c", "fsync=off", "-c", "max_connections=200"])
            .args(["-c", "ssl=on"])
            .arg("-c")
            .arg(format!("ssl_cert_file={}", tls.join("server.crt").display()))
            .arg("-c")
            .arg(format!("ssl_key_file={}", tls.join("server.key").display()))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        self.child = Some(postgres.spawn().context("starting postgres")?);
        self.wait_ready()
    }

    /// Stops the server and starts it again on the same port and data, as
    /// an operator's restart or a managed database's failover would.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.stop();
        self.launch()
    }

    /// Where the server's TLS material is: `ca.pem` (the CA its certificate
    /// chains to, for `localhost` and `127.0.0.1`), and `other-ca.pem`, a
    /// CA it has nothing to do with.
    pub fn tls_dir(&self) -> PathBuf {
        self.root.join("tls")
    }

    /// Makes the test CAs and the server's certificate, once, with the
    /// `openssl` command.
    fn ensure_tls(&self) -> anyhow::Result<()> {
        let dir = self.tls_dir();
        if dir.join("server.key").exists() {
            return Ok(());
        }
        make_test_certificates(&dir)
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
            run_quiet(psql(&format!("CREATE DATABASE \"{database}\"")))?;
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

/// Runs a command, showing its output only if it fails.
fn run_quiet(mut cmd: Command) -> anyhow::Result<()> {
    let out = cmd.output().with_context(|| format!("cannot start {:?}", cmd.get_program()))?;
    if !out.status.success() {
        bail!(
            "`{:?}` failed ({}):\n{}{}",
            cmd.get_program(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

pub fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// The folder with PostgreSQL's server programs: `PG_BIN_DIR` if set, else
/// the newest of Debian's `/usr/lib/postgresql/<version>/bin`.
pub fn postgres_bin_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("PG_BIN_DIR") {
        return Some(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

/// Makes, in `dir`, two test certificate authorities (`ca.pem`,
/// `other-ca.pem`) and a server certificate for `localhost` and
/// `127.0.0.1` signed by the first (`server.crt`, `server.key`, readable by
/// its owner only), with the `openssl` command.
pub fn make_test_certificates(dir: &Path) -> anyhow::Result<()> {
    let dir = dir.to_owned();
    fs::create_dir_all(&dir)?;
    let openssl = |args: &[&str]| {
        let mut c = Command::new("openssl");
        c.current_dir(&dir).args(args);
        run_quiet(c).context("making the test server's certificate (is `openssl` installed?)")
    };
    let new_ca = |name: &str| {
        let key = format!("{name}.key");
        let pem = format!("{name}.pem");
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "3650",
            "-subj",
            &format!("/CN=gatehouse {name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout",
            &key,
            "-out",
            &pem,
        ])
    };
    new_ca("ca")?;
    new_ca("other-ca")?;
    fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )?;
    openssl(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ])?;
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "3650",
        "-extfile",
        "server.ext",
        "-out",
        "server.crt",
    ])?;
    // The server refuses a key others may read.
    run_quiet({
        let mut c = Command::new("chmod");
        c.arg("600").arg(dir.join("server.key"));
        c
    })
}
