//! Signing in with a passkey (two factors by itself): the ceremony's two
//! requests.

use entity::passkey_challenges;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use secrecy::SecretString;
use serde_json::Value;
use tracing::instrument;
use uuid::Uuid;

use crate::{
    AuthContext, ClientMeta,
    error::AuthError,
    factors::passkey::{SIGN_IN, internal, store_ceremony, verify},
    limits,
    limits::Rule,
    session,
    session::{Assurance, admission, admission::Way},
    sign_in::SignedIn,
    token,
};

/// A sign-in ceremony: the handle the client sends back with its answer,
/// and the request options (`PublicKeyCredential.parseRequestOptionsFromJSON`).
pub struct SignInChallenge {
    pub challenge: SecretString,
    pub options: Value,
}

/// Begins a passkey sign-in (or a `reauthenticate` with a passkey). No
/// email asked: the authenticator offers the passkeys it holds for this
/// relying party. Counted per client like `login` (every start is a row).
/// `signed_in`: the live session the request carries, as `(user, session)`
/// (a `reauthenticate` with a passkey). Its ceremony is bound to the
/// session, one at a time (a new start replaces it), so its rows are
/// bounded by live sessions; it is counted per user instead of against the
/// ceilings on anonymous starts, so a flood of those cannot keep a user
/// from proving presence.
pub async fn start_sign_in(
    auth: &AuthContext,
    meta: &ClientMeta,
    signed_in: Option<(Uuid, Uuid)>,
) -> Result<SignInChallenge, AuthError> {
    limits::hit(auth, Rule::LoginIp, &limits::ip_subject(meta)).await?;
    // Anyone may start one without an account: ceilings per network and
    // for the whole server bound the rows many addresses can make.
    match signed_in {
        Some((user_id, _)) => {
            limits::hit(auth, Rule::PasskeySignInNetwork, &format!("user:{user_id}")).await?
        }
        None => {
            limits::hit(auth, Rule::PasskeySignInNetwork, &limits::network_subject(meta)).await?;
            limits::hit(auth, Rule::PasskeySignInGlobal, "all").await?;
        }
    }
    let (options, state) = auth
        .webauthn
        .start_discoverable_authentication()
        .map_err(|e| internal("starting a passkey sign-in", e))?;
    let now = auth.clock.now();
    let handle = token::generate();
    let (_turn, txn) = auth.write().await?;
    if let Some((_, session_id)) = signed_in {
        passkey_challenges::Entity::delete_many()
            .filter(passkey_challenges::Column::SessionId.eq(session_id))
            .filter(passkey_challenges::Column::Purpose.eq(SIGN_IN))
            .exec(&txn)
            .await?;
    }
    store_ceremony(&txn, now, SIGN_IN, Some(handle.hash), signed_in, &state).await?;
    txn.commit().await?;
    // The options without `mediation: conditional` (the library's default
    // for discoverable sign-ins): the page decides how to ask.
    let options =
        serde_json::to_value(&options.public_key).map_err(|e| internal("encoding request options", e))?;
    Ok(SignInChallenge { challenge: handle.secret.into(), options })
}

/// Finishes a passkey sign-in: a session with two factors. `INVALID_TOKEN`
/// for a handle that is unknown, expired or spent; `INVALID_CREDENTIALS`
/// for any assertion that does not verify.
#[instrument(skip_all, fields(user_id))]
pub async fn finish_sign_in(
    auth: &AuthContext,
    challenge: &str,
    credential: Value,
    meta: &ClientMeta,
) -> Result<SignedIn, AuthError> {
    limits::hit(auth, Rule::LoginIp, &limits::ip_subject(meta)).await?;
    let asserted = verify(auth, challenge, credential).await?;
    let user = asserted.user.clone();
    tracing::Span::current().record("user_id", tracing::field::display(user.id));
    auth.checkpoints.reach("passkey_sign_in:verified").await;
    // Writes first (SQLite takes its write lock at once); the gate holds
    // the user on the credentials read with the passkey, so a password
    // change, a removal of this passkey or a claim that committed since
    // wins.
    let (_turn, txn) = auth.write().await?;
    asserted.record_use(&txn, auth).await?;
    let version = user.credentials_version;
    let admitted =
        admission::admit(&txn, auth, user.id, version, Way::Passkey, Assurance::TwoFactors).await?;
    let new = session::create(&txn, auth, admitted, meta).await?;
    txn.commit().await?;
    let (token, session) = new.committed();
    tracing::info!(passkey_id = %asserted.row.id, "signed in with a passkey");
    crate::telemetry::AuthEvent::LoginSuccess.count();
    Ok(SignedIn { token, session, user, device: None })
}
