use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "sessions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub user_id: Uuid,
    /// SHA-256 of the session token; the token itself is never stored.
    #[sea_orm(unique)]
    pub token_hash: Vec<u8>,
    pub expires_at: DateTimeUtc,
    pub created_at: DateTimeUtc,
    /// Last time the expiry was extended (sliding sessions).
    pub updated_at: DateTimeUtc,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
    /// The last time this session proved the user's presence: its sign-in
    /// or a `reauthenticate`. Step-up operations look at it.
    pub authenticated_at: DateTimeUtc,
    /// 1: one factor (a password or a provider); 2: two factors.
    pub assurance_level: i16,
    /// How it was signed into (`password`, `second_step`, `passkey`,
    /// `provider`, `registration`): the access tokens' `amr`. `None` for
    /// sessions older than the column.
    pub method: Option<String>,
    /// The admin acting as the user (an impersonation: one hour at most,
    /// never extended, no change of credentials, factors or roles).
    pub impersonator_id: Option<Uuid>,
    /// The admin's session that started the impersonation: it counts only
    /// while that one lives.
    pub impersonator_session_id: Option<Uuid>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::users::Entity",
        from = "Column::UserId",
        to = "super::users::Column::Id",
        on_delete = "Cascade"
    )]
    User,
}

impl Related<super::users::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::User.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
