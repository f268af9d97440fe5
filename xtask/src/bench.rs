//! `cargo xtask bench`: every benchmark of `benches/` in one run, and the
//! report they make, `benches/results/<date>-<commit>.md` with its charts in
//! the folder of the same name.
//!
//! In order: the host alone (`gatehouse-hostbench`) and the proxy alone
//! (`gatehouse-proxybench`); then, with the platform started in release
//! mode, the parts alone (divan micro-benchmarks, whose component rows use
//! the platform's database) and the platform against native code
//! (`gatehouse-load`, whose options follow `--`). The platform's proxy runs
//! `deploy/proxy.toml` with its rate limits lifted, so that logins can
//! saturate the host.

use std::fmt::Write as _;
use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::Context as _;

use crate::{
    HOST_ADDRESS, IDENTITY_KEY_ENV, PROXY_ADDRESS, Platform, PlatformOptions, build_binaries, build_plugins, cargo,
    check, components_dir, project_root, run, step,
};

/// Where reports go, each with a folder of charts beside it.
const RESULTS: &str = "benches/results";
/// The proxy configuration the platform runs here: made from the deployed
/// one, in a folder at the same depth so its relative paths hold.
const BENCH_PROXY_CONFIG: &str = ".gatehouse/bench-proxy.toml";

/// One part of the report: a heading and the program's output (Markdown as
/// it is, or text in a code block).
struct Section {
    heading: &'static str,
    output: String,
    markdown: bool,
}

pub fn bench(extra_args: &[String]) -> anyhow::Result<()> {
    let stem = format!("{}-{}", output_of(Command::new("date").args(["-u", "+%Y-%m-%d"]))?, commit()?);
    let charts = project_root().join(RESULTS).join(&stem);
    let extra: Vec<&String> = extra_args.iter().filter(|a| *a != "--").collect();

    step("building everything measured, in release");
    build_binaries(true, &["benches"])?;
    build_plugins()?;
    // The micro-benchmarks build with their dev-dependencies (another
    // feature set): built here too, so that no building is timed.
    let mut build_micro = micro_benchmarks();
    build_micro.arg("--no-run");
    run(build_micro)?;
    let started = Instant::now();
    let release = project_root().join("target/release");

    step("the host alone: start-up, instantiate + call, hello world against native hyper");
    let mut hostbench = Command::new(release.join("gatehouse-hostbench"));
    hostbench.current_dir(project_root()).arg("--components").arg(components_dir());
    let host = Section { heading: "The host alone (`gatehouse-hostbench`)", output: tee(hostbench)?, markdown: false };

    step("the proxy alone: pass-through to a native upstream against directly, token verification");
    let mut proxybench = Command::new(release.join("gatehouse-proxybench"));
    proxybench.current_dir(project_root());
    let proxy =
        Section { heading: "The proxy alone (`gatehouse-proxybench`)", output: tee(proxybench)?, markdown: false };

    let proxy_config = bench_proxy_config()?;
    let options = PlatformOptions { release: true, proxy_config: &proxy_config, extra_packages: &["benches"] };
    let mut platform = Platform::start(&options)?;
    let measured = (|| {
        step("the parts alone: micro-benchmarks (divan)");
        let mut micro = micro_benchmarks();
        micro.env("DATABASE_URL", &platform.database_url).env("GATEHOUSE_COMPONENTS_DIR", components_dir());
        let micro = tee(micro)?;

        step("the platform against native code: full stack, login under load, memory and a soak");
        let mut load = Command::new(release.join("gatehouse-load"));
        load.current_dir(project_root())
            .args(["--proxy", PROXY_ADDRESS, "--host", HOST_ADDRESS])
            .arg("--native")
            .arg(release.join("gatehouse-native"))
            .arg("--out")
            .arg(&charts)
            .arg("--link-prefix")
            .arg(format!("{stem}/"))
            .args(extra.iter().map(|a| a.as_str()))
            .env("DATABASE_URL", &platform.database_url)
            .env("FIRST_SUPERUSER", &platform.superuser)
            .env("FIRST_SUPERUSER_PASSWORD", &platform.superuser_password)
            .env(IDENTITY_KEY_ENV, &platform.identity_key);
        for (flag, name) in [("--proxy-pid", "proxy"), ("--host-pid", "host")] {
            if let Some(pid) = platform.children.pid(name) {
                load.args([flag, &pid.to_string()]);
            }
        }
        anyhow::Ok((micro, tee(load)?))
    })();
    platform.stop();
    let (micro, load) = measured?;
    // The platform first: it is what the report is for.
    let sections = [
        Section { heading: "The platform against native code (`gatehouse-load`)", output: load, markdown: true },
        host,
        proxy,
        Section { heading: "The parts alone (`cargo bench -p benches --bench micro`)", output: micro, markdown: false },
    ];

    let command = if extra.is_empty() {
        "cargo xtask bench".to_owned()
    } else {
        format!("cargo xtask bench -- {}", extra.iter().map(|a| a.as_str()).collect::<Vec<_>>().join(" "))
    };
    let report = render(&stem, &command, started.elapsed().as_secs(), &sections)?;
    let path = project_root().join(RESULTS).join(format!("{stem}.md"));
    std::fs::write(&path, report).with_context(|| format!("writing {}", path.display()))?;
    eprintln!("\nwrote {RESULTS}/{stem}.md (charts in {RESULTS}/{stem}/)");
    Ok(())
}

