//! `gatehouse-load`: the whole platform measured side by side in one run,
//! against the same operations written natively (`gatehouse-native`, axum
//! and sqlx on the same database):
//!
//! 1. **full stack**: the caller's 100 items, the caller's profile and an
//!    item's creation, each sent to the native server, to the host directly
//!    and through the proxy, in alternating rounds, with each process's CPU
//!    time per request;
//! 2. **login under load**: logins (bcrypt inside the auth component) sent
//!    back to back, and the latency of the other routes at a fixed rate
//!    while they run, against the same routes idle;
//! 3. **memory**: each process's resident memory idle and loaded, and a soak
//!    at a fixed rate through the proxy, sampled as it goes.
//!
//! It prints Markdown tables and, with `--out`, writes the charts and
//! `results.json`. Nothing here asserts a speed; it reports one.
//!
//! ```sh
//! cargo xtask bench    # builds in release, starts the platform, runs every benchmark, writes the report
//! ```

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use benches::loadgen::report::{LineChart, Percentiles, percentile_axis_end, percentile_curve};
use benches::loadgen::scenario::RequestTemplate;
use benches::loadgen::{self, Credentials, HttpVersion, Mode, Outcome, RunOptions, Scenario, latency_histogram};
use benches::{Rounds, process_cpu_time, processes_named, resident_memory, wait_listening};
use clap::Parser;
use hdrhistogram::Histogram;
use plotters::style::{BLUE, GREEN, RED, RGBColor};
use serde_json::{Value, json};

#[derive(Debug, Parser)]
struct Args {
    /// The proxy's address.
    #[arg(long, default_value = "127.0.0.1:8080")]
    proxy: SocketAddr,
    /// The host's address (what the proxy fronts).
    #[arg(long, default_value = "127.0.0.1:8081")]
    host: SocketAddr,
    /// The proxy's process, for its CPU time and memory (left out if unknown).
    #[arg(long)]
    proxy_pid: Option<u32>,
    /// The host's process, for its CPU time and memory.
    #[arg(long)]
    host_pid: Option<u32>,
    /// The native yardstick's binary, started here on `--native-listen`.
    #[arg(long, default_value = "target/release/gatehouse-native")]
    native: PathBuf,
    #[arg(long, default_value = "127.0.0.1:8082")]
    native_listen: SocketAddr,
    /// The superuser, who makes this run's users.
    #[arg(long, env = "FIRST_SUPERUSER", default_value = "admin@example.com")]
    email: String,
    #[arg(long, env = "FIRST_SUPERUSER_PASSWORD", hide_env_values = true, default_value = "changethis")]
    password: String,
    #[command(flatten)]
    rounds: Rounds,
    /// Logins kept in flight while login is saturated.
    #[arg(long, default_value_t = 4)]
    login_workers: usize,
    /// Requests a second of the other routes while logins run, and idle.
    #[arg(long, default_value_t = 40.0)]
    probe_rate: f64,
    /// Length of each half of the login measurement (seconds).
    #[arg(long, default_value_t = 15)]
    login_seconds: u64,
    /// Length of the soak (seconds).
    #[arg(long, default_value_t = 120)]
    soak_seconds: u64,
    /// Requests a second during the soak.
    #[arg(long, default_value_t = 200.0)]
    soak_rate: f64,
    /// Where the charts and `results.json` go.
    #[arg(long)]
    out: Option<PathBuf>,
    /// What the printed Markdown puts before a chart's file name (the
    /// charts' folder as the report sees it).
    #[arg(long, default_value = "")]
    link_prefix: String,
}

const IDENTITY_KEY_ENV: &str = "GATEHOUSE_IDENTITY_KEY";
const ITEMS_PATH: &str = "/items/api/v1/items/";
const ME_PATH: &str = "/users/api/v1/users/me";
const LOGIN_PATH: &str = "/auth/api/v1/login/access-token";
/// The listing's page: the items the listing user owns.
const LISTED_ITEMS: usize = 100;

