use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Trimmed and lower-cased before it is stored.
    #[sea_orm(unique)]
    pub email: String,
    pub name: Option<String>,
    pub image: Option<String>,
    pub email_verified: bool,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    /// Bumped when the password changes or the account is claimed: a
    /// sign-in creates its session only if it is still the one it read.
    pub credentials_version: i64,
    /// A confirmed TOTP secret exists: every sign-in needs a second step.
    pub two_factor_enabled: bool,
    /// When an admin banned the account; `None`: not banned. The gate
    /// refuses every way in while the ban lasts.
    pub banned_at: Option<DateTimeUtc>,
    /// When the ban ends by itself; `None` with `banned_at`: until lifted.
    pub banned_until: Option<DateTimeUtc>,
    /// The admin's reason, shown to admins only.
    pub ban_reason: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::sessions::Entity")]
    Sessions,
    #[sea_orm(has_many = "super::accounts::Entity")]
    Accounts,
    #[sea_orm(has_many = "super::verification_tokens::Entity")]
    VerificationTokens,
}

impl Related<super::sessions::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Sessions.def()
    }
}

impl Related<super::accounts::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Accounts.def()
    }
}

impl Related<super::verification_tokens::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::VerificationTokens.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
