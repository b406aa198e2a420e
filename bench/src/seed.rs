//! Users and sessions created before the measurements, straight through
//! authgate's own services (so they are exactly what the server would make).

use std::{path::Path, sync::Arc};

use domain::{
    ClientMeta,
    clock::{Clock, SystemClock},
    config::Config,
    factors::totp,
    session,
    sign_in::{register, second_step},
    token, user,
};
use entity::sessions;
use sea_orm::{ActiveValue::Set, DatabaseConnection, EntityTrait};
use uuid::Uuid;

pub const PASSWORD: &str = "steady load with reasonable strength";

pub struct Seeded {
    /// `(email, session token)` per user.
    pub users: Vec<(String, String)>,
    /// Session tokens spread over the users, for the `me` scenarios.
    pub me_tokens: Vec<String>,
    /// An admin's session, once the admin scenarios' users are written.
    pub admin_token: Option<String>,
    db_url: String,
    dir: std::path::PathBuf,
    run: String,
}

pub async fn seed(database_url: &str, dir: &Path, users: usize, sessions: usize) -> anyhow::Result<Seeded> {
    let (state, _db) = state(database_url, dir).await?;
    let run = Uuid::new_v4().simple().to_string()[..8].to_owned();
    let mut seeded = Vec::with_capacity(users);
    for i in 0..users {
        let email = format!("bench-{run}-{i}@example.com");
        let registration = register::Registration {
            email: email.clone(),
            password: PASSWORD.into(),
            name: Some(format!("User {i}")),
        };
        let signed = register::register(&state.auth, registration, &ClientMeta::default())
            .await
            .map_err(|e| anyhow::anyhow!("seeding user {i}: {e}"))?;
        seeded.push((email, signed.token));
    }
    let mut seeded = Seeded {
        users: seeded,
        me_tokens: Vec::new(),
        admin_token: None,
        db_url: database_url.to_owned(),
        dir: dir.to_owned(),
        run,
    };
    seeded.me_tokens = seeded.sessions(sessions, true).await?;
    Ok(seeded)
}

/// The server's state for seeding, and its database connection (the
/// seeding writes rows in bulk beside the services).
async fn state(
    database_url: &str,
    dir: &Path,
) -> anyhow::Result<(authgate::http::AppState, DatabaseConnection)> {
    state_with(database_url, dir, |_| {}).await
}

async fn state_with(
    database_url: &str,
    dir: &Path,
    tweak: impl FnOnce(&mut Config),
) -> anyhow::Result<(authgate::http::AppState, DatabaseConnection)> {
    let mut config = Config::for_database(database_url);
    tweak(&mut config);
    config.outbox_dir = dir.join("outbox");
    config.secret_key_file = dir.join("data/secret.key");
    config.db_max_connections = 2;
    config.rates = domain::config::Rates::off();
    // Seeding serves no session: no cache, no listening connection.
    config.session_cache_ttl = std::time::Duration::ZERO;
    let db = domain::db::connect(&config).await?;
    Ok((authgate::state(db.clone(), config, Arc::new(SystemClock))?, db))
}

impl Seeded {
    /// The services over the seeded database (for more seeding).
    pub(crate) async fn state(&self) -> anyhow::Result<(authgate::http::AppState, DatabaseConnection)> {
        state(&self.db_url, &self.dir).await
    }

    /// This run's tag (in every seeded email).
    pub(crate) fn run(&self) -> &str {
        &self.run
    }

