//! Signed access tokens: minted for an allowed audience, verified by an
//! independent library (PyPI `pyjwt`, in tests/tokens/verify.py) with the
//! published keys; keys rotated without a failed verification, revoked at
//! once, made once by instances together; the revocation feed behind a
//! service key, resumable from its cursor.

use std::process::Command;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use domain::access::{Alg, keys};
use entity::signing_keys;
use sea_orm::EntityTrait;
use serde_json::{Value, json};

use crate::{
    both_backends,
    common::{LOGOUT, SERVICE_KEY, TestApp, str_of},
};

const PW: &str = "correct horse battery";
const AUD: &str = "https://api.example.com";
const TOKEN: &str =
    "mutation AccessToken($audience: String!) { accessToken(audience: $audience) { token expiresAt } }";

both_backends!(
    a_token_verifies_with_the_published_keys_elsewhere,
    only_listed_audiences_and_signed_in_callers_get_tokens,
    a_token_ends_with_its_session,
    the_key_set_is_cacheable_and_discoverable,
    a_rotated_key_is_published_before_it_signs_and_kept_until_its_tokens_expire,
    a_revoked_key_is_out_at_once_and_another_signs,
    instances_making_or_rotating_keys_together_make_one,
    the_revocation_feed_needs_a_service_key_and_resumes_from_its_cursor,
    a_server_key_rotation_reseals_the_signing_keys,
    the_revocation_feed_streams_each_end_and_resumes_after_a_drop,
    an_instance_reads_the_keys_once_per_reload_interval,
    the_feed_reads_past_pages_of_other_events,
    an_rs256_audience_gets_rsa_signed_tokens_from_keys_of_their_own,
);

/// The claims of a token minted for the session `session`.
pub(crate) async fn claims_of(app: &TestApp, session: &str) -> Value {
    part(&mint(app, session).await, 1)
}

pub(crate) async fn mint(app: &TestApp, session: &str) -> String {
    let reply = app.authed(session, TOKEN, json!({ "audience": AUD })).await;
    str_of(&reply.body["data"]["accessToken"]["token"])
}

pub(crate) fn part(jwt: &str, n: usize) -> Value {
    let bytes = URL_SAFE_NO_PAD.decode(jwt.split('.').nth(n).expect("three parts")).expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON")
}

async fn jwks(app: &TestApp) -> Value {
    let reply = app.get("/.well-known/jwks.json").send().await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.body
}

fn kids(set: &Value) -> Vec<String> {
    set["keys"].as_array().unwrap().iter().map(|k| str_of(&k["kid"])).collect()
}

