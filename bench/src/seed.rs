//! Users and sessions created before the measurements, straight through
//! authgate's own services (so they are exactly what the server would make).

use std::{path::Path, sync::Arc};

use authgate::{
    auth::{ClientMeta, account, token},
    clock::{Clock, SystemClock},
    config::Config,
};
use entity::sessions;
use sea_orm::{ActiveValue::Set, EntityTrait};
use uuid::Uuid;

pub const PASSWORD: &str = "steady load with reasonable strength";

pub struct Seeded {
    /// `(email, session token)` per user.
    pub users: Vec<(String, String)>,
    db_url: String,
    dir: std::path::PathBuf,
    run: String,
}

pub async fn seed(database_url: &str, dir: &Path, users: usize) -> anyhow::Result<Seeded> {
    let state = state(database_url, dir).await?;
    let run = Uuid::new_v4().simple().to_string()[..8].to_owned();
    let mut seeded = Vec::with_capacity(users);
    for i in 0..users {
        let email = format!("bench-{run}-{i}@example.com");
        let registration = account::Registration {
            email: email.clone(),
            password: PASSWORD.into(),
            name: Some(format!("User {i}")),
        };
        let signed = account::register(&state.auth, registration, &ClientMeta::default())
            .await
            .map_err(|e| anyhow::anyhow!("seeding user {i}: {e}"))?;
        seeded.push((email, signed.token));
    }
    Ok(Seeded { users: seeded, db_url: database_url.to_owned(), dir: dir.to_owned(), run })
}

async fn state(database_url: &str, dir: &Path) -> anyhow::Result<authgate::http::AppState> {
    let mut config = Config::for_database(database_url);
    config.outbox_dir = dir.join("outbox");
    config.secret_key_file = dir.join("data/secret.key");
    config.db_max_connections = 2;
    config.rates = authgate::config::Rates::off();
    let db = authgate::db::connect(&config).await?;
    authgate::state(db, config, Arc::new(SystemClock))
}

impl Seeded {
    /// `count` fresh session tokens of the first user (for `logout`), inserted in bulk.
    pub async fn sessions(&self, count: usize) -> anyhow::Result<Vec<String>> {
        let state = state(&self.db_url, &self.dir).await?;
        let user = entity::users::Entity::find()
            .all(&state.auth.db)
            .await?
            .into_iter()
            .find(|u| u.email == self.users[0].0)
            .ok_or_else(|| anyhow::anyhow!("seeded user missing"))?;
        let now = SystemClock.now();
        let mut tokens = Vec::with_capacity(count);
        let mut rows = Vec::with_capacity(500);
        for _ in 0..count {
            let token = token::generate();
            tokens.push(token.secret);
            rows.push(sessions::ActiveModel {
                id: Set(Uuid::new_v4()),
                user_id: Set(user.id),
                token_hash: Set(token.hash),
                expires_at: Set(now + chrono::Duration::days(7)),
                created_at: Set(now),
                updated_at: Set(now),
                ip_address: Set(None),
                user_agent: Set(Some("authgate-bench".into())),
            });
            if rows.len() == 500 {
                sessions::Entity::insert_many(std::mem::take(&mut rows)).exec(&state.auth.db).await?;
            }
        }
        if !rows.is_empty() {
            sessions::Entity::insert_many(rows).exec(&state.auth.db).await?;
        }
        Ok(tokens)
    }

    /// A fresh email for `register`.
    pub fn new_email(&self, worker: usize, n: u64) -> String {
        format!("bench-{}-new-{worker}-{n}@example.com", self.run)
    }
}
