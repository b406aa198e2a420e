//! Opaque secrets handed to clients: 32 bytes from the OS CSPRNG, base64url.
//! Only their SHA-256 is ever stored, so a database leak yields no usable token.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use rand::{RngCore, rngs::OsRng};
use sha2::{Digest, Sha256};

/// Length of an encoded token: 32 bytes in unpadded base64url.
pub(crate) const TOKEN_LEN: usize = 43;

pub struct NewToken {
    /// Given to the client once; never stored or logged.
    pub secret: String,
    pub hash: Vec<u8>,
}

pub fn generate() -> NewToken {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    let secret = URL_SAFE_NO_PAD.encode(bytes);
    let hash = digest(&secret);
    NewToken { secret, hash }
}

/// The stored form of a presented token, or `None` when it cannot be one of
/// ours (wrong length or alphabet): such a token is refused without a query.
pub(crate) fn hash_presented(token: &str) -> Option<Vec<u8>> {
    let well_formed =
        token.len() == TOKEN_LEN && URL_SAFE_NO_PAD.decode(token).is_ok_and(|bytes| bytes.len() == 32);
    well_formed.then(|| digest(token))
}

fn digest(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_are_well_formed_and_distinct() {
        let a = generate();
        let b = generate();
        assert_eq!(a.secret.len(), TOKEN_LEN);
        assert_ne!(a.secret, b.secret);
        assert_eq!(hash_presented(&a.secret), Some(a.hash));
    }

    #[test]
    fn malformed_tokens_are_rejected_before_lookup() {
        assert_eq!(hash_presented(""), None);
        assert_eq!(hash_presented("short"), None);
        assert_eq!(hash_presented(&"!".repeat(TOKEN_LEN)), None);
    }
}