/// PyJWT's verdict on `token` with `set`: the claims, or why it refused.
/// `None` outside CI when python3 with pyjwt is missing (in CI a failure).
fn pyjwt(set: &Value, token: &str, issuer: &str, audience: &str, skew: i64) -> Option<Result<Value, String>> {
    if !crate::common::python_has("jwt, cryptography", "pyjwt[crypto]") {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    std::fs::write(&path, set.to_string()).unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("python3")
        .arg(root.join("tests/tokens/verify.py"))
        .args([path.to_str().unwrap(), token, issuer, audience, &skew.to_string()])
        .output()
        .expect("python3 runs");
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    Some(if out.status.success() { Ok(serde_json::from_str(&text).unwrap()) } else { Err(text) })
}

/// The token's header and claims are the contract's; PyJWT verifies it
/// with the key set the server publishes, and refuses it for another
/// audience or issuer, or with one byte of its claims changed.
async fn a_token_verifies_with_the_published_keys_elsewhere(app: TestApp) {
    let (session, user_id) = app.register("jwt@example.com", PW).await;
    let sessions = app.authed(&session, "{ me { sessions { id current } } }", json!({})).await;
    let sid = str_of(&sessions.body["data"]["me"]["sessions"][0]["id"]);
    let reply = app.authed(&session, TOKEN, json!({ "audience": AUD })).await;
    let token = str_of(&reply.body["data"]["accessToken"]["token"]);
    let header = part(&token, 0);
    assert_eq!((str_of(&header["alg"]), str_of(&header["typ"])), ("ES256".into(), "at+jwt".into()));
    let set = jwks(&app).await;
    assert_eq!(kids(&set), [str_of(&header["kid"])], "signed by the published key");
    let claims = part(&token, 1);
    let issuer = app.state.auth.config.public_url.trim_end_matches('/').to_owned();
    assert_eq!(claims["iss"], issuer.as_str());
    assert_eq!((claims["sub"].as_str(), claims["aud"].as_str()), (Some(user_id.as_str()), Some(AUD)));
    assert_eq!(claims["sid"], sid.as_str());
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 300, "5 minutes");
    assert_eq!((claims["acr"].as_str(), &claims["amr"]), (Some("1"), &json!(["pwd"])));
    assert_eq!(claims["roles"], json!([]), "no role yet");
    assert!(uuid::Uuid::parse_str(claims["jti"].as_str().unwrap()).is_ok());
    let expires = chrono::DateTime::parse_from_rfc3339(
        reply.body["data"]["accessToken"]["expiresAt"].as_str().unwrap(),
    );
    assert_eq!(expires.unwrap().timestamp(), claims["exp"].as_i64().unwrap());
    let mut names: Vec<&String> = claims.as_object().unwrap().keys().collect();
    names.sort();
    assert_eq!(
        names,
        ["acr", "amr", "aud", "auth_time", "exp", "iat", "iss", "jti", "roles", "sid", "sub"],
        "nothing personal"
    );

    // Verified elsewhere, on the wall clock: the test server's runs ahead
    // of it (by at most 67 minutes), allowed for as leeway.
    let skew = (app.clock_now() - chrono::Utc::now()).num_seconds().abs() + 5;
    let Some(verdict) = pyjwt(&set, &token, &issuer, AUD, skew) else { return };
    assert_eq!(verdict.expect("PyJWT verifies it")["sub"], user_id.as_str());
    let refused = pyjwt(&set, &token, &issuer, "https://other.example.com", skew).unwrap();
    assert!(refused.unwrap_err().contains("refused"), "another audience");
    assert!(pyjwt(&set, &token, "https://evil.example.com", AUD, skew).unwrap().is_err(), "another issuer");
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut forged = claims.clone();
    forged["sub"] = json!(uuid::Uuid::new_v4().to_string());
    parts[1] = URL_SAFE_NO_PAD.encode(forged.to_string());
    assert!(pyjwt(&set, &parts.join("."), &issuer, AUD, skew).unwrap().is_err(), "a changed claim");
}

async fn only_listed_audiences_and_signed_in_callers_get_tokens(app: TestApp) {
    let (session, _) = app.register("aud@example.com", PW).await;
    let other = app.authed(&session, TOKEN, json!({ "audience": "https://evil.example.com" })).await;
    assert_eq!((other.code(), other.field()), (Some("BAD_USER_INPUT"), Some("audience")), "{}", other.body);
    let anonymous = app.gql(TOKEN, json!({ "audience": AUD })).await;
    assert_eq!(anonymous.code(), Some("UNAUTHENTICATED"));
    app.authed(&session, LOGOUT, json!({})).await;
    let ended = app.authed(&session, TOKEN, json!({ "audience": AUD })).await;
    assert_eq!(ended.code(), Some("UNAUTHENTICATED"), "an ended session mints nothing");
}

/// A token never outlives its session: the session's own end needs no
/// entry in the revocation feed.
async fn a_token_ends_with_its_session(app: TestApp) {
    let app = app.sibling(|c| c.session_max_age = std::time::Duration::from_secs(120)).await;
    let (session, _) = app.register("short@example.com", PW).await;
    let claims = part(&mint(&app, &session).await, 1);
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 120);
}

