//! Sending the mix: workers over reqwest clients, in a closed loop (each
//! worker sends its next request when the last one is answered) or an open
//! loop (each worker sends on a fixed schedule and the latency counts from
//! when the request was due, as wrk2 does, so a server that stalls cannot
//! hide the requests it delayed).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use hdrhistogram::Histogram;

use super::scenario::{self, CapturedValues, RequestTemplate, Scenario};

/// Latencies are recorded in microseconds, up to an hour.
const HIGHEST_MICROS: u64 = 3_600_000_000;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    /// Every worker sends back to back: peak throughput at a fixed concurrency.
    Closed,
    /// Requests are due at a fixed total rate (per second), spread over the
    /// workers; latency counts from when each was due.
    Open { rate: f64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum HttpVersion {
    /// HTTP/1.1 over cleartext; over TLS, h2 if the server offers it by ALPN.
    Auto,
    /// HTTP/1.1 only.
    #[value(name = "1.1")]
    Http1,
    /// HTTP/2 only: h2 by ALPN over TLS, h2c with prior knowledge over cleartext.
    #[value(name = "2")]
    Http2,
}

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub mode: Mode,
    /// Workers, each with at most one request in flight.
    pub concurrency: usize,
    /// Clients the workers share, each with a pool of its own: with HTTP/2
    /// one client is one connection carrying its workers' streams.
    pub connections: usize,
    /// Sent first and not counted.
    pub warmup: Duration,
    /// Measured.
    pub duration: Duration,
    /// For one request, answer included.
    pub timeout: Duration,
    pub http: HttpVersion,
    /// A PEM certificate authority to trust besides the built-in roots.
    pub ca_certificate: Option<Vec<u8>>,
    /// Accepts any server certificate (a test deployment's self-signed one).
    pub insecure: bool,
    /// Draws a progress bar on standard error (when it is a terminal).
    pub progress: bool,
}

/// Who the run is: a token, or credentials for the scenario's login.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    pub username: Option<String>,
    pub password: Option<String>,
    /// Sent as it is; the login step is then skipped.
    pub token: Option<String>,
}

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Failure {
    /// The server answered with a status of 400 or more.
    Status(u16),
    /// No usable answer: `connect`, `timeout`, `request`, `body`, `capture`…
    Kind(&'static str),
}

/// Everything one run measured. Only requests due after the warm-up and
/// before the end are counted.
pub struct Outcome {
    pub target: String,
    pub options: RunOptions,
    /// Names of the mix's requests, in the scenario's order.
    pub names: Vec<String>,
    /// Latency of every answered request, from when it was due (open loop)
    /// or sent (closed loop).
    pub latency: Histogram<u64>,
    /// The same answers timed from when they were actually sent: what a
    /// load generator blind to coordinated omission would report.
    pub uncorrected: Histogram<u64>,
    pub per_request: Vec<RequestTally>,
    pub ok: u64,
    pub errors: u64,
    pub errors_by_status: BTreeMap<u16, u64>,
    pub errors_by_kind: BTreeMap<&'static str, u64>,
    /// Answers by the HTTP version they came in.
    pub versions: BTreeMap<String, u64>,
    /// One entry per second of the measured period, by completion time.
    pub timeline: Vec<Second>,
    /// From the end of the warm-up to the last counted answer, or to the
    /// stop if the run was cut short.
    pub measured: Duration,
    /// Stopped before its end.
    pub interrupted: bool,
}

pub struct RequestTally {
    pub ok: u64,
    pub errors: u64,
    pub latency: Histogram<u64>,
}

pub struct Second {
    pub ok: u64,
    pub errors: u64,
    /// Coarser (two significant figures): one per second adds up.
    pub latency: Histogram<u64>,
}

impl Outcome {
    fn new(target: String, options: RunOptions, names: Vec<String>) -> Self {
        let histogram = latency_histogram;
        Outcome {
            target,
            options,
            per_request: names.iter().map(|_| RequestTally { ok: 0, errors: 0, latency: histogram() }).collect(),
            names,
            latency: histogram(),
            uncorrected: histogram(),
            ok: 0,
            errors: 0,
            errors_by_status: BTreeMap::new(),
            errors_by_kind: BTreeMap::new(),
            versions: BTreeMap::new(),
            timeline: Vec::new(),
            measured: Duration::ZERO,
            interrupted: false,
        }
    }

    /// Counts one request: `due` is when it should have been sent, `sent`
    /// when it was, `done` when its answer was read (or it failed).
    fn record(&mut self, which: usize, timing: Timing, result: &Result<http::Version, Failure>) {
        let second = self.second_of(timing.measure_start, timing.done);
        self.measured = self.measured.max(timing.done.saturating_duration_since(timing.measure_start));
        let corrected = micros(timing.done.saturating_duration_since(timing.due));
        let answered = match result {
            Ok(version) => {
                self.ok += 1;
                self.per_request[which].ok += 1;
                self.timeline[second].ok += 1;
                *self.versions.entry(format!("{version:?}")).or_default() += 1;
                true
            }
            Err(failure) => {
                self.errors += 1;
                self.per_request[which].errors += 1;
                self.timeline[second].errors += 1;
                match failure {
                    Failure::Status(status) => *self.errors_by_status.entry(*status).or_default() += 1,
                    Failure::Kind(kind) => *self.errors_by_kind.entry(kind).or_default() += 1,
                }
                matches!(failure, Failure::Status(_))
            }
        };
        // Latency is that of every answer, whatever its status; a request
        // that got none (refused, timed out) has no latency to count.
        if answered {
            self.latency.saturating_record(corrected);
            self.uncorrected.saturating_record(micros(timing.done.saturating_duration_since(timing.sent)));
            self.per_request[which].latency.saturating_record(corrected);
            // Grows as needed (the histogram resizes itself; saturating would clamp).
            let _ = self.timeline[second].latency.record(corrected.min(HIGHEST_MICROS));
        }
    }
}

impl Outcome {
    /// A request due in the measured period that was never sent: the
    /// workers were still that far behind a timeout after the end.
    fn record_unsent(&mut self, measure_start: Instant, now: Instant) {
        let second = self.second_of(measure_start, now);
        self.errors += 1;
        self.timeline[second].errors += 1;
        *self.errors_by_kind.entry("unsent").or_default() += 1;
    }

    /// The timeline's index for `at`, the timeline grown to hold it.
    fn second_of(&mut self, measure_start: Instant, at: Instant) -> usize {
        let second = at.saturating_duration_since(measure_start).as_secs() as usize;
        while self.timeline.len() <= second {
            self.timeline.push(Second { ok: 0, errors: 0, latency: Histogram::new(2).expect("valid histogram") });
        }
        second
    }
}

#[derive(Clone, Copy)]
struct Timing {
    measure_start: Instant,
    due: Instant,
    sent: Instant,
    done: Instant,
}

/// An empty histogram of latencies in microseconds, as every run records
/// them (so that any two can be added).
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIGHEST_MICROS, 3).expect("valid histogram bounds")
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX).max(1)
}

