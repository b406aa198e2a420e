use async_graphql::{Context, Object};
use domain::{user::roles::Permission, webhooks};

use crate::graphql::{
    GqlResult,
    guard::{Permitted, SignedIn, client_meta, signed_in},
    types::{CreateWebhookEndpointInput, CreatedWebhookEndpoint, WebhookEndpoint},
};

#[derive(Default)]
pub struct WebhookMutation;

#[Object]
impl WebhookMutation {
    /// Adds a webhook endpoint (Standard Webhooks 1.0) and returns its
    /// signing secret, shown this once. Needs `webhook:manage`
    /// (`PERMISSION_DENIED`; the command line's `authgate webhooks add`
    /// needs none) and a recent sign-in (`REAUTHENTICATION_REQUIRED`).
    /// `BAD_USER_INPUT`: `url` not http(s), with credentials, or
    /// resolving to no public address; `eventTypes` naming an unknown type.
    #[graphql(guard = "SignedIn.and(Permitted(Permission::WebhookManage))")]
    async fn create_webhook_endpoint(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The URL and the event types to deliver.")] input: CreateWebhookEndpointInput,
    ) -> async_graphql::Result<CreatedWebhookEndpoint> {
        let (auth, current) = signed_in(ctx)?;
        // A channel that hears every user's events: a recent sign-in too.
        domain::admin::acting_destructively(auth, current, Permission::WebhookManage).await.gql()?;
        let types = input.event_types.unwrap_or_default();
        let created = webhooks::create(auth, &input.url, types, Some(current.user.id), &client_meta(ctx))
            .await
            .gql()?;
        let secret = secrecy::ExposeSecret::expose_secret(&created.secret).to_owned();
        Ok(CreatedWebhookEndpoint { endpoint: WebhookEndpoint(created.endpoint), secret })
    }
}