/// The key set is cacheable (`max-age`, an `ETag` that answers `304`), and
/// the discovery document names the issuer and where the keys are.
async fn the_key_set_is_cacheable_and_discoverable(app: TestApp) {
    let (session, _) = app.register("cache@example.com", PW).await;
    mint(&app, &session).await;
    let first = app.get("/.well-known/jwks.json").send().await;
    assert_eq!(first.headers["cache-control"], "public, max-age=300");
    assert_eq!(first.content_type(), "application/jwk-set+json");
    let tag = first.headers["etag"].to_str().unwrap().to_owned();
    let again = app.get("/.well-known/jwks.json").header("if-none-match", &tag).send().await;
    assert_eq!(again.status, 304);
    assert!(again.text.is_empty());
    let key = &first.body["keys"][0];
    assert_eq!(
        (str_of(&key["kty"]), str_of(&key["crv"]), str_of(&key["use"])),
        ("EC".into(), "P-256".into(), "sig".into())
    );
    assert!(key.get("d").is_none(), "never the private part");
    keys::rotate(&app.state.auth, Alg::Es256).await.unwrap().expect("a new key");
    let changed = app.get("/.well-known/jwks.json").header("if-none-match", &tag).send().await;
    assert_eq!(changed.status, 200, "a new key, a new tag");
    let discovery = app.get("/.well-known/openid-configuration").send().await;
    let issuer = app.state.auth.config.public_url.trim_end_matches('/').to_owned();
    assert_eq!(discovery.body["issuer"], issuer.as_str());
    assert_eq!(discovery.body["jwks_uri"], format!("{issuer}/.well-known/jwks.json"));
}

/// A rotation publishes the new key first (every verifier's cache has it
/// before its first token), keeps signing with the old one meanwhile, and
/// keeps the old one published until its last token has expired.
async fn a_rotated_key_is_published_before_it_signs_and_kept_until_its_tokens_expire(app: TestApp) {
    let (session, _) = app.register("rotate@example.com", PW).await;
    let old = str_of(&part(&mint(&app, &session).await, 0)["kid"]);
    let new = keys::rotate(&app.state.auth, Alg::Es256).await.unwrap().expect("a new key");
    assert_eq!(kids(&jwks(&app).await), [new.clone(), old.clone()], "published at once");
    assert_eq!(str_of(&part(&mint(&app, &session).await, 0)["kid"]), old, "not signing yet");
    let lead = chrono::Duration::from_std(keys::PUBLISH_LEAD).unwrap();
    app.clock.advance(lead + chrono::Duration::seconds(1));
    assert_eq!(str_of(&part(&mint(&app, &session).await, 0)["kid"]), new, "signing after the lead");
    assert_eq!(kids(&jwks(&app).await), [new.clone(), old.clone()], "the old one's tokens still verify");
    // Its last token expires 5 minutes on; with a minute of leeway it goes
    // (the new key began 1 s ago: published until exactly 360 s after that).
    app.clock.advance(chrono::Duration::seconds(300 + 50));
    assert_eq!(kids(&jwks(&app).await), [new.clone(), old.clone()], "within the leeway");
    app.clock.advance(chrono::Duration::seconds(9));
    assert_eq!(kids(&jwks(&app).await), std::slice::from_ref(&new));
    // Revoking the signer makes a new key: the gone one never signs again.
    assert!(keys::revoke(&app.state.auth, &new).await.unwrap());
    let third = str_of(&part(&mint(&app, &session).await, 0)["kid"]);
    assert!(third != new && third != old, "a new key signs");
    let states: Vec<&str> =
        keys::list(&app.state.auth).await.unwrap().iter().map(|(_, s)| s.as_str()).collect();
    assert_eq!(states, ["signing", "revoked", "gone"]);
}

/// A revoked key leaves the key set at once here, within `RELOAD_EVERY`
/// on another instance, and a new key signs at once.
async fn a_revoked_key_is_out_at_once_and_another_signs(app: TestApp) {
    let app = app.shareable().await;
    let (session, _) = app.register("leak@example.com", PW).await;
    let leaked = str_of(&part(&mint(&app, &session).await, 0)["kid"]);
    let other = app.second_instance().await;
    let seen = app.get("/.well-known/jwks.json").send_to(&other).await;
    assert_eq!(kids(&seen.body), std::slice::from_ref(&leaked));
    assert!(keys::revoke(&app.state.auth, &leaked).await.unwrap());
    assert!(!keys::revoke(&app.state.auth, &leaked).await.unwrap(), "once");
    assert!(kids(&jwks(&app).await).is_empty(), "out at once");
    let fresh = str_of(&part(&mint(&app, &session).await, 0)["kid"]);
    assert_ne!(fresh, leaked);
    assert_eq!(app.count(signing_keys::Entity).await, 2, "a new key, not an older one brought back");
    assert_eq!(kids(&jwks(&app).await), std::slice::from_ref(&fresh));
    app.clock.advance(chrono::Duration::from_std(keys::RELOAD_EVERY).unwrap() + chrono::Duration::seconds(1));
    let seen = app.get("/.well-known/jwks.json").send_to(&other).await;
    assert_eq!(kids(&seen.body), [fresh], "the other instance read the keys again");
}

