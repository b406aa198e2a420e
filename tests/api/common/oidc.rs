//! A mock OpenID provider on a loopback port: discovery, JWKS (a test RSA
//! key), authorize, token and userinfo. A test says who signs in next and
//! how the provider should misbehave; the provider checks what a real one
//! checks (client credentials, redirect URI, PKCE, single-use codes).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, OnceLock},
};

use axum::{
    Json, Router,
    extract::{Query, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use openidconnect::{
    Audience, EmptyAdditionalClaims, EndUserEmail, EndUserName, IssuerUrl, JsonWebKeyId, Nonce,
    PrivateSigningKey, StandardClaims, SubjectIdentifier,
    core::{
        CoreIdToken, CoreIdTokenClaims, CoreJsonWebKeySet, CoreJwsSigningAlgorithm, CoreRsaPrivateSigningKey,
    },
};
use rsa::pkcs1::EncodeRsaPrivateKey;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::str_of;

pub const CLIENT_ID: &str = "authgate-test";
pub const CLIENT_SECRET: &str = "mock-client-secret";

/// How the next ID token is spoiled.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Tamper {
    #[default]
    None,
    WrongNonce,
    Expired,
    /// Signed by another key that claims the published key's id.
    ForgedSignature,
    WrongAudience,
}

/// Who signs in at the provider next.
#[derive(Clone, Debug)]
pub struct Person {
    pub subject: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub name: Option<String>,
}

impl Person {
    pub fn verified(subject: &str, email: &str) -> Self {
        Self {
            subject: subject.into(),
            email: Some(email.into()),
            email_verified: true,
            name: Some("Mock User".into()),
        }
    }
}

struct Grant {
    person: Person,
    tamper: Tamper,
    nonce: Option<String>,
    challenge: String,
    redirect_uri: String,
}

struct Mock {
    issuer: String,
    next: Mutex<(Person, Tamper)>,
    codes: Mutex<HashMap<String, Grant>>,
    access: Mutex<HashMap<String, Person>>,
    /// Successful code exchanges.
    exchanges: Mutex<u32>,
    /// Every secret of the exchanges: codes, PKCE verifiers, access and ID tokens.
    secrets: Mutex<Vec<String>>,
    /// Signing with (and publishing) the second key, under another key id.
    rotated: std::sync::atomic::AtomicBool,
}

pub struct MockProvider {
    pub issuer: String,
    mock: Arc<Mock>,
}

/// Two RSA keys, made once per test run (key generation is slow).
fn keys() -> &'static (String, String) {
    static KEYS: OnceLock<(String, String)> = OnceLock::new();
    KEYS.get_or_init(|| {
        let pem = || {
            let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).expect("rsa key");
            key.to_pkcs1_pem(rsa::pkcs8::LineEnding::LF).expect("pem").to_string()
        };
        (pem(), pem())
    })
}

/// The published key (the first, or after a rotation the second under a
/// new id); a forged signature uses the other key under the published id.
fn signing_key(rotated: bool, forged: bool) -> CoreRsaPrivateSigningKey {
    let (first, second) = keys();
    let pem = if rotated != forged { second } else { first };
    let kid = if rotated { "test-key-2" } else { "test-key" };
    CoreRsaPrivateSigningKey::from_pem(pem, Some(JsonWebKeyId::new(kid.into()))).expect("key")
}

impl MockProvider {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let issuer = format!("http://{}", listener.local_addr().expect("addr"));
        let mock = Arc::new(Mock {
            issuer: issuer.clone(),
            next: Mutex::new((Person::verified("mock-user-1", "oauth@example.com"), Tamper::None)),
            codes: Mutex::default(),
            access: Mutex::default(),
            exchanges: Mutex::new(0),
            secrets: Mutex::default(),
            rotated: Default::default(),
        });
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .route("/userinfo", get(userinfo))
            .with_state(mock.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { issuer, mock }
    }

