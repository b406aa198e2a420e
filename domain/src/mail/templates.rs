//! The messages we send. Links carry the URL-safe token and point at the
//! configured app, which calls `verifyEmail` / `resetPassword`.

use super::Email;

fn link(app_url: &str, path: &str, token: &str) -> String {
    format!("{}/{path}?token={token}", app_url.trim_end_matches('/'))
}

/// Minimal escaping for text placed in HTML (the link is already URL-safe,
/// but the app URL comes from configuration).
fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
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
