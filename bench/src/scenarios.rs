//! The scenarios: what each request sends and how its answer is checked.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use clap::ValueEnum;
use serde::Serialize;
use serde_json::json;

use crate::{
    load::{self, Measured},
    seed::{PASSWORD, Seeded},
    server::Server,
};

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    Healthz,
    /// A bare async-graphql + axum server answering the same `Me` document
    /// from memory: the stock stack's limit on this machine.
    Floor,
    Me,
    /// `me` with the session cache off (the server restarted for it).
    MeCold,
    MeCookie,
    Login,
    Register,
    Logout,
    MeDuringLoginFlood,
    /// PostgreSQL: a second server on the same database; the time from A
    /// signing a session out to B refusing it (`--revocations` times; once,
    /// not per concurrency).
    Revocation,
    /// Anonymous documents naming a different unknown field each time:
    /// what must not grow the server's memory (metric labels are bounded).
    GarbageFlood,
    /// `completeSignIn` with a current TOTP code: the second step of a
    /// two-factor sign-in (challenges prepared untimed, one user each).
    CompleteSignIn,
    /// `accessToken`: a signed token for the bench's audience, per session.
    AccessToken,
    /// The verifier library in this process: verifications per second on
    /// one thread (once, not per concurrency), going round 64 tokens (each
    /// signature checked once, then remembered).
    Verify,
    /// The same, each token new to it (every signature checked).
    VerifyCold,
    /// A sign-out until the verifier in this process (another than the
    /// server's) refuses that session's token (`--revocations` times).
    TokenRevocation,
    /// An admin's `users(first: 50)` with `totalCount`, over
    /// `--admin-users` users (100 000).
    AdminUsers,
    /// The same, searched by the start of the email or name (a different
    /// prefix each request, each matching about 1 user in 40).
    AdminUsersSearch,
}

impl Scenario {
    pub fn all() -> [Self; 18] {
        [
            Self::Healthz,
            Self::Floor,
            Self::Me,
            Self::MeCold,
            Self::MeCookie,
            Self::Login,
            Self::Register,
            Self::Logout,
            Self::MeDuringLoginFlood,
            Self::GarbageFlood,
            Self::CompleteSignIn,
            Self::AccessToken,
            Self::Verify,
            Self::VerifyCold,
            Self::TokenRevocation,
            Self::Revocation,
            Self::AdminUsers,
            Self::AdminUsersSearch,
        ]
    }

    /// Whether it needs the admin's many users written first.
    pub fn is_admin(self) -> bool {
        matches!(self, Self::AdminUsers | Self::AdminUsersSearch)
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Healthz => "healthz",
            Self::Floor => "floor",
            Self::Me => "me",
            Self::MeCold => "me-cold",
            Self::MeCookie => "me-cookie",
            Self::Login => "login",
            Self::Register => "register",
            Self::Logout => "logout",
            Self::MeDuringLoginFlood => "me-during-login-flood",
            Self::GarbageFlood => "garbage-flood",
            Self::Revocation => "revocation",
            Self::CompleteSignIn => "complete-sign-in",
            Self::AccessToken => "access-token",
            Self::Verify => "verify",
            Self::VerifyCold => "verify-cold",
            Self::TokenRevocation => "token-revocation",
            Self::AdminUsers => "admin-users",
            Self::AdminUsersSearch => "admin-users-search",
        }
    }
}

#[derive(Serialize, Clone, Debug)]
pub struct Result {
    pub scenario: Scenario,
    pub concurrency: usize,
    pub requests: u64,
    pub errors: u64,
    pub rps: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub peak_rss_mb: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
    /// Requests made around the measured ones (the login flood), checked
    /// like them: a flood that failed would measure nothing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub background: Option<Background>,
}

#[derive(Serialize, Clone, Debug, Default)]
pub struct Background {
    pub requests: u64,
    pub errors: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
}

const ME: &str = r#"{"query":"query Me { me { id email name emailVerified } }"}"#;
const LOGIN: &str = "mutation Login($input: LoginInput!) { login(input: $input) { token } }";
const REGISTER: &str = "mutation Register($input: RegisterInput!) { register(input: $input) { token } }";
const LOGOUT: &str = r#"{"query":"mutation Logout { logout }"}"#;
const ADMIN_USERS: &str = "query AdminUsers($filter: UserFilter) { users(filter: $filter, first: 50) { totalCount edges { cursor node { id email emailVerified banned roles createdAt } } pageInfo { hasNextPage endCursor } } }";
const COMPLETE: &str =
    "mutation CompleteSignIn($input: CompleteSignInInput!) { completeSignIn(input: $input) { token } }";

/// One HTTP client per run; connections are reused (keep-alive).
fn client(concurrency: usize) -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency + 8)
        .tcp_nodelay(true)
        .build()
        .expect("http client")
}

