//! Passkeys (WebAuthn, through webauthn-rs) as a factor: registering one,
//! removing one, and verifying an assertion (shared by the passkey
//! sign-in and reauthentication). A ceremony's state lives in
//! `passkey_challenges` between its two requests, spent once.

use entity::{passkey_challenges, passkeys, users};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait,
    QueryFilter, sea_query::Expr,
};
use serde_json::Value;
use tracing::instrument;
use uuid::Uuid;
use webauthn_rs::prelude::{
    AuthenticationResult, CredentialID, DiscoverableAuthentication, Passkey, PasskeyRegistration,
    PublicKeyCredential, RegisterPublicKeyCredential, Url, Webauthn, WebauthnBuilder,
};

use crate::{
    AuthContext,
    config::Config,
    error::{AuthError, Input},
    events::{Event, Kind},
    limits,
    limits::Rule,
    notices::Notice,
    session,
    session::{Assurance, CurrentSession, change::Change, step_up, step_up::Presence},
    token, user,
    user::{validate, ways_in},
};

/// How long a ceremony may take.
pub(crate) const CHALLENGE_TTL: chrono::Duration = chrono::Duration::minutes(5);

/// Most passkeys one account may hold (each is a way in to list, mail
/// about and check; a real person has a handful).
pub(crate) const MAX_PER_USER: usize = 20;

const REGISTER: &str = "register";

pub(crate) const SIGN_IN: &str = "sign_in";

