//! Starting the release server on a free loopback port, and its memory.

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    time::Duration,
};

use anyhow::Context as _;

pub struct Server {
    pub url: String,
    child: Option<Child>,
}

impl Server {
    pub fn external(url: &str) -> Self {
        Self { url: url.trim_end_matches('/').to_owned(), child: None }
    }

    /// Starts authgate on `database_url`, with `env` added to its environment.
    pub async fn start(
        binary: &Path,
        database_url: &str,
        dir: &Path,
        env: &[(&str, String)],
    ) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let binary = binary
            .canonicalize()
            .with_context(|| format!("{} not found (build it: cargo build --release)", binary.display()))?;
        let mut command = Command::new(&binary);
        command
            .current_dir(dir)
            .env("DATABASE_URL", database_url)
            .env("AUTHGATE_BIND", format!("127.0.0.1:{port}"))
            .env("AUTHGATE_OUTBOX_DIR", dir.join("outbox"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // BENCH_SERVER_LOG=dir: each server's log in dir/server-<port>.log.
        if let Some(dir) = std::env::var_os("BENCH_SERVER_LOG") {
            let log = std::fs::File::create(Path::new(&dir).join(format!("server-{port}.log")))?;
            command.stdout(log.try_clone()?).stderr(log);
        }
        // Every rate-limit rule off: the benchmark signs in from one address.
        for rule in &domain::config::RULES {
            command.env(rule.variable, "0/1s");
        }
        // For the same reason no per-client or per-network connection cap,
        // and no cap on sessions per user (it seeds more per user).
        for cap in [
            "AUTHGATE_MAX_CONNECTIONS_PER_CLIENT",
            "AUTHGATE_MAX_CONNECTIONS_PER_NETWORK",
            "AUTHGATE_MAX_SESSIONS_PER_USER",
        ] {
            command.env(cap, "0");
        }
        // Access tokens for the bench's audience, the feed open to its key,
        // and the tokens' issuer the address the verifier reaches.
        command
            .env("AUTHGATE_PUBLIC_URL", format!("http://127.0.0.1:{port}"))
            .env("AUTHGATE_JWT_AUDIENCES", crate::tokens::AUDIENCE)
            .env("AUTHGATE_SERVICE_KEYS", crate::tokens::SERVICE_KEY);
        command.envs(env.iter().map(|(k, v)| (k, v)));
        let child = command.spawn().with_context(|| {
            format!("cannot start {} (build it: cargo build --release)", binary.display())
        })?;
        Self::ready(Self { url: format!("http://127.0.0.1:{port}"), child: Some(child) }).await
    }

    /// The floor: this benchmark's own bare async-graphql server, as a process of its own.
    pub async fn floor() -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let child = Command::new(std::env::current_exe()?)
            .args(["--floor-server", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        Self::ready(Self { url: format!("http://127.0.0.1:{port}"), child: Some(child) }).await
    }

    async fn ready(server: Self) -> anyhow::Result<Self> {
        let client = reqwest::Client::new();
        for _ in 0..300 {
            if client
                .get(format!("{}/readyz", server.url))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return Ok(server);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        anyhow::bail!("the server did not become ready within 30 s")
    }

    /// Resident memory of the server process in bytes (None for `--url`).
    pub fn rss_bytes(&self) -> Option<u64> {
        let pid = self.child.as_ref()?.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
