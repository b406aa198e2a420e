//! One token: split, decoded, and checked against a key and the config.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};

use crate::{Config, Refused, keys::Key};

/// Longer than any token authgate makes by far: the rest is not decoded.
const MAX_LEN: usize = 8 * 1024;

/// The algorithms a key may have (each key is pinned to its own).
pub(crate) const ALGORITHMS: [&str; 2] = ["ES256", "RS256"];

#[derive(Deserialize)]
pub(crate) struct Header {
    pub alg: String,
    #[serde(default)]
    pub typ: Option<String>,
    #[serde(default)]
    pub kid: String,
    /// Extensions the verifier must understand (RFC 7515 §4.1.11): none are.
    #[serde(default)]
    pub crit: Option<serde_json::Value>,
}

/// What a token says: the contract's claims, and any others as they are.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct Claims {
    pub iss: String,
    /// The user's id.
    pub sub: String,
    pub aud: Audience,
    pub exp: i64,
    #[serde(default)]
    pub iat: Option<i64>,
    #[serde(default)]
    pub nbf: Option<i64>,
    #[serde(default)]
    pub jti: Option<String>,
    /// The session: what the revocation feed names.
    pub sid: String,
    #[serde(default)]
    pub auth_time: Option<i64>,
    /// `"1"`, or `"2"` after a second factor.
    #[serde(default)]
    pub acr: Option<String>,
    /// How the user signed in (RFC 8176: `pwd`, `otp`, `mfa`, `hwk`, `fed`…).
    #[serde(default)]
    pub amr: Vec<String>,
    /// Claims this version does not name (kept, never trusted for a check).
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

/// `aud`: one audience or several.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    pub fn contains(&self, audience: &str) -> bool {
        match self {
            Audience::One(one) => one == audience,
            Audience::Many(many) => many.iter().any(|a| a == audience),
        }
    }
}

/// A token split and decoded, its signature not checked yet.
pub(crate) struct Parsed<'a> {
    pub header: Header,
    signed: &'a str,
    payload: &'a str,
    signature: Vec<u8>,
}

impl<'a> Parsed<'a> {
    /// Refuses what is not a compact JWS with an accepted algorithm before
    /// any key is looked up (`none` and the HMACs never reach a key).
    pub(crate) fn new(token: &'a str) -> Result<Self, Refused> {
        if token.len() > MAX_LEN {
            return Err(Refused::Malformed("too long"));
        }
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Refused::Malformed("not three parts"));
        };
        let header: Header = serde_json::from_slice(&decode(header)?)
            .map_err(|_| Refused::Malformed("the header is not JSON"))?;
        if !ALGORITHMS.contains(&header.alg.as_str()) {
            // Named in the refusal: letters and digits only, 16 at most.
            let alg = header.alg.chars().filter(char::is_ascii_alphanumeric).take(16).collect();
            return Err(Refused::Algorithm(alg));
        }
        if header.crit.is_some() {
            return Err(Refused::Malformed("a critical extension"));
        }
        let typ = header.typ.as_deref().unwrap_or_default().to_ascii_lowercase();
        if typ != "at+jwt" && typ != "application/at+jwt" {
            return Err(Refused::Type);
        }
        let signed = &token[..token.len() - signature.len() - 1];
        Ok(Parsed { header, signed, payload, signature: decode(signature)? })
    }

    /// The claims, if `key` signed them with its own algorithm and they
    /// are for this issuer and audience (what stays true of these bytes;
    /// the times are `check_times`).
    pub(crate) fn claims(&self, key: &Key, config: &Config) -> Result<Claims, Refused> {
        if key.alg != self.header.alg {
            return Err(Refused::Algorithm(self.header.alg.clone()));
        }
        key.verify(self.signed.as_bytes(), &self.signature)?;
        let claims: Claims = serde_json::from_slice(&decode(self.payload)?)
            .map_err(|_| Refused::Malformed("the claims are not the expected JSON"))?;
        if claims.iss != config.issuer {
            return Err(Refused::Issuer);
        }
        if !claims.aud.contains(&config.audience) {
            return Err(Refused::Audience);
        }
        Ok(claims)
    }

    /// `claims` and `check_times` at `now` (Unix seconds).
    #[cfg(test)]
    pub(crate) fn check(&self, key: &Key, config: &Config, now: i64) -> Result<Claims, Refused> {
        let claims = self.claims(key, config)?;
        check_times(&claims, config, now)?;
        Ok(claims)
    }
}

/// `exp` and `nbf` at `now` (Unix seconds), with the leeway.
pub(crate) fn check_times(claims: &Claims, config: &Config, now: i64) -> Result<(), Refused> {
    let leeway = config.leeway.as_secs() as i64;
    if now > claims.exp.saturating_add(leeway) {
        return Err(Refused::Expired);
    }
    if claims.nbf.is_some_and(|nbf| now.saturating_add(leeway) < nbf) {
        return Err(Refused::NotYetValid);
    }
    Ok(())
}

fn decode(part: &str) -> Result<Vec<u8>, Refused> {
    URL_SAFE_NO_PAD.decode(part).map_err(|_| Refused::Malformed("not base64url"))
}
