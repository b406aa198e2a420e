use sea_orm::entity::prelude::*;

/// A user's authenticator app: the confirmed secret and one being set up,
/// each encrypted with the server key (never stored in the clear).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "totp_credentials")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: Uuid,
    /// The confirmed secret, encrypted; `None` until a setup is confirmed.
    pub secret: Option<String>,
    /// A setup started and not yet confirmed, encrypted.
    pub pending_secret: Option<String>,
    /// The newest 30-second step whose code was accepted: no code of this
    /// step or an older one is accepted again.
    pub last_step: Option<i64>,
    pub confirmed_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
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
