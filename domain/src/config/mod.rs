//! One typed configuration, read from flags and environment variables.
//! `authgate --help` lists every option with its variable and default.

use std::{
    net::{IpAddr, SocketAddr},
    path::PathBuf,
    time::Duration,
};

use clap::{Args, Parser, Subcommand, ValueEnum};
use ipnet::IpNet;
pub use secrecy::{ExposeSecret, SecretString};

mod oauth;
mod rates;

pub use oauth::{CREDENTIAL_PROVIDER, ProviderConfig, ProviderKind, UserinfoStyle};
pub use rates::{RULES, Rate, Rates, Rule, RuleSpec};

#[derive(Parser, Debug, Clone)]
#[command(name = "authgate", version, about = "GraphQL authentication server")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub config: Config,
}

#[derive(Subcommand, Debug, Clone)]
pub enum Command {
    /// Run the server (the default when no subcommand is given).
    Serve,
    /// Print the GraphQL schema (SDL) and exit: `authgate schema > schema.graphql`.
    Schema,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Delete expired sessions, spent or expired mailed tokens, ended rate-limit windows, and abandoned OAuth flows, two-factor sign-ins and passkey ceremonies once, then exit.
    Cleanup,
    /// Re-encrypt every sealed secret (TOTP secrets, webhook secrets, signing
    /// keys) with `AUTHGATE_SECRET_KEY` (after a rotation, with the old key in
    /// `AUTHGATE_SECRET_KEY_PREVIOUS`), then exit.
    Reseal,
    /// The keys access tokens are signed with (the JWKS).
    #[command(subcommand)]
    Keys(KeysCommand),
    /// The event record (the audit log): `authgate events export --since 2026-12-01T00:00:00Z`.
    #[command(subcommand)]
    Events(EventsCommand),
    /// Webhook endpoints and their deliveries.
    #[command(subcommand)]
    Webhooks(WebhooksCommand),
    /// Roles: make the first admin (`authgate admin grant you@example.com admin`).
    #[command(subcommand)]
    Admin(AdminCommand),
}

#[derive(Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum AdminCommand {
    /// Give the user with this email a role (admin, support, auditor).
    Grant { email: String, role: String },
    /// Take a role from the user with this email.
    Revoke { email: String, role: String },
    /// List who holds which role.
    List,
}

#[derive(Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum EventsCommand {
    /// Print the events since a time as NDJSON (one JSON object per line), oldest first.
    Export {
        /// RFC 3339 time (`2026-12-01T00:00:00Z`) or a duration back from now (`24h`, `30days`).
        #[arg(long)]
        since: String,
    },
}

#[derive(Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum KeysCommand {
    /// List the signing keys: kid, generation, state, when each signs from.
    List,
    /// Add a key of each algorithm in use (or of `--alg`): published now, signing once every JWKS cache has it (about 5 minutes).
    Rotate {
        /// ES256 or RS256 only.
        #[arg(long)]
        alg: Option<String>,
    },
    /// Take a key out at once (a leak): no longer published nor used; a new one signs if it was the signer.
    Revoke { kid: String },
}

#[derive(Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum WebhooksCommand {
    /// Add an endpoint; prints its id and its signing secret (shown once).
    Add {
        url: String,
        /// An event type to deliver (repeat it; none: every type).
        #[arg(long = "event")]
        events: Vec<String>,
    },
    /// List the endpoints.
    List,
    /// List the deliveries given up on (newest first).
    Failed,
    /// Deliver failed deliveries again (all, an endpoint's, or one).
    Replay {
        #[arg(long)]
        endpoint: Option<uuid::Uuid>,
        #[arg(long)]
        delivery: Option<uuid::Uuid>,
    },
    /// Turn an endpoint on again (after a `410 Gone` turned it off).
    Enable { id: uuid::Uuid },
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    Development,
    Production,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain text (only for a relay on the same host).
    None,
    /// Upgrade with STARTTLS (usually port 587).
    Starttls,
    /// TLS from the first byte (usually port 465).
    Tls,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Secrets are `SecretString`: the derived `Debug` shows `[REDACTED]`.