/// A user made for this run, logged in through the proxy.
struct User {
    id: String,
    email: String,
    password: String,
    token: String,
}

/// How a request reaches its handler.
#[derive(Clone, Copy, PartialEq)]
enum Via {
    /// `gatehouse-native`, given the identity the proxy would have signed.
    Native,
    /// The host directly, given the same signed identity.
    Host,
    /// The proxy, with the bearer token; it signs the identity itself.
    Proxy,
}

struct Target {
    label: &'static str,
    via: Via,
    addr: SocketAddr,
}

/// One operation of the comparison, sent alike to every target.
struct Operation {
    name: &'static str,
    chart: &'static str,
    method: &'static str,
    path: &'static str,
    json: Option<Value>,
    /// Whose: the listing user (0) or the creating one (1).
    user: usize,
}

/// The processes whose CPU time is read around each measurement.
#[derive(Clone, Copy)]
struct Processes {
    proxy: Option<u32>,
    host: Option<u32>,
    native: Option<u32>,
}

/// CPU time per process: proxy, host, native, PostgreSQL (all its processes).
type Cpu = [Duration; 4];
const CPU_COLUMNS: [&str; 4] = ["proxy", "host", "native", "PostgreSQL"];

impl Processes {
    fn cpu(&self) -> Cpu {
        let of = |pid: Option<u32>| pid.map(process_cpu_time).unwrap_or_default();
        let postgres = processes_named("postgres").into_iter().map(process_cpu_time).sum();
        [of(self.proxy), of(self.host), of(self.native), postgres]
    }

    fn named(&self) -> [(&'static str, Option<u32>); 3] {
        [("proxy", self.proxy), ("host", self.host), ("native", self.native)]
    }
}

/// What one target measured over the rounds of one operation.
struct Cell {
    latency: Histogram<u64>,
    ok: u64,
    errors: u64,
    measured: Duration,
    cpu: Cpu,
}

impl Cell {
    fn new() -> Self {
        Self { latency: latency_histogram(), ok: 0, errors: 0, measured: Duration::ZERO, cpu: Cpu::default() }
    }

    fn add(&mut self, outcome: &Outcome, before: Cpu, after: Cpu) {
        self.latency.add(&outcome.latency).expect("histograms of the same bounds");
        self.ok += outcome.ok;
        self.errors += outcome.errors;
        self.measured += outcome.measured;
        for (total, (b, a)) in self.cpu.iter_mut().zip(before.iter().zip(after)) {
            *total += a.saturating_sub(*b);
        }
    }

    fn rate(&self) -> f64 {
        self.ok as f64 / self.measured.as_secs_f64().max(f64::EPSILON)
    }

    fn cpu_us_per_request(&self, column: usize) -> f64 {
        self.cpu[column].as_secs_f64() * 1e6 / (self.ok + self.errors).max(1) as f64
    }
}

/// The native yardstick, stopped when dropped.
struct Native {
    child: Child,
}

impl Native {
    fn start(args: &Args, database_url: &str, identity_key: &str) -> anyhow::Result<Self> {
        let child = Command::new(&args.native)
            .args(["--listen", &args.native_listen.to_string()])
            .env("DATABASE_URL", database_url)
            .env(IDENTITY_KEY_ENV, identity_key)
            .stdout(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {} (cargo build --release -p benches)", args.native.display()))?;
        let native = Self { child };
        wait_listening(args.native_listen, "gatehouse-native")?;
        Ok(native)
    }
}

impl Drop for Native {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // Identity sent straight to the host or the native server is signed once
    // a round, and is believed for 30 s.
    anyhow::ensure!(args.rounds.seconds <= 25, "--seconds is at most 25 (the window of a signed identity)");
    let identity_key = std::env::var(IDENTITY_KEY_ENV)
        .map_err(|_| anyhow::anyhow!("{IDENTITY_KEY_ENV} is not set: the host believes no unsigned identity"))?;
    let database_url = std::env::var("DATABASE_URL").context("DATABASE_URL is not set (for gatehouse-native)")?;
    let native = Native::start(&args, &database_url, &identity_key)?;
    let processes = Processes { proxy: args.proxy_pid, host: args.host_pid, native: Some(native.child.id()) };
    if let Some(out) = &args.out {
        std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    }