    /// The next sign-in at the provider is `person`, with `tamper` applied.
    pub fn next(&self, person: Person, tamper: Tamper) {
        *self.mock.next.lock().unwrap() = (person, tamper);
    }

    /// The provider starts signing with a new key (and publishes only that one).
    pub fn rotate_key(&self) {
        self.mock.rotated.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn exchanges(&self) -> u32 {
        *self.mock.exchanges.lock().unwrap()
    }

    /// The codes, PKCE verifiers, access tokens and ID tokens seen so far.
    pub fn secrets(&self) -> Vec<String> {
        self.mock.secrets.lock().unwrap().clone()
    }

    /// authgate's provider settings for this mock, as OpenID Connect.
    pub fn oidc_config(&self, name: &str) -> domain::config::ProviderConfig {
        domain::config::ProviderConfig {
            name: name.into(),
            client_id: CLIENT_ID.into(),
            client_secret: CLIENT_SECRET.into(),
            scopes: vec!["email".into(), "profile".into()],
            kind: domain::config::ProviderKind::Oidc { issuer: self.issuer.clone() },
        }
    }

    /// The same mock as a plain OAuth 2.0 provider with a userinfo endpoint.
    pub fn oauth2_config(&self, name: &str) -> domain::config::ProviderConfig {
        domain::config::ProviderConfig {
            name: name.into(),
            client_id: CLIENT_ID.into(),
            client_secret: CLIENT_SECRET.into(),
            scopes: vec!["email".into()],
            kind: domain::config::ProviderKind::OAuth2 {
                auth_url: format!("{}/authorize", self.issuer),
                token_url: format!("{}/token", self.issuer),
                userinfo_url: format!("{}/userinfo", self.issuer),
                style: domain::config::UserinfoStyle::Standard,
            },
        }
    }
}

async fn discovery(State(mock): State<Arc<Mock>>) -> Json<Value> {
    let i = &mock.issuer;
    Json(json!({
        "issuer": i,
        "authorization_endpoint": format!("{i}/authorize"),
        "token_endpoint": format!("{i}/token"),
        "userinfo_endpoint": format!("{i}/userinfo"),
        "jwks_uri": format!("{i}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "code_challenge_methods_supported": ["S256"],
    }))
}

async fn jwks(State(mock): State<Arc<Mock>>) -> Json<Value> {
    let rotated = mock.rotated.load(std::sync::atomic::Ordering::SeqCst);
    let set = CoreJsonWebKeySet::new(vec![signing_key(rotated, false).as_verification_key()]);
    Json(serde_json::to_value(set).expect("jwks"))
}

async fn authorize(State(mock): State<Arc<Mock>>, Query(q): Query<HashMap<String, String>>) -> Response {
    let ok = q.get("response_type").map(String::as_str) == Some("code")
        && q.get("client_id").map(String::as_str) == Some(CLIENT_ID)
        && q.get("code_challenge_method").map(String::as_str) == Some("S256")
        && q.contains_key("code_challenge")
        && q.contains_key("state");
    let Some(redirect_uri) = q.get("redirect_uri").filter(|_| ok) else {
        return (StatusCode::BAD_REQUEST, "bad authorization request").into_response();
    };
    let (person, tamper) = mock.next.lock().unwrap().clone();
    let code = format!("code-{}", uuid::Uuid::new_v4().simple());
    mock.secrets.lock().unwrap().push(code.clone());
    mock.codes.lock().unwrap().insert(
        code.clone(),
        Grant {
            person,
            tamper,
            nonce: q.get("nonce").cloned(),
            challenge: q["code_challenge"].clone(),
            redirect_uri: redirect_uri.clone(),
        },
    );
    let state = url::form_urlencoded::byte_serialize(q["state"].as_bytes()).collect::<String>();
    Redirect::to(&format!("{redirect_uri}?code={code}&state={state}")).into_response()
}

fn client_authenticated(headers: &HeaderMap, form: &HashMap<String, String>) -> bool {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok());
    let expected = format!("{CLIENT_ID}:{CLIENT_SECRET}");
    basic.as_deref() == Some(expected.as_str())
        || (form.get("client_id").map(String::as_str) == Some(CLIENT_ID)
            && form.get("client_secret").map(String::as_str) == Some(CLIENT_SECRET))
}

async fn token(State(mock): State<Arc<Mock>>, headers: HeaderMap, body: String) -> Response {
    let form: HashMap<String, String> = url::form_urlencoded::parse(body.as_bytes()).into_owned().collect();
    let refuse = |why: &str| {
        (StatusCode::BAD_REQUEST, Json(json!({ "error": "invalid_grant", "error_description": why })))
            .into_response()
    };
    if !client_authenticated(&headers, &form) {
        return (StatusCode::UNAUTHORIZED, Json(json!({ "error": "invalid_client" }))).into_response();
    }
    let Some(grant) = form.get("code").and_then(|c| mock.codes.lock().unwrap().remove(c)) else {
        return refuse("unknown or used code");
    };
    if form.get("redirect_uri") != Some(&grant.redirect_uri) {
        return refuse("redirect_uri differs");
    }
    let verifier = form.get("code_verifier").cloned().unwrap_or_default();
    if URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) != grant.challenge {
        return refuse("PKCE verification failed");
    }
    *mock.exchanges.lock().unwrap() += 1;
    let access_token = format!("at-{}", uuid::Uuid::new_v4().simple());
    mock.access.lock().unwrap().insert(access_token.clone(), grant.person.clone());
    let id_token = id_token(&mock.issuer, &grant, mock.rotated.load(std::sync::atomic::Ordering::SeqCst));
    mock.secrets.lock().unwrap().extend([verifier, access_token.clone(), str_of(&id_token)]);
    Json(json!({ "access_token": access_token, "token_type": "Bearer", "expires_in": 3600, "id_token": id_token }))
        .into_response()
}

