use sea_orm::entity::prelude::*;

/// A sign-in whose first factor checked out and whose second is awaited.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "sign_in_challenges")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub user_id: Uuid,
    /// SHA-256 of the challenge; the challenge itself is never stored.
    #[sea_orm(unique)]
    pub token_hash: Vec<u8>,
    /// How the first factor was proved: `password` or `oauth:<provider>`.
    pub method: String,
    /// The user's credentials version when the first factor checked out: a
    /// password change or reset meanwhile ends the challenge.
    pub credentials_version: i64,
    /// For a challenge from a provider's callback: SHA-256 of the value in
    /// the browser's `signin_binding` cookie; only that browser completes it.
    pub browser_hash: Option<Vec<u8>>,
    /// Codes tried so far (each claimed before it is checked); 5 end it.
    pub attempts: i32,
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
