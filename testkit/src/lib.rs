//! Support for tests that run the real host against a real PostgreSQL and
//! real components: the host's integration tests, the proxy's end-to-end
//! tests and the mailer's. A development-only crate; nothing ships with it.
//!
//! `DATABASE_URL` names a server where the role may create databases;
//! `cargo xtask test` starts a private one and sets it. Every
//! [`TestDatabase`] is a fresh database, dropped when the test ends, so
//! tests never see each other's rows.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::{Connection, Executor, PgConnection};

use host::{Manifest, Runtime};

pub use devpg::make_test_certificates;

/// A folder of the test's own holding `files` (`(relative path,
/// contents)`), removed when dropped.
pub struct TempFolder(pub PathBuf);

impl TempFolder {
    pub fn with_files<C: AsRef<[u8]>>(files: &[(&str, C)]) -> Self {
        let dir = std::env::temp_dir().join(format!("gatehouse-files-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        for (name, contents) in files {
            let path = dir.join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, contents).unwrap();
        }
        Self(dir)
    }
}

impl Drop for TempFolder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Waits until `log()` holds `text` `occurrences` times, failing the test
/// with the log after `within`.
pub async fn wait_for_log(log: impl Fn() -> String, text: &str, occurrences: usize, within: Duration) {
    let deadline = Instant::now() + within;
    while log().matches(text).count() < occurrences {
        assert!(Instant::now() < deadline, "no {occurrences}× {text:?} in the log:\n{}", log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A database of its own for one test.
pub struct TestDatabase {
    pub name: String,
    pub url: String,
    admin_url: String,
}

fn admin_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| {
        panic!(
            "integration tests need PostgreSQL: run `cargo xtask test`, or set DATABASE_URL \
             to a server where this role may CREATE DATABASE"
        )
    })
}

/// `url` with its database name replaced by `database`.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let authority_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_end..].find('/') {
        Some(slash) => &base[..authority_end + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{database}?{q}"),
        None => format!("{base}/{database}"),
    }
}

impl TestDatabase {
    pub async fn create() -> Self {
        let admin_url = admin_url();
        let name = format!("gatehouse_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(&admin_url).await.expect("connecting to DATABASE_URL");
        admin.execute(format!(r#"CREATE DATABASE "{name}""#).as_str()).await.expect("creating a test database");
        let url = with_database(&admin_url, &name);
        Self { name, url, admin_url }
    }

    pub async fn connect(&self) -> PgConnection {
        PgConnection::connect(&self.url).await.expect("connecting to the test database")
    }

    /// Every row of the services' tables as text, sorted: two equal
    /// snapshots mean nothing was written in between.
    pub async fn snapshot(&self) -> Vec<String> {
        sqlx::query_scalar(
            r#"SELECT 'user ' || row_to_json(u)::text FROM "user" u
               UNION ALL SELECT 'item ' || row_to_json(i)::text FROM item i
               UNION ALL SELECT 'token ' || row_to_json(t)::text FROM password_reset_token t
               UNION ALL SELECT 'mail ' || row_to_json(m)::text FROM email_outbox m
               ORDER BY 1"#,
        )
        .fetch_all(&mut self.connect().await)
        .await
        .expect("reading a snapshot")
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        // Drop runs outside any runtime we may block on: use a thread.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            rt.block_on(async {
                let mut admin = PgConnection::connect(&admin_url).await?;
                admin.execute(format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#).as_str()).await?;
                Ok::<_, sqlx::Error>(())
            })?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
        })
        .join();
        if let Ok(Err(e)) = dropped {
            eprintln!("could not drop test database {}: {e}", self.name);
        }
    }
}

/// GETs of one URL sent back to back over keep-alive connections by a few
/// tasks, until stopped: the steady load a failover or reload must not
/// disturb.
pub struct SteadyLoad {
    stop: Arc<std::sync::atomic::AtomicBool>,
    workers: Vec<tokio::task::JoinHandle<(u64, Vec<String>)>>,
}