#[derive(Args, Clone, Debug)]
pub struct Config {
    /// Database URL (its password never appears in logs): `sqlite://path?mode=rwc` or `postgres://user:pass@host/db?sslmode=require`.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://data/authgate.db?mode=rwc",
        hide_env_values = true
    )]
    pub database_url: SecretString,

    /// Address to listen on; port 0 picks a free port (the bound address is logged).
    #[arg(long, env = "AUTHGATE_BIND", default_value = "127.0.0.1:8000")]
    pub bind: SocketAddr,

    /// Serve `/metrics` on this address only (e.g. `127.0.0.1:9100`), not
    /// on the public one. Unset: `/metrics` is on `AUTHGATE_BIND`.
    #[arg(long, env = "AUTHGATE_METRICS_BIND")]
    pub metrics_bind: Option<SocketAddr>,

    /// The server's secret: 32 random bytes, base64 (`openssl rand -base64 32`).
    /// Signs the device cookie and encrypts TOTP secrets (rotate with
    /// `AUTHGATE_SECRET_KEY_PREVIOUS` and `authgate reseal`). Required in production; in development it is
    /// generated into `--secret-key-file` when unset.
    #[arg(long, env = "AUTHGATE_SECRET_KEY", hide_env_values = true)]
    pub secret_key: Option<SecretString>,

    /// Earlier server keys, comma-separated, while rotating: TOTP secrets
    /// sealed with one still open (and `authgate reseal` re-seals them all
    /// with `AUTHGATE_SECRET_KEY`). Remove them once that has run.
    #[arg(long, env = "AUTHGATE_SECRET_KEY_PREVIOUS", hide_env_values = true)]
    pub secret_key_previous: Option<SecretString>,

    /// Where a development secret key is kept (ignored when `AUTHGATE_SECRET_KEY` is set).
    #[arg(long, env = "AUTHGATE_SECRET_KEY_FILE", default_value = "data/secret.key")]
    pub secret_key_file: PathBuf,

    /// How long a browser or app that signed in is remembered as a trusted
    /// device for that account (the device cookie): its sign-ins are not held
    /// back by failures from other clients.
    #[arg(long, env = "AUTHGATE_DEVICE_COOKIE_TTL", default_value = "365d", value_parser = humantime::parse_duration)]
    pub device_cookie_ttl: Duration,

    /// `production` turns introspection and GraphiQL off unless explicitly enabled.
    #[arg(long, env = "AUTHGATE_ENV", value_enum, default_value = "development")]
    pub env: Environment,

    /// Apply pending migrations at start-up.
    #[arg(long, env = "AUTHGATE_AUTO_MIGRATE", default_value_t = true, action = clap::ArgAction::Set)]
    pub auto_migrate: bool,

    /// Maximum database connections in the pool.
    #[arg(long, env = "AUTHGATE_DB_MAX_CONNECTIONS", default_value_t = 10)]
    pub db_max_connections: u32,

    /// Connections kept open even when idle (PostgreSQL).
    #[arg(long, env = "AUTHGATE_DB_MIN_CONNECTIONS", default_value_t = 0)]
    pub db_min_connections: u32,

    /// Idle connections are closed after this (before a serverless provider drops them).
    #[arg(long, env = "AUTHGATE_DB_IDLE_TIMEOUT", default_value = "4m", value_parser = humantime::parse_duration)]
    pub db_idle_timeout: Duration,

    /// Connections are replaced after this age.
    #[arg(long, env = "AUTHGATE_DB_MAX_LIFETIME", default_value = "30m", value_parser = humantime::parse_duration)]
    pub db_max_lifetime: Duration,

    /// At start-up, keep retrying an unreachable database this long.
    #[arg(long, env = "AUTHGATE_DB_CONNECT_DEADLINE", default_value = "60s", value_parser = humantime::parse_duration)]
    pub db_connect_deadline: Duration,

    /// How long a request waits for a database connection before `SERVICE_UNAVAILABLE`.
    #[arg(long, env = "AUTHGATE_DB_ACQUIRE_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    pub db_acquire_timeout: Duration,

    /// Step-up: how long after a session's sign-in (or `reauthenticate`) it
    /// may still set a password, link or unlink a provider, add or remove a
    /// passkey, change two-factor, or delete an account without a password;
    /// later it answers `REAUTHENTICATION_REQUIRED` (`changePassword`, and
    /// `deleteAccount` with the password, need no window).
    #[arg(long, env = "AUTHGATE_REAUTH_WINDOW", default_value = "10m", value_parser = humantime::parse_duration)]
    pub reauth_window: Duration,

    /// The issuer an authenticator app shows beside the account (the
    /// `otpauth://` URI's `issuer`).
    #[arg(long, env = "AUTHGATE_TOTP_ISSUER", default_value = "authgate")]
    pub totp_issuer: String,

    /// The WebAuthn relying party passkeys are bound to (a domain, no
    /// scheme or port). Default: the domain `AUTHGATE_APP_URL`'s and
    /// `AUTHGATE_PUBLIC_URL`'s hosts share (`example.com` for
    /// `app.example.com` and `auth.example.com`) when it is a registrable
    /// domain by the public suffix list, else the app's host (never
    /// `github.io` or `co.uk`; a public suffix set here is refused).
    /// Changing it later orphans every registered passkey.
    #[arg(long, env = "AUTHGATE_WEBAUTHN_RP_ID")]
    pub webauthn_rp_id: Option<String>,

    /// Origins whose pages may run passkey ceremonies (comma-separated).
    /// Default: the app's (`AUTHGATE_APP_URL`) and this server's
    /// (`AUTHGATE_PUBLIC_URL`). Each must be within the relying party's domain.
    #[arg(long, env = "AUTHGATE_WEBAUTHN_ORIGINS", value_delimiter = ',')]
    pub webauthn_origins: Vec<String>,

    /// The name authenticators show beside a passkey.
    #[arg(long, env = "AUTHGATE_WEBAUTHN_RP_NAME", default_value = "authgate")]
    pub webauthn_rp_name: String,

    /// Session lifetime (sliding: extended on use, see `--session-update-age`).
    #[arg(long, env = "AUTHGATE_SESSION_TTL", default_value = "7d", value_parser = humantime::parse_duration)]
    pub session_ttl: Duration,

    /// A session used this long after its last extension gets a fresh `session-ttl`.
    #[arg(long, env = "AUTHGATE_SESSION_UPDATE_AGE", default_value = "1d", value_parser = humantime::parse_duration)]
    pub session_update_age: Duration,

    /// Absolute session lifetime from sign-in, never exceeded by sliding (0 = none).
    #[arg(long, env = "AUTHGATE_SESSION_MAX_AGE", default_value = "30d", value_parser = humantime::parse_duration)]
    pub session_max_age: Duration,

    /// Most live sessions one user may hold; a sign-in beyond it ends the
    /// user's oldest session (0 = no limit).
    #[arg(long, env = "AUTHGATE_MAX_SESSIONS_PER_USER", default_value_t = 50)]
    pub max_sessions_per_user: u64,

    /// How long a live session may be answered from memory before it is
    /// read again (`0` turns the session cache off). Revocations reach the
    /// cache at once on this instance and by `LISTEN/NOTIFY` on the others.
    #[arg(long, env = "AUTHGATE_SESSION_CACHE_TTL", default_value = "60s", value_parser = humantime::parse_duration)]
    pub session_cache_ttl: Duration,

    /// Most sessions kept in the cache (about 1 KB each; `0` turns it off).
    #[arg(long, env = "AUTHGATE_SESSION_CACHE_ENTRIES", default_value_t = 100_000)]
    pub session_cache_entries: u64,

    /// Opt-in availability over revocation: while the database cannot be
    /// reached at all, sessions in the cache keep answering `me` for at most
    /// this long after the database last answered (`0s` = off). Writes
    /// still fail, and a revocation made through another instance meanwhile
    /// arrives only when the database is back or the grace ends.
    #[arg(long, env = "AUTHGATE_SESSION_CACHE_OUTAGE_GRACE", default_value = "0s", value_parser = humantime::parse_duration)]
    pub session_cache_outage_grace: Duration,

    /// How often an instance checks its revocation channel on PostgreSQL:
    /// it sends itself a ping this often and treats the channel as lost
    /// (bypassing its cache until it is back) when one is not heard back
    /// within as long again. A connection that died silently (a NAT or a
    /// proxy that dropped it without a word) is noticed within twice this.
    #[arg(long, env = "AUTHGATE_SESSION_CHANNEL_PING", default_value = "5s", value_parser = humantime::parse_duration)]
    pub session_channel_ping: Duration,

    /// PostgreSQL URL of the connection that listens for revocations from
    /// other instances. It must reach the server directly: a
    /// transaction-mode pooler cannot carry `LISTEN`. Default: `DATABASE_URL`
    /// (for a Neon `-pooler` host, the same host without `-pooler`).
    #[arg(long, env = "AUTHGATE_DATABASE_LISTEN_URL", hide_env_values = true)]
    pub database_listen_url: Option<SecretString>,

    /// argon2id memory cost in KiB (OWASP: 19456 = 19 MiB).
    #[arg(long, env = "AUTHGATE_ARGON2_MEMORY_KIB", default_value_t = 19456)]
    pub argon2_memory_kib: u32,

    /// argon2id iterations (OWASP: 2).
    #[arg(long, env = "AUTHGATE_ARGON2_ITERATIONS", default_value_t = 2)]
    pub argon2_iterations: u32,

    /// argon2id lanes (OWASP: 1).
    #[arg(long, env = "AUTHGATE_ARGON2_PARALLELISM", default_value_t = 1)]
    pub argon2_parallelism: u32,

    /// Minimum zxcvbn strength score (0-4) of a new password; 0 turns the check off.
    #[arg(long, env = "AUTHGATE_PASSWORD_MIN_SCORE", default_value_t = 2, value_parser = clap::value_parser!(u8).range(0..=4))]
    pub password_min_score: u8,

    /// Password hashes computed at once (default: the number of CPUs).
    #[arg(long, env = "AUTHGATE_HASH_CONCURRENCY")]
    pub hash_concurrency: Option<usize>,

    /// Password hashes allowed to wait for a free worker; beyond that, sign-ins
    /// answer `SERVICE_UNAVAILABLE` at once instead of piling up memory.
    #[arg(long, env = "AUTHGATE_HASH_QUEUE", default_value_t = 128)]
    pub hash_queue: usize,

    /// How often expired sessions, spent or expired mailed tokens, ended rate-limit windows, and abandoned OAuth flows, two-factor sign-ins and passkey ceremonies are deleted in the background (0s = never).
    #[arg(long, env = "AUTHGATE_CLEANUP_INTERVAL", default_value = "1h", value_parser = humantime::parse_duration)]
    pub cleanup_interval: Duration,

    /// How long the event record (activity, audit log) is kept; older events are deleted by the cleanup (0s = for ever).
    #[arg(long, env = "AUTHGATE_EVENT_RETENTION", default_value = "400days", value_parser = humantime::parse_duration)]
    pub event_retention: Duration,

    /// Networks (comma-separated CIDRs, e.g. `10.0.0.0/8`) webhook endpoints may resolve to besides public addresses. By default loopback, private, link-local, shared (CGNAT), unique-local and cloud-metadata addresses are refused.
    #[arg(long, env = "AUTHGATE_WEBHOOK_ALLOW_NETWORKS", value_delimiter = ',', value_parser = parse_net)]
    pub webhook_allow_networks: Vec<IpNet>,

    /// How long one webhook delivery may take (connect, send, the answer's status) before it counts as failed and is retried.
    #[arg(long, env = "AUTHGATE_WEBHOOK_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub webhook_timeout: Duration,

    /// Lifetime of a signed access token (`accessToken`); it ends with its session if that comes first.
    #[arg(long, env = "AUTHGATE_JWT_TTL", default_value = "5m", value_parser = humantime::parse_duration)]
    pub jwt_ttl: Duration,

    /// Audiences (comma-separated) `accessToken` issues tokens for; any other is `BAD_USER_INPUT`. Empty: none.
    #[arg(long, env = "AUTHGATE_JWT_AUDIENCES", value_delimiter = ',')]
    pub jwt_audiences: Vec<String>,

    /// Audiences (comma-separated, each also in AUTHGATE_JWT_AUDIENCES) whose tokens are signed RS256 instead of ES256, for verifiers that take only RSA.
    #[arg(long, env = "AUTHGATE_JWT_RS256_AUDIENCES", value_delimiter = ',')]
    pub jwt_rs256_audiences: Vec<String>,

    /// Keys (comma-separated, at least 32 characters each) that services send as `Authorization: Bearer` to read `/revocations`. Empty: the feed is closed.
    #[arg(long, env = "AUTHGATE_SERVICE_KEYS", value_delimiter = ',', value_parser = parse_service_key)]
    pub service_keys: Vec<SecretString>,

    /// Whether this instance delivers webhooks (every instance may: deliveries are claimed one instance at a time).
    #[arg(long, env = "AUTHGATE_WEBHOOK_WORKER", default_value_t = true, action = clap::ArgAction::Set)]
    pub webhook_worker: bool,

    /// Proxies (comma-separated IPs or CIDRs) whose `X-Forwarded-For` is believed.
    #[arg(long, env = "AUTHGATE_TRUSTED_PROXIES", value_delimiter = ',', value_parser = parse_net)]
    pub trusted_proxies: Vec<IpNet>,

    /// Public URL of the app that opens mailed links (`{APP_URL}/verify-email?token=...`).
    #[arg(long, env = "AUTHGATE_APP_URL", default_value = "http://localhost:3000")]
    pub app_url: String,

    /// Require a verified email to sign in (`login` answers `EMAIL_NOT_VERIFIED`).
    #[arg(long, env = "AUTHGATE_REQUIRE_EMAIL_VERIFICATION", default_value_t = false, action = clap::ArgAction::Set)]
    pub require_email_verification: bool,

    /// Lifetime of an email verification link.
    #[arg(long, env = "AUTHGATE_EMAIL_VERIFICATION_TTL", default_value = "24h", value_parser = humantime::parse_duration)]
    pub email_verification_ttl: Duration,

    /// Lifetime of a password reset link.
    #[arg(long, env = "AUTHGATE_PASSWORD_RESET_TTL", default_value = "1h", value_parser = humantime::parse_duration)]
    pub password_reset_ttl: Duration,

    /// SMTP server; when unset, mail is written to `--outbox-dir` instead.
    #[arg(long, env = "AUTHGATE_SMTP_HOST")]
    pub smtp_host: Option<String>,

    /// SMTP port.
    #[arg(long, env = "AUTHGATE_SMTP_PORT", default_value_t = 587)]
    pub smtp_port: u16,

    /// SMTP transport security.
    #[arg(long, env = "AUTHGATE_SMTP_TLS", value_enum, default_value = "starttls")]
    pub smtp_tls: SmtpTls,

    /// SMTP user name.
    #[arg(long, env = "AUTHGATE_SMTP_USERNAME")]
    pub smtp_username: Option<String>,

    /// SMTP password.
    #[arg(long, env = "AUTHGATE_SMTP_PASSWORD", hide_env_values = true)]
    pub smtp_password: Option<SecretString>,

    /// Sender of every message.
    #[arg(long, env = "AUTHGATE_MAIL_FROM", default_value = "authgate <no-reply@localhost>")]
    pub mail_from: String,

    /// Where the development mailer writes `.eml` files.
    #[arg(long, env = "AUTHGATE_OUTBOX_DIR", default_value = "data/outbox")]
    pub outbox_dir: PathBuf,

    /// Mark cookies `Secure` and name the session cookie `__Host-session_token`
    /// (default: on when `AUTHGATE_PUBLIC_URL` is https).
    #[arg(long, env = "AUTHGATE_COOKIE_SECURE", action = clap::ArgAction::Set)]
    pub cookie_secure: Option<bool>,

    /// Send `Strict-Transport-Security` with this max-age (e.g. `365d`; 0s = off).
    /// Only for a server reached over HTTPS alone.
    #[arg(long, env = "AUTHGATE_HSTS_MAX_AGE", default_value = "0s", value_parser = humantime::parse_duration)]
    pub hsts_max_age: Duration,

    /// Serve GraphiQL on `GET /graphql` for browsers (default: on in development).
    #[arg(long, env = "AUTHGATE_GRAPHIQL", action = clap::ArgAction::Set)]
    pub graphiql: Option<bool>,

    /// Serve GraphiQL's scripts from this directory (a `node_modules` with
    /// graphiql, react and react-dom) instead of the copies built in.
    #[arg(long, env = "AUTHGATE_GRAPHIQL_ASSETS")]
    pub graphiql_assets: Option<PathBuf>,

    /// Allow schema introspection (default: on in development).
    #[arg(long, env = "AUTHGATE_INTROSPECTION", action = clap::ArgAction::Set)]
    pub introspection: Option<bool>,

    /// Largest accepted request body in bytes (larger bodies get HTTP 413).
    #[arg(long, env = "AUTHGATE_MAX_BODY_BYTES", default_value_t = 64 * 1024)]
    pub max_body_bytes: usize,

    /// Operations allowed in one JSON-array batch request; 0 refuses batches.
    #[arg(long, env = "AUTHGATE_MAX_BATCH", default_value_t = 0)]
    pub max_batch: usize,

    /// Keep rate-limit counters in Redis instead of the database.
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<SecretString>,

    /// Prefix of authgate's Redis keys.
    #[arg(long, env = "AUTHGATE_REDIS_PREFIX", default_value = "authgate:")]
    pub redis_prefix: String,

    /// Rate limits, one flag and variable per row of `rates::RULES`.
    #[command(flatten)]
    pub rates: Rates,

    /// Privacy mode: `register` answers `EMAIL_NOT_VERIFIED` for a new and a
    /// taken address alike (no session; the owner of a taken address is
    /// mailed). Implies `AUTHGATE_REQUIRE_EMAIL_VERIFICATION`.
    #[arg(long, env = "AUTHGATE_REGISTER_PRIVACY", default_value_t = false, action = clap::ArgAction::Set)]
    pub register_privacy: bool,

    /// Deepest allowed selection nesting. 15 is what the standard
    /// introspection query needs (graphql-js 16's, sent by GraphiQL, codegen
    /// and Apollo's tools); the schema's own operations nest far less.
    #[arg(long, env = "AUTHGATE_MAX_DEPTH", default_value_t = 15)]
    pub max_depth: usize,

    /// Highest allowed query complexity (each field counts 1).
    #[arg(long, env = "AUTHGATE_MAX_COMPLEXITY", default_value_t = 250)]
    pub max_complexity: usize,

    /// Most aliased fields in one document.
    #[arg(long, env = "AUTHGATE_MAX_ALIASES", default_value_t = 64)]
    pub max_aliases: usize,

    /// Most top-level fields in one operation.
    #[arg(long, env = "AUTHGATE_MAX_ROOT_FIELDS", default_value_t = 64)]
    pub max_root_fields: usize,

    /// Largest GraphQL document, in bytes.
    #[arg(long, env = "AUTHGATE_MAX_QUERY_BYTES", default_value_t = 16 * 1024)]
    pub max_query_bytes: usize,

    /// Longest a request may take, reading its body included: a body still
    /// arriving then gets 408; a request still running, `SERVICE_UNAVAILABLE`.
    #[arg(long, env = "AUTHGATE_REQUEST_TIMEOUT", default_value = "15s", value_parser = humantime::parse_duration)]
    pub request_timeout: Duration,

    /// Browser origins (comma-separated, e.g. `https://app.example.com`) allowed
    /// to call the API with credentials. Empty: same-origin only.
    #[arg(long, env = "AUTHGATE_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,

    /// A request's head must arrive within this (slow or half-sent headers
    /// are cut off); also the longest a kept-alive connection may sit idle.
    #[arg(long, env = "AUTHGATE_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub header_read_timeout: Duration,

    /// Most client connections open at once (each holds a file descriptor);
    /// further clients wait in the listen backlog until one closes.
    #[arg(long, env = "AUTHGATE_MAX_CONNECTIONS", default_value_t = 1000)]
    pub max_connections: usize,

    /// Most connections open at once from one client (an IPv4 address, an
    /// IPv6 /64); more are closed as they arrive. Not applied to
    /// `AUTHGATE_TRUSTED_PROXIES`. 0: no limit.
    #[arg(long, env = "AUTHGATE_MAX_CONNECTIONS_PER_CLIENT", default_value_t = 32)]
    pub max_connections_per_client: usize,

    /// Most connections open at once from one network (an IPv4 /24, an
    /// IPv6 /48), however many clients it has. Not applied to
    /// `AUTHGATE_TRUSTED_PROXIES`. 0: no limit.
    #[arg(long, env = "AUTHGATE_MAX_CONNECTIONS_PER_NETWORK", default_value_t = 128)]
    pub max_connections_per_network: usize,

    /// An answer that cannot be written for this long (a client that
    /// stopped reading) ends its connection.
    #[arg(long, env = "AUTHGATE_WRITE_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub write_timeout: Duration,

    /// A kept-alive connection is closed after this long (after the request
    /// in flight): no client holds one for ever.
    #[arg(long, env = "AUTHGATE_MAX_CONNECTION_AGE", default_value = "10m", value_parser = humantime::parse_duration)]
    pub max_connection_age: Duration,

    /// On SIGTERM/SIGINT, how long in-flight requests may still run.
    #[arg(long, env = "AUTHGATE_SHUTDOWN_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub shutdown_timeout: Duration,

    /// Public URL of this server; OAuth providers send the browser back to
    /// `{PUBLIC_URL}/auth/callback/{provider}` (register that URL with them).
    #[arg(long, env = "AUTHGATE_PUBLIC_URL", default_value = "http://localhost:8000")]
    pub public_url: String,

    /// OAuth providers to offer (comma-separated names, e.g. `github,google`);
    /// each is set up by `AUTHGATE_OAUTH_<NAME>_*` variables (see docs/sign-in.md).
    #[arg(long, env = "AUTHGATE_OAUTH_PROVIDERS", value_delimiter = ',')]
    pub oauth_providers: Vec<String>,

    /// Origins (comma-separated) that `redirectTo` may point at after an OAuth
    /// sign-in. Empty: only the origin of `AUTHGATE_APP_URL`.
    #[arg(long, env = "AUTHGATE_OAUTH_REDIRECT_ORIGINS", value_delimiter = ',')]
    pub oauth_redirect_origins: Vec<String>,

    /// How long an OAuth sign-in may take, from `startOAuth` to the callback.
    #[arg(long, env = "AUTHGATE_OAUTH_FLOW_TTL", default_value = "10m", value_parser = humantime::parse_duration)]
    pub oauth_flow_ttl: Duration,

    /// The providers named in `oauth_providers`, read from their variables
    /// by `load_oauth_providers` (tests set them directly).
    #[arg(skip)]
    pub oauth: Vec<ProviderConfig>,

    /// Log filter (`info`, `authgate=debug,sqlx=warn`, ...).
    #[arg(long, env = "AUTHGATE_LOG", default_value = "info")]
    pub log: String,

    /// Log format.
    #[arg(long, env = "AUTHGATE_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

