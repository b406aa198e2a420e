//! Creating an account with an email and a password.

use entity::users;
use sea_orm::{ActiveModelTrait, ActiveValue::Set};
use tracing::instrument;
use uuid::Uuid;

use crate::{
    AuthContext, ClientMeta,
    error::{AuthError, Input},
    events::{Event, Kind},
    jobs::Lane,
    limits,
    limits::{Rule, device::Device},
    mail::templates,
    mailed::verification,
    session,
    session::{Assurance, admission, admission::Way},
    sign_in::SignedIn,
    user::{credential_account, validate},
};

pub struct Registration {
    pub email: String,
    pub password: String,
    pub name: Option<String>,
}

/// Creates the user, its `credential` account and a first session, atomically.
///
/// When addresses must be verified first, the user and its password are
/// created and the link is mailed, but no session: `EMAIL_NOT_VERIFIED`.
/// In privacy mode a taken address answers exactly that too (after the
/// same work), and its owner is mailed instead of the caller being told.
#[instrument(skip_all, fields(user_id))]
pub async fn register(
    auth: &AuthContext,
    input: Registration,
    meta: &ClientMeta,
) -> Result<SignedIn, AuthError> {
    limits::hit(auth, Rule::RegisterIp, &limits::ip_subject(meta)).await?;
    let email = validate::email_for_signup(&input.email, Input::Email)?;
    validate::new_password(&input.password, &email, auth.config.password_min_score, Input::Password)?;
    let name = validate::profile_name(input.name)?;
    // Per target address and for the whole server: probing which addresses
    // have an account (EMAIL_TAKEN) costs an attacker the same everywhere.
    limits::hit(auth, Rule::RegisterEmail, &email).await?;
    limits::hit(auth, Rule::RegisterGlobal, "all").await?;
    // Hash before opening the transaction: no connection is held for ~50 ms of CPU.
    let password_hash = auth.hasher.hash(input.password).await?;

    let now = auth.clock.now();
    let user_id = Uuid::new_v4();
    tracing::Span::current().record("user_id", tracing::field::display(user_id));
    // The verification link's place, before anything is written (a taken
    // address waits for it alike, so waiting tells nothing).
    let link = auth.jobs.reserve(Lane::Links).await;
    let (_turn, txn) = auth.write().await?;
    let inserted = users::ActiveModel {
        id: Set(user_id),
        email: Set(email.clone()),
        name: Set(name),
        image: Set(None),
        email_verified: Set(false),
        created_at: Set(now),
        updated_at: Set(now),
        credentials_version: Set(0),
        two_factor_enabled: Set(false),
        banned_at: Set(None),
        banned_until: Set(None),
        ban_reason: Set(None),
    }
    .insert(&txn)
    .await
    // The unique index on `users.email` is the duplicate check: no racy SELECT.
    .map_err(|err| AuthError::unique_or(err, AuthError::EmailTaken));
    let user = match inserted {
        Ok(user) => user,
        Err(AuthError::EmailTaken) if auth.config.register_privacy => {
            drop(txn);
            tracing::info!("registration with a taken address; owner notified");
            auth.mail.send(templates::registration_attempted(&email, &auth.config.app_url));
            return Err(AuthError::EmailNotVerified);
        }
        Err(e) => return Err(e),
    };
    credential_account(user_id, password_hash, now).insert(&txn).await?;
    Event::new(Kind::UserCreated, user_id).with("method", "password").record(&txn, auth, meta).await?;
    // The account exists either way; a session only if the gate admits it
    // (no session until the address is proved, when the server requires it).
    let admitted = admission::admit(&txn, auth, user_id, 0, Way::Registration, Assurance::OneFactor).await;
    let new = match admitted {
        Ok(admitted) => Some(session::create(&txn, auth, admitted, meta).await?),
        Err(AuthError::EmailNotVerified) => None,
        Err(e) => return Err(e),
    };
    txn.commit().await?;
    tracing::info!(signed_in = new.is_some(), "user registered");
    crate::telemetry::AuthEvent::Register.count();
    verification::queue_verification(link, auth, &user);
    let (token, session) = new.ok_or(AuthError::EmailNotVerified)?.committed();
    let device = Some(Device::issue(user.id, user.credentials_version));
    Ok(SignedIn { token, session, user, device })
}
