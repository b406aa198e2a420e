use sea_orm::entity::prelude::*;

/// A registered passkey (WebAuthn credential) of a user.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "passkeys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub user_id: Uuid,
    /// The authenticator's credential id: unique across all users.
    #[sea_orm(unique)]
    pub credential_id: Vec<u8>,
    /// The credential as the WebAuthn library keeps it (JSON): the public
    /// key, the signature counter, the backup flags, the transports.
    pub credential: String,
    /// The last signature counter seen (0 for authenticators without one).
    pub counter: i64,
    pub backup_eligible: bool,
    pub backup_state: bool,
    /// JSON array of transports (`internal`, `hybrid`, `usb`…), if reported.
    pub transports: Option<String>,
    pub name: Option<String>,
    pub created_at: DateTimeUtc,
    pub last_used_at: Option<DateTimeUtc>,
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
