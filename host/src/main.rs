use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser;

/// Gatehouse's runtime host: serves the components a manifest names.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The manifest (TOML) naming components, databases and limits.
    #[arg(long, env = "GATEHOUSE_HOST_MANIFEST", default_value = "deploy/host.toml")]
    manifest: PathBuf,
    /// Run a Spin application manifest (`spin.toml`, version 2) as it is,
    /// instead of a host manifest.
    #[arg(long, value_name = "SPIN_TOML", conflicts_with = "manifest")]
    from: Option<PathBuf>,
    /// With `--from`: what `spin.toml` does not say (databases behind the
    /// PostgreSQL addresses, key-value stores, limits, listen address).
    #[arg(long, value_name = "FILE", requires = "from")]
    runtime_config_file: Option<PathBuf>,
    /// Check the manifest and exit without serving.
    #[arg(long)]
    check: bool,
    /// Keep compiled components in this folder (overrides the manifest's
    /// `compile_cache`).
    #[arg(long, env = "GATEHOUSE_COMPILE_CACHE")]
    compile_cache: Option<PathBuf>,
    /// Override the manifest's admin listen address.
    #[arg(long, env = "GATEHOUSE_HOST_ADMIN_LISTEN")]
    admin_listen: Option<std::net::SocketAddr>,
    /// Override the manifest's listen address.
    #[arg(long, env = "GATEHOUSE_HOST_LISTEN")]
    listen: Option<std::net::SocketAddr>,
}

#[tokio::main]
async fn main() {
    // A start-up failure is one line saying what is wrong, not a backtrace.
    if let Err(e) = serve().await {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

async fn serve() -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,sqlx=warn".into());
    // `GATEHOUSE_LOG_FORMAT=json`: one JSON object a line, for collectors.
    if std::env::var("GATEHOUSE_LOG_FORMAT").is_ok_and(|f| f == "json") {
        tracing_subscriber::fmt().json().with_current_span(true).with_env_filter(filter).init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
    let args = Args::parse();
    let (manifest, files) = load(&args)?;
    let source = args.from.clone().unwrap_or_else(|| args.manifest.clone());
    if args.check {
        return check(&manifest, &source);
    }
    let runtime = host::prepare(&manifest, |k| std::env::var(k).ok()).await?;
    let listener = tokio::net::TcpListener::bind(manifest.server.listen)
        .await
        .with_context(|| format!("cannot listen on {}", manifest.server.listen))?;
    let admin = tokio::net::TcpListener::bind(manifest.server.admin_listen)
        .await
        .with_context(|| format!("cannot listen on {} (admin)", manifest.server.admin_listen))?;
    tracing::info!(address = %listener.local_addr()?, admin = %admin.local_addr()?, "host listening");
    let live = host::live::Live::new(runtime);

    // A changed manifest or component (or SIGHUP) is loaded whole and
    // swapped in; addresses stay as they were at start.
    let poll = (manifest.server.reload_poll_seconds > 0)
        .then(|| std::time::Duration::from_secs(manifest.server.reload_poll_seconds));
    let (listen, admin_listen) = (manifest.server.listen, manifest.server.admin_listen);
    let reload_args = Arc::new(args);
    tokio::spawn(host::live::watch(live.clone(), poll, files, move || {
        let args = reload_args.clone();
        async move {
            let (manifest, files) = load(&args)?;
            if (manifest.server.listen, manifest.server.admin_listen) != (listen, admin_listen) {
                tracing::warn!("listen addresses change only with a restart; the old ones stay");
            }
            Ok((host::prepare(&manifest, |k| std::env::var(k).ok()).await?, files))
        }
    }));

    let (stop_admin, admin_stopped) = tokio::sync::oneshot::channel::<()>();
    let admin_task = tokio::spawn(host::server::serve_admin(live.clone(), admin, async {
        let _ = admin_stopped.await;
    }));
    let draining = live.clone();
    let grace = std::time::Duration::from_secs(manifest.server.drain_seconds);
    let shutdown = async move {
        shutdown_signal().await;
        // Say not ready at once, while requests in flight finish.
        draining.start_draining();
    };
    host::server::serve(live, listener, shutdown, grace).await;
    let _ = stop_admin.send(());
    let _ = admin_task.await;
    Ok(())
}

/// The manifest the arguments name, with their overrides, and the files
/// it came from (the manifest or `spin.toml` and its runtime config, and
/// every component), which a reload watches.
fn load(args: &Args) -> anyhow::Result<(host::Manifest, Vec<PathBuf>)> {
    let (mut manifest, mut files) = match &args.from {
        Some(spin_toml) => {
            let manifest =
                host::spin_app::load(spin_toml, args.runtime_config_file.as_deref(), |k| std::env::var(k).ok())?;
            let mut files = vec![spin_toml.clone()];
            files.extend(args.runtime_config_file.clone());
            (manifest, files)
        }
        None => (host::Manifest::load(&args.manifest)?, vec![args.manifest.clone()]),
    };
    if let Some(listen) = args.listen {
        manifest.server.listen = listen;
    }
    if let Some(admin) = args.admin_listen {
        manifest.server.admin_listen = admin;
    }
    if let Some(dir) = &args.compile_cache {
        manifest.server.compile_cache = Some(dir.clone());
    }
    files.extend(manifest.component.values().map(|c| c.file.clone()));
    Ok((manifest, files))
}

/// Everything `--check` finds, reported at once: variables and database
/// addresses missing from the environment, and every component that does
/// not compile or link (the file, and the cause in words).
fn check(manifest: &host::Manifest, path: &std::path::Path) -> anyhow::Result<()> {
    let env = |k: &str| std::env::var(k).ok();
    let mut problems = Vec::new();
    for (name, component) in &manifest.component {
        if let Err(e) = component.resolve_variables(name, env) {
            problems.push(e.to_string());
        }
    }
    if let Err(e) = manifest.database_urls(env) {
        problems.push(e.to_string());
    }
    let engine = host::Runtime::new_engine(manifest)?;
    if let Err(link) = host::runtime::link_components(&engine, &manifest.component) {
        problems.extend(link);
    }
    if problems.is_empty() {
        println!("{}: ok", path.display());
        return Ok(());
    }
    for problem in &problems {
        eprintln!("error: {problem}");
    }
    anyhow::bail!("{}: {} problem(s)", path.display(), problems.len())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
