//! Access tokens as JWTs (RFC 9068: `typ: at+jwt`), signed with ES256:
//! the header, the claims and the signature, base64url without padding.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use ring::{
    rand::SystemRandom,
    signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair},
};
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
}

/// A private key that signs: ES256 (P-256, SHA-256, the JWS `r || s` form),
/// with its `kid` and its tokens' encoded header, made once per key.
pub(crate) struct Signer {
    pair: EcdsaKeyPair,
    kid: String,
    header: String,
}

/// Never shows the key.
impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(ES256)")
    }
}

impl Signer {
    /// A new key: its PKCS#8 document (to seal) and the signer.
    pub(crate) fn generate() -> anyhow::Result<(Vec<u8>, Signer)> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| anyhow::anyhow!("could not generate a P-256 key"))?;
        let signer = Self::from_pkcs8(pkcs8.as_ref())?;
        Ok((pkcs8.as_ref().to_vec(), signer))
    }

    pub(crate) fn from_pkcs8(pkcs8: &[u8]) -> anyhow::Result<Signer> {
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8, &SystemRandom::new())
            .map_err(|e| anyhow::anyhow!("not a P-256 PKCS#8 key: {e}"))?;
        let (x, y) = coordinates(&pair);
        let kid = thumbprint(&x, &y);
        let header = serde_json::json!({ "alg": "ES256", "typ": "at+jwt", "kid": kid });
        Ok(Signer { pair, header: URL_SAFE_NO_PAD.encode(header.to_string()), kid })
    }

    /// The RFC 7638 thumbprint of the public key.
    pub(crate) fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as a JWK, `kid` included.
    pub(crate) fn public_jwk(&self) -> serde_json::Value {
        let (x, y) = coordinates(&self.pair);
        serde_json::json!({
            "kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": self.kid, "alg": "ES256", "use": "sig",
        })
    }

    /// `header.claims.signature` for `claims`.
    pub(crate) fn sign(&self, claims: &Claims<'_>) -> anyhow::Result<String> {
        let mut token = self.header.clone();
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims)?));
        let signature = self
            .pair
            .sign(&SystemRandom::new(), token.as_bytes())
            .map_err(|_| anyhow::anyhow!("signing failed"))?;
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(signature.as_ref()));
        Ok(token)
    }
}

/// The public point's x and y, base64url (an uncompressed point: 0x04,
/// then x and y, 32 bytes each).
fn coordinates(pair: &EcdsaKeyPair) -> (String, String) {
    let point = pair.public_key().as_ref();
    (URL_SAFE_NO_PAD.encode(&point[1..33]), URL_SAFE_NO_PAD.encode(&point[33..65]))
}

/// RFC 7638: SHA-256 of the required members in lexicographic order, no
/// whitespace, base64url.
fn thumbprint(x: &str, y: &str) -> String {
    use sha2::{Digest, Sha256};
    let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};

    #[test]
    fn a_token_verifies_with_its_public_key_and_names_its_kid() {
        let (_, signer) = Signer::generate().unwrap();
        let (kid, jwk) = (signer.kid().to_owned(), signer.public_jwk());
        assert_eq!(kid.len(), 43, "a base64url SHA-256");
        assert_eq!(jwk["kid"], kid.as_str());
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
        };
        let token = signer.sign(&claims).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
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

    /// RFC 7638 section 3.1's example is RSA; this is the same rule on the
    /// members of an EC key, checked against a thumbprint computed by hand.
    #[test]
    fn the_thumbprint_hashes_the_required_members_in_order() {
        use sha2::{Digest, Sha256};
        let expected =
            URL_SAFE_NO_PAD.encode(Sha256::digest(br#"{"crv":"P-256","kty":"EC","x":"AAA","y":"BBB"}"#));
        assert_eq!(thumbprint("AAA", "BBB"), expected);
    }
}