impl Config {
    /// Defaults with the given database, as if no flag or variable were set.
    pub fn for_database(url: &str) -> Self {
        let mut config = Cli::parse_from(["authgate"]).config;
        config.database_url = url.into();
        config
    }

    /// Reads each provider named in `AUTHGATE_OAUTH_PROVIDERS` from its
    /// `AUTHGATE_OAUTH_<NAME>_*` variables; a missing setting is an error.
    pub fn load_oauth_providers(&mut self) -> anyhow::Result<()> {
        self.oauth = self
            .oauth_providers
            .iter()
            .map(|name| name.trim())
            .filter(|name| !name.is_empty())
            .map(|name| ProviderConfig::from_env(name, |key| std::env::var(key).ok()))
            .collect::<anyhow::Result<_>>()?;
        Ok(())
    }

    /// Sign-in needs a verified address (also implied by privacy mode, where
    /// a session right after `register` would tell a new address from a taken one).
    pub(crate) fn verification_required(&self) -> bool {
        self.require_email_verification || self.register_privacy
    }

    /// Refuses settings that cannot work, at start instead of later: an
    /// empty `AUTHGATE_TOTP_ISSUER` or one with ':'; privacy mode without
    /// `AUTHGATE_METRICS_BIND`; `0s` for the three connection timeouts; a
    /// duration or rate window beyond 100 years (`300000y` overflows date
    /// arithmetic at a sign-in; `tests/api/docs.rs` finds every duration
    /// setting from the flags, so none is left out of the list below). The
    /// error names the variable.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.totp_issuer.contains(':') || self.totp_issuer.trim().is_empty() {
            anyhow::bail!("AUTHGATE_TOTP_ISSUER must be a non-empty name without ':'");
        }
        if self.register_privacy && self.metrics_bind.is_none() {
            anyhow::bail!(
                "AUTHGATE_REGISTER_PRIVACY hides which addresses have accounts, but /metrics on the public \
                 address would tell (its sign-up and sign-in counters move differently for a new and a taken \
                 address): set AUTHGATE_METRICS_BIND to a private address as well"
            );
        }
        // The id in use (configured or worked out), as the relying party gets it.
        let rp_id = self.webauthn_rp_id();
        if rp_id.is_empty() || rp_id.trim_matches(['[', ']']).parse::<std::net::IpAddr>().is_ok() {
            anyhow::bail!(
                "the WebAuthn relying-party id {rp_id:?} is not a domain name (browsers take none else): set \
                 AUTHGATE_APP_URL (or AUTHGATE_WEBAUTHN_RP_ID) to the site's host name"
            );
        }
        if is_public_suffix(&rp_id) {
            anyhow::bail!(
                "the WebAuthn relying-party id {rp_id} is a public suffix (set AUTHGATE_WEBAUTHN_RP_ID, or \
                 AUTHGATE_APP_URL, to the site's own domain, e.g. example.{rp_id})"
            );
        }
        // Zero would close every connection at once (elsewhere 0 means off).
        for (name, value) in [
            ("AUTHGATE_SESSION_CHANNEL_PING", self.session_channel_ping),
            ("AUTHGATE_HEADER_READ_TIMEOUT", self.header_read_timeout),
            ("AUTHGATE_WRITE_TIMEOUT", self.write_timeout),
            ("AUTHGATE_MAX_CONNECTION_AGE", self.max_connection_age),
            ("AUTHGATE_WEBHOOK_TIMEOUT", self.webhook_timeout),
            ("AUTHGATE_JWT_TTL", self.jwt_ttl),
        ] {
            if value.is_zero() {
                anyhow::bail!("{name} must be longer than 0s (it bounds every connection)");
            }
        }
        // Below the database's round trip the channel would count as lost
        // again and again (each time a flush and a new connection).
        if self.session_channel_ping < Duration::from_millis(100) {
            anyhow::bail!(
                "AUTHGATE_SESSION_CHANNEL_PING must be at least 100ms (keep it well above the database's round trip)"
            );
        }
        // A token cannot be taken back: a long-lived one is a session that
        // never ends (the revocation feed keeps each end for the lifetime).
        if self.jwt_ttl > Duration::from_secs(24 * 3600) {
            anyhow::bail!(
                "AUTHGATE_JWT_TTL must be at most 24h (5m is the default; a token cannot be taken back)"
            );
        }
        if let Some(stray) = self
            .jwt_rs256_audiences
            .iter()
            .filter(|rs| !rs.trim().is_empty())
            .find(|rs| !self.jwt_audiences.iter().any(|aud| aud.trim() == rs.trim()))
        {
            anyhow::bail!(
                "AUTHGATE_JWT_RS256_AUDIENCES names {stray:?}, which is not in AUTHGATE_JWT_AUDIENCES"
            );
        }
        // The revocation feed reads ended sessions from the event record
        // while their tokens may live: a shorter record would drop them.
        let feed = self.jwt_ttl + Duration::from_secs(60);
        if !self.event_retention.is_zero() && self.event_retention < feed {
            anyhow::bail!(
                "AUTHGATE_EVENT_RETENTION ({}) must be at least AUTHGATE_JWT_TTL + 1m ({}): the revocation feed reads the record",
                humantime::format_duration(self.event_retention),
                humantime::format_duration(feed)
            );
        }
        const MAX: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
        let durations = [
            ("AUTHGATE_DEVICE_COOKIE_TTL", self.device_cookie_ttl),
            ("AUTHGATE_DB_IDLE_TIMEOUT", self.db_idle_timeout),
            ("AUTHGATE_DB_MAX_LIFETIME", self.db_max_lifetime),
            ("AUTHGATE_DB_CONNECT_DEADLINE", self.db_connect_deadline),
            ("AUTHGATE_DB_ACQUIRE_TIMEOUT", self.db_acquire_timeout),
            ("AUTHGATE_SESSION_TTL", self.session_ttl),
            ("AUTHGATE_REAUTH_WINDOW", self.reauth_window),
            ("AUTHGATE_SESSION_UPDATE_AGE", self.session_update_age),
            ("AUTHGATE_SESSION_MAX_AGE", self.session_max_age),
            ("AUTHGATE_SESSION_CACHE_TTL", self.session_cache_ttl),
            ("AUTHGATE_SESSION_CACHE_OUTAGE_GRACE", self.session_cache_outage_grace),
            ("AUTHGATE_SESSION_CHANNEL_PING", self.session_channel_ping),
            ("AUTHGATE_CLEANUP_INTERVAL", self.cleanup_interval),
            ("AUTHGATE_EMAIL_VERIFICATION_TTL", self.email_verification_ttl),
            ("AUTHGATE_PASSWORD_RESET_TTL", self.password_reset_ttl),
            ("AUTHGATE_HSTS_MAX_AGE", self.hsts_max_age),
            ("AUTHGATE_REQUEST_TIMEOUT", self.request_timeout),
            ("AUTHGATE_HEADER_READ_TIMEOUT", self.header_read_timeout),
            ("AUTHGATE_WRITE_TIMEOUT", self.write_timeout),
            ("AUTHGATE_MAX_CONNECTION_AGE", self.max_connection_age),
            ("AUTHGATE_SHUTDOWN_TIMEOUT", self.shutdown_timeout),
            ("AUTHGATE_OAUTH_FLOW_TTL", self.oauth_flow_ttl),
            ("AUTHGATE_EVENT_RETENTION", self.event_retention),
            ("AUTHGATE_WEBHOOK_TIMEOUT", self.webhook_timeout),
            ("AUTHGATE_JWT_TTL", self.jwt_ttl),
        ];
        let too_long = durations.into_iter().chain(self.rates.iter().map(|(name, rate)| (name, rate.window)));
        for (name, value) in too_long {
            if value > MAX {
                anyhow::bail!("{name}: {} is longer than 100 years", humantime::format_duration(value));
            }
        }
        Ok(())
    }

    /// The relying party id: configured, else the domain the app's and
    /// this server's hosts share (at least two labels, or one host when
    /// both are the same, such as `localhost`), else the app's host.
    pub(crate) fn webauthn_rp_id(&self) -> String {
        if let Some(id) = self.webauthn_rp_id.as_deref().map(str::trim).filter(|id| !id.is_empty()) {
            return id.trim_end_matches('.').to_ascii_lowercase();
        }
        let host = |raw: &str| {
            url::Url::parse(raw.trim()).ok().and_then(|u| u.host_str().map(str::to_ascii_lowercase))
        };
        let (Some(app), public) = (host(&self.app_url), host(&self.public_url)) else {
            return "localhost".to_owned();
        };
        // An address is its own id (the suffix list knows names, not numbers).
        let address = app.trim_matches(['[', ']']).parse::<std::net::IpAddr>().is_ok();
        let Some(public) = public.filter(|p| *p != app && !address) else { return app };
        let shared: Vec<&str> =
            app.rsplit('.').zip(public.rsplit('.')).take_while(|(a, b)| a == b).map(|(a, _)| a).collect();
        let shared = shared.into_iter().rev().collect::<Vec<_>>().join(".");
        // Only a registrable domain (or a name under one) may be shared: two
        // sites under `github.io` or `co.uk` share a public suffix, which no
        // browser accepts as an id, and which would name every site under it.
        match registrable_domain(&app) {
            Some(registrable) if shared == registrable || shared.ends_with(&format!(".{registrable}")) => {
                shared
            }
            _ => app,
        }
    }

    /// The origins allowed to run passkey ceremonies: configured, else the
    /// app's and this server's.
    pub(crate) fn webauthn_origins(&self) -> Vec<String> {
        let configured: Vec<String> =
            self.webauthn_origins.iter().map(|o| o.trim().to_owned()).filter(|o| !o.is_empty()).collect();
        if !configured.is_empty() {
            return configured;
        }
        let mut origins = Vec::new();
        for raw in [&self.app_url, &self.public_url] {
            if let Ok(url) = url::Url::parse(raw.trim()) {
                let origin = url.origin().ascii_serialization();
                if !origins.contains(&origin) {
                    origins.push(origin);
                }
            }
        }
        origins
    }

    /// Cookies are `Secure` (and `__Host-` named) when asked, or by default
    /// when the public URL is https.
    pub fn cookie_secure(&self) -> bool {
        self.cookie_secure
            .unwrap_or_else(|| self.public_url.trim().to_ascii_lowercase().starts_with("https://"))
    }

    /// Whether live sessions are kept in memory (`session_cache_ttl` and
    /// `session_cache_entries` both non-zero).
    pub(crate) fn session_cache_enabled(&self) -> bool {
        !self.session_cache_ttl.is_zero() && self.session_cache_entries > 0
    }

    pub fn graphiql_enabled(&self) -> bool {
        self.graphiql.unwrap_or(self.env == Environment::Development)
    }

    pub fn introspection_enabled(&self) -> bool {
        self.introspection.unwrap_or(self.env == Environment::Development)
    }

    pub(crate) fn hash_concurrency(&self) -> usize {
        self.hash_concurrency
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
            .max(1)
    }
}

