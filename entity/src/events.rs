use sea_orm::entity::prelude::*;

/// One event of the record (see the migration for `tx` and `count`).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "events")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The order readers follow: `(tx, id)`. Set by the database.
    pub tx: i64,
    /// Dot-delimited: `session.created`, `user.password_changed`, ….
    #[sea_orm(column_name = "type")]
    pub kind: String,
    pub occurred_at: DateTimeUtc,
    /// The latest occurrence counted into this row (refused sign-ins).
    pub last_at: DateTimeUtc,
    pub count: i32,
    /// Who acted: the user, an admin; `None` for the server itself.
    pub actor_id: Option<Uuid>,
    pub impersonator_id: Option<Uuid>,
    /// The user the event is about.
    pub subject_user_id: Option<Uuid>,
    pub session_id: Option<Uuid>,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    /// A small JSON object of ids and names: never a secret.
    pub data: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
