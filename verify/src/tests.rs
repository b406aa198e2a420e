//! The checks one by one, with a key made here: every refusal the crate
//! promises, and a token that passes. (The tests of the whole server
//! verify authgate's own tokens with it: tests/api/verifier.rs.)

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use ring::{
    rand::SystemRandom,
    signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair},
};
use serde_json::{Value, json};

use crate::{Config, Refused, keys::KeySet, token::Parsed};

const ISS: &str = "https://auth.example.com";
const AUD: &str = "https://api.example.com";
const NOW: i64 = 1_800_000_000;

struct Signer {
    pair: EcdsaKeyPair,
    kid: String,
}

impl Signer {
    fn new(kid: &str) -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
        Signer { pair, kid: kid.into() }
    }

    fn jwk(&self) -> Value {
        let point = self.pair.public_key().as_ref();
        json!({ "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": self.kid,
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..]) })
    }

    fn sign(&self, header: &Value, claims: &Value) -> String {
        let input = format!("{}.{}", b64(header), b64(claims));
        let signature = self.pair.sign(&SystemRandom::new(), input.as_bytes()).unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()))
    }

    fn token(&self, claims: &Value) -> String {
        self.sign(&json!({ "alg": "ES256", "typ": "at+jwt", "kid": self.kid }), claims)
    }
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

fn claims() -> Value {
    json!({ "iss": ISS, "sub": "u-1", "aud": AUD, "exp": NOW + 300, "iat": NOW, "jti": "j",
        "sid": "s-1", "auth_time": NOW, "acr": "1", "amr": ["pwd"] })
}

fn with(change: &[(&str, Value)]) -> Value {
    let mut claims = claims();
    for (name, value) in change {
        claims[*name] = value.clone();
    }
    claims
}

/// The verdict on `token` with `set` at `now`.
fn verdict(set: &Value, token: &str, now: i64) -> Result<crate::Claims, Refused> {
    let keys = KeySet::parse(set.to_string().as_bytes(), None, None).unwrap();
    let parsed = Parsed::new(token)?;
    let key = keys.get(&parsed.header.kid).ok_or(Refused::UnknownKey)?;
    parsed.check(&key, &Config::new(ISS, AUD), now)
}

fn set_of(signers: &[&Signer]) -> Value {
    json!({ "keys": signers.iter().map(|s| s.jwk()).collect::<Vec<_>>() })
}

#[test]
fn a_token_of_a_published_key_passes_with_its_claims() {
    let signer = Signer::new("k1");
    let claims = verdict(&set_of(&[&signer]), &signer.token(&claims()), NOW).unwrap();
    assert_eq!((claims.sub.as_str(), claims.sid.as_str()), ("u-1", "s-1"));
    assert_eq!(claims.amr, vec!["pwd"]);
    // Another key of the set, and a list of audiences naming ours.
    let other = Signer::new("k2");
    let token = other.token(&with(&[("aud", json!(["https://other.example", AUD]))]));
    assert!(verdict(&set_of(&[&signer, &other]), &token, NOW).is_ok());
}

#[test]
fn algorithms_other_than_the_keys_own_are_refused() {
    let signer = Signer::new("k1");
    let set = set_of(&[&signer]);
    let unsigned =
        format!("{}.{}.", b64(&json!({ "alg": "none", "typ": "at+jwt", "kid": "k1" })), b64(&claims()));
    assert_eq!(verdict(&set, &unsigned, NOW).unwrap_err(), Refused::Algorithm("none".into()));
    // HS256 with the public key as the secret (the classic confusion).
    let input =
        format!("{}.{}", b64(&json!({ "alg": "HS256", "typ": "at+jwt", "kid": "k1" })), b64(&claims()));
    let secret = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, signer.jwk().to_string().as_bytes());
    let mac = ring::hmac::sign(&secret, input.as_bytes());
    let confused = format!("{input}.{}", URL_SAFE_NO_PAD.encode(mac.as_ref()));
    assert_eq!(verdict(&set, &confused, NOW).unwrap_err(), Refused::Algorithm("HS256".into()));
    // RS256 named on an EC key: the key is pinned to ES256.
    let rs = signer.sign(&json!({ "alg": "RS256", "typ": "at+jwt", "kid": "k1" }), &claims());
    assert_eq!(verdict(&set, &rs, NOW).unwrap_err(), Refused::Algorithm("RS256".into()));
}