/// `10.0.0.0/8` or a single address such as `127.0.0.1`.
/// A service key: long enough not to be guessed (never shown back).
fn parse_service_key(raw: &str) -> Result<SecretString, String> {
    let raw = raw.trim();
    if raw.len() < 32 {
        return Err("a service key must be at least 32 characters (e.g. `openssl rand -base64 32`)".into());
    }
    Ok(SecretString::from(raw.to_owned()))
}

fn parse_net(raw: &str) -> Result<IpNet, String> {
    let raw = raw.trim();
    raw.parse::<IpNet>()
        .or_else(|_| raw.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("{raw:?} is not an IP address or CIDR"))
}

/// The database URL with its password replaced, safe for logs and errors:
/// parsed (so a password holding `/`, `?` or `@` is still found), the
/// userinfo password and any `password` query parameter masked. A URL that
/// does not parse is not shown at all.
pub fn redact_url(raw: &str) -> String {
    let Ok(mut url) = url::Url::parse(raw) else {
        return "<unparsable URL>".to_owned();
    };
    if url.password().is_some() {
        let _ = url.set_password(Some("***"));
    }
    let secret = |key: &str| {
        let key = key.to_ascii_lowercase();
        key == "password" || key == "pass" || key == "sslpassword"
    };
    if url.query_pairs().any(|(k, _)| secret(&k)) {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| {
                if secret(&k) { (k.into_owned(), "***".to_owned()) } else { (k.into_owned(), v.into_owned()) }
            })
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
    }
    url.to_string()
}

