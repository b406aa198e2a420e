//! How long a revocation takes to reach another instance: two servers on
//! one PostgreSQL; for each session, B answers `me` (so B holds it in its
//! cache), A signs it out, and B is asked again until it refuses. The
//! latency is from A's answer to B's first refusal.

use std::time::{Duration, Instant};

use crate::{load::Measured, server::Server};

const ME: &str = r#"{"query":"query Me { me { id } }"}"#;
pub(crate) const LOGOUT: &str = r#"{"query":"mutation Logout { logout }"}"#;

/// `body` to `server`'s GraphQL endpoint as `token`: the answer's text.
pub(crate) async fn ask(
    http: &reqwest::Client,
    server: &Server,
    token: &str,
    body: &'static str,
) -> Result<String, String> {
    let response = http
        .post(format!("{}/graphql", server.url))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| format!("transport: {e}"))?;
    response.text().await.map_err(|e| format!("body: {e}"))
}

/// B's own word on its cache (`/metrics`).
async fn serves_from_memory(http: &reqwest::Client, server: &Server) -> Result<bool, String> {
    let metrics = http
        .get(format!("{}/metrics", server.url))
        .send()
        .await
        .map_err(|e| format!("metrics: {e}"))?
        .text()
        .await
        .map_err(|e| format!("metrics body: {e}"))?;
    Ok(metrics.lines().any(|l| l.trim() == "authgate_session_cache_live 1"))
}

pub async fn measure(a: &Server, b: &Server, tokens: &[String]) -> Measured {
    let http = reqwest::Client::builder().tcp_nodelay(true).build().expect("http client");
    let started = Instant::now();
    let mut measured = Measured::new(None);
    for (i, token) in tokens.iter().enumerate() {
        let outcome = async {
            let warm = ask(&http, b, token, ME).await?;
            if !warm.contains("\"me\":{") {
                return Err(format!("B did not serve the session: {warm}"));
            }
            // B must answer from memory: a B that bypasses its cache (its
            // LISTEN down) reads the database every time and would "see"
            // every revocation at once, passing for the wrong reason.
            if i == 0 && !serves_from_memory(&http, b).await? {
                return Err(
                    "B's session cache is not serving (authgate_session_cache_live is not 1)".to_owned()
                );
            }
            let out = ask(&http, a, token, LOGOUT).await?;
            if !out.contains("\"logout\":true") {
                return Err(format!("A did not sign it out: {out}"));
            }
            let revoked = Instant::now();
            // Bounded: a revocation not seen in 2 s counts as an error.
            while revoked.elapsed() < Duration::from_secs(2) {
                if ask(&http, b, token, ME).await?.contains("UNAUTHENTICATED") {
                    return Ok(revoked.elapsed().as_micros() as u64);
                }
            }
            Err("B still served the session 2 s after A revoked it".to_owned())
        };
        measured.record(outcome.await);
        crate::load::progress("revocation", i + 1, tokens.len());
    }
    eprint!("\r{:<60}\r", "");
    // Still from memory at the end: a listener lost during the run would
    // have let B see the later revocations by reading the database.
    if !serves_from_memory(&http, b).await.unwrap_or(false) {
        measured.errors += 1;
        measured.first_error.get_or_insert("B's session cache stopped serving during the run".to_owned());
    }
    measured.elapsed = started.elapsed();
    measured.peak_rss = b.rss_bytes();
    measured
}
