//! Requests racing on a multi-threaded runtime: the database, not the order
//! in which futures happen to be polled, must decide who wins.

use std::sync::Arc;

use entity::{accounts, users};
use serde_json::json;
use tokio::sync::Barrier;

use crate::common::{Backend, LOGIN, REGISTER, Reply, TestApp};

macro_rules! threaded {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                use crate::common::Backend;

                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn sqlite() {
                    super::$name(Backend::Sqlite).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn postgres() {
                    super::$name(Backend::Postgres).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn pgbouncer() {
                    super::$name(Backend::PgBouncer).await;
                }
            }
        )*
    };
}

threaded!(one_address_registered_twice_at_once, wrong_logins_at_once_stop_at_the_limit);

const PW: &str = "a fine password";

/// Sends `query` with each of `variables` at once, from tasks released together.
async fn at_once(app: &Arc<TestApp>, query: &'static str, variables: Vec<serde_json::Value>) -> Vec<Reply> {
    let barrier = Arc::new(Barrier::new(variables.len()));
    let tasks: Vec<_> = variables
        .into_iter()
        .map(|vars| {
            let (app, barrier) = (app.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                app.gql(query, vars).await
            })
        })
        .collect();
    let mut replies = Vec::new();
    for task in tasks {
        replies.push(task.await.expect("request task"));
    }
    replies
}

async fn one_address_registered_twice_at_once(backend: Backend) {
    let Some(app) = TestApp::on_with(backend, |c| c.rates = domain::config::Rates::off()).await else {
        return;
    };
    let app = Arc::new(app);
    for round in 0..8 {
        let input = json!({ "input": { "email": format!("race{round}@example.com"), "password": PW } });
        let replies = at_once(&app, REGISTER, vec![input.clone(), input]).await;
        let won = replies.iter().filter(|r| r.body["data"]["register"]["token"].is_string()).count();
        let codes: Vec<_> = replies.iter().filter_map(Reply::code).collect();
        assert_eq!(
            (won, codes),
            (1, vec!["EMAIL_TAKEN"]),
            "round {round}: {:?}",
            replies.iter().map(|r| &r.body).collect::<Vec<_>>()
        );
    }
    assert_eq!((app.count(users::Entity).await, app.count(accounts::Entity).await), (8, 8));
}

/// Thirty wrong passwords for one account at once from one client: the
/// per-account-and-client budget (10 in 15 minutes) admits exactly ten, as
/// the counter is claimed by one atomic upsert per attempt.
async fn wrong_logins_at_once_stop_at_the_limit(backend: Backend) {
    let Some(app) = TestApp::on_with(backend, |_| {}).await else { return };
    let app = Arc::new(app);
    app.register("raced@example.com", PW).await;
    let hashes = app.state.auth.hasher().clone();
    let before = hashes.verifications();
    let wrong = json!({ "input": { "email": "raced@example.com", "password": "not the password" } });
    let replies = at_once(&app, LOGIN, vec![wrong; 30]).await;
    let count = |code: &str| replies.iter().filter(|r| r.code() == Some(code)).count();
    assert_eq!(
        (count("INVALID_CREDENTIALS"), count("RATE_LIMITED")),
        (10, 20),
        "{:?}",
        replies.iter().map(|r| &r.body).collect::<Vec<_>>()
    );
    assert_eq!(hashes.verifications() - before, 10, "a hash checked per admitted attempt only");
}
