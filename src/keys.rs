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
}

// Hand-written so `{:?}` never prints a key.
impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Keys(***)")
    }
}

impl Keys {
    pub fn from_config(config: &Config) -> anyhow::Result<Self> {
        let master = match &config.secret_key {
            Some(encoded) => decode(encoded.expose_secret()).context("AUTHGATE_SECRET_KEY")?,
            None if config.env == Environment::Production => {
                bail!(
                    "AUTHGATE_SECRET_KEY is required in production (32 random bytes, base64: `openssl rand -base64 32`)"
                )
            }
            None => development_key(&config.secret_key_file)?,
        };
        Ok(Self::from_master(&master))
    }

    pub fn from_master(master: &[u8; 32]) -> Self {
        Self { cookies: cookie::Key::derive_from(master) }
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
    fn production_requires_the_key() {
        let mut config = Config::for_database("sqlite::memory:");
        config.env = Environment::Production;
        let err = Keys::from_config(&config).unwrap_err().to_string();
        assert!(err.contains("AUTHGATE_SECRET_KEY"), "{err}");
    }
}
