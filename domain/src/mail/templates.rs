//! The messages we send. Links carry the URL-safe token and point at the
//! configured app, which calls `verifyEmail` / `resetPassword`.

use super::Email;

fn link(app_url: &str, path: &str, token: &str) -> String {
    format!("{}/{path}?token={token}", app_url.trim_end_matches('/'))
}

/// Minimal escaping for text placed in HTML (the link is already URL-safe,
/// but the app URL comes from configuration).
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn compose(to: &str, subject: &str, intro: &str, action: &str, url: &str, outro: &str) -> Email {
    let text = format!("{intro}\n\n{action}:\n{url}\n\n{outro}\n");
    let html = format!(
        "<!doctype html><html><body style=\"font-family:sans-serif\"><p>{}</p>\
         <p><a href=\"{url_html}\">{}</a></p><p style=\"color:#666\">{}</p></body></html>",
        escape(intro),
        escape(action),
        escape(outro),
        url_html = escape(url),
    );
    Email { to: to.to_owned(), subject: subject.to_owned(), text, html }
}

pub(crate) fn verify_email(to: &str, app_url: &str, token: &str, valid_hours: u64) -> Email {
    compose(
        to,
        "Confirm your email address",
        "Please confirm that this is your email address.",
        "Confirm your email",
        &link(app_url, "verify-email", token),
        &format!(
            "The link works once and expires in {valid_hours} hours. If you did not sign up, ignore this message."
        ),
    )
}

pub(crate) fn reset_password(to: &str, app_url: &str, token: &str, valid_minutes: u64) -> Email {
    compose(
        to,
        "Reset your password",
        "Someone (hopefully you) asked to reset the password of this account.",
        "Choose a new password",
        &link(app_url, "reset-password", token),
        &format!(
            "The link works once and expires in {valid_minutes} minutes. If you did not ask, ignore this message: your password stays as it is."
        ),
    )
}

/// The sign-in methods, as the owner reads them in a notice.
fn methods_line(methods: &[String]) -> String {
    if methods.is_empty() {
        return "Your account has no way to sign in left.".to_owned();
    }
    format!("Ways to sign in to your account now: {}.", methods.join(", "))
}

/// Tells the owner that a new way into the account was added, so a stolen
/// session cannot quietly set itself up a lasting one. Every way in is
/// listed, so one the owner does not know stands out.
pub(crate) fn sign_in_method_added(to: &str, app_url: &str, what: &str, methods: &[String]) -> Email {
    compose(
        to,
        "A new way to sign in was added to your account",
        &format!("{what} was just added to your account. {}", methods_line(methods)),
        "Review your account",
        app_url,
        "If this was you, there is nothing to do. If not, reset your password and sign out your other sessions.",
    )
}

/// Tells the owner a passkey left their account.
pub(crate) fn passkey_removed(to: &str, app_url: &str, methods: &[String]) -> Email {
    compose(
        to,
        "A passkey was removed from your account",
        &format!("A passkey was just removed from your account. {}", methods_line(methods)),
        "Review your account",
        app_url,
        "If this was you, there is nothing to do. If not, reset your password and sign out your other sessions.",
    )
}

/// Tells the owner a sign-in method (a provider) left their account.
pub(crate) fn sign_in_method_removed(to: &str, app_url: &str, what: &str, methods: &[String]) -> Email {
    compose(
        to,
        "A way to sign in was removed from your account",
        &format!("{what} was just removed from your account. {}", methods_line(methods)),
        "Review your account",
        app_url,
        "If this was you, there is nothing to do. If not, reset your password and sign out your other sessions.",
    )
}

/// Tells the owner their password was changed or reset (ASVS 2.2.3).
pub(crate) fn password_changed(to: &str, app_url: &str, how: &str, methods: &[String]) -> Email {
    compose(
        to,
        "Your password was changed",
        &format!("The password of your account was just {how}. {}", methods_line(methods)),
        "Review your account",
        app_url,
        "If this was you, there is nothing to do. If not, reset your password now: the link in a reset mail signs out every session.",
    )
}

/// Tells the owner two-factor was turned on or off, or recovery codes
/// replaced: a stolen session must not quietly weaken (or take over) the
/// second factor.
pub(crate) fn two_factor_changed(to: &str, app_url: &str, what: &str, methods: &[String]) -> Email {
    compose(
        to,
        "Two-factor sign-in changed on your account",
        &format!("{what} {}", methods_line(methods)),
        "Review your account",
        app_url,
        "If this was you, there is nothing to do. If not, reset your password now and sign out your other sessions.",
    )
}

/// Sent instead of an answer that would reveal the address has an account
/// (`AUTHGATE_REGISTER_PRIVACY`).
pub(crate) fn registration_attempted(to: &str, app_url: &str) -> Email {
    compose(
        to,
        "Someone tried to register with your address",
        "Someone just tried to create an account with this email address, which already has one.",
        "Sign in or reset your password",
        app_url,
        "If this was you, sign in instead (or reset your password if you forgot it). If not, ignore this message: nothing changed.",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every value that reaches a mail's HTML part (the configured app URL,
    /// the token, what changed, the ways in) is escaped there: none can
    /// close an attribute, open a tag or start an entity.
    #[test]
    fn every_value_in_the_html_part_is_escaped() {
        let hostile = "x\"'><script>alert(1)</script>&amp;";
        let methods = vec![hostile.to_owned(), "password".to_owned()];
        let mails = [
            verify_email("a@example.com", hostile, hostile, 24),
            reset_password("a@example.com", hostile, hostile, 30),
            sign_in_method_added("a@example.com", hostile, hostile, &methods),
            passkey_removed("a@example.com", hostile, &methods),
            sign_in_method_removed("a@example.com", hostile, hostile, &methods),
            password_changed("a@example.com", hostile, hostile, &methods),
            two_factor_changed("a@example.com", hostile, hostile, &methods),
            registration_attempted("a@example.com", hostile),
        ];
        for mail in &mails {
            let html = &mail.html;
            assert!(!html.contains("<script"), "{}: {html}", mail.subject);
            assert!(
                !html.contains("x\"") && !html.contains("x'"),
                "{}: an attribute could be closed: {html}",
                mail.subject
            );
            assert!(html.contains("x&quot;&#39;&gt;&lt;script&gt;"), "{}: {html}", mail.subject);
            assert!(html.contains("&amp;amp;"), "{}: an entity passed through: {html}", mail.subject);
            assert!(
                mail.text.contains(hostile),
                "{}: the plain-text part keeps the value as it is",
                mail.subject
            );
        }
    }

    /// A notice lists every way in the account has now (so one the owner
    /// does not know stands out), or says there is none left.
    #[test]
    fn a_notice_lists_the_ways_in() {
        let methods = vec!["password".to_owned(), "github".to_owned(), "a passkey".to_owned()];
        let notice = passkey_removed("a@example.com", "https://app.example.com", &methods);
        let listed = "Ways to sign in to your account now: password, github, a passkey.";
        assert!(notice.text.contains(listed) && notice.html.contains(listed), "{}", notice.text);
        let none = password_changed("a@example.com", "https://app.example.com", "reset", &[]);
        assert!(none.text.contains("Your account has no way to sign in left."), "{}", none.text);
    }
}