#[test]
fn a_changed_token_or_another_signer_is_refused() {
    let signer = Signer::new("k1");
    let set = set_of(&[&signer]);
    let token = signer.token(&claims());
    let parts: Vec<&str> = token.split('.').collect();
    let tampered = format!("{}.{}.{}", parts[0], b64(&with(&[("sub", json!("u-2"))])), parts[2]);
    assert_eq!(verdict(&set, &tampered, NOW).unwrap_err(), Refused::Signature);
    // Signed by a key that names a published kid.
    let impostor = Signer::new("k1");
    assert_eq!(verdict(&set, &impostor.token(&claims()), NOW).unwrap_err(), Refused::Signature);
    assert_eq!(verdict(&set, &Signer::new("k9").token(&claims()), NOW).unwrap_err(), Refused::UnknownKey);
}

#[test]
fn issuer_audience_and_times_are_checked_with_the_leeway() {
    let signer = Signer::new("k1");
    let set = set_of(&[&signer]);
    let refused = |claims: Value, now: i64| verdict(&set, &signer.token(&claims), now).err();
    assert_eq!(refused(with(&[("iss", json!("https://evil.example"))]), NOW), Some(Refused::Issuer));
    assert_eq!(refused(with(&[("aud", json!("https://other.example"))]), NOW), Some(Refused::Audience));
    assert_eq!(refused(with(&[("aud", json!(["https://other.example"]))]), NOW), Some(Refused::Audience));
    // exp + 60 s of leeway, to the second.
    assert_eq!(refused(claims(), NOW + 360), None);
    assert_eq!(refused(claims(), NOW + 361), Some(Refused::Expired));
    assert_eq!(refused(with(&[("nbf", json!(NOW + 60))]), NOW), None);
    assert_eq!(refused(with(&[("nbf", json!(NOW + 61))]), NOW), Some(Refused::NotYetValid));
    // Without a session there is nothing to revoke by.
    let mut no_sid = claims();
    no_sid.as_object_mut().unwrap().remove("sid");
    assert!(matches!(refused(no_sid, NOW), Some(Refused::Malformed(_))));
}

#[test]
fn the_header_must_be_an_access_tokens() {
    let signer = Signer::new("k1");
    let set = set_of(&[&signer]);
    let header = |h: Value| signer.sign(&h, &claims());
    let id_token = header(json!({ "alg": "ES256", "typ": "JWT", "kid": "k1" }));
    assert_eq!(verdict(&set, &id_token, NOW).unwrap_err(), Refused::Type);
    let untyped = header(json!({ "alg": "ES256", "kid": "k1" }));
    assert_eq!(verdict(&set, &untyped, NOW).unwrap_err(), Refused::Type);
    let long_form = header(json!({ "alg": "ES256", "typ": "application/AT+JWT", "kid": "k1" }));
    assert!(verdict(&set, &long_form, NOW).is_ok());
    let critical = header(json!({ "alg": "ES256", "typ": "at+jwt", "kid": "k1", "crit": ["exp"] }));
    assert!(matches!(verdict(&set, &critical, NOW), Err(Refused::Malformed(_))));
    for garbage in ["", "a.b", "a.b.c.d", "!!.!!.!!", &"a".repeat(9000)] {
        assert!(matches!(verdict(&set, garbage, NOW), Err(Refused::Malformed(_))), "{garbage:.20}");
    }
}

#[test]
fn keys_that_cannot_be_pinned_are_left_out_of_the_set() {
    let signer = Signer::new("k1");
    let mut jwk = signer.jwk();
    let kept = json!({ "keys": [jwk.clone()] });
    assert_eq!(KeySet::parse(kept.to_string().as_bytes(), None, None).unwrap().kids(), vec!["k1"]);
    for (field, value) in
        [("use", json!("enc")), ("crv", json!("P-384")), ("alg", json!("HS256")), ("kid", Value::Null)]
    {
        let mut changed = jwk.clone();
        changed[field] = value;
        let set = json!({ "keys": [changed] });
        assert!(KeySet::parse(set.to_string().as_bytes(), None, None).unwrap().kids().is_empty(), "{field}");
    }
    jwk["kty"] = json!("oct");
    jwk["k"] = json!("c2VjcmV0");
    let set = json!({ "keys": [jwk] });
    assert!(KeySet::parse(set.to_string().as_bytes(), None, None).unwrap().kids().is_empty());
}

#[test]
fn the_config_never_shows_the_service_key() {
    let config = Config::new(ISS, AUD).service_key("a-very-secret-service-key-0123456789");
    assert!(!format!("{config:?}").contains("a-very-secret"));
}