/// Instances starting together make one first key, and two rotations at
/// once add one key (the unique generation).
async fn instances_making_or_rotating_keys_together_make_one(app: TestApp) {
    let app = app.shareable().await;
    let other = app.second_state(|_| {}).await;
    let (a, b) = tokio::join!(keys::ensure(&app.state.auth), keys::ensure(&other.auth));
    a.unwrap();
    b.unwrap();
    assert_eq!(app.count(signing_keys::Entity).await, 1);
    let (a, b) =
        tokio::join!(keys::rotate(&app.state.auth, Alg::Es256), keys::rotate(&other.auth, Alg::Es256));
    let made = [a.unwrap(), b.unwrap()].into_iter().flatten().count();
    assert_eq!(made, 1, "one of the two rotations added the key");
    assert_eq!(app.count(signing_keys::Entity).await, 2);
    assert_eq!(keys::rotate(&app.state.auth, Alg::Es256).await.unwrap(), None, "one rotation at a time");
    let rows = signing_keys::Entity::find().all(app.db()).await.unwrap();
    assert!(!format!("{rows:?}").contains(&rows[0].private_key), "no key material in Debug");
}

/// The feed once it shows `count` entries after `after` (PostgreSQL shows
/// an event once every transaction older than its own has ended: another
/// test's transaction running on the same server may hold it back a moment).
async fn feed_of(app: &TestApp, after: Option<&str>, count: usize) -> (Vec<Value>, String) {
    let mut last = (Vec::new(), String::new());
    for _ in 0..100 {
        last = feed(app, after).await;
        if last.0.len() >= count {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    last
}

async fn feed(app: &TestApp, after: Option<&str>) -> (Vec<Value>, String) {
    let uri = match after {
        Some(cursor) => format!("/revocations?after={cursor}"),
        None => "/revocations".to_owned(),
    };
    let reply = app.get(&uri).bearer(SERVICE_KEY).send().await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.headers["cache-control"], "no-store");
    (reply.body["entries"].as_array().unwrap().clone(), str_of(&reply.body["next"]))
}

/// Only a service key reads the feed; each ended session is an entry, the
/// cursor resumes without a loss or a repeat, and entries leave once no
/// token of their session can be alive.
async fn the_revocation_feed_needs_a_service_key_and_resumes_from_its_cursor(app: TestApp) {
    let refused = app.get("/revocations").send().await;
    assert_eq!(
        (refused.status.as_u16(), refused.headers["www-authenticate"].to_str().unwrap()),
        (401, "Bearer")
    );
    let wrong = app.get("/revocations").bearer(&SERVICE_KEY.replace('a', "b")).send().await;
    assert_eq!(wrong.status, 401);
    let (first, first_id) = app.register("feed1@example.com", PW).await;
    let (second, second_id) = app.register("feed2@example.com", PW).await;
    let (third, third_id) = app.register("feed3@example.com", PW).await;
    let sid = |token: &str| {
        let token = token.to_owned();
        let app = &app;
        async move {
            let reply = app.authed(&token, "{ me { sessions { id } } }", json!({})).await;
            str_of(&reply.body["data"]["me"]["sessions"][0]["id"])
        }
    };
    let (first_sid, second_sid) = (sid(&first).await, sid(&second).await);
    app.authed(&first, LOGOUT, json!({})).await;
    let (entries, next) = feed_of(&app, None, 1).await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!((str_of(&entries[0]["sid"]), str_of(&entries[0]["sub"])), (first_sid, first_id));
    let revoked = chrono::DateTime::parse_from_rfc3339(entries[0]["revokedAt"].as_str().unwrap()).unwrap();
    let expires = chrono::DateTime::parse_from_rfc3339(entries[0]["expiresAt"].as_str().unwrap()).unwrap();
    assert_eq!((expires - revoked).num_seconds(), 300 + 60);
    assert!(feed(&app, Some(&next)).await.0.is_empty(), "nothing new after the cursor");
    app.authed(&second, LOGOUT, json!({})).await;
    let (entries, _) = feed_of(&app, Some(&next), 1).await;
    assert_eq!(entries.len(), 1, "only what came after: {entries:?}");
    assert_eq!((str_of(&entries[0]["sid"]), str_of(&entries[0]["sub"])), (second_sid, second_id.clone()));
    // A page of one, then the rest after its cursor.
    let one = app.get("/revocations?limit=1").bearer(SERVICE_KEY).send().await;
    assert_eq!(one.body["entries"].as_array().map(Vec::len), Some(1), "{}", one.body);
    let rest = format!("/revocations?after={}", str_of(&one.body["next"]));
    let rest = app.get(&rest).bearer(SERVICE_KEY).send().await;
    assert_eq!(rest.body["entries"][0]["sub"], second_id.as_str(), "{}", rest.body);
    let bad = app.get("/revocations?after=nonsense").bearer(SERVICE_KEY).send().await;
    assert_eq!(bad.status, 400);
    app.clock.advance(chrono::Duration::seconds(300 + 50));
    assert_eq!(feed(&app, None).await.0.len(), 2, "their tokens may still be alive");
    app.clock.advance(chrono::Duration::seconds(10));
    assert_eq!(feed(&app, None).await.0.len(), 2, "to the last second");
    app.clock.advance(chrono::Duration::seconds(1));
    assert!(feed(&app, None).await.0.is_empty(), "no token of theirs is alive now");
    assert!(feed(&app, Some(&next)).await.0.is_empty());
    // An end that is the first event within the horizon is in the feed.
    app.authed(&third, LOGOUT, json!({})).await;
    let (entries, _) = feed_of(&app, None, 1).await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0]["sub"], third_id.as_str());
}

