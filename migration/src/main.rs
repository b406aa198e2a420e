use sea_orm_migration::prelude::*;

/// `cargo run -p migration -- up | down | status | fresh` (reads `DATABASE_URL`).
#[tokio::main]
async fn main() {
    cli::run_cli(migration::Migrator).await;
}
