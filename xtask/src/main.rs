//! The project's two commands:
//!
//! - `cargo xtask run`  — builds everything and serves the platform on
//!   <http://127.0.0.1:8080>, on a private PostgreSQL unless `DATABASE_URL`
//!   is set.
//! - `cargo xtask test` — formatting, lints, unit tests, integration tests on
//!   a real PostgreSQL, and the end-to-end test through proxy, host and
//!   components.
//!
//! Both install what the machine lacks (when run as root on Debian) or say
//! in one line what is missing.

mod bench;
mod deploy_checks;
mod frontend;
mod prerequisites;
mod signing_key;

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::prerequisites::{
    AIOSMTPD, CHROMIUM, CHROMIUM_BINARY, CMAKE, NODEJS, NPM, OPENSSL, POSTGRESQL, SMTP_SERVER_PYTHON, ensure_packages,
    ensure_wasm_target,
};
use devpg::PostgresServer;

const USAGE: &str = "usage: cargo xtask <run [--release] | test | bench [load options] | build-plugins>";

/// Development defaults, printed when used. Override them in the environment.
const DEV_FIRST_SUPERUSER: &str = "admin@example.com";
const DEV_FIRST_SUPERUSER_PASSWORD: &str = "changethis";
const PROXY_ADDRESS: &str = "127.0.0.1:8080";
const HOST_ADDRESS: &str = "127.0.0.1:8081";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("run") => run_platform(args.iter().any(|a| a == "--release")),
        Some("test") => test_everything(),
        Some("build-plugins") => build_plugins(),
        Some("bench") => bench::bench(&args[1..]),
        _ => {
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(project_root());
    c
}

/// Runs a command, failing with its name if it fails.
pub fn run(mut cmd: Command) -> anyhow::Result<()> {
    let status = cmd.status().with_context(|| format!("cannot start {:?}", cmd.get_program()))?;
    check(&cmd, status)
}

/// Runs a command, showing its output only if it fails.
pub fn run_quiet(mut cmd: Command) -> anyhow::Result<()> {
    let out = cmd.output().with_context(|| format!("cannot start {:?}", cmd.get_program()))?;
    if !out.status.success() {
        eprintln!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    }
    check(&cmd, out.status)
}

fn check(cmd: &Command, status: ExitStatus) -> anyhow::Result<()> {
    if !status.success() {
        let args: Vec<_> = cmd.get_args().map(|a| a.to_string_lossy()).collect();
        bail!("`{} {}` failed ({status})", cmd.get_program().to_string_lossy(), args.join(" "));
    }
    Ok(())
}

pub fn command_succeeds(program: &str, args: &[&str]) -> bool {
    Command::new(program).args(args).output().is_ok_and(|o| o.status.success())
}

fn step(what: &str) {
    eprintln!("\n==> {what}");
}

/// Cargo in the plugins' workspace. Cargo reads `.cargo/config.toml` from the
/// directory it runs in, so it must run there to build for wasm32-wasip2.
fn plugins_cargo() -> Command {
    let mut c = cargo();
    c.current_dir(project_root().join("plugins"));
    c
}

/// Builds the proxy, the host, the setup and the mailer, and the `extra`
/// packages in the same build (one build: packages built apart may unify
/// features differently and build a crate twice); returns the folder with
/// their binaries.
fn build_binaries(release: bool, extra: &[&str]) -> anyhow::Result<PathBuf> {
    let mut build = cargo();
    build.args(["build", "--locked", "-p", "proxy", "-p", "host", "-p", "setup", "-p", "mailer"]);
    for package in extra {
        build.args(["-p", package]);
    }
    if release {
        build.arg("--release");
    }
    run(build)?;
    Ok(project_root().join("target").join(if release { "release" } else { "debug" }))
}

fn components_dir() -> PathBuf {
    project_root().join("target/wasm32-wasip2/release")
}

/// Builds the services as WebAssembly components (release: they are small
/// and are run, not debugged).
fn build_plugins() -> anyhow::Result<()> {
    ensure_wasm_target()?;
    step("building the plugins (wasm32-wasip2 components)");
    let mut build = plugins_cargo();
    build.args(["build", "--release", "--locked", "--workspace"]);
    run(build)
}