fn id_token(issuer: &str, grant: &Grant, rotated: bool) -> Value {
    let now = chrono::Utc::now();
    let (issued, expires) = match grant.tamper {
        Tamper::Expired => (now - chrono::Duration::hours(2), now - chrono::Duration::hours(1)),
        _ => (now, now + chrono::Duration::minutes(10)),
    };
    let audience = if grant.tamper == Tamper::WrongAudience { "someone-else" } else { CLIENT_ID };
    let person = &grant.person;
    let mut standard = StandardClaims::new(SubjectIdentifier::new(person.subject.clone()))
        .set_email(person.email.clone().map(EndUserEmail::new))
        .set_email_verified(Some(person.email_verified));
    if let Some(name) = &person.name {
        standard = standard.set_name(Some(EndUserName::new(name.clone()).into()));
    }
    let nonce = match grant.tamper {
        Tamper::WrongNonce => Some("not-the-nonce".to_owned()),
        _ => grant.nonce.clone(),
    };
    let claims = CoreIdTokenClaims::new(
        IssuerUrl::new(issuer.to_owned()).expect("issuer"),
        vec![Audience::new(audience.into())],
        expires,
        issued,
        standard,
        EmptyAdditionalClaims {},
    )
    .set_nonce(nonce.map(Nonce::new));
    let key = signing_key(rotated, grant.tamper == Tamper::ForgedSignature);
    let token = CoreIdToken::new(claims, &key, CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256, None, None)
        .expect("sign id token");
    serde_json::to_value(token).expect("id token")
}

async fn userinfo(State(mock): State<Arc<Mock>>, headers: HeaderMap) -> Response {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let person = token.and_then(|t| mock.access.lock().unwrap().get(t).cloned());
    match person {
        Some(p) => Json(json!({
            "sub": p.subject, "email": p.email, "email_verified": p.email_verified, "name": p.name,
        }))
        .into_response(),
        None => StatusCode::UNAUTHORIZED.into_response(),
    }
}
