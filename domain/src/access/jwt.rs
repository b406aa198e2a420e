//! Access tokens as JWTs (RFC 9068: `typ: at+jwt`), signed with ES256 or
//! RS256: the header, the claims and the signature, base64url without
//! padding.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use ring::{
    rand::SystemRandom,
    signature::{
        ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair, RSA_PKCS1_SHA256, RsaKeyPair,
        RsaPublicKeyComponents,
    },
};
use secrecy::zeroize::Zeroizing;
use serde::Serialize;

/// What a token says (the contract's claims, nothing personal beyond them).
#[derive(Serialize)]
pub(crate) struct Claims<'a> {
    pub iss: &'a str,
    pub sub: String,
    pub aud: &'a str,
    pub exp: i64,
    pub iat: i64,
    pub jti: String,
    /// The session: the handle revocation is pushed by.
    pub sid: String,
    pub auth_time: i64,
    pub acr: String,
    pub amr: &'static [&'static str],
    /// The user's roles (empty for most): what the app's services authorize by.
    pub roles: &'a [String],
    /// In an impersonation, the admin acting (RFC 8693's actor claim).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub act: Option<Actor>,
}

/// RFC 8693 §4.1: who acts for the subject.
#[derive(Serialize)]
pub(crate) struct Actor {
    pub sub: String,
}

/// The algorithms tokens are signed with: ES256 by default, RS256 for the
/// audiences whose verifiers take only RSA (`AUTHGATE_JWT_RS256_AUDIENCES`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Alg {
    Es256,
    Rs256,
}

impl Alg {
    pub const ALL: [Alg; 2] = [Alg::Es256, Alg::Rs256];

    pub fn as_str(self) -> &'static str {
        match self {
            Alg::Es256 => "ES256",
            Alg::Rs256 => "RS256",
        }
    }

    /// Its place in `ALL` (per-algorithm tables).
    pub(crate) fn index(self) -> usize {
        match self {
            Alg::Es256 => 0,
            Alg::Rs256 => 1,
        }
    }

    pub fn parse(text: &str) -> Option<Alg> {
        Alg::ALL.into_iter().find(|alg| alg.as_str() == text)
    }
}

/// RSA keys authgate makes: 2048 bits, the size every RS256 verifier takes.
const RSA_BITS: usize = 2048;

enum Pair {
    /// P-256, SHA-256, the JWS `r || s` form.
    Ec(EcdsaKeyPair),
    /// PKCS #1 v1.5 with SHA-256.
    Rsa(RsaKeyPair),
}

/// A private key that signs, with its `kid` and its tokens' encoded
/// header, made once per key.
pub(crate) struct Signer {
    pair: Pair,
    kid: String,
    jwk: serde_json::Value,
    header: String,
}

/// Never shows the key.
impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signer({})", self.alg().as_str())
    }
}

impl Signer {
    /// A new key: its PKCS#8 document (to seal) and the signer.
    pub(crate) fn generate(alg: Alg) -> anyhow::Result<(Zeroizing<Vec<u8>>, Signer)> {
        // Zeroed when dropped: the private key in the clear.
        let pkcs8 = Zeroizing::new(match alg {
            Alg::Es256 => {
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                    .map_err(|_| anyhow::anyhow!("could not generate a P-256 key"))?
                    .as_ref()
                    .to_vec()
            }
            // ring signs RSA in constant time but cannot make RSA keys: the
            // `rsa` crate makes one (a one-off), ring signs with it.
            Alg::Rs256 => {
                use rsa::pkcs8::EncodePrivateKey;
                let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, RSA_BITS)?;
                key.to_pkcs8_der()?.as_bytes().to_vec()
            }
        });
        let signer = Self::from_pkcs8(alg, &pkcs8)?;
        Ok((pkcs8, signer))
    }

    pub(crate) fn from_pkcs8(alg: Alg, pkcs8: &[u8]) -> anyhow::Result<Signer> {
        let (pair, jwk) = match alg {
            Alg::Es256 => {
                let pair =
                    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8, &SystemRandom::new())
                        .map_err(|e| anyhow::anyhow!("not a P-256 PKCS#8 key: {e}"))?;
                let point = pair.public_key().as_ref();
                let (x, y) = (URL_SAFE_NO_PAD.encode(&point[1..33]), URL_SAFE_NO_PAD.encode(&point[33..65]));
                (Pair::Ec(pair), serde_json::json!({ "crv": "P-256", "kty": "EC", "x": x, "y": y }))
            }
            Alg::Rs256 => {
                let pair = RsaKeyPair::from_pkcs8(pkcs8)
                    .map_err(|e| anyhow::anyhow!("not an RSA PKCS#8 key: {e}"))?;
                let public = RsaPublicKeyComponents::<Vec<u8>>::from(pair.public());
                let (n, e) = (URL_SAFE_NO_PAD.encode(&public.n), URL_SAFE_NO_PAD.encode(&public.e));
                (Pair::Rsa(pair), serde_json::json!({ "e": e, "kty": "RSA", "n": n }))
            }
        };
        let kid = thumbprint(&jwk);
        let header = serde_json::json!({ "alg": alg.as_str(), "typ": "at+jwt", "kid": kid });
        let mut jwk = jwk;
        for (name, value) in [("kid", kid.as_str()), ("alg", alg.as_str()), ("use", "sig")] {
            jwk[name] = value.into();
        }
        Ok(Signer { pair, header: URL_SAFE_NO_PAD.encode(header.to_string()), kid, jwk })
    }

    pub(crate) fn alg(&self) -> Alg {
        match self.pair {
            Pair::Ec(_) => Alg::Es256,
            Pair::Rsa(_) => Alg::Rs256,
        }
    }

    /// The RFC 7638 thumbprint of the public key.
    pub(crate) fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as a JWK, `kid`, `alg` and `use` included.
    pub(crate) fn public_jwk(&self) -> serde_json::Value {
        self.jwk.clone()
    }

    /// `header.claims.signature` for `claims`.
    pub(crate) fn sign(&self, claims: &Claims<'_>) -> anyhow::Result<String> {
        let mut token = self.header.clone();
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims)?));
        let rng = SystemRandom::new();
        let signature = match &self.pair {
            Pair::Ec(pair) => pair
                .sign(&rng, token.as_bytes())
                .map_err(|_| anyhow::anyhow!("signing failed"))?
                .as_ref()
                .to_vec(),
            Pair::Rsa(pair) => {
                let mut signature = vec![0; pair.public().modulus_len()];
                pair.sign(&RSA_PKCS1_SHA256, &rng, token.as_bytes(), &mut signature)
                    .map_err(|_| anyhow::anyhow!("signing failed"))?;
                signature
            }
        };
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(signature));
        Ok(token)
    }
}

