//! The admin's user list over many users: the users written in bulk (no
//! password: the list never signs them in), an admin among them, and the
//! plan the database chooses for the list's statement (the search served
//! by an index, or not).

use domain::admin::users::{self, Filter};
use entity::users as user_rows;
use sea_orm::{ActiveValue::Set, ConnectionTrait, EntityTrait, QueryTrait, Statement};
use uuid::Uuid;

use crate::seed::Seeded;

/// What the emails begin with: a search for one of them finds about one
/// user in `PREFIXES.len()`.
pub const PREFIXES: [&str; 40] = [
    "ada", "ben", "cleo", "dan", "eve", "finn", "gus", "hana", "ivan", "jo", "kai", "lea", "max", "nia",
    "omar", "pia", "quin", "rosa", "sam", "tara", "uma", "vic", "wes", "xia", "yuri", "zoe", "abe", "bea",
    "cal", "dora", "eli", "fay", "gil", "hal", "ida", "jay", "kim", "lou", "mae", "ned",
];

const FAMILY: [&str; 10] =
    ["Smith", "Garcia", "Okafor", "Tanaka", "Novak", "Silva", "Haddad", "Kowalski", "Nguyen", "Ortiz"];

impl Seeded {
    /// Writes `count` users in bulk, created one second apart back from
    /// now, and makes the first seeded user an admin; their session token.
    pub async fn admin_users(&self, count: usize) -> anyhow::Result<String> {
        let (state, db) = self.state().await?;
        let now = chrono::Utc::now();
        let mut rows = Vec::with_capacity(1000);
        for i in 0..count {
            let prefix = PREFIXES[i % PREFIXES.len()];
            let at = now - chrono::Duration::seconds((count - i) as i64);
            rows.push(user_rows::ActiveModel {
                id: Set(Uuid::new_v4()),
                email: Set(format!("{prefix}{i}-{}@example.com", self.run())),
                name: Set(Some(format!("{} {}", capitalized(prefix), FAMILY[i % FAMILY.len()]))),
                image: Set(None),
                email_verified: Set(i % 3 != 0),
                created_at: Set(at),
                updated_at: Set(at),
                credentials_version: Set(0),
                two_factor_enabled: Set(false),
                banned_at: Set((i % 97 == 0).then_some(at)),
                banned_until: Set(None),
                ban_reason: Set(None),
            });
            if rows.len() == 1000 {
                user_rows::Entity::insert_many(std::mem::take(&mut rows)).exec_without_returning(&db).await?;
            }
        }
        if !rows.is_empty() {
            user_rows::Entity::insert_many(rows).exec_without_returning(&db).await?;
        }
        let (email, token) = self.users.first().ok_or_else(|| anyhow::anyhow!("no seeded user"))?;
        domain::admin::grant_from_command_line(&state.auth, email, "admin", true)
            .await
            .map_err(|e| anyhow::anyhow!("granting admin: {e}"))?;
        Ok(token.clone())
    }

    /// The database's plan for a page of the list searched for `search`.
    pub async fn plan_of_search(&self, search: &str) -> anyhow::Result<String> {
        let (state, db) = self.state().await?;
        let filter = Filter { search: Some(search.into()), ..Default::default() };
        let checked = users::checked(&state.auth, filter).map_err(|e| anyhow::anyhow!("{e}"))?;
        let backend = db.get_database_backend();
        let sql = users::select(&checked, 51, None).build(backend).to_string();
        let explain = match backend {
            sea_orm::DbBackend::Postgres => format!("EXPLAIN {sql}"),
            _ => format!("EXPLAIN QUERY PLAN {sql}"),
        };
        let rows = db.query_all(Statement::from_string(backend, explain)).await?;
        let lines: Vec<String> = rows
            .iter()
            .map(|row| {
                row.try_get::<String>("", "QUERY PLAN")
                    .or_else(|_| row.try_get::<String>("", "detail"))
                    .unwrap_or_default()
            })
            .collect();
        Ok(lines.join("\n"))
    }
}

fn capitalized(word: &str) -> String {
    let mut chars = word.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}