impl SteadyLoad {
    pub fn start(url: &str, connections: usize) -> Self {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let workers = (0..connections)
            .map(|_| {
                let (url, stop) = (url.to_owned(), stop.clone());
                tokio::spawn(async move {
                    let client = reqwest::Client::new();
                    let (mut ok, mut failed) = (0u64, Vec::new());
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        match client.get(&url).send().await {
                            Ok(r) if r.status().is_success() => ok += 1,
                            Ok(r) => failed.push(r.status().to_string()),
                            Err(e) => failed.push(e.to_string()),
                        }
                    }
                    (ok, failed)
                })
            })
            .collect();
        Self { stop, workers }
    }

    /// Stops the load; the requests that succeeded, and why the others
    /// failed.
    pub async fn stop(self) -> (u64, Vec<String>) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let (mut ok, mut failed) = (0, Vec::new());
        for worker in self.workers {
            let (o, f) = worker.await.expect("a load worker");
            ok += o;
            failed.extend(f);
        }
        (ok, failed)
    }
}

/// A PostgreSQL server of the test's own (with TLS), for what cannot be
/// done to the shared one: restarting it, or connecting to it under TLS
/// settings of its own. Stopped and its folder removed when dropped.
pub struct PrivatePostgres {
    pub server: devpg::PostgresServer,
    dir: PathBuf,
}

impl PrivatePostgres {
    pub fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("gatehouse-postgres-{}", uuid::Uuid::new_v4().simple()));
        let server = devpg::PostgresServer::start(&dir).expect("starting a private PostgreSQL server");
        server.ensure_database("app").expect("creating a database");
        Self { server, dir }
    }

    /// The URL of its `app` database.
    pub fn url(&self) -> String {
        self.server.url("app")
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        self.server.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Where the built components are: `GATEHOUSE_COMPONENTS_DIR`, or the
/// workspace's `target/wasm32-wasip2/release`.
pub fn components_dir() -> PathBuf {
    let dir = std::env::var_os("GATEHOUSE_COMPONENTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/wasm32-wasip2/release"));
    for name in ["auth", "items", "users"] {
        let file = dir.join(format!("{name}.wasm"));
        assert!(file.is_file(), "no component at {}: run `cargo xtask build-plugins`", file.display());
    }
    dir
}

/// Waits until the test guest's `/loop` route has started spinning (it
/// says so in the database first).
pub async fn wait_until_guest_spins(db: &TestDatabase) {
    let mut conn = db.connect().await;
    for _ in 0..3000 {
        let count: Result<i64, _> =
            sqlx::query_scalar("SELECT count(*) FROM guest_spinning").fetch_one(&mut conn).await;
        if count.is_ok_and(|n| n > 0) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the looping guest never started");
}

/// Compiled components shared by every test host: the first compiles them.
pub fn test_compile_cache() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/test-compile-cache")
}

/// The migrations the services' schema is made of (the users service
/// brings them).
pub fn migrations_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../plugins/migrations")
}

/// The test guest's own migrations, on the services' database.
pub fn guest_migrations_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../plugins/test-guest/migrations")
}

/// Signing key, first superuser and password of every test platform.
pub const SECRET_KEY: &str = "test-secret-key";
/// The `kid` of the test platform's token signing key.
pub const TEST_KEY_ID: &str = "test-key";
/// The key the test proxy signs identity with and the test host checks.
pub const TEST_IDENTITY_KEY: &str = "test-identity-key-of-at-least-32-bytes";
pub const ADMIN_EMAIL: &str = "admin@example.com";

/// What the proxy would send the host for a request by `user_id`.
pub fn identity_headers(method: &str, path_and_query: &str, user_id: &str) -> Vec<(&'static str, String)> {
    host::identity::signed_headers(TEST_IDENTITY_KEY.as_bytes(), method, path_and_query, user_id)
}
pub const ADMIN_PASSWORD: &str = "admin-password";