/// RFC 7638: SHA-256 of the required members (`required`, made with their
/// names in lexicographic order), no whitespace, base64url.
fn thumbprint(required: &serde_json::Value) -> String {
    use sha2::{Digest, Sha256};
    URL_SAFE_NO_PAD.encode(Sha256::digest(required.to_string().as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};

    /// A token of `signer` for made-up claims, and its decoded header.
    fn signed(signer: &Signer) -> (String, serde_json::Value) {
        let claims = Claims {
            iss: "https://auth.example.com",
            sub: "u".into(),
            aud: "api",
            exp: 2,
            iat: 1,
            jti: "j".into(),
            sid: "s".into(),
            auth_time: 1,
            acr: "1".into(),
            amr: &["pwd"],
            roles: &[],
            act: None,
        };
        let token = signer.sign(&claims).unwrap();
        let header = URL_SAFE_NO_PAD.decode(token.split('.').next().unwrap()).unwrap();
        (token, serde_json::from_slice(&header).unwrap())
    }

    #[test]
    fn a_token_verifies_with_its_public_key_and_names_its_kid() {
        let (_, signer) = Signer::generate(Alg::Es256).unwrap();
        let (kid, jwk) = (signer.kid().to_owned(), signer.public_jwk());
        assert_eq!(kid.len(), 43, "a base64url SHA-256");
        assert_eq!(jwk["kid"], kid.as_str());
        let (token, header) = signed(&signer);
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(header, serde_json::json!({ "alg": "ES256", "typ": "at+jwt", "kid": kid }));
        let x = URL_SAFE_NO_PAD.decode(jwk["x"].as_str().unwrap()).unwrap();
        let y = URL_SAFE_NO_PAD.decode(jwk["y"].as_str().unwrap()).unwrap();
        let point = [&[4u8][..], &x, &y].concat();
        let signed = format!("{}.{}", parts[0], parts[1]);
        let signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        let key = UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point);
        key.verify(signed.as_bytes(), &signature).expect("verifies");
        assert!(key.verify(format!("{signed}x").as_bytes(), &signature).is_err());
        assert_eq!(format!("{signer:?}"), "Signer(ES256)", "no key material in Debug");
    }

    /// RFC 7638 section 3.1's own example (an RSA key) and the same rule on
    /// the members of an EC key.
    #[test]
    fn the_thumbprint_hashes_the_required_members_in_order() {
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        let rsa = serde_json::json!({ "e": "AQAB", "kty": "RSA", "n": n });
        assert_eq!(thumbprint(&rsa), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
        use sha2::{Digest, Sha256};
        let expected =
            URL_SAFE_NO_PAD.encode(Sha256::digest(br#"{"crv":"P-256","kty":"EC","x":"AAA","y":"BBB"}"#));
        let ec = serde_json::json!({ "crv": "P-256", "kty": "EC", "x": "AAA", "y": "BBB" });
        assert_eq!(thumbprint(&ec), expected);
    }

    /// An RS256 key: its token verifies with the published modulus and
    /// exponent, and its kid is the thumbprint of those.
    #[test]
    fn an_rsa_key_signs_rs256_tokens_its_jwk_verifies() {
        use ring::signature::{RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents};
        let (pkcs8, signer) = Signer::generate(Alg::Rs256).unwrap();
        let reopened = Signer::from_pkcs8(Alg::Rs256, &pkcs8).unwrap();
        assert_eq!(reopened.kid(), signer.kid());
        let jwk = signer.public_jwk();
        assert_eq!((jwk["kty"].as_str(), jwk["alg"].as_str()), (Some("RSA"), Some("RS256")));
        assert!(jwk.get("d").is_none() && jwk.get("p").is_none(), "never the private part");
        let (token, header) = signed(&signer);
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(header, serde_json::json!({ "alg": "RS256", "typ": "at+jwt", "kid": signer.kid() }));
        let field = |name: &str| URL_SAFE_NO_PAD.decode(jwk[name].as_str().unwrap()).unwrap();
        let key = RsaPublicKeyComponents { n: field("n"), e: field("e") };
        let signed = format!("{}.{}", parts[0], parts[1]);
        let signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        assert_eq!(signature.len(), 256, "2048 bits");
        key.verify(&RSA_PKCS1_2048_8192_SHA256, signed.as_bytes(), &signature).expect("verifies");
        assert!(Signer::from_pkcs8(Alg::Es256, &pkcs8).is_err(), "an RSA key is no EC key");
        assert_eq!(format!("{signer:?}"), "Signer(RS256)");
    }
}