/// Signing keys under a server-key rotation: reseal moves them; a server
/// whose keys open with no configured key refuses to start.
async fn a_server_key_rotation_reseals_the_signing_keys(app: TestApp) {
    let app = app.shareable().await;
    let old_key = app.state.auth.config.secret_key.clone();
    keys::ensure(&app.state.auth).await.unwrap();
    let new_key = "bmV3LXNlY3JldC1rZXktb2YtMzItYnl0ZXMtdGVzdHM=";
    let lost = app.second_state(|c| c.secret_key = Some(new_key.into())).await;
    let refusal = authgate::preflight(&lost.auth).await.expect_err("a key nothing opens").to_string();
    assert!(refusal.starts_with("1 access-token signing keys open with neither"), "{refusal}");
    let rotating = app
        .second_state(|c| {
            c.secret_key = Some(new_key.into());
            c.secret_key_previous = old_key.clone();
        })
        .await;
    assert_eq!(keys::reseal_all(&rotating.auth).await.unwrap(), (1, 0));
    assert_eq!(keys::reseal_all(&rotating.auth).await.unwrap(), (0, 0), "done once");
    authgate::preflight(&lost.auth).await.expect("the new key alone opens it now");
}

/// An open feed stream (Server-Sent Events over TCP).
struct FeedStream {
    response: reqwest::Response,
    buffer: String,
}

