use sea_orm::entity::prelude::*;

/// One fixed window of one rate-limit counter.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "rate_limits")]
pub struct Model {
    /// `rule:hash(subject)`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub key: String,
    /// Unix seconds at which the window opened.
    #[sea_orm(primary_key, auto_increment = false)]
    pub window_start: i64,
    pub count: i64,
    pub expires_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