/// Sends and checks: 200 and a body that contains `expect`.
async fn check(request: reqwest::RequestBuilder, expect: &'static str) -> std::result::Result<bool, String> {
    let response = request.send().await.map_err(|e| format!("transport: {e}"))?;
    let status = response.status();
    let body = response.bytes().await.map_err(|e| format!("body: {e}"))?;
    let body = String::from_utf8_lossy(&body);
    if status == 200 && body.contains(expect) {
        Ok(true)
    } else {
        Err(format!("HTTP {status}: {}", body.chars().take(200).collect::<String>()))
    }
}

pub async fn run(
    scenario: Scenario,
    concurrency: usize,
    duration: Duration,
    server: &Server,
    seeded: &Seeded,
) -> anyhow::Result<Result> {
    let http = client(concurrency);
    let graphql = format!("{}/graphql", server.url);
    let users = Arc::new(seeded.users.clone());
    let me_tokens = Arc::new(seeded.me_tokens.clone());
    let label = format!("{} c={concurrency}", scenario.name());
    let measured = match scenario {
        Scenario::Healthz => {
            let url = format!("{}/healthz", server.url);
            load::run(&label, concurrency, duration, server, move |_, _| check(http.get(&url), "ok")).await
        }
        Scenario::Me | Scenario::MeCold | Scenario::Floor => {
            me(&label, concurrency, duration, server, http, graphql, me_tokens, false).await
        }
        Scenario::MeCookie => me(&label, concurrency, duration, server, http, graphql, me_tokens, true).await,
        Scenario::Login => load::run(&label, concurrency, duration, server, move |worker, n| {
            let (email, _) = &users[(worker + n as usize) % users.len()];
            let body =
                json!({ "query": LOGIN, "variables": { "input": { "email": email, "password": PASSWORD } } });
            check(http.post(&graphql).json(&body), "\"token\"")
        })
        .await,
        Scenario::Register => {
            let seeded_run = seeded.new_email(0, 0);
            load::run(&label, concurrency, duration, server, move |worker, n| {
                let email = seeded_run.replace("-new-0-0@", &format!("-new-{worker}-{n}-c{concurrency}@"));
                let body = json!({ "query": REGISTER, "variables": { "input": { "email": email, "password": PASSWORD } } });
                check(http.post(&graphql).json(&body), "\"token\"")
            })
            .await
        }
        Scenario::Revocation => anyhow::bail!("the revocation scenario needs two servers: see main"),
        Scenario::Verify | Scenario::VerifyCold | Scenario::TokenRevocation => {
            anyhow::bail!("{label} runs once: see main")
        }
        Scenario::AccessToken => {
            load::run(&label, concurrency, duration, server, move |worker, n| {
                let token = &me_tokens[(n as usize * concurrency + worker) % me_tokens.len()];
                check(
                    http.post(&graphql).bearer_auth(token).json(&crate::tokens::mint_body()),
                    "\"token\":\"ey",
                )
            })
            .await
        }
        Scenario::AdminUsers | Scenario::AdminUsersSearch => {
            let token = seeded.admin_token.clone().ok_or_else(|| anyhow::anyhow!("no admin: see main"))?;
            let search = scenario == Scenario::AdminUsersSearch;
            load::run(&label, concurrency, duration, server, move |worker, n| {
                let filter = match search {
                    true => {
                        let prefix =
                            crate::admin::PREFIXES[(worker + n as usize) % crate::admin::PREFIXES.len()];
                        json!({ "search": prefix })
                    }
                    false => json!({}),
                };
                let body = json!({ "query": ADMIN_USERS, "variables": { "filter": filter } });
                check(http.post(&graphql).bearer_auth(&token).json(&body), "\"totalCount\":")
            })
            .await
        }
        Scenario::GarbageFlood => {
            load::run(&label, concurrency, duration, server, move |worker, n| {
                let body = format!(r#"{{"query":"{{ unknown_{worker}_{n}_{} }}"}}"#, "x".repeat(64));
                let request = http.post(&graphql).header("content-type", "application/json").body(body);
                check(request, "GRAPHQL_VALIDATION_FAILED")
            })
            .await
        }
        Scenario::Logout => {
            // Enough fresh sessions for the run: logout is fast, so many.
            let wanted = (6_000 * duration.as_secs().max(1) as usize).clamp(2_000, 120_000);
            let tokens = Arc::new(Mutex::new(seeded.sessions(wanted.max(2_000), false).await?));
            load::run(&label, concurrency, duration, server, move |_, _| {
                let token = tokens.lock().expect("tokens").pop();
                let http = http.clone();
                let graphql = graphql.clone();
                async move {
                    let Some(token) = token else { return Ok(false) };
                    check(
                        http.post(&graphql)
                            .bearer_auth(token)
                            .header("content-type", "application/json")
                            .body(LOGOUT),
                        "\"logout\":true",
                    )
                    .await
                }
            })
            .await
        }
        Scenario::CompleteSignIn => {
            // Each second step is single use: enough for the run, made first.
            let wanted = (300 * duration.as_secs().max(1) as usize).clamp(100, 3_000);
            let steps = Arc::new(Mutex::new(seeded.second_steps(wanted).await?));
            load::run(&label, concurrency, duration, server, move |_, _| {
                let step = steps.lock().expect("steps").pop();
                let (http, graphql) = (http.clone(), graphql.clone());
                async move {
                    let Some((challenge, secret)) = step else { return Ok(false) };
                    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
                    let code = crate::seed::code_at(&secret, now.as_secs());
                    let body = json!({ "query": COMPLETE, "variables": { "input": { "challenge": challenge, "code": code } } });
                    check(http.post(&graphql).json(&body), "\"token\"").await
                }
            })
            .await
        }
        Scenario::MeDuringLoginFlood => {
            // Logins at full hash capacity in the background (not timed,
            // but each answer checked).
            let stop = Arc::new(AtomicBool::new(false));
            let workers = std::thread::available_parallelism().map_or(2, |n| n.get()) * 2;
            let mut flood = Vec::new();
            for w in 0..workers {
                let (http, graphql, users, stop) =
                    (http.clone(), graphql.clone(), users.clone(), stop.clone());
                flood.push(tokio::spawn(async move {
                    let mut tally = Background::default();
                    let mut n = w;
                    while !stop.load(Ordering::Relaxed) {
                        let (email, _) = &users[n % users.len()];
                        let body =
                            json!({ "query": LOGIN, "variables": { "input": { "email": email, "password": PASSWORD } } });
                        tally.requests += 1;
                        if let Err(why) = check(http.post(&graphql).json(&body), "\"token\"").await {
                            tally.errors += 1;
                            tally.first_error.get_or_insert(why);
                        }
                        n += workers;
                    }
                    tally
                }));
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
            let measured =
                me(&label, concurrency, duration, server, http.clone(), graphql.clone(), me_tokens, false)
                    .await;
            stop.store(true, Ordering::Relaxed);
            let mut background = Background::default();
            for f in flood {
                let tally = f.await?;
                background.requests += tally.requests;
                background.errors += tally.errors;
                background.first_error = background.first_error.or(tally.first_error);
            }
            let mut result = summarize(scenario, concurrency, measured);
            result.background = Some(background);
            return Ok(result);
        }
    };
    Ok(summarize(scenario, concurrency, measured))
}

/// Asks `me` once for every session, untimed: the steady state of a server
/// whose users are active (each seen within the cache's 60 s). The first
/// asks are what `me-cold` measures throughout.
pub async fn warm(server: &Server, tokens: &[String]) -> anyhow::Result<()> {
    let http = client(16);
    let graphql = format!("{}/graphql", server.url);
    for chunk in tokens.chunks(16) {
        let asks = chunk.iter().map(|token| {
            let request = http.post(&graphql).header("content-type", "application/json").body(ME);
            check(request.bearer_auth(token), "{\"data\":{\"me\":{")
        });
        for answer in futures_util::future::join_all(asks).await {
            answer.map_err(|why| anyhow::anyhow!("warming the session cache: {why}"))?;
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn me(
    label: &str,
    concurrency: usize,
    duration: Duration,
    server: &Server,
    http: reqwest::Client,
    graphql: String,
    tokens: Arc<Vec<String>>,
    cookie: bool,
) -> Measured {
    // Round the whole list: no two requests in flight share a session
    // until every session has been asked for.
    load::run(label, concurrency, duration, server, move |worker, n| {
        let token = &tokens[(n as usize * concurrency + worker) % tokens.len()];
        let request = http.post(&graphql).header("content-type", "application/json").body(ME);
        let request = if cookie {
            request.header("cookie", format!("session_token={token}"))
        } else {
            request.bearer_auth(token)
        };
        check(request, "{\"data\":{\"me\":{")
    })
    .await
}

pub fn summarize(scenario: Scenario, concurrency: usize, mut m: Measured) -> Result {
    m.latencies.sort_unstable();
    let pick = |q: f64| -> f64 {
        if m.latencies.is_empty() {
            return 0.0;
        }
        let i = ((m.latencies.len() as f64 * q).ceil() as usize).clamp(1, m.latencies.len()) - 1;
        m.latencies[i] as f64 / 1000.0
    };
    let ok = m.latencies.len() as u64;
    Result {
        scenario,
        concurrency,
        requests: ok + m.errors,
        errors: m.errors,
        rps: ok as f64 / m.elapsed.as_secs_f64().max(1e-9),
        p50_ms: pick(0.50),
        p90_ms: pick(0.90),
        p99_ms: pick(0.99),
        max_ms: m.latencies.last().map_or(0.0, |v| *v as f64 / 1000.0),
        peak_rss_mb: m.peak_rss.map(|b| b as f64 / (1024.0 * 1024.0)),
        first_error: m.first_error,
        background: None,
    }
}
