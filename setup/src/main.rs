use std::path::PathBuf;

use clap::Parser;

/// Gatehouse's one-shot setup: applies every component's schema migrations
/// named in a host manifest, then creates the first superuser from
/// FIRST_SUPERUSER and FIRST_SUPERUSER_PASSWORD (if both are set). Safe to
/// run again; run it before the hosts start and on every upgrade.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The host's manifest: its databases and each component's migrations.
    #[arg(long, env = "GATEHOUSE_HOST_MANIFEST", default_value = "deploy/host.toml")]
    manifest: PathBuf,
    /// The database (a name from the manifest's `[database]`) holding the
    /// users' table.
    #[arg(long, env = "GATEHOUSE_USERS_DATABASE", default_value = "app")]
    users_database: String,
}

#[tokio::main]
async fn main() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,sqlx=warn".into());
    if std::env::var("GATEHOUSE_LOG_FORMAT").is_ok_and(|f| f == "json") {
        tracing_subscriber::fmt().json().with_env_filter(filter).init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
    let args = Args::parse();
    let result = async {
        let manifest = host::Manifest::load(&args.manifest)?;
        setup::run(&manifest, |k| std::env::var(k).ok(), &args.users_database).await
    }
    .await;
    match result {
        Ok(report) => {
            tracing::info!(applied = report.migrations.len(), "schema up to date");
            match report.superuser {
                Some((email, created)) => tracing::info!(%email, created, "first superuser"),
                None => tracing::info!(
                    "{} or {} unset: no first superuser",
                    setup::FIRST_SUPERUSER_ENV,
                    setup::FIRST_SUPERUSER_PASSWORD_ENV
                ),
            }
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(1);
        }
    }
}
