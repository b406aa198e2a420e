use sea_orm::entity::prelude::*;

/// A WebAuthn ceremony under way: 5 minutes, single use.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "passkey_challenges")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// `register` or `sign_in`.
    pub purpose: String,
    /// A sign-in's handle, as SHA-256 (the handle itself is never stored);
    /// `None` for a registration, which is found by its session.
    #[sea_orm(unique)]
    pub token_hash: Option<Vec<u8>>,
    /// The user registering (`None` for a sign-in: nobody is known yet).
    pub user_id: Option<Uuid>,
    /// The session that began a registration: only it may finish it.
    pub session_id: Option<Uuid>,
    /// The WebAuthn library's ceremony state (JSON): the challenge it sent.
    pub state: String,
    pub expires_at: DateTimeUtc,
    pub created_at: DateTimeUtc,
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

impl ActiveModelBehavior for ActiveModel {}

impl Related<super::users::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::User.def()
    }
}