impl FeedStream {
    async fn open(addr: std::net::SocketAddr, last_seen: Option<&str>) -> Self {
        let mut request = reqwest::Client::new()
            .get(format!("http://{addr}/revocations"))
            .bearer_auth(SERVICE_KEY)
            .header("accept", "text/event-stream");
        if let Some(id) = last_seen {
            request = request.header("last-event-id", id);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
        Self { response, buffer: String::new() }
    }

    /// The next `revocation` event: its `id` and data (heartbeats skipped);
    /// `None` when nothing came within 5 s.
    async fn next(&mut self) -> Option<(String, Value)> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let field =
                    |name: &str| block.lines().find_map(|l| l.strip_prefix(name)).unwrap_or("").to_owned();
                if field("event: ") != "revocation" {
                    continue;
                }
                return Some((field("id: "), serde_json::from_str(&field("data: ")).unwrap()));
            }
            let chunk = tokio::time::timeout(std::time::Duration::from_secs(5), self.response.chunk())
                .await
                .ok()?
                .ok()??;
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

/// A service following the feed hears a sign-out as it happens; after a
/// dropped connection, `Last-Event-ID` resumes it with nothing lost.
async fn the_revocation_feed_streams_each_end_and_resumes_after_a_drop(app: TestApp) {
    let addr = crate::subscriptions::serve(&app).await;
    let refused = reqwest::Client::new()
        .get(format!("http://{addr}/revocations"))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401, "a stream needs the key too");
    let (first, first_id) = app.register("stream1@example.com", PW).await;
    let (second, second_id) = app.register("stream2@example.com", PW).await;
    let mut feed = FeedStream::open(addr, None).await;
    app.authed(&first, LOGOUT, json!({})).await;
    let (seen, entry) = feed.next().await.expect("the sign-out, as it happens");
    assert_eq!(entry["sub"], first_id.as_str());
    assert_eq!(entry["cursor"], seen.as_str());
    drop(feed);
    app.authed(&second, LOGOUT, json!({})).await;
    let mut resumed = FeedStream::open(addr, Some(&seen)).await;
    let (_, entry) = resumed.next().await.expect("what happened while it was away");
    assert_eq!(entry["sub"], second_id.as_str());
}

/// Minting reads no table: the keys are read again once `RELOAD_EVERY`
/// has passed, not on every token.
async fn an_instance_reads_the_keys_once_per_reload_interval(app: TestApp) {
    let (session, _) = app.register("reads@example.com", PW).await;
    mint(&app, &session).await;
    let key_reads =
        |app: &TestApp| app.take_statements().iter().filter(|s| s.contains("signing_keys")).count();
    key_reads(&app);
    mint(&app, &session).await;
    mint(&app, &session).await;
    assert_eq!(key_reads(&app), 0, "from memory");
    app.clock.advance(chrono::Duration::from_std(keys::RELOAD_EVERY).unwrap() - chrono::Duration::seconds(1));
    mint(&app, &session).await;
    assert_eq!(key_reads(&app), 0, "still fresh");
    app.clock.advance(chrono::Duration::seconds(1));
    mint(&app, &session).await;
    assert_eq!(key_reads(&app), 1, "read again after the interval");
}

/// The feed reads the record a batch (500 events) at a time: a sign-out
/// after more than a batch of other events is still found, with a cursor
/// and without one.
async fn the_feed_reads_past_pages_of_other_events(app: TestApp) {
    use sea_orm::ActiveValue::Set;
    let (session, user_id) = app.register("busy@example.com", PW).await;
    let (_, start) = feed(&app, None).await;
    let now = app.clock_now();
    let filler: Vec<entity::events::ActiveModel> = (0..1200)
        .map(|_| entity::events::ActiveModel {
            kind: Set("user.updated".into()),
            occurred_at: Set(now),
            last_at: Set(now),
            count: Set(1),
            subject_user_id: Set(Some(uuid::Uuid::parse_str(&user_id).unwrap())),
            data: Set("{}".into()),
            ..Default::default()
        })
        .collect();
    for chunk in filler.chunks(200) {
        entity::events::Entity::insert_many(chunk.to_vec()).exec_without_returning(app.db()).await.unwrap();
    }
    app.authed(&session, LOGOUT, json!({})).await;
    for after in [None, Some(start.as_str())] {
        let (entries, _) = feed_of(&app, after, 1).await;
        assert_eq!(entries.len(), 1, "after {after:?}: {entries:?}");
        assert_eq!(entries[0]["sub"], user_id.as_str());
    }
}

