//! Editing the user's own profile.

use entity::users;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};
use tracing::instrument;

use crate::{
    AuthContext,
    error::AuthError,
    events::{Event, Kind},
    limits,
    limits::Rule,
    session::CurrentSession,
    user::validate,
};

/// `None`: leave as it is; `Some(None)`: clear; `Some(Some(v))`: set.
#[derive(Default)]
pub struct ProfileUpdate {
    pub name: Option<Option<String>>,
    pub image: Option<Option<String>>,
}

#[instrument(skip_all, fields(user_id = %current.user.id))]
pub async fn update(
    auth: &AuthContext,
    current: &CurrentSession,
    update: ProfileUpdate,
) -> Result<users::Model, AuthError> {
    let user = &current.user;
    limits::hit(auth, Rule::ProfileAccount, &user.id.to_string()).await?;
    let mut row = users::ActiveModel { id: Set(user.id), ..Default::default() };
    let mut fields = Vec::new();
    if let Some(name) = update.name {
        row.name = Set(validate::profile_name(name)?);
        fields.push("name");
    }
    if let Some(image) = update.image {
        row.image = Set(image.map(|url| validate::image_url(&url)).transpose()?);
        fields.push("image");
    }
    row.updated_at = Set(auth.clock.now());
    let forget = auth.sessions.changing(user.id);
    // Only under the credentials the session was read with: a request of a
    // squatter's session racing the owner's reset (which clears the name
    // and picture they set) must not bring them back afterwards.
    let (_turn, txn) = auth.write().await?;
    let updated = users::Entity::update(row)
        .filter(users::Column::CredentialsVersion.eq(user.credentials_version))
        .exec(&txn)
        .await
        .map_err(|e| match e {
            sea_orm::DbErr::RecordNotUpdated => AuthError::Unauthenticated,
            e => e.into(),
        })?;
    Event::new(Kind::UserUpdated, user.id)
        .session(current.session.id)
        .impersonated_by(current.session.impersonator_id)
        .with("fields", fields)
        .record(&txn, auth, &current.meta)
        .await?;
    txn.commit().await?;
    forget.done();
    Ok(updated)
}
