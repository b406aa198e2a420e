//! Input rules of the contract ("Precise rules"), checked before any hashing.

use crate::error::AuthError;

pub const PASSWORD_MIN: usize = 8;
pub const PASSWORD_MAX: usize = 128;

/// Trims and lower-cases an email and checks its syntax; `None` if invalid.
pub fn normalize_email(raw: &str) -> Option<String> {
    let email = raw.trim().to_lowercase();
    // RFC 5321 caps a forward path at 254 octets.
    let valid = email.len() <= 254
        && email_address::EmailAddress::parse_with_options(
            &email,
            email_address::Options::default().without_display_text(),
        )
        .is_ok_and(|parsed| parsed.domain().contains('.') && !parsed.domain().starts_with('['));
    valid.then_some(email)
}

/// The email of a new account, or `BAD_USER_INPUT` on `field`.
pub fn email_for_signup(raw: &str, field: &'static str) -> Result<String, AuthError> {
    normalize_email(raw).ok_or_else(|| AuthError::bad_input(field, "invalid email address"))
}

/// Length in Unicode code points, within the policy. Never truncated or case-folded.
pub fn password_length_ok(password: &str) -> bool {
    (PASSWORD_MIN..=PASSWORD_MAX).contains(&password.chars().count())
}

/// The policy for a password being set (register, change, reset) by the
/// owner of `email`: length first (so no estimator sees an over-long
/// input), then no email name inside, then a strength estimate (zxcvbn;
/// `min_score` 0 turns it off).
pub fn new_password(
    password: &str,
    email: &str,
    min_score: u8,
    field: &'static str,
) -> Result<(), AuthError> {
    if !password_length_ok(password) {
        return Err(AuthError::bad_input(
            field,
            format!("password must be {PASSWORD_MIN} to {PASSWORD_MAX} characters long"),
        ));
    }
    let local = email.split('@').next().unwrap_or_default().to_lowercase();
    // The whole local part with its separators dropped (alice.tester →
    // alicetester), and each of its words of four letters or more.
    let joined: String = local.chars().filter(|c| c.is_alphanumeric()).collect();
    let lowered = password.to_lowercase();
    let personal = std::iter::once(local.as_str())
        .chain(std::iter::once(joined.as_str()))
        .filter(|part| part.chars().count() >= 3)
        .chain(local.split(|c: char| !c.is_alphanumeric()).filter(|w| w.chars().count() >= 4));
    for part in personal {
        if lowered.contains(part) {
            return Err(AuthError::bad_input(field, "password must not contain your email address"));
        }
    }
    if min_score > 0 {
        let estimate = zxcvbn::zxcvbn(password, &[email, &local, "authgate"]);
        if (estimate.score() as u8) < min_score {
            let hint =
                estimate.feedback().and_then(|f| f.warning()).map(|w| format!(": {w}")).unwrap_or_default();
            return Err(AuthError::bad_input(field, format!("password is too easy to guess{hint}")));
        }
    }
    Ok(())
}

pub const NAME_MAX: usize = 100;

/// A display name: trimmed, empty means none, at most 100 characters.
pub fn profile_name(name: Option<String>) -> Result<Option<String>, AuthError> {
    let Some(name) = name.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty()) else {
        return Ok(None);
    };
    if name.chars().count() > NAME_MAX || name.chars().any(char::is_control) {
        return Err(AuthError::bad_input(
            "name",
            format!("name must be at most {NAME_MAX} printable characters"),
        ));
    }
    Ok(Some(name))
}

pub const IMAGE_URL_MAX: usize = 2048;

/// An avatar URL: absolute `http` or `https` with a host, at most 2048 characters.
pub fn image_url(raw: &str) -> Result<String, AuthError> {
    let raw = raw.trim();
    let invalid = || {
        AuthError::bad_input(
            "image",
            format!("image must be an http(s) URL of at most {IMAGE_URL_MAX} characters"),
        )
    };
    if raw.chars().count() > IMAGE_URL_MAX {
        return Err(invalid());
    }
    let url = url::Url::parse(raw).map_err(|_| invalid())?;
    let web = matches!(url.scheme(), "http" | "https") && url.host_str().is_some_and(|h| !h.is_empty());
    if web && url.as_str().len() <= IMAGE_URL_MAX { Ok(url.into()) } else { Err(invalid()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_trimmed_lowercased_and_checked() {
        assert_eq!(normalize_email("  Alice@Example.COM ").as_deref(), Some("alice@example.com"));
        for bad in ["", "alice", "alice@", "@example.com", "a b@example.com", "alice@localhost"] {
            assert_eq!(normalize_email(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn image_urls_must_be_web_urls() {
        assert!(image_url("https://cdn.example.com/a.png").is_ok());
        assert!(image_url("http://example.com/a.png?x=1").is_ok());
        for bad in
            ["javascript:alert(1)", "data:image/png;base64,AA", "ftp://x.com/a", "/a.png", "https://", ""]
        {
            assert!(image_url(bad).is_err(), "{bad}");
        }
        assert!(image_url(&format!("https://example.com/{}", "a".repeat(2048))).is_err());
    }

    #[test]
    fn weak_or_personal_passwords_are_refused() {
        let email = "marie.curie@example.com";
        assert!(new_password("radium polonium 1898", email, 2, "password").is_ok());
        assert!(new_password("password", email, 2, "password").is_err(), "common");
        assert!(new_password("12345678", email, 2, "password").is_err(), "common");
        assert!(new_password("xMarie.Curie!99", email, 0, "password").is_err(), "contains the email name");
        assert!(new_password("mariecurie-rocks-2024", email, 0, "password").is_err(), "without the dot");
        assert!(new_password("Curie was brilliant", email, 0, "password").is_err(), "one of its words");
        assert!(new_password("radium polonium 1898", email, 0, "password").is_ok());
        assert!(new_password("password", email, 0, "password").is_ok(), "estimator off");
    }

    #[test]
    fn password_length_counts_code_points() {
        assert!(password_length_ok("éééééééé")); // 8 code points, 16 bytes
        assert!(!password_length_ok("1234567"));
        assert!(password_length_ok(&"x".repeat(128)));
        assert!(!password_length_ok(&"x".repeat(129)));
    }
}