/// An audience listed in `AUTHGATE_JWT_RS256_AUDIENCES` (verifiers that
/// take only RSA) gets RS256 tokens from an RSA key of its own, published
/// beside the ES256 key; PyJWT and the verifier crate verify them, pinned
/// to RS256. The two algorithms rotate apart.
async fn an_rs256_audience_gets_rsa_signed_tokens_from_keys_of_their_own(app: TestApp) {
    const RSA_AUD: &str = "https://gateway.example.com";
    let app = app
        .sibling(|c| {
            c.jwt_audiences.push(RSA_AUD.into());
            c.jwt_rs256_audiences = vec![RSA_AUD.into()];
        })
        .await;
    let (session, user_id) = app.register("rsa@example.com", PW).await;
    let reply = app.authed(&session, TOKEN, json!({ "audience": RSA_AUD })).await;
    let rsa_token = str_of(&reply.body["data"]["accessToken"]["token"]);
    let header = part(&rsa_token, 0);
    assert_eq!((header["alg"].as_str(), header["typ"].as_str()), (Some("RS256"), Some("at+jwt")));
    let es_token = mint(&app, &session).await;
    assert_eq!(part(&es_token, 0)["alg"], "ES256", "the other audiences keep ES256");
    let set = jwks(&app).await;
    let rsa_key =
        set["keys"].as_array().unwrap().iter().find(|k| k["kid"] == header["kid"]).expect("published");
    assert_eq!((rsa_key["kty"].as_str(), rsa_key["alg"].as_str()), (Some("RSA"), Some("RS256")));
    assert!(rsa_key.get("d").is_none(), "never the private part");
    assert_eq!(kids(&set).len(), 2);
    let discovery = app.get("/.well-known/openid-configuration").send().await;
    assert_eq!(discovery.body["id_token_signing_alg_values_supported"], json!(["ES256", "RS256"]));

    let addr = crate::subscriptions::serve(&app).await;
    let issuer = app.state.auth.config.public_url.trim_end_matches('/').to_owned();
    let clock = app.clock.clone();
    let verifier = authgate_verify::Verifier::start(
        authgate_verify::Config::new(format!("http://{addr}"), RSA_AUD)
            .issuer(&issuer)
            .service_key(SERVICE_KEY)
            .clock(move || domain::clock::Clock::now(&clock).timestamp()),
    )
    .await
    .unwrap();
    assert_eq!(verifier.verify(&rsa_token).await.expect("verifies RS256").sub, user_id);
    // The RSA key's token relabelled ES256: the key is pinned to RS256.
    let mut parts: Vec<String> = rsa_token.split('.').map(str::to_owned).collect();
    let mut relabelled = header.clone();
    relabelled["alg"] = json!("ES256");
    parts[0] = URL_SAFE_NO_PAD.encode(relabelled.to_string());
    assert_eq!(
        verifier.verify(&parts.join(".")).await.unwrap_err(),
        authgate_verify::Refused::Algorithm("ES256".into())
    );

    // Each algorithm rotates on its own.
    let new_rsa = keys::rotate(&app.state.auth, Alg::Rs256).await.unwrap().expect("a new RSA key");
    assert_eq!(keys::rotate(&app.state.auth, Alg::Rs256).await.unwrap(), None, "one RSA rotation at a time");
    assert!(keys::rotate(&app.state.auth, Alg::Es256).await.unwrap().is_some(), "ES256 rotates apart");
    let listed = keys::list(&app.state.auth).await.unwrap();
    let algs: Vec<(&str, &str)> = listed.iter().map(|(k, s)| (k.alg.as_str(), s.as_str())).collect();
    assert_eq!(algs.iter().filter(|(alg, _)| *alg == "RS256").count(), 2);
    assert!(listed.iter().any(|(k, s)| k.kid == new_rsa && s.as_str() == "next"));
    let skew = (app.clock_now() - chrono::Utc::now()).num_seconds().abs() + 5;
    let Some(verdict) = pyjwt(&jwks(&app).await, &rsa_token, &issuer, RSA_AUD, skew) else { return };
    assert_eq!(verdict.expect("PyJWT verifies the RS256 token")["sub"], user_id.as_str());
}
