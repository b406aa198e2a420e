//! `authgate-bench`: one command that starts the release server (or targets
//! `--url`), seeds users and sessions, runs every scenario at each
//! concurrency for a fixed time, checks every answer, and reports a table,
//! JSON and an SVG chart.

mod admin;
mod floor;
mod latency;
mod load;
mod report;
mod revocation;
mod scenarios;
mod seed;
mod server;
mod tokens;

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
    /// Users to create.
    #[arg(long, default_value_t = 64)]
    users: usize,
    /// Sessions the `me` scenarios go round (spread over the users), so the
    /// session cache is not measured on a few hot keys.
    #[arg(long, default_value_t = 10_000)]
    sessions: usize,
    /// Users the admin scenarios list (written in bulk when one of them runs).
    #[arg(long, default_value_t = 100_000)]
    admin_users: usize,
    /// Revocations the `revocation` scenario times.
    #[arg(long, default_value_t = 1_000)]
    revocations: usize,
    /// Put a proxy adding this delay each way between the server and
    /// PostgreSQL (e.g. `1ms`: a database in the next building).
    #[arg(long, value_parser = humantime::parse_duration)]
    pg_latency: Option<Duration>,
    /// Run only the floor server on this address (used by the `floor` scenario).
    #[arg(long, hide = true)]
    floor_server: Option<std::net::SocketAddr>,
    /// Where results.json and results.svg go.
    #[arg(long, default_value = "bench/results")]
    out: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(bind) = args.floor_server {
        return floor::serve(bind).await;
    }
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
    // The server's own URL: through the latency proxy when asked (seeding
    // goes straight to the database).
    let server_database_url = match args.pg_latency {
        Some(delay) => {
            let proxy = latency::start(latency::upstream(&database_url)?, delay).await?;
            eprintln!("PostgreSQL through a proxy adding {delay:?} each way");
            latency::via(&database_url, proxy)
        }
        None => database_url.clone(),
    };
    let start = |env: Vec<(&'static str, String)>| {
        let (binary, url, dir) = (args.server.clone(), server_database_url.clone(), work.path().to_owned());
        async move { server::Server::start(&binary, &url, &dir, &env).await }
    };
    let mut server = match &args.url {
        Some(url) => server::Server::external(url),
        None => start(Vec::new()).await?,
    };
    eprintln!("server: {} ({})", server.url, redacted(&server_database_url));

    let seeded = seed::seed(&database_url, work.path(), args.users, args.sessions).await?;
    eprintln!("seeded {} users and {} sessions for `me`", seeded.users.len(), seeded.me_tokens.len());
    scenarios::warm(&server, &seeded.me_tokens).await?;
    let mut seeded = seeded;
    if scenarios.iter().any(|s| s.is_admin()) {
        let started = std::time::Instant::now();
        seeded.admin_token = Some(seeded.admin_users(args.admin_users).await?);
        eprintln!("wrote {} users for the admin list in {:.1?}", args.admin_users, started.elapsed());
        eprintln!("plan of a searched page:\n{}", seeded.plan_of_search(admin::PREFIXES[7]).await?);
    }

    let mut results = Vec::new();
    for scenario in &scenarios {
        if *scenario == scenarios::Scenario::Revocation {
            if !database_url.starts_with("postgres") || args.url.is_some() {
                eprintln!("revocation skipped: it needs PostgreSQL and a server this benchmark starts");
                continue;
            }
            let other = start(Vec::new()).await?;
            let tokens = seeded.sessions(args.revocations, true).await?;
            let measured = revocation::measure(&server, &other, &tokens).await;
            let result = scenarios::summarize(*scenario, 1, measured);
            eprintln!("{}", report::line(&result));
            results.push(result);
            continue;
        }
        use scenarios::Scenario::{TokenRevocation, Verify, VerifyCold};
        if matches!(scenario, Verify | VerifyCold | TokenRevocation) {
            let measured = match scenario {
                Verify => tokens::verify_rate(&server, &seeded.me_tokens, 64, args.duration).await?,
                // Distinct tokens, fewer than it gets through in the time
                // (minted first: a few seconds for 20 000).
                VerifyCold => {
                    let count = (4_000 * args.duration.as_secs().max(1) as usize).min(20_000);
                    tokens::verify_rate(&server, &seeded.me_tokens, count, args.duration).await?
                }
                _ => {
                    tokens::revocation_reach(&server, &seeded.sessions(args.revocations, true).await?).await?
                }
            };
            let result = scenarios::summarize(*scenario, 1, measured);
            eprintln!("{}", report::line(&result));
            results.push(result);
            continue;
        }
        // `floor` runs against a bare server of its own; `me-cold` against
        // authgate restarted with the session cache off.
        let special = match scenario {
            scenarios::Scenario::Floor => Some(server::Server::floor().await?),
            scenarios::Scenario::MeCold if args.url.is_none() => {
                drop(std::mem::replace(&mut server, server::Server::external("http://127.0.0.1:9")));
                Some(start(vec![("AUTHGATE_SESSION_CACHE_TTL", "0s".into())]).await?)
            }
            scenarios::Scenario::MeCold => {
                eprintln!("me-cold skipped: it restarts the server, which --url does not allow");
                continue;
            }
            _ => None,
        };
        let target = special.as_ref().unwrap_or(&server);
        for &concurrency in &args.concurrency {
            let result = scenarios::run(*scenario, concurrency, args.duration, target, &seeded).await?;
            eprintln!("{}", report::line(&result));
            results.push(result);
        }
        if *scenario == scenarios::Scenario::MeCold {
            drop(special);
            server = start(Vec::new()).await?;
            scenarios::warm(&server, &seeded.me_tokens).await?;
        }
    }
    // Measured again at the end, the faster of the two: a busy or cold
    // machine at start-up must not flatter the login ratio.
    let hash = report::measure_hash().faster(hash);
    let summary = report::Summary::new(&results, &hash, &database_url, args.duration, args.pg_latency);
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
    domain::config::redact_url(url)
}
