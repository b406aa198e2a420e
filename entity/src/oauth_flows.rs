use sea_orm::entity::prelude::*;

/// An OAuth sign-in (or link) between `startOAuth` and the provider's callback.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "oauth_flows")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// SHA-256 of the `state` parameter; the state itself is never stored.
    #[sea_orm(unique)]
    pub state_hash: Vec<u8>,
    pub provider: String,
    /// PKCE code verifier, sent with the code exchange.
    pub pkce_verifier: String,
    /// Expected in the ID token (OpenID Connect providers).
    pub nonce: String,
    /// Where the browser goes when the flow ends (checked against the allow-list).
    pub redirect_to: String,
    /// Set when a signed-in user links the provider instead of signing in.
    pub link_user_id: Option<Uuid>,
    /// The session that asked for the link: the link completes only while it lives.
    pub link_session_id: Option<Uuid>,
    pub expires_at: DateTimeUtc,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
