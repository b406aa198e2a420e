//! The server's secret key (`AUTHGATE_SECRET_KEY`): 32 random bytes from
//! which every signing key is derived. Production requires it to be set; in
//! development it is generated once into `AUTHGATE_SECRET_KEY_FILE` so
//! `cargo run` just works and survives restarts.

use std::{fmt, io::Write, path::Path};

use anyhow::{Context, bail};
use base64::{Engine, engine::general_purpose::STANDARD};

use crate::config::{Config, Environment, ExposeSecret};

/// Keys derived from the server secret.
pub struct Keys {
    /// Signs cookies the server must recognise as its own (the device cookie).
    pub cookies: cookie::Key,
    /// Encrypts secrets the server must read back (TOTP secrets).
    pub sealer: Sealer,
}

// Hand-written so `{:?}` never prints a key.
impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Keys(***)")
    }
}

impl Keys {
    pub(crate) fn from_config(config: &Config) -> anyhow::Result<Self> {
        let master = match &config.secret_key {
            Some(encoded) => decode(encoded.expose_secret()).context("AUTHGATE_SECRET_KEY")?,
            None if config.env == Environment::Production => {
                bail!(
                    "AUTHGATE_SECRET_KEY is required in production (32 random bytes, base64: `openssl rand -base64 32`)"
                )
            }
            None => development_key(&config.secret_key_file)?,
        };
        let previous = match &config.secret_key_previous {
            Some(list) => list
                .expose_secret()
                .split(',')
                .filter(|k| !k.trim().is_empty())
                .map(decode)
                .collect::<anyhow::Result<Vec<_>>>()
                .context("AUTHGATE_SECRET_KEY_PREVIOUS")?,
            None => Vec::new(),
        };
        Self::with_previous(&master, &previous)
    }

    #[cfg(test)]
    pub(crate) fn from_master(master: &[u8; 32]) -> anyhow::Result<Self> {
        Self::with_previous(master, &[])
    }

    fn with_previous(master: &[u8; 32], previous: &[[u8; 32]]) -> anyhow::Result<Self> {
        Ok(Self { cookies: cookie::Key::derive_from(master), sealer: Sealer::new(master, previous)? })
    }
}

/// Authenticated encryption of small secrets at rest (AES-256-GCM, a
/// random 96-bit nonce each time, the key derived from the server key by
/// HKDF-SHA256). The sealed form names the key (`v1.<key id>.<base64>`), so
/// after a rotation a secret sealed under a previous key still opens and
/// `authgate reseal` can find it. Each secret is bound to a context (the
/// owner's id): a sealed value copied onto another row does not open.
pub struct Sealer {
    current: SealKey,
    previous: Vec<SealKey>,
}

struct SealKey {
    id: String,
    cipher: aes_gcm::Aes256Gcm,
}

impl SealKey {
    fn derive(master: &[u8; 32]) -> anyhow::Result<Self> {
        use aes_gcm::KeyInit;
        let hkdf = hkdf::Hkdf::<sha2::Sha256>::new(None, master);
        let mut key = [0u8; 32];
        let mut id = [0u8; 4];
        let invalid = |_| anyhow::anyhow!("HKDF refused the sealing key's length");
        hkdf.expand(b"authgate/seal/v1", &mut key).map_err(invalid)?;
        hkdf.expand(b"authgate/seal/key-id", &mut id).map_err(invalid)?;
        let id = id.iter().map(|b| format!("{b:02x}")).collect();
        Ok(Self { id, cipher: aes_gcm::Aes256Gcm::new(&key.into()) })
    }
}

/// A sealed value that does not open: tampered with, bound to another
/// owner, or sealed under a key this server no longer has.
#[derive(Debug, thiserror::Error)]
#[error("the sealed value does not open with any configured key")]
pub(crate) struct Unsealable;

/// What `Sealer::reseal` found.
pub(crate) enum Resealed {
    /// Sealed with the current key already.
    Current,
    /// Sealed with a previous key: this is it under the current one.
    Moved(String),
    /// No configured key opens it.
    Unopenable,
}

impl Sealer {
    fn new(master: &[u8; 32], previous: &[[u8; 32]]) -> anyhow::Result<Self> {
        let previous = previous.iter().map(SealKey::derive).collect::<anyhow::Result<_>>()?;
        Ok(Self { current: SealKey::derive(master)?, previous })
    }

    /// `plain` sealed under the current key; `Err` only if AES-GCM refuses
    /// the message (over 64 GiB).
    pub(crate) fn seal(&self, plain: &[u8], context: &[u8]) -> Result<String, aes_gcm::Error> {
        use aes_gcm::aead::{Aead, AeadCore, Payload};
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let nonce = aes_gcm::Aes256Gcm::generate_nonce(&mut rand::rngs::OsRng);
        let sealed = self.current.cipher.encrypt(&nonce, Payload { msg: plain, aad: context })?;
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&sealed);
        Ok(format!("v1.{}.{}", self.current.id, URL_SAFE_NO_PAD.encode(bytes)))
    }

    /// `sealed` sealed again with the current key if a previous key sealed
    /// it (`authgate reseal`, for every kind of sealed secret).
    pub(crate) fn reseal(&self, sealed: &str, context: &[u8]) -> Result<Resealed, aes_gcm::Error> {
        Ok(match self.open(sealed, context) {
            Ok((_, false)) => Resealed::Current,
            Ok((plain, true)) => Resealed::Moved(self.seal(&plain, context)?),
            Err(Unsealable) => Resealed::Unopenable,
        })
    }

    /// The plain value, and whether it was sealed under a previous key.
    pub(crate) fn open(&self, sealed: &str, context: &[u8]) -> Result<(Vec<u8>, bool), Unsealable> {
        use aes_gcm::aead::{Aead, Payload};
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut parts = sealed.splitn(3, '.');
        let (Some("v1"), Some(id), Some(body)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(Unsealable);
        };
        let key =
            std::iter::once(&self.current).chain(&self.previous).find(|k| k.id == id).ok_or(Unsealable)?;
        let bytes = URL_SAFE_NO_PAD.decode(body).map_err(|_| Unsealable)?;
        if bytes.len() < 12 {
            return Err(Unsealable);
        }
        let (nonce, sealed) = bytes.split_at(12);
        let plain = key
            .cipher
            .decrypt(nonce.into(), Payload { msg: sealed, aad: context })
            .map_err(|_| Unsealable)?;
        Ok((plain, !std::ptr::eq(key, &self.current)))
    }
}

