//! `gatehouse-loadgen`: load on any URL, a deployment's over TLS included,
//! in a closed loop (fixed concurrency: peak throughput) or an open loop
//! (fixed arrival rate: latency from when each request was due, corrected
//! for coordinated omission). Prints a summary; with `--out`, writes
//! `results.json` and SVG charts.
//!
//! ```sh
//! gatehouse-loadgen --url http://127.0.0.1:8080/items/api/v1/items/ --token "$TOKEN" --duration 30s
//! gatehouse-loadgen --scenario benches/scenarios/items.toml --base-url https://gatehouse.example.com \
//!     --username admin@example.com --password "$PASSWORD" --rate 500 --out results/
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use benches::loadgen::{self, Credentials, HttpVersion, Mode, RunOptions, Scenario};
use clap::Parser;

#[derive(Debug, Parser)]
#[command(name = "gatehouse-loadgen", version, about = "Load on any URL: closed or open loop, HTTP/1.1 or HTTP/2")]
struct Args {
    /// One URL to load (with --method, --header, --body).
    #[arg(long, conflicts_with = "scenario", required_unless_present = "scenario")]
    url: Option<String>,
    /// A scenario file (TOML or JSON): a login step and a weighted mix.
    #[arg(long)]
    scenario: Option<PathBuf>,
    /// Scheme, host and port the scenario's paths are joined to
    /// (overrides its base_url).
    #[arg(long)]
    base_url: Option<String>,
    /// The method for --url.
    #[arg(long, default_value = "GET", requires = "url")]
    method: String,
    /// A header for --url, `name: value`; may be repeated.
    #[arg(long = "header", short = 'H', requires = "url")]
    headers: Vec<String>,
    /// The body for --url.
    #[arg(long, requires = "url")]
    body: Option<String>,
    /// A bearer token sent with every request (the login is then skipped).
    #[arg(long, env = "GATEHOUSE_LOADGEN_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// For --url: where to log in (a form with username and password,
    /// answered with the token in JSON).
    #[arg(long, requires = "url")]
    login_url: Option<String>,
    /// JSON pointer to the token in --login-url's answer.
    #[arg(long, default_value = "/access_token", requires = "login_url")]
    token_pointer: String,
    #[arg(long, env = "GATEHOUSE_LOADGEN_USERNAME")]
    username: Option<String>,
    #[arg(long, env = "GATEHOUSE_LOADGEN_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// Requests per second, due on a fixed schedule (open loop). Without
    /// it, each worker sends back to back (closed loop).
    #[arg(long)]
    rate: Option<f64>,
    /// Workers, each with at most one request in flight.
    #[arg(long, short = 'c', default_value_t = 16)]
    concurrency: usize,
    /// Clients the workers share; with HTTP/2 a client is one connection.
    /// Default: one per worker with HTTP/1.1, one in all with HTTP/2.
    #[arg(long)]
    connections: Option<usize>,
    /// How long to measure (`30s`, `2m`, `500ms`; seconds if bare).
    #[arg(long, short = 'd', default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Sent before measuring, not counted.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    warmup: Duration,
    /// Longest wait for one answer.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    timeout: Duration,
    #[arg(long, value_enum, default_value = "auto")]
    http: HttpVersion,
    /// A PEM certificate authority to trust besides the built-in roots.
    #[arg(long)]
    cacert: Option<PathBuf>,
    /// Accept any server certificate.
    #[arg(long)]
    insecure: bool,
    /// Where to write results.json and the charts.
    #[arg(long)]
    out: Option<PathBuf>,
    /// No progress bar.
    #[arg(long, short = 'q')]
    quiet: bool,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| c.is_ascii_alphabetic()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let number: f64 = number.trim().parse().map_err(|_| format!("`{text}` is not a duration (30s, 2m, 500ms)"))?;
    let seconds = match unit {
        "ms" => number / 1e3,
        "s" => number,
        "m" => number * 60.0,
        _ => return Err(format!("`{unit}` is not a unit of time: ms, s or m")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("`{text}` is not a duration"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let scenario = match (&args.scenario, &args.url) {
        (Some(path), _) => Scenario::from_file(path)?,
        (None, Some(url)) => {
            let mut headers = BTreeMap::new();
            for header in &args.headers {
                let (name, value) =
                    header.split_once(':').with_context(|| format!("`{header}` is not `name: value`"))?;
                headers.insert(name.trim().to_owned(), value.trim().to_owned());
            }
            let mut scenario = Scenario::single(&args.method, url, headers, args.body.clone());
            if let Some(login_url) = &args.login_url {
                scenario.login = Some(loadgen::scenario::LoginStep {
                    path: login_url.clone(),
                    form: BTreeMap::from([
                        ("username".into(), "{username}".into()),
                        ("password".into(), "{password}".into()),
                    ]),
                    token: args.token_pointer.clone(),
                });
            }
            scenario
        }
        (None, None) => unreachable!("clap requires --url or --scenario"),
    };
    let ca_certificate = match &args.cacert {
        Some(path) => Some(std::fs::read(path).with_context(|| format!("reading {}", path.display()))?),
        None => None,
    };
    let connections = args.connections.unwrap_or(match args.http {
        HttpVersion::Http2 => 1,
        _ => args.concurrency,
    });
    let options = RunOptions {
        mode: args.rate.map_or(Mode::Closed, |rate| Mode::Open { rate }),
        concurrency: args.concurrency,
        connections,
        warmup: args.warmup,
        duration: args.duration,
        timeout: args.timeout,
        http: args.http,
        ca_certificate,
        insecure: args.insecure,
        progress: !args.quiet,
    };
    let credentials = Credentials { username: args.username, password: args.password, token: args.token };
    // Ctrl-C ends the run early; what was measured until then is reported.
    let interrupted = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let outcome = loadgen::run_until(scenario, args.base_url, credentials, options, interrupted).await?;
    let report = match &args.out {
        Some(dir) => loadgen::report::write_all(&outcome, dir)?,
        None => loadgen::Report::of(&outcome),
    };
    print!("{}", report.summary());
    if let Some(dir) = &args.out {
        println!("\nwrote results.json, latency.svg, throughput.svg and latency-over-time.svg to {}", dir.display());
    }
    if let (Some(rate), true) = (report.rate, report.duration_s > 0.0)
        && report.requests_per_second < rate * 0.9
    {
        println!(
            "\nnote: {:.0} req/s of the {rate} asked for: the workers could not keep up (more --concurrency?)",
            report.requests_per_second
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("3h").is_err());
        assert!(parse_duration("x").is_err());
    }
}