    let setup = reqwest::Client::new();
    let base = format!("http://{}", args.proxy);
    let admin = log_in(&setup, &base, &args.email, &args.password).await?;
    let users = [make_user(&setup, &base, &admin, "list").await?, make_user(&setup, &base, &admin, "create").await?];
    for n in 0..LISTED_ITEMS {
        let item = json!({ "title": format!("item {n}"), "description": "made by gatehouse-load for the listing" });
        post_json(&setup, &format!("{base}{ITEMS_PATH}"), &users[0].token, &item).await?;
    }
    let idle = memory(&processes);

    let mut markdown = String::new();
    let mut results = serde_json::Map::new();
    let targets = [
        Target { label: "native (axum + sqlx)", via: Via::Native, addr: args.native_listen },
        Target { label: "host", via: Via::Host, addr: args.host },
        Target { label: "proxy → host", via: Via::Proxy, addr: args.proxy },
    ];
    let comparison = compare(&args, &targets, &users, &identity_key, &processes, &mut markdown).await?;
    results.insert("full_stack".into(), comparison);
    let login = login_under_load(&args, &users[0], &processes, &mut markdown).await?;
    results.insert("login".into(), login);
    let loaded = memory(&processes);
    let soak = soak(&args, &users, &processes, &idle, &loaded, &mut markdown).await?;
    results.insert("memory".into(), soak);
    print!("{markdown}");
    if let Some(out) = &args.out {
        std::fs::write(out.join("results.json"), serde_json::to_string_pretty(&Value::Object(results))? + "\n")?;
    }

