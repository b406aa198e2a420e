//! Signed access tokens for the app's other services: short-lived JWTs
//! (RFC 9068) they verify with the public keys of the JWKS, no call back,
//! and a revocation feed that tells them at once which sessions ended
//! (`revocations`). Minting is a signature, not a database write.

mod jwt;
pub mod keys;
pub use jwt::Alg;
pub mod revocations;

use chrono::{DateTime, Utc};

use crate::{
    AuthContext,
    error::{AuthError, Input},
    session::CurrentSession,
};

/// A token and when it expires.
pub struct AccessToken {
    pub token: secrecy::SecretString,
    pub expires_at: DateTime<Utc>,
}

/// A token of the caller's session for `audience` (one of
/// `AUTHGATE_JWT_AUDIENCES`). It expires after `AUTHGATE_JWT_TTL`, or
/// with the session if that comes first: the session's expiry needs no
/// entry in the revocation feed.
pub async fn mint(
    auth: &AuthContext,
    current: &CurrentSession,
    audience: &str,
) -> Result<AccessToken, AuthError> {
    if audience.is_empty() || !auth.config.jwt_audiences.iter().any(|allowed| allowed.trim() == audience) {
        return Err(AuthError::bad_input(
            Input::Audience,
            "not an audience this server issues tokens for (AUTHGATE_JWT_AUDIENCES)",
        ));
    }
    // The time first: a token's `exp` must not drift past a feed entry's
    // `expiresAt` while it waits for the keys.
    let now = auth.clock.now();
    let rsa = auth.config.jwt_rs256_audiences.iter().any(|rs| rs.trim() == audience);
    let signer = keys::signer(auth, if rsa { Alg::Rs256 } else { Alg::Es256 }).await?;
    let session = &current.session;
    let expires_at = (now + keys::ttl(auth)).min(session.expires_at);
    let claims = jwt::Claims {
        iss: auth.config.public_url.trim_end_matches('/'),
        sub: current.user.id.to_string(),
        aud: audience,
        exp: expires_at.timestamp(),
        iat: now.timestamp(),
        jti: uuid::Uuid::new_v4().to_string(),
        sid: session.id.to_string(),
        auth_time: session.authenticated_at.timestamp(),
        acr: session.assurance_level.to_string(),
        amr: amr(session.method.as_deref(), session.assurance_level),
        // An impersonation acts as the user, never with their roles: a
        // service authorizing by `roles` gives the admin no more than the
        // user's own account without them.
        roles: if session.impersonator_id.is_some() { &[] } else { &current.roles },
        act: session.impersonator_id.map(|admin| jwt::Actor { sub: admin.to_string() }),
    };
    let token = signer.sign(&claims).map_err(|e| AuthError::internal("signing an access token", e))?;
    Ok(AccessToken { token: token.into(), expires_at })
}

/// RFC 8176 method references for how the session was signed into.
fn amr(method: Option<&str>, assurance: i16) -> &'static [&'static str] {
    match method {
        Some("second_step") => &["pwd", "otp", "mfa"],
        Some("passkey") => &["hwk", "user"],
        Some("provider") => &["fed"],
        // An admin's doing, not a proof by the user.
        Some("impersonation") => &[],
        Some("password" | "registration") => &["pwd"],
        // Sessions from before the method was kept: what the level says.
        _ if assurance >= 2 => &["mfa"],
        _ => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::amr;

    #[test]
    fn methods_map_to_rfc_8176_references() {
        assert_eq!(amr(Some("password"), 1), ["pwd"]);
        assert_eq!(amr(Some("registration"), 1), ["pwd"]);
        assert_eq!(amr(Some("second_step"), 2), ["pwd", "otp", "mfa"]);
        assert_eq!(amr(Some("passkey"), 2), ["hwk", "user"]);
        assert_eq!(amr(Some("provider"), 1), ["fed"]);
        assert_eq!(amr(None, 2), ["mfa"]);
        assert!(amr(None, 1).is_empty());
    }
}
