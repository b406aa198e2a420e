//! GraphQL over HTTP: methods, status codes, content types, request errors.

use serde_json::json;

use crate::{
    both_backends,
    common::{LOGOUT, ME, TestApp},
    sqlite_only,
};

both_backends!(health_and_readiness,);

// The HTTP and GraphQL layer: one backend is enough.
sqlite_only!(
    get_runs_queries_but_never_mutations,
    browsers_get_graphiql,
    malformed_requests_are_bad_requests,
    graphql_errors_carry_codes,
    response_media_type_follows_accept,
    oversized_bodies_get_413,
    batches_are_refused_by_default,
);

async fn get_runs_queries_but_never_mutations(app: TestApp) {
    let (token, _) = app.register("get@example.com", "tq8!vRz#2mLp").await;
    let reply = app.get("/graphql?query=%7Bme%7Bemail%7D%7D").bearer(&token).send().await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body["data"]["me"]["email"], "get@example.com");
    // Cookie GET queries need no CSRF proof: they cannot change anything.
    let cookie = app.get("/graphql?query=%7Bme%7Bemail%7D%7D").cookie(&token).send().await;
    assert_eq!(cookie.body["data"]["me"]["email"], "get@example.com");

    let mutation = app.get("/graphql?query=mutation%7Blogout%7D").bearer(&token).send().await;
    assert_eq!(mutation.status, 405);
    assert_eq!(mutation.headers["allow"], "POST");
    assert_eq!(mutation.code(), Some("BAD_REQUEST"));
    assert_eq!(app.me(&token).await.body["data"]["me"]["email"], "get@example.com", "logout never ran");
}

async fn browsers_get_graphiql(app: TestApp) {
    let page = app.get("/graphql").header("accept", "text/html,application/xhtml+xml").send().await;
    assert_eq!(page.status, 200);
    assert!(page.content_type().starts_with("text/html"));
    assert!(page.text.contains("graphiql"), "GraphiQL page");

    let production = TestApp::sqlite_with(|c| c.env = domain::config::Environment::Production).await;
    let hidden = production.get("/graphql").header("accept", "text/html").send().await;
    assert_eq!(hidden.status, 404, "no GraphiQL in production unless enabled");
    let introspection = production.gql("{ __schema { queryType { name } } }", json!({})).await;
    assert!(
        introspection.body["data"]["__schema"].is_null(),
        "introspection off in production: {}",
        introspection.body
    );
}

