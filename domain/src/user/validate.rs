//! Input rules of the contract ("Precise rules"), checked before any hashing.

use crate::error::{AuthError, Input};

pub(crate) const PASSWORD_MIN: usize = 8;
pub(crate) const PASSWORD_MAX: usize = 128;

/// The one normalisation of an email address, for every entry point
/// (register, login, reset, OAuth): trimmed, the WHATWG "valid email
/// address" syntax (no quoted local parts, no comments, no IP literals:
/// what a mailer can deliver and nothing ambiguous), an internationalised
/// domain turned into punycode, and ASCII-only lower-casing (Unicode case
/// folding would map a Kelvin sign `K` onto `k` and so merge two
/// addresses). `None` if invalid.
pub(crate) fn normalize_email(raw: &str) -> Option<String> {
    let (local, domain) = raw.trim().rsplit_once('@')?;
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && local.bytes().all(|b| b.is_ascii_alphanumeric() || b".!#$%&'*+/=?^_`{|}~-".contains(&b));
    if !local_ok {
        return None;
    }
    // IDNA (UTS 46) as browsers do it: Unicode domains become xn-- labels.
    let domain = idna::domain_to_ascii(domain).ok()?;
    let label_ok = |label: &str| {
        (1..=63).contains(&label.len())
            && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    // At least two labels: an address on a bare host is not deliverable here.
    let domain_ok = domain.contains('.') && domain.split('.').all(label_ok);
    let email = format!("{}@{domain}", local.to_ascii_lowercase());
    // RFC 5321 caps a forward path at 254 octets.
    (domain_ok && email.len() <= 254).then_some(email)
}

/// The email of a new account, or `BAD_USER_INPUT` on `field`.
pub(crate) fn email_for_signup(raw: &str, field: Input) -> Result<String, AuthError> {
    normalize_email(raw).ok_or_else(|| AuthError::bad_input(field, "invalid email address"))
}

/// Length in Unicode code points, within the policy. Never truncated or case-folded.
pub(crate) fn password_length_ok(password: &str) -> bool {
    (PASSWORD_MIN..=PASSWORD_MAX).contains(&password.chars().count())
}

/// The policy for a password being set (register, change, reset) by the
/// owner of `email`: length first (so no estimator sees an over-long
/// input), then no email name inside, then a strength estimate (zxcvbn;
/// `min_score` 0 turns it off).
pub(crate) fn new_password(
    password: &str,
    email: &str,
    min_score: u8,
    field: Input,
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

pub(crate) const NAME_MAX: usize = 100;

/// A display name: trimmed, empty means none, at most 100 characters.
pub(crate) fn profile_name(name: Option<String>) -> Result<Option<String>, AuthError> {
    let Some(name) = name.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty()) else {
        return Ok(None);
    };
    if name.chars().count() > NAME_MAX || name.chars().any(|c| c.is_control() || spoofs(c)) {
        return Err(AuthError::bad_input(
            Input::Name,
            format!("name must be at most {NAME_MAX} printable characters"),
        ));
    }
    Ok(Some(name))
}

/// Characters that make a name display as something else: bidirectional
/// overrides and isolates (`abc\u{202E}gnp.exe` shows as `abcexe.png`),
/// and invisible ones (`ad\u{200B}min` looks like `admin`).
pub(crate) fn spoofs(c: char) -> bool {
    matches!(
        c,
        '\u{200B}'..='\u{200F}' // zero-width space/joiners, LRM, RLM
            | '\u{202A}'..='\u{202E}' // embeddings and overrides
            | '\u{2060}'..='\u{2064}' // word joiner, invisible operators
            | '\u{2066}'..='\u{2069}' // isolates
            | '\u{061C}' // Arabic letter mark
            | '\u{FEFF}' // zero-width no-break space
            | '\u{00AD}' // soft hyphen
            | '\u{180E}' // Mongolian vowel separator
            | '\u{034F}' // combining grapheme joiner
            | '\u{115F}' | '\u{1160}' | '\u{3164}' | '\u{FFA0}' // Hangul fillers (render blank)
            | '\u{2028}' | '\u{2029}' // line and paragraph separators
            | '\u{2800}' // braille blank
            | '\u{E0000}'..='\u{E007F}' // tag characters
    )
}

pub(crate) const IMAGE_URL_MAX: usize = 2048;

/// An avatar URL: absolute `http` or `https` with a host, at most 2048 characters.
pub(crate) fn image_url(raw: &str) -> Result<String, AuthError> {
    let raw = raw.trim();
    let invalid = || {
        AuthError::bad_input(
            Input::Image,
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
        assert_eq!(
            normalize_email("o'brien+tag@example.co.uk").as_deref(),
            Some("o'brien+tag@example.co.uk")
        );
        for bad in [
            "",
            "alice",
            "alice@",
            "@example.com",
            "a b@example.com",
            "\"x y\"@example.com",
            "\"alice\"@example.com",
            "alice@localhost",
            "alice@[192.0.2.1]",
            "alice(comment)@example.com",
            "alice@-example.com",
            "alice@example..com",
            "a@b@example.com",
            "jos\u{e9}@example.com",
        ] {
            assert_eq!(normalize_email(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn only_ascii_is_case_folded_and_unicode_domains_become_punycode() {
        // The Kelvin sign is not the letter k: no Unicode folding merges addresses.
        assert_eq!(normalize_email("\u{212A}elvin@example.com"), None);
        assert_eq!(normalize_email("kelvin@\u{212A}.example.com").as_deref(), Some("kelvin@k.example.com"));
        assert_eq!(normalize_email("Hans@B\u{FC}cher.DE").as_deref(), Some("hans@xn--bcher-kva.de"));
        assert_eq!(normalize_email("hans@xn--bcher-kva.de").as_deref(), Some("hans@xn--bcher-kva.de"));
    }

    #[test]
    fn names_that_display_as_something_else_are_refused() {
        assert_eq!(profile_name(Some("  Ada Lovelace ".into())).unwrap().as_deref(), Some("Ada Lovelace"));
        assert!(profile_name(Some("Zo\u{eb} \u{5d3}\u{5d5}\u{5d3}".into())).is_ok(), "letters of any script");
        for bad in [
            "abc\u{202E}gnp.exe",
            "ad\u{200B}min",
            "x\u{2066}y",
            "a\u{FEFF}b",
            "tab\there",
            "ad\u{3164}min",
            "a\u{E0041}b",
            "a\u{2028}b",
        ] {
            assert!(profile_name(Some(bad.into())).is_err(), "{bad:?}");
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
        assert!(new_password("radium polonium 1898", email, 2, Input::Password).is_ok());
        assert!(new_password("password", email, 2, Input::Password).is_err(), "common");
        assert!(new_password("12345678", email, 2, Input::Password).is_err(), "common");
        assert!(
            new_password("xMarie.Curie!99", email, 0, Input::Password).is_err(),
            "contains the email name"
        );
        assert!(new_password("mariecurie-rocks-2024", email, 0, Input::Password).is_err(), "without the dot");
        assert!(new_password("Curie was brilliant", email, 0, Input::Password).is_err(), "one of its words");
        assert!(new_password("radium polonium 1898", email, 0, Input::Password).is_ok());
        assert!(new_password("password", email, 0, Input::Password).is_ok(), "estimator off");
    }

    #[test]
    fn password_length_counts_code_points() {
        assert!(password_length_ok("éééééééé")); // 8 code points, 16 bytes
        assert!(!password_length_ok("1234567"));
        assert!(password_length_ok(&"x".repeat(128)));
        assert!(!password_length_ok(&"x".repeat(129)));
    }
}
