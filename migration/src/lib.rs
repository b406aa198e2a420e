//! Schema migrations, applied by `authgate` at start-up (unless disabled) and
//! by this crate's own CLI (`cargo run -p migration -- up|down|status|fresh`).
//! Never depends on `entity`: a migration is a frozen snapshot of its day.

pub use sea_orm_migration::prelude::*;

mod m20261129_000001_create_users;
mod m20261129_000002_create_sessions;
mod m20261129_000003_create_accounts;
mod m20261129_000004_create_verification_tokens;
mod m20261129_000005_create_rate_limits;
mod m20261129_000006_create_oauth_flows;
mod m20261201_000007_add_credentials_version;
mod m20261202_000008_drop_account_tokens;
mod m20261202_000009_notify_session_changes;
mod m20261202_000010_two_factor;
mod m20261203_000011_passkeys;
mod m20261206_000012_bind_oauth_challenges;
mod m20261206_000013_events;
mod m20261206_000014_signing_keys;
mod m20261207_000015_admin;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261129_000001_create_users::Migration),
            Box::new(m20261129_000002_create_sessions::Migration),
            Box::new(m20261129_000003_create_accounts::Migration),
            Box::new(m20261129_000004_create_verification_tokens::Migration),
            Box::new(m20261129_000005_create_rate_limits::Migration),
            Box::new(m20261129_000006_create_oauth_flows::Migration),
            Box::new(m20261201_000007_add_credentials_version::Migration),
            Box::new(m20261202_000008_drop_account_tokens::Migration),
            Box::new(m20261202_000009_notify_session_changes::Migration),
            Box::new(m20261202_000010_two_factor::Migration),
            Box::new(m20261203_000011_passkeys::Migration),
            Box::new(m20261206_000012_bind_oauth_challenges::Migration),
            Box::new(m20261206_000013_events::Migration),
            Box::new(m20261206_000014_signing_keys::Migration),
            Box::new(m20261207_000015_admin::Migration),
        ]
    }
}
