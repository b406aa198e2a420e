use async_graphql::{Context, ID, Json, Object};
use domain::{AuthContext, factors::passkey, sign_in};
use secrecy::ExposeSecret;
use serde_json::Value;

use super::sign_in::started_session;
use crate::graphql::{
    GqlResult,
    guard::{SignedIn, client_meta, signed_in},
    types::{
        AuthPayload, FinishPasskeyRegistrationInput, FinishPasskeySignInInput, Passkey, PasskeyChallenge,
    },
};

#[derive(Default)]
pub struct PasskeyMutation;

#[Object]
impl PasskeyMutation {
    /// Creation options for a new passkey of the signed-in user, for
    /// `PublicKeyCredential.parseCreationOptionsFromJSON` (discoverable,
    /// user verification required; the user's passkeys excluded). Valid 5
    /// minutes, for this session; calling again starts over. Step-up
    /// (`REAUTHENTICATION_REQUIRED`); `EMAIL_NOT_VERIFIED` until the address
    /// is proved; `RATE_LIMITED` past the factor-change budget;
    /// `BAD_USER_INPUT` (field `credential`) at 20 passkeys.
    #[graphql(guard = "SignedIn")]
    async fn start_passkey_registration(&self, ctx: &Context<'_>) -> async_graphql::Result<Json<Value>> {
        let (auth, current) = signed_in(ctx)?;
        passkey::start_registration(auth, current).await.map(Json).gql()
    }

    /// Verifies the browser's new credential and keeps the passkey; mails
    /// the owner a notice. `INVALID_TOKEN` without a registration begun by
    /// this session in the last 5 minutes (each is single use);
    /// `INVALID_CREDENTIALS` when the credential does not verify (origin,
    /// relying party, challenge, user verification) or is registered
    /// already; `BAD_USER_INPUT` (field `credential` or `name`; also at 20
    /// passkeys); `EMAIL_NOT_VERIFIED` until the address is proved.
    #[graphql(guard = "SignedIn")]
    async fn finish_passkey_registration(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The credential and a name.")] input: FinishPasskeyRegistrationInput,
    ) -> async_graphql::Result<Passkey> {
        let (auth, current) = signed_in(ctx)?;
        let row = passkey::finish_registration(auth, current, input.credential.0, input.name).await.gql()?;
        Ok(Passkey(row))
    }

    /// Begins a passkey sign-in: no email asked (the authenticator offers
    /// the passkeys it holds). Its `challenge` also serves `reauthenticate`
    /// with a passkey. `RATE_LIMITED` like `login`, and past a ceiling for
    /// the whole server.
    async fn start_passkey_sign_in(&self, ctx: &Context<'_>) -> async_graphql::Result<PasskeyChallenge> {
        let auth = ctx.data::<AuthContext>()?;
        let signed_in =
            crate::graphql::guard::current_session(ctx).await.ok().map(|c| (c.user.id, c.session.id));
        let started = sign_in::passkey::start_sign_in(auth, &client_meta(ctx), signed_in).await.gql()?;
        Ok(PasskeyChallenge {
            challenge: started.challenge.expose_secret().to_owned(),
            options: Json(started.options),
        })
    }

    /// Finishes a passkey sign-in: returns the token and sets the
    /// `session_token` cookie, with `assuranceLevel` 2 (a passkey with
    /// user verification is two factors). `INVALID_CREDENTIALS` for any
    /// assertion that does not verify (signature, origin, relying party,
    /// challenge, a signature counter that did not move forward, a removed
    /// passkey); `INVALID_TOKEN` for a challenge unknown, older than 5
    /// minutes or spent; `RATE_LIMITED` like `login`; `EMAIL_NOT_VERIFIED`
    /// when the user's address must be proved and is not.
    async fn finish_passkey_sign_in(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The challenge and the assertion.")] input: FinishPasskeySignInInput,
    ) -> async_graphql::Result<AuthPayload> {
        let auth = ctx.data::<AuthContext>()?;
        let meta = client_meta(ctx);
        let signed = sign_in::passkey::finish_sign_in(auth, &input.challenge, input.credential.0, &meta)
            .await
            .gql()?;
        Ok(started_session(ctx, signed))
    }

    /// Removes one of the caller's passkeys; mails the owner a notice.
    /// `false` for an id that is not the caller's; `LAST_SIGN_IN_METHOD`
    /// when it is the last way in. Step-up (`REAUTHENTICATION_REQUIRED`).
    #[graphql(guard = "SignedIn")]
    async fn remove_passkey(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The `Passkey.id` to remove.")] id: ID,
    ) -> async_graphql::Result<bool> {
        let (auth, current) = signed_in(ctx)?;
        let Ok(id) = uuid::Uuid::parse_str(&id) else { return Ok(false) };
        passkey::remove(auth, current, id).await.gql()
    }
}
