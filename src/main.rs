use std::{future::IntoFuture, net::SocketAddr, process::ExitCode, sync::Arc};

use anyhow::Context as _;
use authgate::{
    auth::cleanup,
    clock::SystemClock,
    config::{Cli, Command, Config, LogFormat},
    db,
};
use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve) {
        Command::Schema => {
            print!("{}", authgate::graphql::sdl());
            ExitCode::SUCCESS
        }
        command => {
            init_tracing(&cli.config);
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

fn init_tracing(config: &Config) {
    use std::io::IsTerminal;
    // Colours only for a person at a terminal, not in files or log collectors.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(authgate::log_filter(&config.log))
        .with_ansi(std::io::stdout().is_terminal());
    match config.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn run(command: Command, mut config: Config) -> anyhow::Result<()> {
    config.load_oauth_providers()?;
    let db = db::connect(&config).await?;
    if matches!(command, Command::Migrate) {
        return db::migrate(&db).await;
    }
    if config.auto_migrate {
        db::migrate(&db).await?;
    }
    let bind = config.bind;
    let cleanup_every = config.cleanup_interval;
    let grace = config.shutdown_timeout;
    let state = authgate::state(db.clone(), config, Arc::new(SystemClock))?;
    if matches!(command, Command::Cleanup) {
        let removed = cleanup::run_once(&state.auth).await?;
        println!("removed {} expired sessions and {} stale tokens", removed.sessions, removed.tokens);
        return Ok(());
    }
    if !cleanup_every.is_zero() {
        tokio::spawn(cleanup::run_periodically(state.auth.clone(), cleanup_every));
    }
    let listener =
        tokio::net::TcpListener::bind(bind).await.with_context(|| format!("cannot listen on {bind}"))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "authgate listening on http://{addr}/graphql");
    let app = authgate::app(state).into_make_service_with_connect_info::<SocketAddr>();
    // On SIGTERM/SIGINT: stop accepting, let in-flight requests finish, but
    // not for longer than the grace period.
    let (stopping, mut stopped) = tokio::sync::watch::channel(false);
    let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
        shutdown_signal().await;
        let _ = stopping.send(true);
    });
    tokio::select! {
        result = serve.into_future() => result?,
        _ = async {
            let _ = stopped.wait_for(|s| *s).await;
            tokio::time::sleep(grace).await;
        } => tracing::warn!(?grace, "requests still in flight after the grace period; stopping anyway"),
    }
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
