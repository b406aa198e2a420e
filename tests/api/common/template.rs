//! Migrated once, copied per test: every TestApp starts from a template
//! database that holds the current migrations, so a test pays for a copy
//! (a file copy on SQLite, `CREATE DATABASE … TEMPLATE` on PostgreSQL)
//! instead of twelve migrations. The app still runs `migrate` on start,
//! which finds nothing to do: that path stays under test.
//!
//! A template is named after a hash of `migration/src`, so an edited
//! migration makes a new one and a stale one is never used. Templates
//! outlive the run (that is their point) and cannot be changed: a
//! PostgreSQL one is `authgate_tpl_<hash>`, a template that allows no
//! connection; a SQLite one is a read-only file under cargo's
//! `CARGO_TARGET_TMPDIR`. `docs/development.md` says how to drop them.

use std::{
    hash::{DefaultHasher, Hash, Hasher},
    path::{Path, PathBuf},
};

use sea_orm::ConnectionTrait;
use sqlx::{Connection, Executor, PgConnection};
use tokio::sync::OnceCell;

/// A hash of every migration source, stable within one toolchain.
fn migrations_hash() -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("migration/src");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("migration/src")
        .map(|e| e.expect("migration file").path())
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .collect();
    files.sort();
    let mut hasher = DefaultHasher::new();
    // The lock file too: another sea-orm-migration may write other SQL.
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.lock"))
        .expect("Cargo.lock")
        .hash(&mut hasher);
    for file in files {
        file.file_name().hash(&mut hasher);
        std::fs::read(&file).expect("migration source").hash(&mut hasher);
    }
    format!("{:016x}", hasher.finish())
}

/// The path of a migrated SQLite file to copy (built once per process at
/// most; a finished one from an earlier run is reused).
pub async fn sqlite() -> &'static Path {
    static TEMPLATE: OnceCell<PathBuf> = OnceCell::const_new();
    TEMPLATE
        .get_or_init(|| async {
            let path =
                Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("authgate-tpl-{}.db", migrations_hash()));
            if !path.exists() {
                // Built beside it, then renamed into place: a concurrent run
                // sees either no template or a whole one.
                let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
                let built = dir.path().join("template.db");
                let db = migrated(&format!("sqlite://{}?mode=rwc", built.display())).await;
                // One self-contained file (no -wal beside it) to copy.
                let packed = dir.path().join("packed.db");
                let quoted = packed.display().to_string().replace('\'', "''");
                db.execute_unprepared(&format!("VACUUM INTO '{quoted}'")).await.expect("vacuum into");
                db.close().await.expect("close the template");
                // Read-only: nothing may change it for the runs after this one.
                let mut readonly = std::fs::metadata(&packed).expect("template").permissions();
                readonly.set_readonly(true);
                std::fs::set_permissions(&packed, readonly).expect("make the template read-only");
                std::fs::rename(&packed, &path).expect("publish the SQLite template");
            }
            path
        })
        .await
}

/// The name of a migrated PostgreSQL database to create test databases
/// from, on the server `admin_url` points at.
pub async fn postgres(admin_url: &str) -> &'static str {
    static TEMPLATE: OnceCell<String> = OnceCell::const_new();
    TEMPLATE
        .get_or_init(|| async {
            let name = format!("authgate_tpl_{}", migrations_hash());
            let mut admin =
                PgConnection::connect(admin_url).await.expect("TEST_DATABASE_URL must reach PostgreSQL");
            let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
                .bind(&name)
                .fetch_optional(&mut admin)
                .await
                .expect("look for the template");
            if exists.is_none() {
                // Migrated under a name of its own, then renamed: nobody
                // copies a half-migrated template.
                let building = format!("authgate_tplbuild_{}", uuid::Uuid::new_v4().simple());
                admin
                    .execute(format!(r#"CREATE DATABASE "{building}""#).as_str())
                    .await
                    .expect("create template");
                let db = migrated(&super::with_database(admin_url, &building)).await;
                db.close().await.expect("close the template");
                let renamed = admin
                    .execute(format!(r#"ALTER DATABASE "{building}" RENAME TO "{name}""#).as_str())
                    .await;
                match renamed {
                    Ok(_) => {
                        // Copied, never connected to: nothing can change it.
                        let frozen = format!(
                            r#"ALTER DATABASE "{name}" WITH IS_TEMPLATE true ALLOW_CONNECTIONS false"#
                        );
                        admin.execute(frozen.as_str()).await.expect("freeze the template");
                    }
                    // Another run published it first: ours is spare.
                    Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P04") => {
                        admin
                            .execute(format!(r#"DROP DATABASE IF EXISTS "{building}" WITH (FORCE)"#).as_str())
                            .await
                            .expect("drop the spare template");
                    }
                    Err(e) => panic!("cannot publish the template database {name}: {e}"),
                }
            }
            name
        })
        .await
}

async fn migrated(url: &str) -> sea_orm::DatabaseConnection {
    let db = domain::db::connect(&super::test_config(url)).await.expect("connect to the template");
    domain::db::migrate(&db).await.expect("migrate the template");
    db
}
