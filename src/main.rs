use std::{process::ExitCode, sync::Arc};

use anyhow::Context as _;
use clap::Parser;
use domain::{
    cleanup,
    clock::SystemClock,
    config::{Cli, Command, Config, Environment, LogFormat},
    db,
};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve) {
        Command::Schema => {
            print!("{}", authgate::graphql::sdl());
            ExitCode::SUCCESS
        }
        command => {
            // Only the server logs to standard output: a command's output
            // is its answer (`events export` prints NDJSON there).
            init_tracing(&cli.config, matches!(command, Command::Serve));
            match run(command, cli.config).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e:#}");
                    eprintln!("authgate: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn init_tracing(config: &Config, to_stdout: bool) {
    use std::io::IsTerminal;
    let terminal = if to_stdout { std::io::stdout().is_terminal() } else { std::io::stderr().is_terminal() };
    let writer = move || -> Box<dyn std::io::Write> {
        if to_stdout { Box::new(std::io::stdout()) } else { Box::new(std::io::stderr()) }
    };
    // Colours only for a person at a terminal, not in files or log collectors.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(authgate::log_filter(&config.log))
        .with_ansi(terminal)
        .with_writer(writer);
    match config.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn run(command: Command, mut config: Config) -> anyhow::Result<()> {
    config.load_oauth_providers()?;
    if config.env == Environment::Production && config.smtp_host.is_none() {
        tracing::warn!(
            outbox = %config.outbox_dir.display(),
            "production without AUTHGATE_SMTP_HOST: verification and reset links are written to disk, not mailed"
        );
    }
    let db = db::connect(&config).await?;
    if matches!(command, Command::Migrate) {
        return db::migrate(&db).await;
    }
    if config.auto_migrate {
        db::migrate(&db).await?;
    }
    let bind = config.bind;
    let cleanup_every = config.cleanup_interval;
    // Held until the server stops (SQLite: see `lock_database`).
    let _lock = match command {
        Command::Serve => domain::session::cache::lock_database(&config)?,
        _ => None,
    };
    let state = authgate::state(db.clone(), config, Arc::new(SystemClock))?;
    if matches!(command, Command::Cleanup) {
        let removed = cleanup::run_once(&state.auth).await.inspect_err(|e| e.report())?;
        println!(
            "removed {} expired sessions, {} stale tokens, {} ended rate-limit windows, {} abandoned OAuth flows, {} abandoned two-factor sign-ins and passkey ceremonies, and {} aged events and delivered webhooks",
            removed.sessions,
            removed.tokens,
            removed.counters,
            removed.oauth_flows,
            removed.challenges,
            removed.events
        );
        return Ok(());
    }
    match command {
        Command::Events(command) => return authgate::commands::events(&state.auth, command).await,
        Command::Webhooks(command) => return authgate::commands::webhooks(&state.auth, command).await,
        Command::Keys(command) => return authgate::commands::keys(&state.auth, command).await,
        Command::Admin(command) => return authgate::commands::admin(&state.auth, command).await,
        _ => {}
    }
    if matches!(command, Command::Reseal) {
        let auth = &state.auth;
        let resealed = [
            ("TOTP secrets", domain::factors::totp::reseal_all(auth).await?),
            ("webhook endpoints' secrets", domain::webhooks::secrets::reseal_all(auth).await?),
            ("signing keys", domain::access::keys::reseal_all(auth).await?),
        ];
        let mut unopenable = Vec::new();
        for (what, (moved, unopened)) in resealed {
            println!(
                "re-encrypted {moved} {what} with the current key; {unopened} did not open with any key"
            );
            if unopened > 0 {
                unopenable.push(format!("{unopened} {what}"));
            }
        }
        anyhow::ensure!(
            unopenable.is_empty(),
            "{} did not open (their key is not configured)",
            unopenable.join(", ")
        );
        return Ok(());
    }
    authgate::preflight(&state.auth).await?;
    if !cleanup_every.is_zero() {
        tokio::spawn(cleanup::run_periodically(state.auth.clone(), cleanup_every));
    }
    if state.auth.config.webhook_worker {
        tokio::spawn(domain::webhooks::run_worker(state.auth.clone()));
    }
    let listener =
        tokio::net::TcpListener::bind(bind).await.with_context(|| format!("cannot listen on {bind}"))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "authgate listening on http://{addr}/graphql");
    let limits = authgate::http::server::Limits::from_config(&state.auth.config);
    if let Some(metrics_bind) = state.auth.config.metrics_bind {
        let metrics = tokio::net::TcpListener::bind(metrics_bind)
            .await
            .with_context(|| format!("cannot listen on {metrics_bind} (AUTHGATE_METRICS_BIND)"))?;
        tracing::info!(addr = %metrics.local_addr()?, "metrics on http://{}/metrics", metrics.local_addr()?);
        let router = authgate::http::metrics_router(state.clone());
        tokio::spawn(authgate::http::server::serve(metrics, router, limits.clone(), std::future::pending()));
    }
    // On SIGTERM/SIGINT: stop accepting, let in-flight requests finish, but
    // not for longer than the grace period.
    authgate::http::server::serve(listener, authgate::app(state), limits, shutdown_signal()).await;
    db.close().await?;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down");
}