/// A manifest serving the auth and items services and the test guest, on
/// the database of `TEST_DATABASE_URL`. `limits` holds the `[limits]` lines.
pub fn services_manifest(limits: &str, max_connections: u32) -> Manifest {
    let text = format!(
        r#"
        [server]
        compile_cache = {cache:?}

        [limits]
        {limits}

        [database.app]
        url_env = "TEST_DATABASE_URL"
        max_connections = {max_connections}

        [key_value_store.default]
        database = "app"
        [key_value_store.elsewhere]
        database = "app"

        [component.auth]
        route = "/auth/..."
        file = "auth.wasm"
        databases = ["app"]
        memory_bytes = 201326592
        [component.auth.variables]
        database = "app"
        secret_key = {{ env = "SECRET_KEY" }}
        jwt_private_key = {{ env = "JWT_PRIVATE_KEY" }}
        jwt_key_id = {{ env = "JWT_KEY_ID" }}
        jwt_retired_keys = {{ env = "JWT_RETIRED_KEYS", default = "" }}

        [component.users]
        route = "/users/..."
        file = "users.wasm"
        databases = ["app"]
        [component.users.migrations]
        app = {migrations:?}
        [component.users.variables]
        database = "app"
        users_open_registration = {{ env = "USERS_OPEN_REGISTRATION", default = "true" }}

        [component.items]
        route = "/items/..."
        file = "items.wasm"
        databases = ["app"]
        [component.items.variables]
        database = "app"

        # The test guests of both generations, WASIp2 (spin-sdk 5) and
        # WASIp3 (spin-sdk 7), granted the same things.
        [component.guest]
        route = "/guest/..."
        file = "test_guest.wasm"
        databases = ["app"]
        key_value_stores = ["default"]
        allowed_outbound_hosts = ["http://127.0.0.0/8:*", "http://localhost:*"]
        # A second component migrating the same database, numbering its
        # migrations as it likes.
        [component.guest.migrations]
        app = {guest_migrations:?}
        [component.guest.variables]
        database = "app"
        greeting = "hello"
        [component.guest.environment]
        GREETING = "hello from the manifest"

        [component.p3]
        route = "/p3/..."
        file = "spin7_guest.wasm"
        databases = ["app"]
        key_value_stores = ["default"]
        allowed_outbound_hosts = ["http://127.0.0.0/8:*", "http://localhost:*"]
        [component.p3.variables]
        database = "app"
        greeting = "hello"
        [component.p3.environment]
        GREETING = "hello from the manifest"

        # The test guest, one request at a time.
        [component.single]
        route = "/single/..."
        file = "test_guest.wasm"
        databases = ["app"]
        max_concurrent_requests = 1
        db_connections_per_request = 1
        [component.single.variables]
        database = "app"

        # The test guest on the low-priority threads, with pools of its own.
        # (Auth stays at normal priority here, unlike deploy/host.toml: on a
        # test machine kept busy by parallel tests, logins on idle-class
        # threads would wait on the others' CPU and race their budget.)
        [component.background]
        route = "/background/..."
        file = "test_guest.wasm"
        databases = ["app"]
        key_value_stores = ["default"]
        priority = "low"
        [component.background.variables]
        database = "app"

        # The same guests with nothing granted.
        [component.sealed]
        route = "/sealed/..."
        file = "test_guest.wasm"
        [component.p3-sealed]
        route = "/p3-sealed/..."
        file = "spin7_guest.wasm"
        "#,
        migrations = migrations_dir().display().to_string(),
        guest_migrations = guest_migrations_dir().display().to_string(),
        cache = test_compile_cache().display().to_string(),
    );
    Manifest::parse(&text, &components_dir()).expect("test manifest")
}

/// An Ed25519 signing key and how the proxy and the auth service are
/// given it.
pub struct SigningKeyPair {
    /// PKCS#8 PEM of the private key (the auth service's `jwt_private_key`).
    pub private_pem: String,
    /// The public key as a JWK with `kid`.
    pub public_jwk: serde_json::Value,
}

impl SigningKeyPair {
    /// A fresh random key pair named `kid`.
    pub fn generate(kid: &str) -> Self {
        use base64::Engine as _;
        use ed25519_dalek::pkcs8::EncodePrivateKey;
        let mut seed = [0u8; 32];
        seed[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        seed[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        let key = ed25519_dalek::SigningKey::from_bytes(&seed);
        let private_pem = key.to_pkcs8_pem(Default::default()).expect("encoding a key").to_string();
        let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes());
        let public_jwk =
            serde_json::json!({ "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": kid, "x": x });
        Self { private_pem, public_jwk }
    }
}

/// The test platform's signing key, made once per test process.
pub fn test_signing_key() -> &'static SigningKeyPair {
    static KEY: std::sync::OnceLock<SigningKeyPair> = std::sync::OnceLock::new();
    KEY.get_or_init(|| SigningKeyPair::generate(TEST_KEY_ID))
}

/// The JWKS the proxy verifies test tokens with: the test key and `extra`.
pub fn test_jwks(extra: &[&serde_json::Value]) -> String {
    let mut keys = vec![&test_signing_key().public_jwk];
    keys.extend(extra);
    serde_json::json!({ "keys": keys }).to_string()
}