    /// `count` fresh session tokens, inserted in bulk: of the first user
    /// (`spread` false, for `logout`) or round the seeded users.
    pub async fn sessions(&self, count: usize, spread: bool) -> anyhow::Result<Vec<String>> {
        let (_state, db) = state(&self.db_url, &self.dir).await?;
        let emails: Vec<&str> = self.users.iter().map(|(email, _)| email.as_str()).collect();
        let owners: Vec<Uuid> = entity::users::Entity::find()
            .all(&db)
            .await?
            .into_iter()
            .filter(|u| if spread { emails.contains(&u.email.as_str()) } else { u.email == emails[0] })
            .map(|u| u.id)
            .collect();
        anyhow::ensure!(!owners.is_empty(), "seeded users missing");
        let now = SystemClock.now();
        let mut tokens = Vec::with_capacity(count);
        let mut rows = Vec::with_capacity(500);
        for i in 0..count {
            let token = token::generate();
            tokens.push(token.secret);
            rows.push(sessions::ActiveModel {
                id: Set(Uuid::new_v4()),
                user_id: Set(owners[i % owners.len()]),
                token_hash: Set(token.hash),
                expires_at: Set(now + chrono::Duration::days(7)),
                created_at: Set(now),
                updated_at: Set(now),
                ip_address: Set(None),
                user_agent: Set(Some("authgate-bench".into())),
                authenticated_at: Set(now),
                assurance_level: Set(1),
                method: Set(Some("password".into())),
                impersonator_id: Set(None),
                impersonator_session_id: Set(None),
            });
            if rows.len() == 500 {
                sessions::Entity::insert_many(std::mem::take(&mut rows)).exec(&db).await?;
            }
        }
        if !rows.is_empty() {
            sessions::Entity::insert_many(rows).exec(&db).await?;
        }
        Ok(tokens)
    }

    /// `count` sign-ins stopped at the second step, each of a user of its
    /// own with two-factor on: `(challenge, base32 TOTP secret)`. Made
    /// through authgate's services; the users' passwords are hashed cheaply
    /// (the scenario never checks them). Each setup is confirmed with the
    /// previous step's code (accepted for clock drift), so the current
    /// step's code is still unused when the scenario sends it.
    pub async fn second_steps(&self, count: usize) -> anyhow::Result<Vec<(String, String)>> {
        let (state, db) = state_with(&self.db_url, &self.dir, |c| {
            c.argon2_memory_kib = 256;
            c.argon2_iterations = 1;
        })
        .await?;
        let auth = &state.auth;
        let fail = |what: &str, e: domain::error::AuthError| anyhow::anyhow!("{what}: {e}");
        let mut steps = Vec::with_capacity(count);
        for i in 0..count {
            let email = format!("bench-{}-2fa-{}-{i}@example.com", self.run, Uuid::new_v4().simple());
            let registration = register::Registration { email, password: PASSWORD.into(), name: None };
            let signed = register::register(auth, registration, &ClientMeta::default())
                .await
                .map_err(|e| fail("registering", e))?;
            // Only a proved address may add a factor (as if the mailed link was followed).
            user::mark_email_verified(&db, signed.user.id, SystemClock.now())
                .await
                .map_err(|e| fail("verifying", e))?;
            let current = session::authenticate(auth, &signed.token, Default::default())
                .await
                .map_err(|e| fail("session", e))?;
            let setup = totp::start_setup(auth, &current).await.map_err(|e| fail("setup", e))?;
            let previous = code_at(&setup.secret, SystemClock.now().timestamp() as u64 - 30);
            totp::confirm_setup(auth, &current, &previous).await.map_err(|e| fail("confirming", e))?;
            // Turning two-factor on started a new credentials version: the
            // challenge is issued under it, as `login` would.
            let current = session::authenticate(auth, &signed.token, Default::default())
                .await
                .map_err(|e| fail("session", e))?;
            let challenge = second_step::challenge(auth, &db, &current.user, second_step::PASSWORD, None)
                .await
                .map_err(|e| fail("challenge", e))?;
            steps.push((domain::config::ExposeSecret::expose_secret(&challenge).to_owned(), setup.secret));
        }
        Ok(steps)
    }

    /// A fresh email for `register`.
    pub fn new_email(&self, worker: usize, n: u64) -> String {
        format!("bench-{}-new-{worker}-{n}@example.com", self.run)
    }
}

/// The code an authenticator app shows for `secret` (base32) at `unix_time`.
pub fn code_at(secret: &str, unix_time: u64) -> String {
    let secret = totp_rs::Secret::try_from_base32(secret).expect("a base32 secret");
    let totp = totp_rs::Builder::new().with_secret(secret).build().expect("an RFC 6238 generator");
    totp.generate(unix_time).to_string()
}
