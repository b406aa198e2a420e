//! A software authenticator, and the browser around it, for the passkey
//! tests: what `navigator.credentials.create()/get()` and a platform
//! authenticator produce (`PublicKeyCredential.toJSON()`), on well-kept
//! crates (p256 for ES256, serde_cbor_2 for CBOR). Unlike an honest one it
//! can be told to lie: another origin, another relying party, a counter
//! going back (a clone).

use std::collections::BTreeMap;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use p256::ecdsa::{Signature, SigningKey, signature::Signer};
use serde_cbor_2::Value as Cbor;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::str_of;

/// One credential, as an authenticator keeps it.
#[derive(Clone)]
pub struct Authenticator {
    key: SigningKey,
    pub credential_id: Vec<u8>,
    /// `user.id` of the creation options: returned as `userHandle`.
    pub user_handle: Vec<u8>,
    /// The signature counter (incremented before each assertion).
    pub counter: u32,
    /// The relying party id it signs for (its SHA-256 opens authenticator data).
    pub rp_id: String,
    /// Whether it says the user was verified.
    pub verifies_user: bool,
}

impl Authenticator {
    /// A new credential for `options` (`startPasskeyRegistration`'s JSON),
    /// as a browser on `origin` registers it: the authenticator and the
    /// JSON to send back.
    pub fn register(options: &Value, origin: &str) -> (Self, Value) {
        let rp_id = str_of(&options["rp"]["id"]);
        let user_handle =
            URL_SAFE_NO_PAD.decode(str_of(&options["user"]["id"])).expect("user.id in base64url");
        let key = loop {
            // Nearly every 32 random bytes is a valid scalar.
            if let Ok(key) = SigningKey::from_slice(&rand::random::<[u8; 32]>()) {
                break key;
            }
        };
        let authenticator = Self {
            key,
            credential_id: rand::random::<[u8; 16]>().to_vec(),
            user_handle,
            counter: 0,
            rp_id,
            verifies_user: true,
        };
        let credential = authenticator.attest(options, origin);
        (authenticator, credential)
    }

    /// `PublicKeyCredential.toJSON()` of a creation by this authenticator.
    pub fn attest(&self, options: &Value, origin: &str) -> Value {
        let client_data = client_data("webauthn.create", &options["challenge"], origin);
        let mut attestation = BTreeMap::new();
        attestation.insert(Cbor::Text("fmt".into()), Cbor::Text("none".into()));
        attestation.insert(Cbor::Text("attStmt".into()), Cbor::Map(BTreeMap::new()));
        attestation.insert(Cbor::Text("authData".into()), Cbor::Bytes(self.authenticator_data(true)));
        let attestation = serde_cbor_2::to_vec(&Cbor::Map(attestation)).expect("CBOR");
        self.credential(json!({
            "clientDataJSON": b64(&client_data),
            "attestationObject": b64(&attestation),
            "transports": ["internal"],
        }))
    }

    /// `PublicKeyCredential.toJSON()` of an assertion for `options`
    /// (`startPasskeySignIn`'s) from a page on `origin`.
    pub fn assert(&mut self, options: &Value, origin: &str) -> Value {
        self.counter += 1;
        let client_data = client_data("webauthn.get", &options["challenge"], origin);
        let authenticator_data = self.authenticator_data(false);
        let mut signed = authenticator_data.clone();
        signed.extend(Sha256::digest(&client_data));
        let signature: Signature = self.key.sign(&signed);
        self.credential(json!({
            "clientDataJSON": b64(&client_data),
            "authenticatorData": b64(&authenticator_data),
            "signature": b64(signature.to_der().as_bytes()),
            "userHandle": b64(&self.user_handle),
        }))
    }

    /// A `PublicKeyCredential` of this credential around `response`.
    fn credential(&self, response: Value) -> Value {
        json!({
            "id": b64(&self.credential_id),
            "rawId": b64(&self.credential_id),
            "type": "public-key",
            "authenticatorAttachment": "platform",
            "response": response,
            "clientExtensionResults": {},
        })
    }

    /// rpIdHash, flags (user present, user verified, attested data), the
    /// counter, and at registration the credential with its COSE key.
    fn authenticator_data(&self, attested: bool) -> Vec<u8> {
        let mut data = Sha256::digest(self.rp_id.as_bytes()).to_vec();
        let verified = if self.verifies_user { 0x04 } else { 0 };
        data.push(0x01 | verified | if attested { 0x40 } else { 0 });
        data.extend(self.counter.to_be_bytes());
        if attested {
            data.extend([0u8; 16]);
            data.extend(u16::try_from(self.credential_id.len()).expect("short id").to_be_bytes());
            data.extend(&self.credential_id);
            data.extend(self.cose_key());
        }
        data
    }

    /// The public key as COSE: EC2, ES256, P-256, x, y.
    fn cose_key(&self) -> Vec<u8> {
        let point = self.key.verifying_key().to_sec1_point(false);
        let (x, y) = point.as_bytes()[1..].split_at(32);
        let entries = [
            (1, Cbor::Integer(2)),
            (3, Cbor::Integer(-7)),
            (-1, Cbor::Integer(1)),
            (-2, Cbor::Bytes(x.to_vec())),
            (-3, Cbor::Bytes(y.to_vec())),
        ];
        let map = entries.into_iter().map(|(k, v)| (Cbor::Integer(k), v)).collect();
        serde_cbor_2::to_vec(&Cbor::Map(map)).expect("CBOR")
    }
}

/// `clientDataJSON` as a browser writes it.
fn client_data(kind: &str, challenge: &Value, origin: &str) -> Vec<u8> {
    let challenge = str_of(challenge);
    serde_json::to_vec(
        &json!({ "type": kind, "challenge": challenge, "origin": origin, "crossOrigin": false }),
    )
    .expect("JSON")
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}