/// How the platform is built and started.
struct PlatformOptions<'a> {
    release: bool,
    /// The proxy's configuration, relative to the project's root.
    proxy_config: &'a str,
    /// Packages built along with the platform's own.
    extra_packages: &'a [&'a str],
}

/// The running platform: the private database (unless `DATABASE_URL` is
/// set), the host and the proxy.
struct Platform {
    children: Children,
    postgres: Option<PostgresServer>,
    database_url: String,
    superuser: String,
    superuser_password: String,
    identity_key: String,
}

impl Platform {
    /// Builds what is needed and starts everything, in dependency order.
    fn start(options: &PlatformOptions) -> anyhow::Result<Self> {
        let release = options.release;
        let database_url = std::env::var("DATABASE_URL").ok();
        let mut needed = vec![&CMAKE, &NODEJS, &NPM];
        if database_url.is_none() {
            needed.extend([&POSTGRESQL, &OPENSSL]);
        }
        ensure_packages(&needed)?;
        build_plugins()?;
        // The pages the proxy serves at `/` (deploy/proxy.toml's `[files.frontend]`).
        frontend::build()?;
        step("building the proxy and the host");
        let bin_dir = build_binaries(release, options.extra_packages)?;

        let state_dir = project_root().join(".gatehouse");
        let (database_url, postgres) = match database_url {
            Some(url) => {
                eprintln!("using the database at DATABASE_URL");
                (url, None)
            }
            None => {
                step("starting the private PostgreSQL server (data in .gatehouse/postgres)");
                let server = PostgresServer::start(&state_dir.join("postgres"))?;
                server.ensure_database("gatehouse")?;
                (server.url("gatehouse"), Some(server))
            }
        };
        let keys = signing_keys(&state_dir)?;
        let identity_key = identity_key(&state_dir)?;
        let superuser = env_or_default("FIRST_SUPERUSER", DEV_FIRST_SUPERUSER);
        let superuser_password = env_or_default("FIRST_SUPERUSER_PASSWORD", DEV_FIRST_SUPERUSER_PASSWORD);
        let mut platform = Self {
            children: Children::default(),
            postgres,
            database_url: database_url.clone(),
            superuser,
            superuser_password,
            identity_key,
        };

        step("applying the schema migrations and creating the first superuser");
        let mut setup = Command::new(bin_dir.join("gatehouse-setup"));
        setup
            .current_dir(project_root())
            .args(["--manifest", "deploy/host.toml"])
            .env("DATABASE_URL", &database_url)
            .env("FIRST_SUPERUSER", &platform.superuser)
            .env("FIRST_SUPERUSER_PASSWORD", &platform.superuser_password);
        run(setup)?;

        step("starting the host (compiling components takes a moment)");
        let mut host = Command::new(bin_dir.join("gatehouse-host"));
        host.current_dir(project_root())
            .args(["--manifest", "deploy/host.toml", "--listen", HOST_ADDRESS])
            .arg("--compile-cache")
            .arg(state_dir.join("compile-cache"))
            .env("DATABASE_URL", &database_url)
            .env("JWT_PRIVATE_KEY", &keys.private_pem)
            .env("JWT_KEY_ID", &keys.key_id)
            .env(IDENTITY_KEY_ENV, &platform.identity_key);
        platform.children.spawn("host", host)?;
        platform.children.wait_listening("host", HOST_ADDRESS.parse()?, Duration::from_secs(300))?;

        step("starting the mailer");
        let mut mailer = Command::new(bin_dir.join("gatehouse-mailer"));
        mailer.current_dir(project_root()).env("DATABASE_URL", &database_url);
        if std::env::var_os("SMTP_HOST").is_none() {
            eprintln!("SMTP_HOST not set: mail (password reset links) is written to the mailer's log, not sent");
            mailer.arg("--log-only");
        }
        platform.children.spawn("mailer", mailer)?;

        step("starting the proxy");
        let mut proxy = Command::new(bin_dir.join("gatehouse-proxy"));
        proxy
            .current_dir(project_root())
            .args(["--config", options.proxy_config, "--listen", PROXY_ADDRESS])
            .env("JWT_PUBLIC_KEYS", &keys.public_jwks)
            .env(IDENTITY_KEY_ENV, &platform.identity_key);
        platform.children.spawn("proxy", proxy)?;
        platform.children.wait_listening("proxy", PROXY_ADDRESS.parse()?, Duration::from_secs(30))?;
        Ok(platform)
    }