/// The relying party the configuration describes (checked at start-up).
pub(crate) fn relying_party(config: &Config) -> anyhow::Result<Webauthn> {
    let rp_id = config.webauthn_rp_id();
    let origins = config
        .webauthn_origins()
        .iter()
        .map(|o| Url::parse(o).map_err(|e| anyhow::anyhow!("AUTHGATE_WEBAUTHN_ORIGINS: {o}: {e}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let (first, others) = origins.split_first().ok_or_else(|| anyhow::anyhow!("no WebAuthn origin"))?;
    let mut builder = WebauthnBuilder::new(&rp_id, first)
        .map_err(|e| anyhow::anyhow!("AUTHGATE_WEBAUTHN_RP_ID {rp_id} does not fit origin {first}: {e}"))?
        .rp_name(&config.webauthn_rp_name)
        .timeout(CHALLENGE_TTL.to_std()?);
    for origin in others {
        builder = builder.append_allowed_origin(origin);
    }
    builder.build().map_err(|e| anyhow::anyhow!("WebAuthn relying party {rp_id}: {e}"))
}

/// The user's passkeys, oldest first (`me { passkeys }`).
pub async fn of_user(auth: &AuthContext, user_id: Uuid) -> Result<Vec<passkeys::Model>, AuthError> {
    ways_in::passkeys_of(&auth.db, user_id).await
}

/// The passkeys of each of `user_ids`, oldest first: one query for all.
pub async fn of_users(
    auth: &AuthContext,
    user_ids: &[Uuid],
) -> Result<std::collections::HashMap<Uuid, Vec<passkeys::Model>>, sea_orm::DbErr> {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
    let rows = passkeys::Entity::find()
        .filter(passkeys::Column::UserId.is_in(user_ids.iter().copied()))
        .order_by_asc(passkeys::Column::CreatedAt)
        .order_by_asc(passkeys::Column::Id)
        .all(&auth.db)
        .await?;
    Ok(crate::user::group_by_user(rows, |row| row.user_id))
}

/// Creation options for a new passkey of the caller, in the JSON form
/// `PublicKeyCredential.parseCreationOptionsFromJSON` reads. Step-up; the
/// caller's passkeys are excluded (an authenticator holds one per account).
#[instrument(skip_all, fields(user_id = %current.user.id))]
pub async fn start_registration(auth: &AuthContext, current: &CurrentSession) -> Result<Value, AuthError> {
    // An impersonation changes none of this, and spends none of the user's budgets.
    crate::session::step_up::own_session(current)?;
    step_up::require_to_add(auth, current)?;
    let user = &current.user;
    limits::hit(auth, Rule::FactorChangeAccount, &user.id.to_string()).await?;
    let existing: Vec<CredentialID> = ways_in::passkeys_of(&auth.db, user.id)
        .await?
        .into_iter()
        .map(|p| CredentialID::from(p.credential_id))
        .collect();
    if existing.len() >= MAX_PER_USER {
        return Err(too_many());
    }
    let display = user.name.as_deref().unwrap_or(&user.email);
    let (options, state) = auth
        .webauthn
        .start_passkey_registration(user.id, &user.email, display, Some(existing).filter(|e| !e.is_empty()))
        .map_err(|e| internal("starting a passkey registration", e))?;
    let mut options =
        serde_json::to_value(&options.public_key).map_err(|e| internal("encoding creation options", e))?;
    // Discoverable: the sign-in asks for no email, so the authenticator
    // must keep the credential (and the user it belongs to). The library
    // leaves this to the authenticator; the ceremony's checks are the same.
    options["authenticatorSelection"]["residentKey"] = "required".into();
    options["authenticatorSelection"]["requireResidentKey"] = true.into();
    let now = auth.clock.now();
    let (_turn, txn) = auth.write().await?;
    // One registration at a time per session: a restart replaces it.
    passkey_challenges::Entity::delete_many()
        .filter(passkey_challenges::Column::SessionId.eq(current.session.id))
        .exec(&txn)
        .await?;
    store_ceremony(&txn, now, REGISTER, None, Some((user.id, current.session.id)), &state).await?;
    txn.commit().await?;
    Ok(options)
}

/// Keeps a ceremony's state between its two requests (5 minutes, spent
/// once): `purpose` `REGISTER` or `SIGN_IN`; `handle` the hash of the
/// handle a sign-in answers with; `owner` the user and session it began
/// under, if any.
pub(crate) async fn store_ceremony(
    conn: &impl ConnectionTrait,
    now: chrono::DateTime<chrono::Utc>,
    purpose: &str,
    handle: Option<Vec<u8>>,
    owner: Option<(Uuid, Uuid)>,
    state: &impl serde::Serialize,
) -> Result<(), AuthError> {
    passkey_challenges::ActiveModel {
        id: Set(Uuid::new_v4()),
        purpose: Set(purpose.into()),
        token_hash: Set(handle),
        user_id: Set(owner.map(|(user_id, _)| user_id)),
        session_id: Set(owner.map(|(_, session_id)| session_id)),
        state: Set(to_json(state)?),
        expires_at: Set(now + CHALLENGE_TTL),
        created_at: Set(now),
    }
    .insert(conn)
    .await?;
    Ok(())
}

/// Verifies the browser's answer to `start_registration` (the form
/// `PublicKeyCredential.toJSON()` produces) and stores the passkey.
/// `INVALID_TOKEN` without a live registration begun by this session;
/// `INVALID_CREDENTIALS` when the attestation does not verify (wrong
/// origin, relying party, challenge, no user verification) or the
/// credential is registered already.
#[instrument(skip_all, fields(user_id = %current.user.id))]
pub async fn finish_registration(
    auth: &AuthContext,
    current: &CurrentSession,
    credential: Value,
    name: Option<String>,
) -> Result<passkeys::Model, AuthError> {
    // An impersonation changes none of this, and spends none of the user's budgets.
    crate::session::step_up::own_session(current)?;
    if !current.user.email_verified {
        return Err(AuthError::EmailNotVerified);
    }
    let name = validate::profile_name(name)?;
    let credential: RegisterPublicKeyCredential = serde_json::from_value(credential).map_err(|_| {
        AuthError::bad_input(Input::Credential, "not a credential from PublicKeyCredential.toJSON()")
    })?;
    let found = passkey_challenges::Entity::find()
        .filter(passkey_challenges::Column::SessionId.eq(current.session.id))
        .filter(passkey_challenges::Column::Purpose.eq(REGISTER))
        .one(&auth.db)
        .await?;
    let state: PasskeyRegistration = spend(auth, found).await?;
    let passkey = auth
        .webauthn
        .finish_passkey_registration(&credential, &state)
        .map_err(|e| refused("passkey registration", e))?;
    let now = auth.clock.now();
    let facts = Facts::of(&passkey)?;
    // The library keeps transports only from an attestation it trusts; the
    // browser's report is kept as the hint it is (parsed: known names only).
    let reported = credential.response.transports.as_ref().map(to_json).transpose()?;
    // Under the user's row, on the credentials the session was read with,
    // and only while that session lives: a password change, reset or claim
    // that committed meanwhile wins (a stolen session's passkey does not
    // land after the owner took the account back). Counted again there:
    // two ceremonies may have begun under the cap, and finish at once.
    let change = Change::begin_noticed(auth, current).await?;
    let txn = change.txn();
    if ways_in::passkeys_of(txn, current.user.id).await?.len() >= MAX_PER_USER {
        return Err(too_many());
    }
    let row = passkeys::ActiveModel {
        id: Set(Uuid::new_v4()),
        user_id: Set(current.user.id),
        credential_id: Set(passkey.cred_id().clone()),
        credential: Set(to_json(&passkey)?),
        counter: Set(facts.counter),
        backup_eligible: Set(facts.backup_eligible),
        backup_state: Set(facts.backup_state),
        transports: Set(facts.transports.or(reported)),
        name: Set(name.clone()),
        created_at: Set(now),
        last_used_at: Set(None),
    }
    .insert(txn)
    .await
    .map_err(|e| AuthError::unique_or(e, AuthError::PasskeyRefused))?;
    change.record(Kind::PasskeyAdded, &[("passkey_id", row.id.to_string().into())]).await?;
    let committed = change.commit().await?;
    tracing::info!(passkey_id = %row.id, "passkey registered");
    committed.notify(Notice::MethodAdded("A passkey".to_owned())).await;
    Ok(row)
}

/// Proves presence for the caller's session with a passkey of theirs:
/// raises it to two factors. Another user's passkey is `INVALID_CREDENTIALS`.
pub(crate) async fn reauthenticate(
    auth: &AuthContext,
    current: &CurrentSession,
    challenge: &str,
    credential: Value,
) -> Result<(), AuthError> {
    let asserted = verify(auth, challenge, credential).await?;
    if asserted.user.id != current.user.id {
        tracing::info!("a passkey of another user was offered for reauthentication");
        return Err(AuthError::PasskeyRefused);
    }
    let forget = auth.sessions.changing(current.user.id);
    let (_turn, txn) = auth.write().await?;
    asserted.record_use(&txn, auth).await?;
    if !session::proved_presence(&txn, &current.session, auth.clock.now(), Assurance::TwoFactors).await? {
        return Err(AuthError::Unauthenticated);
    }
    Event::new(Kind::SessionReauthenticated, current.user.id)
        .session(current.session.id)
        .with("method", "passkey")
        .with("assurance", Assurance::TwoFactors as i16)
        .record(&txn, auth, &current.meta)
        .await?;
    txn.commit().await?;
    forget.done();
    tracing::info!(passkey_id = %asserted.row.id, "presence proved with a passkey");
    Ok(())
}

/// Removes one of the caller's passkeys (step-up): `false` for an id that
/// is not theirs, `LAST_SIGN_IN_METHOD` when it is their last way in.
#[instrument(skip_all, fields(user_id = %current.user.id))]
pub async fn remove(auth: &AuthContext, current: &CurrentSession, id: Uuid) -> Result<bool, AuthError> {
    // An impersonation changes none of this, and spends none of the user's budgets.
    crate::session::step_up::own_session(current)?;
    step_up::require(auth, current, Presence::Recent)?;
    let user_id = current.user.id;
    // Not counted against the factor-change budget: an intruder who spent
    // it must not keep the owner from removing what they added.
    let change = Change::begin_noticed(auth, current).await?;
    let txn = change.txn();
    // Serializes with unlinks and other removals of this user (see `unlink`).
    user::bump_credentials(txn, user_id).await?;
    let mine = passkeys::Entity::find()
        .filter(passkeys::Column::UserId.eq(user_id))
        .filter(passkeys::Column::Id.eq(id))
        .count(txn)
        .await?;
    if mine == 0 {
        return Ok(false);
    }
    if ways_in::count(txn, user_id).await? <= 1 {
        return Err(AuthError::LastSignInMethod);
    }
    passkeys::Entity::delete_by_id(id).exec(txn).await?;
    change.record(Kind::PasskeyRemoved, &[("passkey_id", id.to_string().into())]).await?;
    change.commit().await?.notify(Notice::PasskeyRemoved).await;
    tracing::info!(passkey_id = %id, "passkey removed");
    Ok(true)
}

/// An assertion that verified: the user, the passkey's row, the passkey
/// with its new counter and flags.
pub(crate) struct Asserted {
    pub(crate) user: users::Model,
    pub(crate) row: passkeys::Model,
    passkey: Passkey,
    result: AuthenticationResult,
}

impl Asserted {
    /// Stores the new counter and flags, if no other assertion of this
    /// passkey got there first (the counter it was checked against is
    /// still the stored one): `INVALID_CREDENTIALS` otherwise.
    pub(crate) async fn record_use(
        &self,
        conn: &impl ConnectionTrait,
        auth: &AuthContext,
    ) -> Result<(), AuthError> {
        let updated = passkeys::Entity::update_many()
            .col_expr(passkeys::Column::Counter, Expr::value(i64::from(self.result.counter())))
            .col_expr(passkeys::Column::BackupState, Expr::value(self.result.backup_state()))
            .col_expr(passkeys::Column::BackupEligible, Expr::value(self.result.backup_eligible()))
            .col_expr(passkeys::Column::Credential, Expr::value(to_json(&self.passkey)?))
            .col_expr(passkeys::Column::LastUsedAt, Expr::value(auth.clock.now()))
            .filter(passkeys::Column::Id.eq(self.row.id))
            .filter(passkeys::Column::Counter.eq(self.row.counter))
            .exec(conn)
            .await?;
        if updated.rows_affected != 1 {
            tracing::info!(passkey_id = %self.row.id, "a concurrent assertion of this passkey came first");
            return Err(AuthError::PasskeyRefused);
        }
        Ok(())
    }
}

/// Spends the sign-in ceremony `challenge` names and checks `credential`
/// (the form `PublicKeyCredential.toJSON()` produces) against it and the
/// passkey it names: signature, challenge, origin, relying party, user
/// verification, a signature counter that moved forward.
pub(crate) async fn verify(
    auth: &AuthContext,
    challenge: &str,
    credential: Value,
) -> Result<Asserted, AuthError> {
    let hash = token::hash_presented(challenge).ok_or(AuthError::InvalidToken)?;
    let found = passkey_challenges::Entity::find()
        .filter(passkey_challenges::Column::TokenHash.eq(hash))
        .filter(passkey_challenges::Column::Purpose.eq(SIGN_IN))
        .one(&auth.db)
        .await?;
    let state: DiscoverableAuthentication = spend(auth, found).await?;
    // The parser's words are not logged: they may quote the client's input.
    let credential: PublicKeyCredential = serde_json::from_value(credential)
        .map_err(|_| refused("passkey assertion", "not a PublicKeyCredential"))?;
    let (user_id, credential_id) = auth
        .webauthn
        .identify_discoverable_authentication(&credential)
        .map_err(|e| refused("passkey assertion", e))?;
    let (row, user) = match passkeys::Entity::find()
        .filter(passkeys::Column::CredentialId.eq(credential_id.to_vec()))
        .find_also_related(users::Entity)
        .one(&auth.db)
        .await?
    {
        Some((row, Some(user))) => (row, user),
        _ => return Err(refused("passkey assertion", "unknown credential (removed, or never registered)")),
    };
    if row.user_id != user_id {
        return Err(refused("passkey assertion", "the credential belongs to another user than it names"));
    }
    let mut passkey: Passkey =
        serde_json::from_str(&row.credential).map_err(|e| internal("reading a stored passkey", e))?;
    let result = auth
        .webauthn
        .finish_discoverable_authentication_v2(&credential, state, &passkey)
        .map_err(|e| refused("passkey assertion", e))?;
    passkey.update_credential(&result);
    Ok(Asserted { user, row, passkey, result })
}

/// The library's state of a live ceremony, spent now (whatever comes of
/// it): `INVALID_TOKEN` when there is none, it expired, or a concurrent
/// attempt spent it first.
pub(crate) async fn spend<S: serde::de::DeserializeOwned>(
    auth: &AuthContext,
    found: Option<passkey_challenges::Model>,
) -> Result<S, AuthError> {
    let Some(found) = found else { return Err(AuthError::InvalidToken) };
    let spent = passkey_challenges::Entity::delete_by_id(found.id).exec(&auth.db).await?;
    if spent.rows_affected != 1 || found.expires_at <= auth.clock.now() {
        return Err(AuthError::InvalidToken);
    }
    serde_json::from_str(&found.state).map_err(|e| internal("reading a passkey ceremony", e))
}

/// What the row keeps beside the library's own serialisation.
pub(crate) struct Facts {
    counter: i64,
    backup_eligible: bool,
    backup_state: bool,
    transports: Option<String>,
}

impl Facts {
    /// Read from the credential as the library serialises it (its fields
    /// are not public otherwise).
    fn of(passkey: &Passkey) -> Result<Self, AuthError> {
        let json = serde_json::to_value(passkey).map_err(|e| internal("encoding a passkey", e))?;
        let cred = &json["cred"];
        Ok(Self {
            counter: cred["counter"].as_i64().unwrap_or(0),
            backup_eligible: cred["backup_eligible"].as_bool().unwrap_or(false),
            backup_state: cred["backup_state"].as_bool().unwrap_or(false),
            transports: cred.get("transports").filter(|t| !t.is_null()).map(Value::to_string),
        })
    }
}

pub(crate) fn too_many() -> AuthError {
    AuthError::bad_input(
        Input::Credential,
        format!("an account holds at most {MAX_PER_USER} passkeys: remove one first"),
    )
}

pub(crate) fn to_json(value: &impl serde::Serialize) -> Result<String, AuthError> {
    serde_json::to_string(value).map_err(|e| internal("encoding WebAuthn state", e))
}

/// A ceremony that did not verify: logged with its reason (never the
/// credential), answered `INVALID_CREDENTIALS`.
pub(crate) fn refused(what: &str, reason: impl std::fmt::Display) -> AuthError {
    tracing::info!(%reason, "{what} refused");
    crate::telemetry::AuthEvent::PasskeyFailure.count();
    AuthError::PasskeyRefused
}

#[track_caller]
pub(crate) fn internal(what: &str, error: impl std::fmt::Display) -> AuthError {
    AuthError::internal(&format!("{what} failed"), error)
}