/// Counters the progress bar reads while the run goes on (warm-up included).
#[derive(Default)]
struct Live {
    sent: AtomicU64,
    errors: AtomicU64,
}

/// What every worker shares.
struct Run {
    scenario: Scenario,
    base_url: Option<String>,
    credentials: Credentials,
    token: Option<String>,
    options: RunOptions,
    /// Per request of the mix: the variables it needs captured first.
    needs: Vec<Vec<String>>,
    captured: Mutex<CapturedValues>,
    seq: AtomicU64,
    live: Live,
    outcome: Mutex<Outcome>,
    start: Instant,
    measure_start: Instant,
    end: Instant,
    /// Becomes true when the run is stopped before its end (Ctrl-C).
    stop: tokio::sync::watch::Receiver<bool>,
}

/// Builds one client as the options say.
pub fn client(options: &RunOptions) -> anyhow::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .user_agent(concat!("gatehouse-loadgen/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .timeout(options.timeout)
        .tcp_nodelay(true)
        .danger_accept_invalid_certs(options.insecure);
    builder = match options.http {
        HttpVersion::Auto => builder,
        HttpVersion::Http1 => builder.http1_only(),
        HttpVersion::Http2 => builder.http2_prior_knowledge(),
    };
    if let Some(pem) = &options.ca_certificate {
        builder =
            builder.add_root_certificate(reqwest::Certificate::from_pem(pem).context("reading the CA certificate")?);
    }
    builder.build().context("building the HTTP client")
}

/// Logs in with the scenario's login step; returns the token.
pub async fn log_in(
    client: &reqwest::Client,
    scenario: &Scenario,
    base_url: Option<&str>,
    credentials: &Credentials,
) -> anyhow::Result<Option<String>> {
    if let Some(token) = &credentials.token {
        return Ok(Some(token.clone()));
    }
    let Some(login) = &scenario.login else { return Ok(None) };
    let lookup = |name: &str| match name {
        "username" => credentials.username.clone(),
        "password" => credentials.password.clone(),
        _ => None,
    };
    for value in login.form.values() {
        for name in scenario::variables_in(value) {
            if lookup(&name).is_none() {
                bail!("the login needs {{{name}}}: give --{name} (or GATEHOUSE_LOADGEN_{})", name.to_uppercase());
            }
        }
    }
    let form: BTreeMap<&str, String> =
        login.form.iter().map(|(k, v)| (k.as_str(), scenario::render(v, &lookup))).collect();
    let url = scenario::join_url(base_url, &login.path)?;
    let response = client.post(&url).form(&form).send().await.with_context(|| format!("logging in at {url}"))?;
    let status = response.status();
    if !status.is_success() {
        bail!("logging in at {url}: the server answered {status}");
    }
    let answer: serde_json::Value = response.json().await.context("the login's answer is not JSON")?;
    let token = scenario::capture_text(&answer, &login.token)
        .with_context(|| format!("no token at `{}` in the login's answer", login.token))?;
    Ok(Some(token))
}

/// Runs the scenario: logs in, warms up, measures, and returns what it saw.
pub async fn run(
    scenario: Scenario,
    base_url: Option<String>,
    credentials: Credentials,
    options: RunOptions,
) -> anyhow::Result<Outcome> {
    run_until(scenario, base_url, credentials, options, std::future::pending()).await
}

/// Like [`run`], cut short when `stop` completes (on Ctrl-C, say): requests
/// in flight then are abandoned, and what was measured until then is
/// returned.
pub async fn run_until(
    scenario: Scenario,
    base_url: Option<String>,
    credentials: Credentials,
    options: RunOptions,
    stop: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<Outcome> {
    scenario.check()?;
    anyhow::ensure!(options.concurrency > 0, "the concurrency must be at least 1");
    if let Mode::Open { rate } = options.mode {
        anyhow::ensure!(rate > 0.0 && rate.is_finite(), "the rate must be a positive number of requests per second");
    }
    let base_url = base_url.or_else(|| scenario.base_url.clone());
    let clients = (0..options.connections.max(1)).map(|_| client(&options)).collect::<anyhow::Result<Vec<_>>>()?;
    let token = log_in(&clients[0], &scenario, base_url.as_deref(), &credentials).await?;
    let target = match &base_url {
        Some(base) => base.clone(),
        None => scenario.requests[0].path.clone(),
    };
    let names = scenario.requests.iter().map(RequestTemplate::display_name).collect();
    let needs = scenario.requests.iter().map(RequestTemplate::captured_variables).collect();
    let start = Instant::now();
    let measure_start = start + options.warmup;
    let (stop_sender, stop_receiver) = tokio::sync::watch::channel(false);
    let stopper = tokio::spawn(async move {
        stop.await;
        let _ = stop_sender.send(true);
        Instant::now()
    });
    let run = Arc::new(Run {
        outcome: Mutex::new(Outcome::new(target, options.clone(), names)),
        scenario,
        base_url,
        credentials,
        token,
        options: options.clone(),
        needs,
        captured: Mutex::new(CapturedValues::default()),
        seq: AtomicU64::new(0),
        live: Live::default(),
        start,
        measure_start,
        end: measure_start + options.duration,
        stop: stop_receiver,
    });
    let progress = options.progress.then(|| spawn_progress(Arc::clone(&run)));
    let mut schedules = Vec::new();
    let workers: Vec<_> = (0..options.concurrency)
        .map(|index| {
            let client = clients[index % clients.len()].clone();
            match options.mode {
                Mode::Closed => tokio::spawn(closed_loop_worker(Arc::clone(&run), index, client)),
                Mode::Open { .. } => {
                    let (sender, dues) = tokio::sync::mpsc::unbounded_channel();
                    schedules.push(sender);
                    tokio::spawn(open_loop_worker(Arc::clone(&run), index, client, dues))
                }
            }
        })
        .collect();
    if let Mode::Open { rate } = options.mode {
        let (start, end) = (run.start, run.end);
        std::thread::Builder::new()
            .name("loadgen-schedule".into())
            .spawn(move || schedule(start, end, rate, schedules))
            .context("starting the schedule's thread")?;
    }
    for worker in workers {
        worker.await.context("a worker panicked")?;
    }
    if let Some((bar, ticker)) = progress {
        ticker.abort();
        let _ = ticker.await;
        bar.finish_and_clear();
    }
    let stopped = *run.stop.borrow();
    let stopped_at = if stopped {
        stopper.await.ok()
    } else {
        stopper.abort();
        None
    };
    let run = Arc::into_inner(run).context("the progress bar still holds the run")?;
    let mut outcome = run.outcome.into_inner().expect("no worker panicked holding the tally");
    outcome.measured = match stopped_at {
        Some(at) if at < run.end => {
            outcome.interrupted = true;
            at.saturating_duration_since(run.measure_start)
        }
        // Throughput is over the measured period, or longer if the last
        // answers came in after it.
        _ => outcome.measured.max(options.duration),
    };
    Ok(outcome)
}

/// Closed loop: the next request as soon as the last is answered.
async fn closed_loop_worker(run: Arc<Run>, index: usize, client: reqwest::Client) {
    let mut rng = fastrand::Rng::with_seed(0x9e37_79b9_7f4a_7c15 ^ index as u64);
    let mut stop = run.stop.clone();
    loop {
        let due = Instant::now();
        if due >= run.end {
            break;
        }
        tokio::select! {
            _ = exchange(&run, &client, &mut rng, due) => {}
            _ = stop.wait_for(|stopped| *stopped) => break,
        }
    }
}

/// Open loop: sends each request handed over by [`schedule`]. Behind
/// schedule (a slow answer), the next ones go at once and each still counts
/// from when it was due; what is still owed a timeout after the end is
/// counted as `unsent` rather than dropped.
async fn open_loop_worker(
    run: Arc<Run>,
    index: usize,
    client: reqwest::Client,
    mut dues: tokio::sync::mpsc::UnboundedReceiver<Instant>,
) {
    let mut rng = fastrand::Rng::with_seed(0x9e37_79b9_7f4a_7c15 ^ index as u64);
    let give_up = run.end + run.options.timeout;
    let mut stop = run.stop.clone();
    loop {
        let due = tokio::select! {
            due = dues.recv() => match due {
                Some(due) => due,
                None => break,
            },
            _ = stop.wait_for(|stopped| *stopped) => break,
        };
        if Instant::now() < give_up {
            tokio::select! {
                _ = exchange(&run, &client, &mut rng, due) => {}
                _ = stop.wait_for(|stopped| *stopped) => break,
            }
        } else if due >= run.measure_start {
            run.outcome.lock().expect("tally").record_unsent(run.measure_start, Instant::now());
        }
    }
}

/// The open loop's clock, on a thread of its own: request `k` is due at
/// `k / rate` seconds and goes to worker `k mod concurrency`, so each worker
/// has a fixed schedule, interleaved with the others'. A thread's sleep is
/// precise to tens of microseconds; the async runtime's timer rounds up to
/// the next millisecond, which would add up to a millisecond to every
/// latency counted from when a request was due.
fn schedule(start: Instant, end: Instant, rate: f64, workers: Vec<tokio::sync::mpsc::UnboundedSender<Instant>>) {
    for k in 0u64.. {
        let due = start + Duration::from_secs_f64(k as f64 / rate);
        if due >= end {
            break;
        }
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        if workers[(k % workers.len() as u64) as usize].send(due).is_err() {
            break;
        }
    }
}

/// Sends one request of the mix that was due at `due`, and counts it.
async fn exchange(run: &Run, client: &reqwest::Client, rng: &mut fastrand::Rng, due: Instant) {
    let sent = Instant::now();
    let (which, result) = send_one(run, client, rng).await;
    let done = Instant::now();
    run.live.sent.fetch_add(1, Ordering::Relaxed);
    if result.is_err() {
        run.live.errors.fetch_add(1, Ordering::Relaxed);
    }
    if due >= run.measure_start {
        let timing = Timing { measure_start: run.measure_start, due, sent, done };
        run.outcome.lock().expect("tally").record(which, timing, &result);
    }
}

/// Picks a request of the mix among those whose variables have values,
/// sends it, reads the answer and keeps what it captures.
async fn send_one(
    run: &Run,
    client: &reqwest::Client,
    rng: &mut fastrand::Rng,
) -> (usize, Result<http::Version, Failure>) {
    let requests = &run.scenario.requests;
    let mut values: BTreeMap<String, String> = BTreeMap::new();
    let which = {
        let captured = run.captured.lock().expect("captured values");
        let ready = |i: usize| run.needs[i].iter().all(|name| captured.has(name));
        let total: u64 = (0..requests.len()).filter(|&i| ready(i)).map(|i| u64::from(requests[i].weight)).sum();
        let mut ticket = rng.u64(0..total.max(1));
        let which = (0..requests.len())
            .filter(|&i| ready(i) && requests[i].weight > 0)
            .find(|&i| {
                let weight = u64::from(requests[i].weight);
                if ticket < weight {
                    true
                } else {
                    ticket -= weight;
                    false
                }
            })
            .unwrap_or(0);
        for name in &run.needs[which] {
            if let Some(value) = captured.pick(name, |n| rng.usize(0..n)) {
                values.insert(name.clone(), value);
            }
        }
        which
    };
    let seq = run.seq.fetch_add(1, Ordering::Relaxed).to_string();
    let lookup = |name: &str| match name {
        "token" => run.token.clone(),
        "username" => run.credentials.username.clone(),
        "password" => run.credentials.password.clone(),
        "seq" => Some(seq.clone()),
        other => values.get(other).cloned(),
    };
    let template = &requests[which];
    (which, send(run, client, template, &lookup).await)
}

async fn send(
    run: &Run,
    client: &reqwest::Client,
    template: &RequestTemplate,
    lookup: &(dyn Fn(&str) -> Option<String> + Sync),
) -> Result<http::Version, Failure> {
    let path = scenario::render(&template.path, lookup);
    let url = scenario::join_url(run.base_url.as_deref(), &path).map_err(|_| Failure::Kind("url"))?;
    let method = http::Method::from_bytes(template.method.as_bytes()).map_err(|_| Failure::Kind("request"))?;
    let mut request = client.request(method, url);
    if let Some(token) = &run.token
        && !run.scenario.headers.keys().any(|k| k.eq_ignore_ascii_case("authorization"))
    {
        request = request.bearer_auth(token);
    }
    for (name, value) in run.scenario.headers.iter().chain(&template.headers) {
        request = request.header(name, scenario::render(value, lookup));
    }
    if let Some(json) = &template.json {
        request = request.json(&scenario::render_json(json, lookup));
    } else if let Some(form) = &template.form {
        let form: BTreeMap<&str, String> =
            form.iter().map(|(k, v)| (k.as_str(), scenario::render(v, lookup))).collect();
        request = request.form(&form);
    } else if let Some(body) = &template.body {
        request = request.body(scenario::render(body, lookup));
    }
    let response = request.send().await.map_err(|e| Failure::Kind(error_kind(&e)))?;
    let status = response.status();
    let version = response.version();
    let body = response.bytes().await.map_err(|e| Failure::Kind(error_kind(&e)))?;
    if status.as_u16() >= 400 {
        return Err(Failure::Status(status.as_u16()));
    }
    if !template.capture.is_empty() {
        let answer: serde_json::Value = serde_json::from_slice(&body).map_err(|_| Failure::Kind("capture"))?;
        let mut found = Vec::with_capacity(template.capture.len());
        for (name, pointer) in &template.capture {
            found.push((name, scenario::capture_text(&answer, pointer).ok_or(Failure::Kind("capture"))?));
        }
        let mut captured = run.captured.lock().expect("captured values");
        for (name, value) in found {
            captured.keep(name, value);
        }
    }
    Ok(version)
}

fn error_kind(error: &reqwest::Error) -> &'static str {
    if error.is_timeout() {
        "timeout"
    } else if error.is_connect() {
        "connect"
    } else if error.is_body() || error.is_decode() {
        "body"
    } else if error.is_request() {
        "request"
    } else {
        "other"
    }
}

/// A progress bar with the live rate and errors, redrawn four times a second.
fn spawn_progress(run: Arc<Run>) -> (indicatif::ProgressBar, tokio::task::JoinHandle<()>) {
    let total = run.end.duration_since(run.start);
    let bar = indicatif::ProgressBar::new(total.as_millis() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{prefix:>9} [{bar:20}] {msg}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    let ticker_bar = bar.clone();
    let ticker = tokio::spawn(async move {
        let mut last = (Instant::now(), 0u64);
        let mut rate = 0.0;
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tick.tick().await;
            let now = Instant::now();
            let sent = run.live.sent.load(Ordering::Relaxed);
            let errors = run.live.errors.load(Ordering::Relaxed);
            // The rate over about the last second.
            if now.duration_since(last.0) >= Duration::from_secs(1) {
                rate = (sent - last.1) as f64 / now.duration_since(last.0).as_secs_f64();
                last = (now, sent);
            }
            let phase = if now < run.measure_start {
                "warm-up"
            } else if now < run.end {
                "measuring"
            } else {
                "finishing"
            };
            let left = run.end.saturating_duration_since(now).as_secs();
            ticker_bar.set_prefix(phase);
            ticker_bar.set_position(now.duration_since(run.start).as_millis() as u64);
            ticker_bar.set_message(format!("{rate:>7.0} req/s {errors:>6} errors {left:>5} s left"));
        }
    });
    (bar, ticker)
}