/// A host serving on an ephemeral loopback port until dropped.
pub struct RunningHost {
    pub addr: SocketAddr,
    /// The admin listener: `/healthz`, `/readyz`, `/metrics`.
    pub admin_addr: SocketAddr,
    pub runtime: Arc<Runtime>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl RunningHost {
    /// Sets up the manifest's databases as `gatehouse-setup` would, prepares
    /// the host (pools, components) and serves
    /// it; `env` stands in for the process environment.
    pub async fn start(manifest: &Manifest, env: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        // What the platform's setup job does first: the components'
        // migrations, and the first superuser when `env` names one.
        setup::run(manifest, &env, "app").await?;
        let runtime = host::prepare(manifest, env).await?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let admin = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let admin_addr = admin.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (stop_admin, admin_stopped) = tokio::sync::oneshot::channel::<()>();
        let live = host::live::Live::new(runtime.clone());
        tokio::spawn(host::server::serve_admin(live.clone(), admin, async {
            let _ = admin_stopped.await;
        }));
        let shutdown = async move {
            let _ = stopped.await;
            let _ = stop_admin.send(());
        };
        let grace = Duration::from_secs(manifest.server.drain_seconds);
        let task = tokio::spawn(host::server::serve(live, listener, shutdown, grace));
        Ok(Self { addr, admin_addr, runtime, stop: Some(stop), task: Some(task) })
    }

    /// Starts `manifest` on `db`, with the test signing key and superuser.
    pub async fn start_services(db: &TestDatabase, manifest: &Manifest) -> Self {
        Self::start_services_with(db, manifest, &[]).await
    }

    /// Like [`RunningHost::start_services`], with `extra` environment
    /// variables (`USERS_OPEN_REGISTRATION`, `JWT_RETIRED_KEYS`, ...).
    pub async fn start_services_with(db: &TestDatabase, manifest: &Manifest, extra: &[(&str, &str)]) -> Self {
        let url = db.url.clone();
        let extra: Vec<(String, String)> = extra.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let env = move |name: &str| {
            if let Some((_, value)) = extra.iter().find(|(k, _)| k == name) {
                return Some(value.clone());
            }
            match name {
                "TEST_DATABASE_URL" => Some(url.clone()),
                "SECRET_KEY" => Some(SECRET_KEY.into()),
                "JWT_PRIVATE_KEY" => Some(test_signing_key().private_pem.clone()),
                "JWT_KEY_ID" => Some(TEST_KEY_ID.into()),
                "GATEHOUSE_IDENTITY_KEY" => Some(TEST_IDENTITY_KEY.into()),
                "FIRST_SUPERUSER" => Some(ADMIN_EMAIL.into()),
                "FIRST_SUPERUSER_PASSWORD" => Some(ADMIN_PASSWORD.into()),
                _ => None,
            }
        };
        Self::start(manifest, env).await.expect("host starts")
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Stops accepting and waits for requests in flight.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

/// A child process stopped and waited for when dropped, however the test
/// ends, with a folder of its own removed with it.
pub struct ChildProcess {
    child: Child,
    dir: PathBuf,
}

impl ChildProcess {
    /// A fresh folder under the system's temporary folder.
    fn folder(kind: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("gatehouse-{kind}-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("creating a test folder");
        dir
    }

    fn spawn(mut command: Command, dir: PathBuf, what: &str) -> Self {
        let child = command.spawn().unwrap_or_else(|e| panic!("starting {what}: {e}"));
        Self { child, dir }
    }

    /// Waits until `addr` accepts connections, failing the test if the
    /// process exits first.
    fn wait_listening(&mut self, addr: SocketAddr, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(addr).is_err() {
            assert!(self.child.try_wait().unwrap().is_none(), "{what} exited at start-up{}", self.logs());
            assert!(Instant::now() < deadline, "{what} did not listen within 30 s{}", self.logs());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The end of each log file in the process's folder, to explain a
    /// failure.
    fn logs(&self) -> String {
        let mut out = String::new();
        for entry in std::fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "log") {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(20).collect();
                out.push_str(&format!("\n--- {}:\n", path.display()));
                out.extend(tail.into_iter().rev().map(|l| format!("{l}\n")));
            }
        }
        out
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().ok().flatten().is_none()
    }

    /// Waits up to `within` for the process to exit: whether it did.
    pub fn wait_exit(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if !self.is_running() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// The exit status, once the process has exited.
    pub fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Sends `signal` (`TERM`, `HUP`) to the process.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.id().to_string();
        let status = Command::new("kill").args([&format!("-{signal}"), &pid]).status().expect("running kill");
        assert!(status.success(), "kill -{signal} {pid}");
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The host binary running a Spin application (`--from spin.toml`) with a
/// runtime-config file, both written to a folder of its own.
pub struct SpinAppProcess {
    pub addr: SocketAddr,
    process: ChildProcess,
}

impl SpinAppProcess {
    pub fn start(binary: &Path, spin_toml: &str, runtime_config: &str, env: &[(&str, &str)]) -> Self {
        let addr = free_loopback_port();
        let dir = ChildProcess::folder("spin-app");
        std::fs::write(dir.join("spin.toml"), spin_toml).unwrap();
        std::fs::write(dir.join("gatehouse.toml"), runtime_config).unwrap();
        let mut command = Command::new(binary);
        command
            .arg("--from")
            .arg(dir.join("spin.toml"))
            .arg("--runtime-config-file")
            .arg(dir.join("gatehouse.toml"))
            .args(["--listen", &addr.to_string(), "--admin-listen", "127.0.0.1:0"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut process = ChildProcess::spawn(command, dir, "the host with a Spin app");
        process.wait_listening(addr, "the host with a Spin app");
        Self { addr, process }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn is_running(&mut self) -> bool {
        self.process.is_running()
    }

    /// Sends SIGTERM, as Kubernetes does to stop a pod.
    pub fn terminate(&self) {
        self.process.signal("TERM");
    }

    /// Waits up to `within` for the process to exit; whether it did.
    pub fn wait_exit(&mut self, within: Duration) -> bool {
        self.process.wait_exit(within)
    }
}

fn free_loopback_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

/// The host binary serving a manifest written to a folder of its own,
/// which a test may rewrite; its log goes to `host.log` there.
pub struct HostProcess {
    pub addr: SocketAddr,
    pub admin_addr: SocketAddr,
    process: ChildProcess,
}

impl HostProcess {
    pub fn start(binary: &Path, manifest: &str, env: &[(&str, &str)]) -> Self {
        Self::start_at(binary, manifest, env, free_loopback_port())
    }

    /// Like [`HostProcess::start`], listening on `addr` (a replica that
    /// comes back where it was).
    pub fn start_at(binary: &Path, manifest: &str, env: &[(&str, &str)], addr: SocketAddr) -> Self {
        let admin_addr = free_loopback_port();
        let dir = ChildProcess::folder("host");
        std::fs::write(dir.join("host.toml"), manifest).unwrap();
        let log = std::fs::File::create(dir.join("host.log")).unwrap();
        let mut command = Command::new(binary);
        command
            .arg("--manifest")
            .arg(dir.join("host.toml"))
            .args(["--listen", &addr.to_string(), "--admin-listen", &admin_addr.to_string()])
            .env("RUST_LOG", "info")
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        for (key, value) in env {
            command.env(key, value);
        }
        let mut process = ChildProcess::spawn(command, dir, "the host");
        process.wait_listening(addr, "the host");
        Self { addr, admin_addr, process }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Replaces the manifest the host was started with.
    pub fn write_manifest(&self, manifest: &str) {
        // Written aside and renamed into place, as a ConfigMap update is.
        let staged = self.process.dir().join("host.toml.new");
        std::fs::write(&staged, manifest).unwrap();
        std::fs::rename(staged, self.process.dir().join("host.toml")).unwrap();
    }

    /// Sends `signal` (`HUP`, `TERM`) to the host.
    pub fn signal(&self, signal: &str) {
        self.process.signal(signal);
    }

    /// What the host has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.process.dir().join("host.log")).unwrap_or_default()
    }

    pub fn is_running(&mut self) -> bool {
        self.process.is_running()
    }
}

/// The proxy binary with the configuration `cargo xtask run` uses
/// (`deploy/proxy.toml`), its upstream pointed at a test host, plus a public
/// route to the test guest; it verifies tokens with the key set `jwks`.
pub struct ProxyProcess {
    pub addr: SocketAddr,
    /// The admin listener: `/healthz`, `/readyz`, `/metrics`.
    pub admin_addr: SocketAddr,
    process: ChildProcess,
    binary: PathBuf,
    jwks: String,
}

impl ProxyProcess {
    pub fn start(binary: &Path, upstream: SocketAddr, jwks: &str) -> Self {
        Self::start_with(binary, upstream, jwks, &[])
    }

    /// Like [`ProxyProcess::start`], with some settings of the deployed
    /// configuration changed: `("max_body_bytes", "4096")` replaces the line
    /// that sets `max_body_bytes`; `("jwt.jwks_url", "...")` adds a setting
    /// the deployed file leaves out to its `[jwt]` table
    /// (`"upstream.runtime.retries"` to `[upstream.runtime]`); `("[tls]",
    /// "listen = ...")` adds a table it has not.
    pub fn start_with(binary: &Path, upstream: SocketAddr, jwks: &str, overrides: &[(&str, &str)]) -> Self {
        Self::start_for(binary, &[upstream], jwks, overrides)
    }

    /// Like [`ProxyProcess::start_with`], its upstream a pool of `upstreams`.
    pub fn start_for(binary: &Path, upstreams: &[SocketAddr], jwks: &str, overrides: &[(&str, &str)]) -> Self {
        let addr = free_loopback_port();
        let dir = ChildProcess::folder("proxy");
        let config = dir.join("proxy.toml");
        let deployed = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/proxy.toml"))
            .expect("reading deploy/proxy.toml");
        let addresses: Vec<String> = upstreams.iter().map(|a| format!("{:?}", a.to_string())).collect();
        let mut pointed =
            deployed.replace(r#"addresses = ["127.0.0.1:8081"]"#, &format!("addresses = [{}]", addresses.join(", ")));
        assert_ne!(pointed, deployed, "deploy/proxy.toml no longer names the host's address");
        // The frontend's static files, where the repository keeps them.
        let frontend = Path::new(env!("CARGO_MANIFEST_DIR")).join("../frontend/out");
        pointed =
            pointed.replace(r#"root = "../frontend/out""#, &format!("root = {:?}", frontend.display().to_string()));
        for (key, value) in overrides {
            if key.starts_with('[') {
                pointed = format!("{pointed}\n{key}\n{value}\n");
                continue;
            }
            if let Some((table, key)) = key.rsplit_once('.') {
                let header = format!("[{table}]\n");
                assert!(pointed.contains(&header), "deploy/proxy.toml has no [{table}]");
                pointed = pointed.replacen(&header, &format!("{header}{key} = {value}\n"), 1);
                continue;
            }
            let prefix = format!("{key} = ");
            let line = pointed.lines().find(|l| l.starts_with(&prefix)).map(str::to_owned);
            let line = line.unwrap_or_else(|| panic!("deploy/proxy.toml sets no `{key}`"));
            pointed = pointed.replace(&line, &format!("{key} = {value}"));
        }
        // The test guest, in public, and behind a token at `/guest-private`;
        // both allow cross-origin requests from one test origin.
        let guest_route = r#"
[[route]]
prefix = "/guest"
upstream = "runtime"
auth = "public"
cors = "test"

[[route]]
prefix = "/guest-private"
rewrite = "/guest"
upstream = "runtime"
auth = "required"
cors = "test"

[cors.test]
origins = ["https://app.example.test"]
credentials = true
"#;
        // A graceful upgrade's meeting point of the test's own.
        let upgrade = format!("upgrade_socket = {:?}\n", dir.join("upgrade.sock").display().to_string());
        std::fs::write(&config, format!("{upgrade}{pointed}{guest_route}")).unwrap();
        let admin_addr = free_loopback_port();
        let process = Self::spawn(binary, jwks, (addr, admin_addr), dir, false);
        let mut proxy = Self { addr, admin_addr, process, binary: binary.to_owned(), jwks: jwks.to_owned() };
        proxy.process.wait_listening(addr, "the proxy");
        proxy
    }

    /// The proxy's process id (for its CPU time and memory).
    pub fn pid(&self) -> u32 {
        self.process.child.id()
    }

    /// The proxy binary on the configuration in `dir`, listening at `(addr,
    /// admin_addr)`.
    fn spawn(
        binary: &Path,
        jwks: &str,
        (addr, admin): (SocketAddr, SocketAddr),
        dir: PathBuf,
        upgrade: bool,
    ) -> ChildProcess {
        // The access log, as JSON lines, in `proxy.log`.
        let log = std::fs::File::create(dir.join("proxy.log")).unwrap();
        let mut command = Command::new(binary);
        command
            .arg("--config")
            .arg(dir.join("proxy.toml"))
            .args(["--listen", &addr.to_string(), "--admin-listen", &admin.to_string(), "--threads", "1"])
            .env("JWT_PUBLIC_KEYS", jwks)
            .env("GATEHOUSE_IDENTITY_KEY", TEST_IDENTITY_KEY)
            .env("RUST_LOG", "warn,gatehouse::access=info,gatehouse_proxy=info")
            .env("GATEHOUSE_LOG_FORMAT", "json")
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        if upgrade {
            command.arg("--upgrade");
        }
        ChildProcess::spawn(command, dir, "the proxy")
    }

    /// A graceful upgrade: a new proxy process on the same configuration
    /// is started with `--upgrade`, and once it waits at the upgrade socket
    /// this one is sent SIGQUIT, hands its listening sockets over and
    /// drains. Returns the new proxy; this one exits on its own.
    pub fn upgrade(&self) -> ProxyProcess {
        let dir = ChildProcess::folder("proxy");
        let config = std::fs::read_to_string(self.config_path()).unwrap();
        let socket = self.process.dir().join("upgrade.sock");
        std::fs::write(dir.join("proxy.toml"), config).unwrap();
        let _ = std::fs::remove_file(&socket);
        let mut process = Self::spawn(&self.binary, &self.jwks, (self.addr, self.admin_addr), dir, true);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !socket.exists() {
            assert!(process.is_running(), "the new proxy exited at start-up{}", process.logs());
            assert!(Instant::now() < deadline, "the new proxy did not wait at {}{}", socket.display(), process.logs());
            std::thread::sleep(Duration::from_millis(20));
        }
        self.signal("QUIT");
        ProxyProcess {
            addr: self.addr,
            admin_addr: self.admin_addr,
            process,
            binary: self.binary.clone(),
            jwks: self.jwks.clone(),
        }
    }

    /// Waits up to `within` for the proxy to exit: its status, if it did.
    pub fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        self.process.wait_exit(within);
        self.process.exit_status()
    }

    /// What the proxy has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.process.dir().join("proxy.log")).unwrap_or_default()
    }

    /// The configuration file the proxy was started with.
    pub fn config_path(&self) -> PathBuf {
        self.process.dir().join("proxy.toml")
    }

    /// Replaces the proxy's configuration file, as a ConfigMap update does.
    pub fn write_config(&self, text: &str) {
        let staged = self.process.dir().join("proxy.toml.new");
        std::fs::write(&staged, text).unwrap();
        std::fs::rename(staged, self.config_path()).unwrap();
    }

    /// Sends `signal` (`HUP`, `TERM`) to the proxy.
    pub fn signal(&self, signal: &str) {
        self.process.signal(signal);
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn is_running(&mut self) -> bool {
        self.process.is_running()
    }
}

/// A real SMTP server on loopback (Python's aiosmtpd, from Debian's
/// `python3-aiosmtpd`), keeping what it receives in a Maildir.
pub struct SmtpServer {
    pub addr: SocketAddr,
    process: ChildProcess,
}

impl SmtpServer {
    pub fn start() -> Self {
        Self::start_on(free_loopback_port())
    }

    /// Listens on `addr`, for a test that first needs nothing there.
    pub fn start_on(addr: SocketAddr) -> Self {
        let python = std::env::var("GATEHOUSE_SMTP_SERVER_PYTHON").unwrap_or_else(|_| "/usr/bin/python3".into());
        let dir = ChildProcess::folder("smtp");
        let mut command = Command::new(&python);
        command
            .args(["-m", "aiosmtpd", "-n", "-l", &addr.to_string(), "-c", "aiosmtpd.handlers.Mailbox"])
            .arg(dir.join("Maildir"))
            .stdout(Stdio::null());
        let mut process = ChildProcess::spawn(command, dir, "the SMTP server (needs python3-aiosmtpd)");
        process.wait_listening(addr, "the SMTP server");
        Self { addr, process }
    }

    /// Every message received so far, as raw RFC 5322 text.
    pub fn received(&self) -> Vec<String> {
        let new = self.process.dir().join("Maildir/new");
        let mut files: Vec<_> =
            std::fs::read_dir(new).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
        files.sort();
        files.iter().filter_map(|f| std::fs::read_to_string(f).ok()).collect()
    }

    /// Waits up to `timeout` for at least `count` messages.
    pub fn wait_for(&self, count: usize, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let received = self.received();
            if received.len() >= count || Instant::now() > deadline {
                return received;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// JSON requests to a running platform, answered as `(status, body)`.
#[derive(Clone)]
pub struct ApiClient {
    base: String,
    http: reqwest::Client,
}

impl ApiClient {
    /// A client for `base` (`http://127.0.0.1:1234`).
    pub fn new(base: impl Into<String>) -> Self {
        Self { base: base.into(), http: reqwest::Client::new() }
    }

    /// Sends `method path` with an optional bearer token and JSON body.
    /// A body that is not JSON comes back as a JSON string.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("an HTTP method");
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.unwrap_or_else(|e| panic!("{path}: {e}"));
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
        (status, body)
    }

    /// Logs in through `login_path` with the OAuth2 password form.
    pub async fn login_at(&self, login_path: &str, email: &str, password: &str) -> (u16, serde_json::Value) {
        let response = self
            .http
            .post(format!("{}{login_path}", self.base))
            .form(&[("username", email), ("password", password)])
            .send()
            .await
            .expect("login request");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(serde_json::Value::Null))
    }

    /// Logs in at the per-service path and returns the access token.
    pub async fn token(&self, email: &str, password: &str) -> String {
        let (status, body) = self.login_at("/auth/api/v1/login/access-token", email, password).await;
        assert_eq!(status, 200, "login as {email}: {body}");
        body["access_token"].as_str().expect("an access token").to_owned()
    }
}

/// The mailer binary delivering `database_url`'s outbox to `smtp`.
pub struct MailerProcess {
    process: ChildProcess,
}

impl MailerProcess {
    pub fn start(binary: &Path, database_url: &str, smtp: SocketAddr) -> Self {
        let mut command = Command::new(binary);
        command
            .env("DATABASE_URL", database_url)
            .env("SMTP_HOST", smtp.ip().to_string())
            .env("SMTP_PORT", smtp.port().to_string())
            .env("SMTP_TLS", "false")
            .env("EMAILS_FROM_EMAIL", "noreply@example.com")
            .env("MAILER_POLL_MS", "100")
            .env("MAILER_RETRY_SECONDS", "1")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null());
        Self { process: ChildProcess::spawn(command, ChildProcess::folder("mailer"), "the mailer") }
    }

    pub fn is_running(&mut self) -> bool {
        self.process.is_running()
    }
}

/// A trivial HTTP/1.1 server on loopback, standing in for a runtime
/// replica where the proxy's own behaviour is under test: every request
/// gets `200 ok`, after `<ms>` milliseconds when its path holds
/// `/slow/<ms>`; a path holding `/echo` gets the request's head as it
/// arrived. Keep-alive, GET-style requests (no body) only.
pub struct NativeUpstream {
    pub addr: SocketAddr,
    requests: Arc<std::sync::atomic::AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl NativeUpstream {
    pub async fn start() -> Self {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = requests.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let counter = counter.clone();
                tokio::spawn(async move {
                    let mut buffer = Vec::new();
                    loop {
                        let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") else {
                            let mut chunk = [0u8; 4096];
                            match stream.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                            }
                            continue;
                        };
                        let head = String::from_utf8_lossy(&buffer[..end]).into_owned();
                        buffer.drain(..end + 4);
                        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        let path = head.split(' ').nth(1).unwrap_or("/");
                        let delay = path.split("/slow/").nth(1).and_then(|rest| rest.split('/').next()?.parse().ok());
                        if let Some(ms) = delay {
                            tokio::time::sleep(Duration::from_millis(ms)).await;
                        }
                        let echoed = format!("{head}\r\n");
                        let body = if path.contains("/echo") { echoed.as_str() } else { "ok" };
                        let response = format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        if stream.write_all(response.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Self { addr, requests, task }
    }

    /// Requests received so far (counted when their head has arrived).
    pub fn requests(&self) -> u64 {
        self.requests.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for NativeUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn database_name_is_replaced() {
        assert_eq!(with_database("postgres://u:p@h:1/postgres", "t"), "postgres://u:p@h:1/t");
        assert_eq!(with_database("postgres://u:p@h:1/db?sslmode=disable", "t"), "postgres://u:p@h:1/t?sslmode=disable");
        assert_eq!(with_database("postgres://h", "t"), "postgres://h/t");
    }
}