    /// Stops the proxy, then the host, then the database.
    fn stop(&mut self) {
        self.children.stop_all();
        if let Some(server) = self.postgres.as_mut() {
            server.stop();
        }
    }
}

fn run_platform(release: bool) -> anyhow::Result<()> {
    // Stop cleanly on Ctrl-C or SIGTERM: children first, the database last.
    let (stop_tx, stop_rx) = mpsc::channel();
    let signal_tx = stop_tx.clone();
    ctrlc::set_handler(move || {
        let _ = signal_tx.send("signal");
    })?;
    let options = PlatformOptions { release, proxy_config: "deploy/proxy.toml", extra_packages: &[] };
    let mut platform = Platform::start(&options)?;
    let superuser = &platform.superuser;
    // Only the development default is echoed; a password of your own is not.
    let superuser_password = if platform.superuser_password == DEV_FIRST_SUPERUSER_PASSWORD {
        DEV_FIRST_SUPERUSER_PASSWORD
    } else {
        "$FIRST_SUPERUSER_PASSWORD"
    };
    eprintln!(
        "\nGatehouse is up on http://{PROXY_ADDRESS}\n\
         first superuser: {superuser} / {superuser_password}\n\
         try:\n  curl -s -X POST http://{PROXY_ADDRESS}/auth/api/v1/login/access-token \
         -d \"username={superuser}&password={superuser_password}\"\n\
         Ctrl-C stops everything."
    );

    // Watch the children so a crash also ends the run.
    let pids = platform.children.pids();
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(Duration::from_millis(500));
            if pids.iter().any(|pid| !Path::new(&format!("/proc/{pid}")).exists() || is_zombie(*pid)) {
                let _ = stop_tx.send("a process exited");
                return;
            }
        }
    });
    let why = stop_rx.recv().unwrap_or("channel closed");
    eprintln!("\nstopping ({why})");
    platform.stop();
    eprintln!("stopped");
    Ok(())
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z')))
}

fn env_or_default(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        eprintln!("{name} not set: using the development default {default}");
        default.to_owned()
    })
}

/// How tokens are signed (auth service) and verified (proxy).
struct SigningKeys {
    private_pem: String,
    key_id: String,
    public_jwks: String,
}

/// The token signing key: `JWT_PRIVATE_KEY`, `JWT_KEY_ID` and
/// `JWT_PUBLIC_KEYS` from the environment when all are set, or else a
/// development key pair made once and kept in `.gatehouse` so tokens stay
/// valid across restarts.
fn signing_keys(state_dir: &Path) -> anyhow::Result<SigningKeys> {
    let from_env = ["JWT_PRIVATE_KEY", "JWT_KEY_ID", "JWT_PUBLIC_KEYS"].map(|name| std::env::var(name).ok());
    if let [Some(private_pem), Some(key_id), Some(public_jwks)] = from_env {
        return Ok(SigningKeys { private_pem, key_id, public_jwks });
    }
    let path = state_dir.join("jwt_ed25519.pem");
    if !path.exists() {
        std::fs::create_dir_all(state_dir)?;
        std::fs::write(&path, signing_key::generate_pem()?)?;
    }
    eprintln!("JWT_PRIVATE_KEY not set: using the development key pair in .gatehouse/jwt_ed25519.pem");
    let private_pem = std::fs::read_to_string(&path)?;
    let (key_id, public_jwks) = signing_key::public_jwks(&private_pem)?;
    Ok(SigningKeys { private_pem, key_id, public_jwks })
}

/// The key the proxy signs identity with and the host checks it with.
const IDENTITY_KEY_ENV: &str = "GATEHOUSE_IDENTITY_KEY";

/// The identity key from the environment, or the development one kept in
/// `.gatehouse/identity_key` (made on first use).
fn identity_key(state_dir: &Path) -> anyhow::Result<String> {
    if let Ok(key) = std::env::var(IDENTITY_KEY_ENV) {
        return Ok(key);
    }
    let path = state_dir.join("identity_key");
    if !path.exists() {
        std::fs::create_dir_all(state_dir)?;
        let key: String = devpg::random_bytes(32)?.iter().map(|b| format!("{b:02x}")).collect();
        std::fs::write(&path, key)?;
    }
    eprintln!("{IDENTITY_KEY_ENV} not set: using the development key in .gatehouse/identity_key");
    Ok(std::fs::read_to_string(&path)?.trim().to_owned())
}

