//! Device cookies (OWASP's scheme against lock-out): a client that signed in
//! to an account with its password is remembered as a trusted device for
//! that account. Its attempts are counted per device, so the account-wide
//! ceiling (which anyone can exhaust from many addresses) and other
//! clients' failures do not hold back the owner's own browser or app.
//!
//! The HTTP layer signs and checks the cookie; this module only says what
//! it holds: a random nonce and a tag of the account (not the address).
//!
//! The tag names the account by its id, not its address: an account
//! deleted and registered again under the same address is another account,
//! and devices of the first (a squatter's, say) are strangers to it.

use sha2::{Digest, Sha256};
use uuid::Uuid;

/// A device cookie's content, once its signature checked out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Device {
    /// Random; names the device's own attempt counter.
    pub nonce: String,
    /// Which account it was issued for, under which credentials version (a
    /// hash of both: the cookie shows neither).
    account: String,
}

impl Device {
    /// A new device cookie for the account `user_id` under its credentials
    /// `version`.
    pub(crate) fn issue(user_id: Uuid, version: i64) -> Self {
        let mut nonce = [0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut nonce);
        Self { nonce: hex(&nonce), account: account_tag(user_id, version) }
    }

    /// Whether this device was issued for the account `user_id` under its
    /// current credentials: a password change, reset or claim (which bump
    /// the version) ends the trust of every device that signed in before,
    /// so devices collected with an old password are worth nothing.
    pub(crate) fn trusted_for(&self, user_id: Uuid, version: i64) -> bool {
        self.account == account_tag(user_id, version)
    }

    /// The cookie value (signed by the HTTP layer).
    pub fn value(&self) -> String {
        format!("{}.{}", self.nonce, self.account)
    }

    /// The content of a cookie value whose signature was checked.
    pub fn parse(value: &str) -> Option<Self> {
        let (nonce, account) = value.split_once('.')?;
        let sane = |s: &str| !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric());
        (sane(nonce) && sane(account)).then(|| Self { nonce: nonce.to_owned(), account: account.to_owned() })
    }
}

fn account_tag(user_id: Uuid, version: i64) -> String {
    hex(&Sha256::digest(format!("{user_id}\n{version}").as_bytes())[..16])
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::Device;

    #[test]
    fn a_device_is_trusted_for_its_own_account_only() {
        let (owner, other) = (Uuid::new_v4(), Uuid::new_v4());
        let device = Device::issue(owner, 3);
        assert!(device.trusted_for(owner, 3));
        assert!(!device.trusted_for(other, 3), "another account (or the same address registered again)");
        assert!(!device.trusted_for(owner, 4), "credentials changed since");
        let parsed = Device::parse(&device.value()).expect("round trip");
        assert_eq!(parsed, device);
        assert_ne!(Device::issue(owner, 3).nonce, device.nonce, "random nonce");
        for bad in ["", "abc", ".abc", "abc.", "a.b.c", "a b.c"] {
            assert_eq!(Device::parse(bad), None, "{bad:?}");
        }
    }
}