fn micro_benchmarks() -> Command {
    let mut micro = cargo();
    micro.args(["bench", "--locked", "-p", "benches", "--bench", "micro"]);
    micro
}

fn render(stem: &str, command: &str, seconds: u64, sections: &[Section]) -> anyhow::Result<String> {
    let mut report = String::new();
    writeln!(report, "# Benchmarks {stem}\n")?;
    writeln!(
        report,
        "Made by `{command}`: {} min {} s after compiling, on {}.\n",
        seconds / 60,
        seconds % 60,
        machine()
    )?;
    writeln!(
        report,
        "Every figure below comes from that one run. The machine is shared by everything measured: the load \
         generator, the proxy, the host, PostgreSQL and the native yardsticks all run on its cores, so absolute \
         figures drift from run to run; ratios of targets measured side by side, in alternating rounds, are what \
         the run tells.\n"
    )?;
    for section in sections {
        writeln!(report, "## {}\n", section.heading)?;
        if section.markdown {
            writeln!(report, "{}", section.output.trim_end())?;
        } else {
            writeln!(report, "```\n{}\n```", section.output.trim_end())?;
        }
        writeln!(report)?;
    }
    Ok(report)
}

/// The deployed proxy configuration with every rate limit lifted (a login
/// limit of 2 a second per address would hide what the host does).
fn bench_proxy_config() -> anyhow::Result<String> {
    let deployed = project_root().join("deploy/proxy.toml");
    let text = std::fs::read_to_string(&deployed).with_context(|| format!("reading {}", deployed.display()))?;
    let mut config: toml::Table = text.parse().context("reading deploy/proxy.toml")?;
    if let Some(toml::Value::Table(limits)) = config.get_mut("rate_limit") {
        for (_, rule) in limits.iter_mut() {
            let Some(rule) = rule.as_table_mut() else { continue };
            rule.insert("per_second".into(), toml::Value::Float(1e6));
            rule.insert("burst".into(), toml::Value::Float(1e6));
        }
    }
    let path = project_root().join(BENCH_PROXY_CONFIG);
    std::fs::create_dir_all(path.parent().expect("a folder"))?;
    std::fs::write(&path, toml::to_string(&config)?)?;
    Ok(BENCH_PROXY_CONFIG.to_owned())
}

/// Runs `cmd`, its standard output shown as it comes and returned.
fn tee(mut cmd: Command) -> anyhow::Result<String> {
    let mut child = cmd.stdout(Stdio::piped()).spawn().with_context(|| format!("cannot run {cmd:?}"))?;
    let mut output = String::new();
    for line in BufReader::new(child.stdout.take().expect("piped")).lines() {
        let line = line?;
        println!("{line}");
        output.push_str(&line);
        output.push('\n');
    }
    check(&cmd, child.wait()?)?;
    Ok(output)
}

fn output_of(cmd: &mut Command) -> anyhow::Result<String> {
    let output = cmd.output().with_context(|| format!("cannot run {cmd:?}"))?;
    anyhow::ensure!(output.status.success(), "{cmd:?} failed");
    Ok(String::from_utf8(output.stdout)?.trim().to_owned())
}

/// The commit measured, marked `-dirty` when the work tree differs from it.
fn commit() -> anyhow::Result<String> {
    let git = |args: &[&str]| output_of(Command::new("git").current_dir(project_root()).args(args));
    let commit = git(&["rev-parse", "--short", "HEAD"])?;
    let dirty = !git(&["status", "--porcelain", "--untracked-files=no"])?.is_empty();
    Ok(if dirty { format!("{commit}-dirty") } else { commit })
}

/// The processor, its cores, the memory and the kernel.
fn machine() -> String {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let model = cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name")?.split_once(':').map(|(_, m)| m.trim().to_owned()))
        .unwrap_or_else(|| "an unknown processor".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let memory_gib = read("/proc/meminfo")
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:")?.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / (1024.0 * 1024.0));
    let kernel = output_of(Command::new("uname").arg("-r")).unwrap_or_default();
    let rustc = output_of(Command::new("rustc").arg("-V")).unwrap_or_default();
    format!("{cores} cores of {model}, {memory_gib:.0} GiB of memory, Linux {kernel}, {rustc}")
}