async fn malformed_requests_are_bad_requests(app: TestApp) {
    let cases = [
        ("{not json", "bad JSON"),
        (r#"{"variables": {}}"#, "no query"),
        (r#"{"query": ""}"#, "empty query"),
        (r#"{"query": 42}"#, "query not a string"),
        (r#""{ me { id } }""#, "not an object"),
        (r#"{"query": "query A { me { id } }", "operationName": "B"}"#, "unknown operationName"),
        (r#"{"query": "query A { me { id } } query B { me { id } }"}"#, "ambiguous operation"),
    ];
    for (body, why) in cases {
        let reply = app.post().header("content-type", "application/json").raw(body).send().await;
        assert_eq!(reply.status, 400, "{why}: {}", reply.text);
        assert_eq!(reply.code(), Some("BAD_REQUEST"), "{why}");
        assert!(reply.content_type().starts_with("application/json"), "{why}");
    }
    let get = app.get("/graphql").send().await;
    assert_eq!(get.status, 400, "GET without a query");
}

async fn graphql_errors_carry_codes(app: TestApp) {
    let parse = app.gql("{ me { id ", json!({})).await;
    assert_eq!(parse.status, 200);
    assert_eq!(parse.code(), Some("GRAPHQL_PARSE_FAILED"));
    assert!(parse.body.get("data").is_none(), "request errors carry no data: {}", parse.body);

    let invalid = app.gql("{ me { password } }", json!({})).await;
    assert_eq!(invalid.code(), Some("GRAPHQL_VALIDATION_FAILED"));

    let wrong_type = app
        .gql(
            "mutation Login($input: LoginInput!) { login(input: $input) { token } }",
            json!({ "input": { "email": "a@example.com", "password": 12345678 } }),
        )
        .await;
    assert_eq!(wrong_type.code(), Some("BAD_USER_INPUT"), "{}", wrong_type.body);
    assert_eq!(wrong_type.field(), Some("password"));

    let missing =
        app.gql("mutation Login($input: LoginInput!) { login(input: $input) { token } }", json!({})).await;
    assert_eq!(missing.code(), Some("BAD_USER_INPUT"), "{}", missing.body);
    assert_eq!(missing.field(), Some("input"));
}

async fn response_media_type_follows_accept(app: TestApp) {
    let plain = app.gql(ME, json!({})).await;
    assert_eq!(plain.content_type(), "application/json; charset=utf-8");
    assert_eq!(plain.headers["cache-control"], "no-store");

    let modern = app
        .post()
        .graphql("{ me { id ", json!({}))
        .header("accept", "application/graphql-response+json, application/json")
        .send()
        .await;
    assert_eq!(modern.content_type(), "application/graphql-response+json; charset=utf-8");
    assert_eq!(modern.status, 400, "a document that does not parse is a 4xx in the new media type");
    assert_eq!(modern.code(), Some("GRAPHQL_PARSE_FAILED"));

    let executed = app
        .post()
        .graphql(LOGOUT, json!({}))
        .header("accept", "application/graphql-response+json")
        .send()
        .await;
    assert_eq!(executed.status, 200, "field errors still answer 200");
    assert_eq!(executed.code(), Some("UNAUTHENTICATED"));
}

async fn oversized_bodies_get_413(app: TestApp) {
    let huge = format!(r#"{{"query": "{{ me {{ id }} }}", "pad": "{}"}}"#, "x".repeat(10 * 1024 * 1024));
    let reply = app.post().header("content-type", "application/json").raw(huge).send().await;
    assert_eq!(reply.status, 413);
    assert_eq!(app.gql(ME, json!({})).await.code(), Some("UNAUTHENTICATED"), "still serving");
}

async fn batches_are_refused_by_default(app: TestApp) {
    let body = json!([{ "query": ME }, { "query": ME }]);
    let reply = app.post().json(&body).send().await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.code(), Some("BAD_REQUEST"));

    let enabled = TestApp::sqlite_with(|c| c.max_batch = 2).await;
    let ok = enabled.post().json(&body).send().await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.body[1]["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");
    let too_many =
        enabled.post().json(&json!([{ "query": ME }, { "query": ME }, { "query": ME }])).send().await;
    assert_eq!(too_many.status, 400);

    // Each operation's cookies reach the answer (the later one wins in a
    // browser), not only the last operation's.
    let register = |email: &str| {
        json!({ "query": crate::common::REGISTER,
                "variables": { "input": { "email": email, "password": "batched sign-ups" } } })
    };
    let two =
        enabled.post().json(&json!([register("b1@example.com"), register("b2@example.com")])).send().await;
    let tokens: Vec<&str> =
        (0..2).map(|i| two.body[i]["data"]["register"]["token"].as_str().unwrap()).collect();
    let cookies: Vec<&str> = two.headers.get_all("set-cookie").iter().map(|v| v.to_str().unwrap()).collect();
    for token in tokens {
        assert!(cookies.iter().any(|c| c.starts_with(&format!("session_token={token};"))), "{cookies:?}");
    }
}

async fn health_and_readiness(app: TestApp) {
    assert_eq!(app.get("/healthz").send().await.status, 200);
    assert_eq!(app.get("/readyz").send().await.status, 200);
    app.db().clone().close().await.unwrap();
    assert_eq!(app.get("/readyz").send().await.status, 503, "database gone");
    assert_eq!(app.get("/healthz").send().await.status, 200, "process still alive");
}

#[tokio::test]
async fn graphiql_is_served_from_the_binary() {
    let app = TestApp::sqlite().await;
    let page = app.get("/graphql").header("accept", "text/html").send().await;
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self';"), "scripts from this server only: {csp}");
    assert!(!csp.contains("unsafe-eval") && !csp.contains("https:") && !csp.contains("http:"), "{csp}");
    assert!(!page.text.contains("<script>") && !page.text.contains("<style>"), "{}", page.text);
    let sources: Vec<&str> = page
        .text
        .split("src=\"")
        .chain(page.text.split("href=\""))
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .collect();
    for source in [
        "/graphiql/assets/graphiql.min.js",
        "/graphiql/assets/react.production.min.js",
        "/graphiql/assets/init.js",
    ] {
        assert!(page.text.contains(source), "{source} in {}", page.text);
    }
    for source in sources.iter().filter(|s| s.starts_with('/')) {
        let asset = app.get(source).send().await;
        assert_eq!(asset.status, 200, "{source}");
        assert!(asset.text.len() > 40, "{source} has content");
    }
    let script = app.get("/graphiql/assets/init.js").send().await;
    assert!(script.content_type().starts_with("text/javascript"));
    assert!(script.text.contains("credentials: 'include'"), "cookies are sent from the playground");
    let graphiql = app.get("/graphiql/assets/graphiql.min.js").send().await;
    assert!(graphiql.text.contains("createFetcher"), "the real GraphiQL bundle");

    let production = TestApp::sqlite_with(|c| c.env = domain::config::Environment::Production).await;
    assert_eq!(production.get("/graphiql/assets/init.js").send().await.status, 404, "off with the page");
}

#[tokio::test]
async fn graphiql_assets_can_be_served_from_a_directory() {
    let assets = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(assets.path().join("react/umd")).unwrap();
    std::fs::write(assets.path().join("react/umd/react.production.min.js"), "window.React = {};").unwrap();
    std::fs::write(assets.path().join("secret.txt"), "not for the web").unwrap();
    let dir = assets.path().to_owned();
    let app = TestApp::sqlite_with(move |c| c.graphiql_assets = Some(dir)).await;

    let script = app.get("/graphiql/assets/react.production.min.js").send().await;
    assert_eq!(script.status, 200);
    assert_eq!(script.text, "window.React = {};");
    assert!(script.content_type().starts_with("text/javascript"));
    let own = app.get("/graphiql/assets/init.js").send().await;
    assert!(own.text.contains("createFetcher"), "authgate's own files still come from the binary");
    for other in [
        "/graphiql/assets/secret.txt",
        "/graphiql/assets/../Cargo.toml",
        "/graphiql/assets/react/umd/react.production.min.js",
        "/graphiql/assets/graphiql.min.js",
    ] {
        assert_eq!(app.get(other).send().await.status, 404, "{other}");
    }
}

#[tokio::test]
async fn get_honours_operation_name_and_variables() {
    let app = TestApp::sqlite().await;
    let two = "query%20A%7B__typename%7D%20query%20B%7Bme%7Bid%7D%7D";
    let a = app.get(&format!("/graphql?query={two}&operationName=A")).send().await;
    assert_eq!(a.body["data"]["__typename"], "QueryRoot", "{}", a.text);
    let unknown = app.get("/graphql?query=query%20A%7B__typename%7D&operationName=Nope").send().await;
    assert_eq!((unknown.status.as_u16(), unknown.code()), (400, Some("BAD_REQUEST")));
    let vars = app.get("/graphql?query=%7B__typename%7D&variables=%5B1%5D").send().await;
    assert_eq!(vars.status, 400, "variables must be an object");
}

#[tokio::test]
async fn wrong_shaped_inputs_are_user_errors_that_echo_nothing() {
    let app = TestApp::sqlite().await;
    let secret = "Sup3rSecretLeak#99";
    let cases = [
        (
            "mutation($i: LoginInput!) { login(input: $i) { token } }",
            json!({ "i": [{ "email": "a@example.com", "password": secret }] }),
        ),
        (
            "mutation { login(input: [{email: \"a@example.com\", password: \"Sup3rSecretLeak#99\"}]) { token } }",
            json!({}),
        ),
        ("mutation($i: LoginInput!) { login(input: $i) { token } }", json!({ "i": "Sup3rSecretLeak#99" })),
    ];
    for (query, variables) in cases {
        let reply = app.gql(query, variables).await;
        let code = reply.code();
        assert!(matches!(code, Some("BAD_USER_INPUT" | "GRAPHQL_VALIDATION_FAILED")), "{}", reply.body);
        assert!(!reply.text.contains(secret), "the secret was echoed: {}", reply.text);
    }
    let missing = app
        .gql(
            "mutation($i: RegisterInput!) { register(input: $i) { token } }",
            json!({ "i": { "email": "a@example.com" } }),
        )
        .await;
    assert_eq!(
        (missing.code(), missing.field()),
        (Some("BAD_USER_INPUT"), Some("password")),
        "{}",
        missing.body
    );
    let parse = app
        .gql(
            "mutation { login(input: {email: \"a@b.c\", password: \"Sup3rSecretLeak#99\"}) { token ",
            json!({}),
        )
        .await;
    assert_eq!(parse.code(), Some("GRAPHQL_PARSE_FAILED"));
    assert!(!parse.text.contains(secret), "the parse error echoed the source: {}", parse.text);
}

/// Documents are kept parsed and, without variables, validated, by their
/// text: what was refused once is refused again, and a kept validation is
/// never reused for another operation of the document or for variables.
#[tokio::test]
async fn kept_documents_never_let_an_invalid_request_through() {
    let app = TestApp::sqlite().await;
    let (token, _) = app.register("kept@example.com", "tq8!vRz#2mLp").await;
    let unknown = "query { me { id nope } }";
    for attempt in 0..2 {
        let reply = app.authed(&token, unknown, json!({})).await;
        assert_eq!(reply.code(), Some("GRAPHQL_VALIDATION_FAILED"), "attempt {attempt}: {}", reply.body);
    }
    // Garbage is never kept: only documents that validated take memory.
    let before = app.state.documents.len();
    for n in 0..50 {
        app.authed(&token, &format!("query {{ unknown_{n} }}"), json!({})).await;
    }
    assert_eq!(app.state.documents.len(), before, "invalid documents are not kept");
    app.me(&token).await;
    assert_eq!(app.state.documents.len(), before + 1, "a valid one is");

    // One document, two operations: each answers as itself, every time.
    let document = "query Mine { me { email } } query Kind { __typename }";
    let post = |operation: &'static str| {
        app.post().bearer(&token).json(&json!({ "query": document, "operationName": operation }))
    };
    for _ in 0..2 {
        assert_eq!(post("Mine").send().await.body["data"], json!({ "me": { "email": "kept@example.com" } }));
        assert_eq!(post("Kind").send().await.body["data"], json!({ "__typename": "QueryRoot" }));
    }

    // Valid without variables (kept); the same text with a variable of the wrong type is not.
    let typed = "query Typed($hide: Boolean = false) { me @skip(if: $hide) { id } }";
    assert!(app.authed(&token, typed, json!({})).await.body["data"]["me"].is_object());
    let wrong = app.authed(&token, typed, json!({ "hide": "not a boolean" })).await;
    assert!(wrong.body["data"].is_null(), "{}", wrong.body);
    assert_eq!(wrong.code(), Some("BAD_USER_INPUT"), "{}", wrong.body);
}
