//! Signed access tokens from a team's side: verified by the verifier
//! library in this process (a process other than the server's), and how
//! fast a sign-out reaches it through the revocation feed. (Minting them
//! under load is the `access-token` scenario in scenarios.rs.)

use std::time::{Duration, Instant};

use authgate_verify::{Config, Refused, Verifier};
use serde_json::json;

use crate::{load::Measured, revocation, server::Server};

/// The audience the bench's server issues tokens for.
pub const AUDIENCE: &str = "https://api.bench.example";
/// The key the bench's verifier reads the feed with.
pub const SERVICE_KEY: &str = "bench-service-key-0123456789abcdef0123456789";
const MINT: &str = "mutation AccessToken($audience: String!) { accessToken(audience: $audience) { token } }";

pub fn mint_body() -> serde_json::Value {
    json!({ "query": MINT, "variables": { "audience": AUDIENCE } })
}

async fn mint(http: &reqwest::Client, server: &Server, session: &str) -> Result<String, String> {
    let answer: serde_json::Value = http
        .post(format!("{}/graphql", server.url))
        .bearer_auth(session)
        .json(&mint_body())
        .send()
        .await
        .map_err(|e| format!("transport: {e}"))?
        .json()
        .await
        .map_err(|e| format!("body: {e}"))?;
    answer["data"]["accessToken"]["token"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("no token: {answer}"))
}

async fn verifier(server: &Server) -> anyhow::Result<Verifier> {
    Ok(Verifier::start(Config::new(&server.url, AUDIENCE).service_key(SERVICE_KEY)).await?)
}

/// Verifications per second on one thread of this process (one core),
/// going round `count` tokens of the seeded sessions (minted first,
/// untimed). With more tokens than it gets through, each is new to it.
pub async fn verify_rate(
    server: &Server,
    sessions: &[String],
    count: usize,
    duration: Duration,
) -> anyhow::Result<Measured> {
    let http = reqwest::Client::new();
    let mut tokens = Vec::with_capacity(count);
    for session in sessions.iter().cycle().take(count) {
        tokens.push(mint(&http, server, session).await.map_err(anyhow::Error::msg)?);
    }
    let verifier = verifier(server).await?;
    let mut measured = Measured::new(server.rss_bytes());
    let started = Instant::now();
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async {
            let (mut latencies, mut errors, mut first_error) = (Vec::new(), 0, None);
            // Once round at most for many tokens (each new), round and
            // round for a few (each remembered after its first).
            let rounds = if tokens.len() > 64 { 1 } else { usize::MAX };
            'run: for _ in 0..rounds {
                for token in &tokens {
                    if started.elapsed() >= duration {
                        break 'run;
                    }
                    let t0 = Instant::now();
                    match verifier.verify(token).await {
                        Ok(_) => latencies.push(t0.elapsed().as_nanos() as u64 / 1000),
                        Err(refused) => {
                            errors += 1;
                            first_error.get_or_insert(refused.to_string());
                        }
                    }
                }
            }
            (latencies, errors, first_error)
        })
    });
    let (latencies, errors, first_error) = tokio::task::spawn_blocking(move || thread.join())
        .await?
        .map_err(|_| anyhow::anyhow!("verify thread"))?;
    (measured.latencies, measured.errors, measured.first_error) = (latencies, errors, first_error);
    measured.elapsed = started.elapsed();
    Ok(measured)
}

/// For each session: a token that verifies, then a sign-out, then the
/// time until the verifier refuses the token (2 s at most, else an error).
pub async fn revocation_reach(server: &Server, sessions: &[String]) -> anyhow::Result<Measured> {
    let http = reqwest::Client::builder().tcp_nodelay(true).build()?;
    let verifier = verifier(server).await?;
    let mut measured = Measured::new(server.rss_bytes());
    let started = Instant::now();
    for (i, session) in sessions.iter().enumerate() {
        let outcome = async {
            let token = mint(&http, server, session).await?;
            verifier.verify(&token).await.map_err(|e| format!("a fresh token refused: {e}"))?;
            let out = revocation::ask(&http, server, session, revocation::LOGOUT).await?;
            if !out.contains("\"logout\":true") {
                return Err(format!("not signed out: {out}"));
            }
            let signed_out = Instant::now();
            while signed_out.elapsed() < Duration::from_secs(2) {
                match verifier.verify(&token).await {
                    Ok(_) => tokio::time::sleep(Duration::from_millis(1)).await,
                    Err(Refused::SessionEnded) => return Ok(signed_out.elapsed().as_micros() as u64),
                    Err(other) => return Err(format!("refused for another reason: {other}")),
                }
            }
            Err("the verifier still accepted the token 2 s after the sign-out".to_owned())
        };
        measured.record(outcome.await);
        crate::load::progress("token-revocation", i + 1, sessions.len());
    }
    eprint!("\r{:<60}\r", "");
    measured.elapsed = started.elapsed();
    measured.peak_rss = server.rss_bytes();
    Ok(measured)
}