fn decode(encoded: &str) -> anyhow::Result<[u8; 32]> {
    // The decoder's own message would quote a character of the secret.
    let bytes = STANDARD.decode(encoded.trim()).map_err(|_| anyhow::anyhow!("not valid base64"))?;
    bytes.try_into().map_err(|b: Vec<u8>| anyhow::anyhow!("{} bytes; expected exactly 32", b.len()))
}

/// The key in `path`, created (mode 0600) with a random key when missing.
fn development_key(path: &Path) -> anyhow::Result<[u8; 32]> {
    if let Some(key) = read_key(path)? {
        return Ok(key);
    }
    let mut master = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut master);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = match options.open(path) {
        Ok(file) => file,
        // Another process starting at the same moment created it first: use
        // theirs (read once more; no loop).
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return read_key(path)?.with_context(|| format!("{} vanished", path.display()));
        }
        Err(e) => return Err(e).with_context(|| format!("cannot create {}", path.display())),
    };
    file.write_all(STANDARD.encode(master).as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    tracing::warn!(path = %path.display(), "generated a development secret key; set AUTHGATE_SECRET_KEY in production");
    Ok(master)
}

/// The key stored in `path`; `None` when there is no such file.
fn read_key(path: &Path) -> anyhow::Result<Option<[u8; 32]>> {
    match std::fs::read_to_string(path) {
        Ok(encoded) => decode(&encoded).with_context(|| format!("{}", path.display())).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_must_be_32_bytes_of_base64() {
        assert!(decode(&STANDARD.encode([7u8; 32])).is_ok());
        assert!(decode(&STANDARD.encode([7u8; 31])).is_err());
        assert!(decode("not base64!").is_err());
    }

    #[test]
    fn a_development_key_is_generated_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/secret.key");
        let first = development_key(&path).unwrap();
        assert_eq!(development_key(&path).unwrap(), first);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
    }

    #[test]
    fn development_uses_its_key_file_and_unreadable_ones_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::for_database("sqlite::memory:");
        config.secret_key_file = dir.path().join("secret.key");
        assert!(Keys::from_config(&config).is_ok(), "development generates one");
        assert!(config.secret_key_file.exists());
        // A directory where the key should be: an error, not a loop or a new key.
        config.secret_key_file = dir.path().to_owned();
        let err = format!("{:#}", Keys::from_config(&config).unwrap_err());
        assert!(err.contains("cannot read"), "{err}");
        std::fs::write(dir.path().join("bad.key"), "not base64!").unwrap();
        config.secret_key_file = dir.path().join("bad.key");
        let err = format!("{:#}", Keys::from_config(&config).unwrap_err());
        assert!(err.contains("bad.key") && !err.contains('!'), "names the file, quotes nothing: {err}");
    }

    #[test]
    fn sealed_secrets_open_only_with_their_key_and_owner() {
        let old = Keys::from_master(&[1u8; 32]).unwrap();
        let sealed = old.sealer.seal(b"secret", b"alice").unwrap();
        assert!(!sealed.contains("secret"));
        assert_ne!(sealed, old.sealer.seal(b"secret", b"alice").unwrap(), "a fresh nonce each time");
        assert_eq!(old.sealer.open(&sealed, b"alice").unwrap(), (b"secret".to_vec(), false));
        assert!(old.sealer.open(&sealed, b"bob").is_err(), "bound to its owner");
        let mut tampered = sealed.clone().into_bytes();
        let last = tampered.len() - 2;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        assert!(old.sealer.open(std::str::from_utf8(&tampered).unwrap(), b"alice").is_err());
        assert!(old.sealer.open("v1.00000000.AAAA", b"alice").is_err());
        assert!(old.sealer.open("garbage", b"alice").is_err());
        // After a rotation: opens under the previous key, and says so.
        let new = Keys::with_previous(&[2u8; 32], &[[1u8; 32]]).unwrap();
        assert_eq!(new.sealer.open(&sealed, b"alice").unwrap(), (b"secret".to_vec(), true));
        assert!(Keys::from_master(&[2u8; 32]).unwrap().sealer.open(&sealed, b"alice").is_err());
    }

    #[test]
    fn production_requires_the_key() {
        let mut config = Config::for_database("sqlite::memory:");
        config.env = Environment::Production;
        let err = Keys::from_config(&config).unwrap_err().to_string();
        assert!(err.contains("AUTHGATE_SECRET_KEY"), "{err}");
    }
}