/// The platform's processes, stopped in reverse order of start.
#[derive(Default)]
struct Children {
    running: Vec<(&'static str, Child)>,
}

impl Children {
    fn spawn(&mut self, name: &'static str, mut cmd: Command) -> anyhow::Result<()> {
        let child = cmd.spawn().with_context(|| format!("cannot start the {name}"))?;
        self.running.push((name, child));
        Ok(())
    }

    fn pid(&self, name: &str) -> Option<u32> {
        self.running.iter().find(|(n, _)| *n == name).map(|(_, c)| c.id())
    }

    fn pids(&self) -> Vec<u32> {
        self.running.iter().map(|(_, c)| c.id()).collect()
    }

    fn wait_listening(&mut self, name: &str, addr: SocketAddr, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            let (_, child) = self.running.iter_mut().find(|(n, _)| *n == name).expect("spawned");
            if let Some(status) = child.try_wait()? {
                self.stop_all();
                bail!("the {name} exited ({status}) before listening on {addr}");
            }
            if Instant::now() > deadline {
                self.stop_all();
                bail!("the {name} did not listen on {addr} within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(())
    }

    fn stop_all(&mut self) {
        while let Some((name, mut child)) = self.running.pop() {
            let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            if child.try_wait().ok().flatten().is_none() {
                eprintln!("the {name} did not stop in time; killing it");
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

fn test_everything() -> anyhow::Result<()> {
    ensure_packages(&[&CMAKE, &POSTGRESQL, &OPENSSL, &AIOSMTPD, &NODEJS, &NPM, &CHROMIUM])?;
    ensure_wasm_target()?;

    step("formatting");
    let mut fmt = cargo();
    fmt.args(["fmt", "--all", "--check"]);
    run(fmt)?;
    let mut fmt = plugins_cargo();
    fmt.args(["fmt", "--all", "--check"]);
    run(fmt)?;

    step("lints (clippy, warnings are errors)");
    let mut clippy = cargo();
    clippy.args(["clippy", "--locked", "--workspace", "--all-targets", "--", "-D", "warnings"]);
    run(clippy)?;
    let mut clippy = plugins_cargo();
    clippy.args(["clippy", "--locked", "--workspace", "--all-targets", "--", "-D", "warnings"]);
    run(clippy)?;

    build_plugins()?;

    step("plugin unit tests (natively)");
    let mut plugin_tests = plugins_cargo();
    plugin_tests.args(["test", "--locked", "--workspace", "--lib", "--target", &host_triple()?]);
    run(plugin_tests)?;

    // Its browser tests run with the Rust tests below (proxy/tests/frontend.rs).
    frontend::check_and_build()?;

    step("starting a private PostgreSQL server for the tests");
    let pg_root = std::env::temp_dir().join(format!("gatehouse-test-postgres-{}", std::process::id()));
    let result = (|| {
        let server = PostgresServer::start(&pg_root)?;
        step("unit, integration and end-to-end tests");
        let mut test = cargo();
        test.args(["test", "--locked", "--workspace"])
            .env("DATABASE_URL", server.url("postgres"))
            .env("GATEHOUSE_COMPONENTS_DIR", components_dir())
            .env("GATEHOUSE_SMTP_SERVER_PYTHON", SMTP_SERVER_PYTHON)
            // The browser tests must run here, not skip for want of a build.
            .env("GATEHOUSE_REQUIRE_FRONTEND", "1")
            .env("GATEHOUSE_CHROMIUM", CHROMIUM_BINARY);
        run(test)?;
        // On the same server, while it is up.
        deploy_checks::run_rehearsal(&server.url("postgres"))
    })();
    let _ = std::fs::remove_dir_all(&pg_root);
    result?;
    deploy_checks::run_deploy_checks()?;
    eprintln!("\nall checks passed");
    Ok(())
}

fn host_triple() -> anyhow::Result<String> {
    let out = Command::new("rustc").arg("-vV").output()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
        .context("cannot tell the host target from `rustc -vV`")
}
