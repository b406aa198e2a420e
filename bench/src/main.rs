//! `authgate-bench`: one command that starts the release server (or targets
//! `--url`), seeds users and sessions, runs every scenario at each
//! concurrency for a fixed time, checks every answer, and reports a table,
//! JSON and an SVG chart.

mod load;
mod report;
mod scenarios;
mod seed;
mod server;

use std::{path::PathBuf, time::Duration};

use clap::Parser;

#[derive(Parser, Debug, Clone)]
#[command(name = "authgate-bench", about = "Load benchmark for authgate")]
pub struct Args {
    /// Target a running server instead of starting one (needs --database-url to seed it).
    #[arg(long)]
    url: Option<String>,
    /// Database of the server: default a fresh SQLite file; `postgres://...` for PostgreSQL.
    #[arg(long, env = "BENCH_DATABASE_URL")]
    database_url: Option<String>,
    /// How long each scenario runs at each concurrency.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Concurrency levels (requests in flight).
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    concurrency: Vec<usize>,
    /// Scenarios to run (default: all).
    #[arg(long, value_delimiter = ',', value_enum)]
    scenarios: Vec<scenarios::Scenario>,
    /// The server binary to start.
    #[arg(long, default_value = "target/release/authgate")]
    server: PathBuf,
    /// Users to create (their sessions are spread over the requests).
    #[arg(long, default_value_t = 64)]
    users: usize,
    /// Where results.json and results.svg go.
    #[arg(long, default_value = "bench/results")]
    out: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let scenarios =
        if args.scenarios.is_empty() { scenarios::Scenario::all().to_vec() } else { args.scenarios.clone() };

    let hash = report::measure_hash();
    eprintln!(
        "argon2id (m=19456 KiB, t=2, p=1): {:.1} ms per hash; {} cores: hash limit {:.0} logins/s",
        hash.ms, hash.cores, hash.limit
    );

    let work = tempfile::tempdir()?;
    let database_url = args
        .database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}?mode=rwc", work.path().join("bench.db").display()));
    let server = match &args.url {
        Some(url) => server::Server::external(url),
        None => server::Server::start(&args.server, &database_url, work.path()).await?,
    };
    eprintln!("server: {} ({})", server.url, redacted(&database_url));

    let seeded = seed::seed(&database_url, work.path(), args.users).await?;
    eprintln!("seeded {} users with a session each", seeded.users.len());

    let mut results = Vec::new();
    for scenario in &scenarios {
        for &concurrency in &args.concurrency {
            let result = scenarios::run(*scenario, concurrency, args.duration, &server, &seeded).await?;
            eprintln!("{}", report::line(&result));
            results.push(result);
        }
    }
    // Measured again at the end, the faster of the two: a busy or cold
    // machine at start-up must not flatter the login ratio.
    let hash = report::measure_hash().faster(hash);
    let summary = report::Summary::new(&results, &hash, &database_url, args.duration);
    println!("{}", report::table(&results));
    println!("{}", summary.describe());
    std::fs::create_dir_all(&args.out)?;
    let json = args.out.join("results.json");
    std::fs::write(
        &json,
        serde_json::to_string_pretty(&report::Json { summary: &summary, results: &results })?,
    )?;
    let svg = args.out.join("results.svg");
    std::fs::write(&svg, report::svg(&results, &summary))?;
    eprintln!("wrote {} and {}", json.display(), svg.display());
    drop(server);
    Ok(())
}

fn redacted(url: &str) -> String {
    authgate::config::redact_url(url)
}
