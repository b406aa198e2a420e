use sea_orm_migration::{prelude::*, sea_orm::DatabaseBackend};

/// PostgreSQL only: triggers that `NOTIFY authgate_sessions` with a user's
/// id whenever that user's row or one of their sessions is updated or
/// deleted, whoever does it (authgate, `authgate cleanup`, an operator's
/// SQL). Instances with the session cache listen on that channel; NOTIFY is
/// sent at commit, so a listener never hears of a change that did not land.
/// `WHEN (OLD.* IS DISTINCT FROM NEW.*)`: a write that changes nothing (a
/// sign-in's row lock) notifies nobody. SQLite has no such channel.
#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &str = r#"
CREATE OR REPLACE FUNCTION authgate_notify_user() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- TG_ARGV[0]: the column naming the user (`id` in users, `user_id` in sessions).
    PERFORM pg_notify('authgate_sessions',
        to_jsonb(CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END) ->> TG_ARGV[0]);
    RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS users_notify_update ON users;
CREATE TRIGGER users_notify_update AFTER UPDATE ON users
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION authgate_notify_user('id');
DROP TRIGGER IF EXISTS users_notify_delete ON users;
CREATE TRIGGER users_notify_delete AFTER DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION authgate_notify_user('id');
DROP TRIGGER IF EXISTS sessions_notify_update ON sessions;
CREATE TRIGGER sessions_notify_update AFTER UPDATE ON sessions
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION authgate_notify_user('user_id');
DROP TRIGGER IF EXISTS sessions_notify_delete ON sessions;
CREATE TRIGGER sessions_notify_delete AFTER DELETE ON sessions
    FOR EACH ROW EXECUTE FUNCTION authgate_notify_user('user_id');
"#;

const DOWN: &str = r#"
DROP TRIGGER IF EXISTS users_notify_update ON users;
DROP TRIGGER IF EXISTS users_notify_delete ON users;
DROP TRIGGER IF EXISTS sessions_notify_update ON sessions;
DROP TRIGGER IF EXISTS sessions_notify_delete ON sessions;
DROP FUNCTION IF EXISTS authgate_notify_user();
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run(manager, UP).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run(manager, DOWN).await
    }
}

async fn run(manager: &SchemaManager<'_>, sql: &str) -> Result<(), DbErr> {
    if manager.get_database_backend() == DatabaseBackend::Postgres {
        manager.get_connection().execute_unprepared(sql).await?;
    }
    Ok(())
}
