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

pub fn verify_email(to: &str, app_url: &str, token: &str, valid_hours: u64) -> Email {
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

pub fn reset_password(to: &str, app_url: &str, token: &str, valid_minutes: u64) -> Email {
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

/// Tells the owner that a new way into the account was added, so a stolen
/// session cannot quietly set itself up a lasting one.
pub fn sign_in_method_added(to: &str, app_url: &str, what: &str) -> Email {
    compose(
        to,
        "A new way to sign in was added to your account",
        &format!("{what} was just added to your account."),
        "Review your account",
        app_url,
        "If this was you, there is nothing to do. If not, reset your password and sign out your other sessions.",
    )
}