    for user in &users {
        let url = format!("{base}/users/api/v1/users/{}", user.id);
        let _ = setup.delete(url).bearer_auth(&admin).send().await;
    }
    drop(native);
    Ok(())
}

/// Measures every operation on every target, targets alternating within
/// each round so that drift hits all alike.
async fn compare(
    args: &Args,
    targets: &[Target],
    users: &[User; 2],
    identity_key: &str,
    processes: &Processes,
    markdown: &mut String,
) -> anyhow::Result<Value> {
    let operations = [
        Operation {
            name: "GET /items/api/v1/items/ (100 items)",
            chart: "latency-items.svg",
            method: "GET",
            path: ITEMS_PATH,
            json: None,
            user: 0,
        },
        Operation {
            name: "GET /users/api/v1/users/me",
            chart: "latency-me.svg",
            method: "GET",
            path: ME_PATH,
            json: None,
            user: 0,
        },
        Operation {
            name: "POST /items/api/v1/items/",
            chart: "latency-create.svg",
            method: "POST",
            path: ITEMS_PATH,
            json: Some(json!({ "title": "bench {seq}", "description": "made by gatehouse-load" })),
            user: 1,
        },
    ];
    let Rounds { connections, seconds, rounds } = args.rounds;
    writeln!(
        markdown,
        "### Full stack against native\n\n{connections} connections per target (HTTP/1.1 keep-alive, closed loop), \
         {rounds} rounds of {seconds} s, targets alternating; CPU is each process's own time per request.\n"
    )?;
    writeln!(
        markdown,
        "| operation | target | req/s | p50 ms | p99 ms | errors | ratio to native | CPU µs/req: {} |",
        CPU_COLUMNS.join(" | ")
    )?;
    writeln!(markdown, "|---|---|---:|---:|---:|---:|---:|{}", "---:|".repeat(CPU_COLUMNS.len()))?;
    let mut goals = String::new();
    let mut json_rows = Vec::new();
    for operation in &operations {
        let user = &users[operation.user];
        check_answers(operation, targets, user, identity_key).await?;
        let scenario = |target: &Target| scenario_for(operation, target, user, identity_key);
        // Warm every target (connections, caches, instances) before counting.
        for target in targets {
            run(scenario(target), Mode::Closed, connections, Duration::from_secs(1), Duration::ZERO).await?;
        }
        let mut cells: Vec<Cell> = targets.iter().map(|_| Cell::new()).collect();
        for _ in 0..rounds {
            for (target, cell) in targets.iter().zip(&mut cells) {
                let before = processes.cpu();
                let outcome =
                    run(scenario(target), Mode::Closed, connections, Duration::ZERO, Duration::from_secs(seconds))
                        .await?;
                cell.add(&outcome, before, processes.cpu());
            }
        }
        let rate_of =
            |via: Via| cells[targets.iter().position(|t| t.via == via).expect("every target is measured")].rate();
        let native_rate = rate_of(Via::Native);
        for (target, cell) in targets.iter().zip(&cells) {
            let p = Percentiles::of(&cell.latency);
            let cpu: Vec<String> = (0..CPU_COLUMNS.len())
                .map(|c| if cell.cpu[c].is_zero() { "-".into() } else { format!("{:.0}", cell.cpu_us_per_request(c)) })
                .collect();
            let ratio = cell.rate() / native_rate.max(f64::EPSILON);
            writeln!(
                markdown,
                "| {} | {} | {:.0} | {:.2} | {:.2} | {} | {ratio:.3} | {} |",
                operation.name,
                target.label,
                cell.rate(),
                p.p50,
                p.p99,
                cell.errors,
                cpu.join(" | ")
            )?;
            json_rows.push(json!({
                "operation": operation.name, "target": target.label, "requests_per_second": cell.rate(),
                "ok": cell.ok, "errors": cell.errors, "latency_ms": p, "ratio_to_native": ratio,
                "cpu_us_per_request": CPU_COLUMNS.iter().enumerate()
                    .map(|(c, name)| (name.to_string(), json!(cell.cpu_us_per_request(c))))
                    .collect::<serde_json::Map<_, _>>(),
            }));
        }
        let ratio = |via: Via| rate_of(via) / native_rate.max(f64::EPSILON);
        writeln!(
            goals,
            "- {}: host alone **{:.2}×** native (goal ≥ 0.8×), through the proxy **{:.2}×** (goal ≥ 0.6×)",
            operation.name,
            ratio(Via::Host),
            ratio(Via::Proxy)
        )?;
        if let Some(out) = &args.out {
            let x_max = percentile_axis_end(&cells[0].latency);
            let colors: [RGBColor; 3] = [GREEN, BLUE, RED];
            let series = targets
                .iter()
                .zip(&cells)
                .zip(colors)
                .map(|((target, cell), color)| (target.label, color, percentile_curve(&cell.latency, x_max)))
                .collect();
            LineChart::percentiles(operation.name, x_max, series).draw(&out.join(operation.chart))?;
        }
    }
    writeln!(markdown, "\nThroughput against native, from the rows above:\n\n{goals}")?;
    if args.out.is_some() {
        for operation in &operations {
            writeln!(markdown, "![{}]({}{})", operation.name, args.link_prefix, operation.chart)?;
        }
        writeln!(markdown)?;
    }
    Ok(Value::Array(json_rows))
}

/// The request of `operation` as `target` is sent it: through the proxy
/// with the user's token, directly with the identity the proxy would sign.
fn scenario_for(operation: &Operation, target: &Target, user: &User, identity_key: &str) -> Scenario {
    let headers: BTreeMap<String, String> = match target.via {
        Via::Proxy => bearer(user),
        Via::Native | Via::Host => {
            host::identity::signed_headers(identity_key.as_bytes(), operation.method, operation.path, &user.id)
                .into_iter()
                .map(|(name, value)| (name.to_owned(), value))
                .collect()
        }
    };
    let mut scenario =
        Scenario::single(operation.method, &format!("http://{}{}", target.addr, operation.path), headers, None);
    scenario.requests[0].json = operation.json.clone();
    scenario
}

/// Sends `operation` once to each target and checks that all did the same
/// work: the same listing, the same user, an item made.
async fn check_answers(
    operation: &Operation,
    targets: &[Target],
    user: &User,
    identity_key: &str,
) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let mut seen: Option<Value> = None;
    for target in targets {
        let scenario = scenario_for(operation, target, user, identity_key);
        let mut request = client.request(operation.method.parse()?, &scenario.requests[0].path);
        for (name, value) in &scenario.headers {
            request = request.header(name, value);
        }
        if let Some(body) = &operation.json {
            request = request.json(body);
        }
        let response = request.send().await.with_context(|| format!("{} from {}", operation.name, target.label))?;
        let status = response.status();
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        anyhow::ensure!(status == 200, "{} from {}: {status} {answer}", operation.name, target.label);
        // What must agree: the listing's ids and count, the profile, the
        // new item's owner.
        let essence = match operation.method {
            "POST" => json!({ "owner_id": answer["owner_id"] }),
            _ if operation.path == ITEMS_PATH => {
                anyhow::ensure!(
                    answer["data"].as_array().map(Vec::len) == Some(LISTED_ITEMS),
                    "{}: not {LISTED_ITEMS} items from {}",
                    operation.name,
                    target.label
                );
                json!({ "count": answer["count"], "ids": answer["data"].as_array().map(|d| d.iter().map(|i| i["id"].clone()).collect::<Vec<_>>()) })
            }
            _ => answer,
        };
        match &seen {
            Some(first) if *first != essence => {
                bail!("{} answered differently from {}: {essence} against {first}", target.label, targets[0].label)
            }
            _ => seen = Some(essence),
        }
    }
    Ok(())
}

/// Runs `scenario` over HTTP/1.1 keep-alive connections, one per worker.
async fn run(
    scenario: Scenario,
    mode: Mode,
    workers: usize,
    warmup: Duration,
    duration: Duration,
) -> anyhow::Result<Outcome> {
    let options = RunOptions {
        mode,
        concurrency: workers,
        connections: workers,
        warmup,
        duration,
        timeout: Duration::from_secs(30),
        http: HttpVersion::Http1,
        ca_certificate: None,
        insecure: false,
        progress: false,
    };
    loadgen::run(scenario, None, Credentials::default(), options).await
}

/// The header that carries `user`'s token.
fn bearer(user: &User) -> BTreeMap<String, String> {
    BTreeMap::from([("authorization".to_owned(), format!("Bearer {}", user.token))])
}

/// The listing and the profile through the proxy, as a mix.
fn other_routes(base: &str, user: &User) -> Scenario {
    let mut scenario = Scenario::single("GET", &format!("{base}{ITEMS_PATH}"), BTreeMap::new(), None);
    // Per request, so that a request of another user's can join the mix.
    scenario.requests[0].headers = bearer(user);
    let mut me = scenario.requests[0].clone();
    me.path = format!("{base}{ME_PATH}");
    scenario.requests.push(me);
    scenario.requests[0].name = Some("GET /items/api/v1/items/".into());
    scenario.requests[1].name = Some("GET /users/api/v1/users/me".into());
    scenario
}

/// Logins back to back through the proxy, and the other routes at a fixed
/// rate meanwhile, against the same routes at that rate alone.
async fn login_under_load(
    args: &Args,
    user: &User,
    processes: &Processes,
    markdown: &mut String,
) -> anyhow::Result<Value> {
    let base = format!("http://{}", args.proxy);
    let duration = Duration::from_secs(args.login_seconds);
    let warmup = Duration::from_secs(2);
    let probe = || run(other_routes(&base, user), Mode::Open { rate: args.probe_rate }, 16, warmup, duration);
    let idle = probe().await?;
    let mut login = Scenario::single("POST", &format!("{base}{LOGIN_PATH}"), BTreeMap::new(), None);
    login.requests[0].form =
        Some(BTreeMap::from([("username".into(), user.email.clone()), ("password".into(), user.password.clone())]));
    let before = processes.cpu();
    let (logins, loaded) = tokio::join!(run(login, Mode::Closed, args.login_workers, warmup, duration), probe());
    let (logins, loaded) = (logins?, loaded?);
    let after = processes.cpu();
    let host_busy = (after[1].saturating_sub(before[1])).as_secs_f64() / (duration + warmup).as_secs_f64();

    let login_p = Percentiles::of(&logins.latency);
    writeln!(
        markdown,
        "### Login under load\n\n{} logins kept in flight through the proxy (bcrypt at cost 12 inside the auth \
         component) for {} s, while the listing and the profile are requested at {} a second (open loop, latency \
         from when each was due); then the same routes at the same rate alone.\n",
        args.login_workers, args.login_seconds, args.probe_rate
    )?;
    writeln!(
        markdown,
        "Logins: **{:.2} a second**, p50 {:.0} ms, p99 {:.0} ms, {} errors; the host used {:.2} cores meanwhile.\n",
        logins.ok as f64 / logins.measured.as_secs_f64().max(f64::EPSILON),
        login_p.p50,
        login_p.p99,
        logins.errors,
        host_busy
    )?;
    writeln!(
        markdown,
        "| route | idle p50 ms | idle p99 ms | under login p50 ms | under login p99 ms | p99 ratio (goal ≤ 2) | errors |"
    )?;
    writeln!(markdown, "|---|---:|---:|---:|---:|---:|---:|")?;
    let mut rows = Vec::new();
    let all = ("all of them".to_owned(), &idle.latency, &loaded.latency, idle.errors + loaded.errors);
    let by_route = idle.names.iter().zip(idle.per_request.iter().zip(&loaded.per_request));
    let lines = std::iter::once(all)
        .chain(by_route.map(|(name, (i, l))| (name.clone(), &i.latency, &l.latency, i.errors + l.errors)));
    for (name, idle_h, loaded_h, errors) in lines {
        let (i, l) = (Percentiles::of(idle_h), Percentiles::of(loaded_h));
        let ratio = l.p99 / i.p99.max(f64::EPSILON);
        writeln!(
            markdown,
            "| {name} | {:.2} | {:.2} | {:.2} | {:.2} | **{ratio:.2}** | {errors} |",
            i.p50, i.p99, l.p50, l.p99
        )?;
        rows.push(json!({ "route": name, "idle_ms": i, "under_login_ms": l, "p99_ratio": ratio }));
    }
    if let Some(out) = &args.out {
        let x_max = percentile_axis_end(&loaded.latency);
        let series = vec![
            ("idle", BLUE, percentile_curve(&idle.latency, x_max)),
            ("while logins saturate", RED, percentile_curve(&loaded.latency, x_max)),
        ];
        LineChart::percentiles("Listing and profile, idle and under login", x_max, series)
            .draw(&out.join("login.svg"))?;
        writeln!(markdown, "\n![latency under login]({}login.svg)", args.link_prefix)?;
    }
    writeln!(markdown)?;
    Ok(json!({
        "logins_per_second": logins.ok as f64 / logins.measured.as_secs_f64().max(f64::EPSILON),
        "login_latency_ms": login_p, "login_errors": logins.errors, "host_cores_busy": host_busy, "routes": rows,
    }))
}

/// Resident memory (now, peak) of each process.
fn memory(processes: &Processes) -> Vec<(&'static str, u64, u64)> {
    processes
        .named()
        .into_iter()
        .filter_map(|(name, pid)| pid.map(resident_memory).map(|(now, peak)| (name, now, peak)))
        .collect()
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// A mix through the proxy at a fixed rate, the proxy's and host's memory
/// sampled every two seconds; then the memory table.
async fn soak(
    args: &Args,
    users: &[User; 2],
    processes: &Processes,
    idle: &[(&'static str, u64, u64)],
    loaded: &[(&'static str, u64, u64)],
    markdown: &mut String,
) -> anyhow::Result<Value> {
    let base = format!("http://{}", args.proxy);
    let mut scenario = other_routes(&base, &users[0]);
    scenario.requests.push(RequestTemplate {
        name: Some("POST /items/api/v1/items/".into()),
        weight: 1,
        method: "POST".into(),
        path: format!("{base}{ITEMS_PATH}"),
        headers: bearer(&users[1]),
        json: Some(json!({ "title": "soak {seq}" })),
        form: None,
        body: None,
        capture: BTreeMap::from([("id".into(), "/id".into())]),
    });
    scenario.requests.push(RequestTemplate {
        name: Some("GET /items/api/v1/items/{id}".into()),
        weight: 2,
        method: "GET".into(),
        path: format!("{base}{ITEMS_PATH}{{id}}"),
        json: None,
        capture: BTreeMap::new(),
        ..scenario.requests[2].clone()
    });
    scenario.requests[0].weight = 3;
    scenario.requests[1].weight = 3;

    let watched: Vec<(&'static str, u32)> =
        [("proxy", processes.proxy), ("host", processes.host)].into_iter().filter_map(|(n, p)| Some((n, p?))).collect();
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let sampler = {
        let watched = watched.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let mut samples: Vec<(f64, Vec<u64>)> = Vec::new();
            loop {
                samples.push((
                    started.elapsed().as_secs_f64(),
                    watched.iter().map(|(_, pid)| resident_memory(*pid).0).collect(),
                ));
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                    _ = stopped.changed() => break,
                }
            }
            samples
        })
    };
    let outcome =
        run(scenario, Mode::Open { rate: args.soak_rate }, 32, Duration::ZERO, Duration::from_secs(args.soak_seconds))
            .await?;
    let _ = stop.send(true);
    let samples = sampler.await?;

    let p = Percentiles::of(&outcome.latency);
    writeln!(
        markdown,
        "### Memory\n\nResident memory (RSS, MiB): idle after start-up; after the comparison and the logins (now and \
         peak); then a soak through the proxy at {} requests a second for {} s (listing, profile, creating and \
         reading items), sampled every 2 s. Growth is the least-squares slope over the soak's second half.\n",
        args.soak_rate, args.soak_seconds
    )?;
    writeln!(
        markdown,
        "Soak: {} requests, {} errors, {:.0} a second; p50 {:.2} ms, p99 {:.2} ms, max {:.0} ms.\n",
        outcome.ok + outcome.errors,
        outcome.errors,
        outcome.ok as f64 / outcome.measured.as_secs_f64().max(f64::EPSILON),
        p.p50,
        p.p99,
        p.max
    )?;
    writeln!(
        markdown,
        "| process | idle | loaded (peak) | soak start | soak end | soak max | growth, 2nd half (MiB/min) |"
    )?;
    writeln!(markdown, "|---|---:|---:|---:|---:|---:|---:|")?;
    let mut rows = Vec::new();
    for (name, idle_rss, _) in idle {
        let (_, loaded_rss, loaded_peak) = loaded.iter().find(|(n, ..)| n == name).copied().unwrap_or((name, 0, 0));
        let column = watched.iter().position(|(n, _)| n == name);
        let series: Vec<(f64, f64)> =
            column.map(|c| samples.iter().map(|(t, v)| (*t, mib(v[c]))).collect()).unwrap_or_default();
        let (start, end, max) = match (series.first(), series.last()) {
            (Some(first), Some(last)) => (first.1, last.1, series.iter().map(|s| s.1).fold(0.0, f64::max)),
            _ => (f64::NAN, f64::NAN, f64::NAN),
        };
        let growth = slope_per_minute(&series[series.len() / 2..]);
        let soak_cells = if column.is_some() {
            format!("{start:.1} | {end:.1} | {max:.1} | {growth:+.2}")
        } else {
            "- | - | - | -".into()
        };
        writeln!(
            markdown,
            "| {name} | {:.1} | {:.1} ({:.1}) | {soak_cells} |",
            mib(*idle_rss),
            mib(loaded_rss),
            mib(loaded_peak)
        )?;
        rows.push(json!({
            "process": name, "idle_mib": mib(*idle_rss), "loaded_mib": mib(loaded_rss), "peak_mib": mib(loaded_peak),
            "soak": column.map(|_| json!({ "start_mib": start, "end_mib": end, "max_mib": max, "growth_mib_per_minute": growth })),
        }));
    }
    if let Some(out) = &args.out {
        let colors = [RED, BLUE];
        let series: Vec<_> = watched
            .iter()
            .enumerate()
            .map(|(c, (name, _))| {
                (*name, colors[c % 2], samples.iter().map(|(t, v)| (*t, mib(v[c]))).collect::<Vec<_>>())
            })
            .collect();
        let y_max = series.iter().flat_map(|(_, _, s)| s.iter().map(|p| p.1)).fold(1.0, f64::max) * 1.2;
        LineChart {
            title: "Resident memory during the soak",
            x_max: samples.last().map_or(1.0, |s| s.0.max(1.0)),
            y_max,
            x_desc: "seconds",
            y_desc: "RSS (MiB)",
            x_ticks: None,
            legend: plotters::chart::SeriesLabelPosition::LowerRight,
            series,
        }
        .draw(&out.join("memory.svg"))?;
        loadgen::report::write_all(&outcome, &out.join("soak"))?;
        writeln!(
            markdown,
            "\n![memory during the soak]({p}memory.svg)\n![soak throughput]({p}soak/throughput.svg)\n\
             ![soak latency over time]({p}soak/latency-over-time.svg)",
            p = args.link_prefix
        )?;
    }
    writeln!(markdown)?;
    Ok(
        json!({ "processes": rows, "soak_requests": outcome.ok + outcome.errors, "soak_errors": outcome.errors, "soak_latency_ms": p }),
    )
}

/// The least-squares slope of `(seconds, MiB)` points, in MiB a minute.
fn slope_per_minute(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if points.len() < 2 {
        return 0.0;
    }
    let (mx, my) = (points.iter().map(|p| p.0).sum::<f64>() / n, points.iter().map(|p| p.1).sum::<f64>() / n);
    let covariance: f64 = points.iter().map(|(x, y)| (x - mx) * (y - my)).sum();
    let variance: f64 = points.iter().map(|(x, _)| (x - mx).powi(2)).sum();
    if variance == 0.0 { 0.0 } else { covariance / variance * 60.0 }
}

/// Logs in through the proxy; returns the token.
async fn log_in(client: &reqwest::Client, base: &str, email: &str, password: &str) -> anyhow::Result<String> {
    let response = client
        .post(format!("{base}{LOGIN_PATH}"))
        .form(&[("username", email), ("password", password)])
        .send()
        .await
        .with_context(|| format!("logging in at {base}"))?;
    let status = response.status();
    let answer: Value = response.json().await.unwrap_or(Value::Null);
    anyhow::ensure!(status == 200, "logging in as {email}: {status} {answer}");
    Ok(answer["access_token"].as_str().context("no access_token in the login's answer")?.to_owned())
}

async fn post_json(client: &reqwest::Client, url: &str, token: &str, body: &Value) -> anyhow::Result<Value> {
    let response =
        client.post(url).bearer_auth(token).json(body).send().await.with_context(|| format!("POST {url}"))?;
    let status = response.status();
    let answer: Value = response.json().await.unwrap_or(Value::Null);
    anyhow::ensure!(status == 200, "POST {url}: {status} {answer}");
    Ok(answer)
}

/// A new user of this run's (the superuser makes it), logged in.
async fn make_user(client: &reqwest::Client, base: &str, admin: &str, role: &str) -> anyhow::Result<User> {
    let unique = format!("{}-{}", std::process::id(), std::time::SystemTime::UNIX_EPOCH.elapsed()?.as_millis());
    let email = format!("load-{role}-{unique}@example.com");
    let password = format!("load-{unique}-{}", fastrand::u64(..));
    let body = json!({ "email": email, "password": password, "full_name": format!("gatehouse-load {role}") });
    let made = post_json(client, &format!("{base}/users/api/v1/users/"), admin, &body).await?;
    let id = made["id"].as_str().context("no id for the new user")?.to_owned();
    let token = log_in(client, base, &email, &password).await?;
    Ok(User { id, email, password, token })
}