#[test]
fn a_token_up_to_8_kib_is_read_and_a_longer_one_is_not() {
    let signer = Signer::new("k1");
    let set = set_of(&[&signer]);
    let padded = |len: usize| {
        let mut claims = claims();
        claims["pad"] = json!("");
        let bare = signer.token(&claims).len();
        // base64 makes 4 characters of every 3 bytes of padding.
        claims["pad"] = json!("x".repeat((len - bare) / 4 * 3));
        signer.token(&claims)
    };
    let long = padded(4 * 1024);
    assert!(long.len() > 3 * 1024 && verdict(&set, &long, NOW).is_ok(), "{}", long.len());
    let too_long = padded(9 * 1024);
    assert_eq!(verdict(&set, &too_long, NOW).unwrap_err(), Refused::Malformed("too long"));
}

/// RFC 7638's example RSA key is kept as an RS256 key; a P-256 key with a
/// short coordinate is not a key.
#[test]
fn rsa_keys_are_kept_and_malformed_ec_keys_are_not() {
    let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
    let set = json!({ "keys": [{ "kty": "RSA", "alg": "RS256", "kid": "r1", "n": n, "e": "AQAB" }] });
    let keys = KeySet::parse(set.to_string().as_bytes(), None, None).unwrap();
    assert_eq!(keys.get("r1").unwrap().alg, "RS256");
    let mut short = Signer::new("k1").jwk();
    short["x"] = json!(URL_SAFE_NO_PAD.encode([1u8; 31]));
    let set = json!({ "keys": [short] });
    assert!(KeySet::parse(set.to_string().as_bytes(), None, None).unwrap().kids().is_empty());
}

/// A set is trusted for its `max-age` and an hour past it without being
/// confirmed; `max-age` is read from `Cache-Control`.
#[test]
fn an_unconfirmed_key_set_goes_stale_an_hour_past_its_max_age() {
    use std::time::{Duration, Instant};
    assert_eq!(crate::keys::max_age("public, max-age=300"), Some(Duration::from_secs(300)));
    assert_eq!(crate::keys::max_age("no-store"), None);
    let set = |age: u64| {
        let mut keys = KeySet::parse(br#"{"keys":[]}"#, None, Some(Duration::from_secs(300))).unwrap();
        keys.validated = Instant::now() - Duration::from_secs(age);
        keys.stale()
    };
    assert!(!set(0));
    assert!(!set(300 + 3600 - 5));
    assert!(set(300 + 3600 + 5));
}

/// A flood of tokens naming kids the set lacks costs authgate one fetch
/// of the key set per `refetch_every`, however many arrive meanwhile, at
/// once or one after another (a stand-in authgate counts the fetches).
#[tokio::test]
async fn unknown_kids_refetch_the_key_set_once_per_interval() {
    use std::sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    };
    let fetched = Arc::new(AtomicUsize::new(0));
    let counter = fetched.clone();
    let signer = Signer::new("k1");
    let published = set_of(&[&signer]).to_string();
    let app = axum::Router::new().route(
        "/.well-known/jwks.json",
        axum::routing::get(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            let body = published.clone();
            async move { ([("cache-control", "public, max-age=300")], body) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let config = Config::new(&url, AUD)
        .issuer(ISS)
        .without_revocations()
        .refetch_every(std::time::Duration::from_millis(500))
        .clock(|| NOW);
    let verifier = crate::Verifier::start(config).await.unwrap();
    assert_eq!(fetched.load(Ordering::SeqCst), 1, "at start");
    assert!(verifier.verify(&signer.token(&claims())).await.is_ok());
    let made_up: Vec<String> = (0..20).map(|i| Signer::new(&format!("x{i}")).token(&claims())).collect();
    let at_once = futures_util::future::join_all(made_up.iter().map(|t| verifier.verify(t))).await;
    assert!(at_once.iter().all(|r| *r == Err(Refused::UnknownKey)));
    for token in &made_up {
        assert_eq!(verifier.verify(token).await.unwrap_err(), Refused::UnknownKey);
    }
    assert_eq!(fetched.load(Ordering::SeqCst), 2, "one fetch for all of them");
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    assert_eq!(verifier.verify(&made_up[0]).await.unwrap_err(), Refused::UnknownKey);
    assert_eq!(fetched.load(Ordering::SeqCst), 3, "the next interval, the next fetch");
}