/// The registrable domain of `host` (its public suffix and one label
/// more: `example.co.uk` for `app.example.co.uk`), by the public suffix
/// list; `None` for a public suffix itself, an IP address or a single label.
pub(crate) fn registrable_domain(host: &str) -> Option<String> {
    let domain = psl::domain(host.as_bytes())?;
    std::str::from_utf8(domain.as_bytes()).ok().map(str::to_owned)
}

/// `id` (lower case) is on the public suffix list itself: `com`, `co.uk`,
/// `github.io`. A name the list does not know (`localhost`, `intranet`) is
/// not, nor is an address.
pub(crate) fn is_public_suffix(id: &str) -> bool {
    id.trim_matches(['[', ']']).parse::<std::net::IpAddr>().is_err()
        && psl::suffix(id.as_bytes()).is_some_and(|suffix| suffix.is_known())
        && registrable_domain(id).is_none()
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::{Cli, Config, redact_url};

    fn rp_id(app: &str, public: &str) -> String {
        let mut config = Config::for_database("sqlite::memory:");
        (config.app_url, config.public_url) = (app.into(), public.into());
        config.webauthn_rp_id()
    }

    /// The relying-party id from the app's and the server's URLs: the
    /// domain they share when it is a registrable one, else the app's host;
    /// never a public suffix.
    #[test]
    fn the_relying_party_id_is_never_a_public_suffix() {
        let cases = [
            ("http://localhost:3000", "http://localhost:8000", "localhost"),
            ("https://app.example.com", "https://auth.example.com", "example.com"),
            ("https://app.example.com:3000", "https://id.example.com:8443/auth", "example.com"),
            ("https://example.com", "https://auth.example.com", "example.com"),
            ("https://app.eu.example.com", "https://id.eu.example.com", "eu.example.com"),
            ("https://app.example.co.uk", "https://id.example.co.uk", "example.co.uk"),
            // Sibling sites under a public suffix share nothing registrable.
            ("https://alice.github.io", "https://auth.github.io", "alice.github.io"),
            ("https://shop.co.uk", "https://auth.co.uk", "shop.co.uk"),
            ("https://app.example.com", "https://auth.other.org", "app.example.com"),
            // Addresses are their own id, never a made-up "0.1".
            ("http://10.0.0.1:3000", "http://10.1.0.1:8000", "10.0.0.1"),
        ];
        for (app, public, expected) in cases {
            assert_eq!(rp_id(app, public), expected, "{app} + {public}");
        }
    }

    #[test]
    fn an_id_that_is_no_domain_name_is_refused_at_start() {
        for (app, id) in [
            ("http://10.0.0.1:3000", None),
            ("http://[::1]:3000", None),
            ("http://localhost:3000", Some(".")),
        ] {
            let mut config = Config::for_database("sqlite::memory:");
            config.app_url = app.into();
            config.webauthn_rp_id = id.map(Into::into);
            assert!(config.validate().is_err(), "{app} {id:?}");
        }
    }

    #[test]
    fn the_record_outlives_every_token() {
        let mut config = Config::for_database("sqlite::memory:");
        config.jwt_ttl = std::time::Duration::from_secs(600);
        config.event_retention = std::time::Duration::from_secs(659);
        assert!(config.validate().is_err(), "a feed entry would leave before its tokens");
        config.event_retention = std::time::Duration::from_secs(660);
        assert!(config.validate().is_ok());
        config.event_retention = std::time::Duration::ZERO;
        assert!(config.validate().is_ok(), "kept for ever");
    }

    #[test]
    fn a_worked_out_public_suffix_is_refused_at_start() {
        let mut config = Config::for_database("sqlite::memory:");
        (config.app_url, config.public_url) = ("https://github.io".into(), "https://auth.example.com".into());
        assert!(config.validate().is_err(), "the app's own host is a public suffix");
    }

    #[test]
    fn a_configured_public_suffix_is_refused() {
        for (id, refused) in [
            ("github.io", true),
            ("GITHUB.IO", true),
            ("co.uk", true),
            ("Co.Uk", true),
            ("com", true),
            ("io", true),
            ("example.com", false),
            ("Example.co.uk", false),
            ("localhost", false),
            ("app.localhost", false),
        ] {
            let mut config = Config::for_database("sqlite::memory:");
            config.webauthn_rp_id = Some(id.into());
            assert_eq!(config.validate().is_err(), refused, "{id}");
        }
    }

    #[test]
    fn absurd_durations_are_refused_with_the_variable_name() {
        let config = Cli::parse_from(["authgate", "--session-ttl", "300000y"]).config;
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("AUTHGATE_SESSION_TTL"), "{err}");
        let config = Cli::parse_from(["authgate", "--rate-login-ip", "5/300000y"]).config;
        assert!(config.validate().unwrap_err().to_string().contains("AUTHGATE_RATE_LOGIN_IP"));
        assert!(Cli::parse_from(["authgate"]).config.validate().is_ok(), "the defaults");
        let config = Cli::parse_from(["authgate", "--public-url", "https://auth.example.com"]).config;
        assert!(config.cookie_secure(), "Secure by default behind https");
        assert!(!Cli::parse_from(["authgate"]).config.cookie_secure());
    }

    #[test]
    fn connection_timeouts_of_zero_are_refused() {
        for flag in ["--write-timeout", "--max-connection-age", "--header-read-timeout"] {
            let config = Cli::parse_from(["authgate", flag, "0s"]).config;
            assert!(config.validate().unwrap_err().to_string().contains("must be longer than 0s"), "{flag}");
        }
    }

    #[test]
    fn privacy_mode_needs_metrics_off_the_public_address() {
        let public = Cli::parse_from(["authgate", "--register-privacy", "true"]).config;
        let err = public.validate().unwrap_err().to_string();
        assert!(err.contains("AUTHGATE_REGISTER_PRIVACY") && err.contains("AUTHGATE_METRICS_BIND"), "{err}");
        let private =
            Cli::parse_from(["authgate", "--register-privacy", "true", "--metrics-bind", "127.0.0.1:9100"])
                .config;
        assert!(private.validate().is_ok());
    }

    #[test]
    fn debug_shows_no_secret() {
        let config = Cli::parse_from([
            "authgate",
            "--database-url",
            "postgres://bob:db-s3cret@db.example.com/app",
            "--smtp-password",
            "smtp-s3cret",
            "--redis-url",
            "redis://:redis-s3cret@cache/",
            "--secret-key",
            "key-s3cret",
        ])
        .config;
        let shown = format!("{config:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("REDACTED") && shown.contains("smtp_port"), "{shown}");
    }

    #[test]
    fn redacts_password_but_keeps_host_and_params() {
        assert_eq!(
            redact_url("postgres://alice:s3cr%40t@ep-x.neon.tech/db?sslmode=require"),
            "postgres://alice:***@ep-x.neon.tech/db?sslmode=require"
        );
        assert_eq!(redact_url("sqlite://data/a.db?mode=rwc"), "sqlite://data/a.db?mode=rwc");
    }

    #[test]
    fn passwords_with_url_delimiters_and_query_passwords_are_redacted() {
        for (raw, secret) in [
            ("postgres://bob:pa%2Fss%3Fword@db.example.com:5432/app", "pa%2Fss%3Fword"),
            ("postgres://bob:a/b?c@db.example.com/app", "a/b?c"),
            ("postgres://bob:s3cret@db.example.com/app?sslmode=require&password=hunter2", "hunter2"),
            ("postgres://db.example.com/app?user=bob&password=hunter2", "hunter2"),
            ("postgres://bob:x@y@db.example.com/app", "x@y"),
        ] {
            let shown = redact_url(raw);
            assert!(!shown.contains(secret), "{raw} -> {shown}");
            assert!(!shown.contains("s3cret"), "{shown}");
            assert!(shown.contains("***") || shown == "<unparsable URL>", "{shown}");
        }
        assert!(redact_url("postgres://bob:s3cret@db.example.com/app").contains("db.example.com"));
    }
}
