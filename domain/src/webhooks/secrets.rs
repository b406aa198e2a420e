//! Endpoint secrets under a server-key rotation: `authgate reseal` moves
//! them to the current key with the TOTP secrets, and `authgate serve`
//! refuses to start while one opens with no configured key (every
//! delivery to that endpoint would fail as an internal error).

use entity::webhook_endpoints::{self, Column};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};

use crate::{AuthContext, error::AuthError, keys::Resealed};

/// How many enabled endpoints hold a secret (current or previous) that no
/// configured key opens (a turned-off one fails no delivery).
pub(crate) async fn unopenable(auth: &AuthContext) -> Result<u64, AuthError> {
    let mut unopened = 0;
    for row in webhook_endpoints::Entity::find().filter(Column::Enabled.eq(true)).all(&auth.db).await? {
        let sealed = std::iter::once(&row.secret).chain(&row.previous_secret);
        if sealed.into_iter().any(|s| auth.keys.sealer.open(s, row.id.as_bytes()).is_err()) {
            unopened += 1;
        }
    }
    Ok(unopened)
}

/// Re-encrypts every endpoint secret sealed under a previous key with the
/// current one. Returns how many endpoints were re-encrypted and how many
/// hold a secret no configured key opens (left as they are).
pub async fn reseal_all(auth: &AuthContext) -> Result<(u64, u64), AuthError> {
    let (mut resealed, mut unopened) = (0, 0);
    for row in webhook_endpoints::Entity::find().all(&auth.db).await? {
        let mut update = webhook_endpoints::Entity::update_many().filter(Column::Id.eq(row.id));
        let (mut moved, mut failed) = (false, false);
        for (column, value) in
            [(Column::Secret, Some(&row.secret)), (Column::PreviousSecret, row.previous_secret.as_ref())]
        {
            let Some(sealed) = value else { continue };
            let resealing = auth.keys.sealer.reseal(sealed, row.id.as_bytes());
            match resealing.map_err(|e| AuthError::internal("sealing a webhook secret", e))? {
                Resealed::Current => {}
                Resealed::Moved(fresh) => {
                    // Only the value read: a concurrent rotation of the secret wins.
                    update = update.col_expr(column, Expr::value(fresh)).filter(column.eq(sealed.clone()));
                    moved = true;
                }
                Resealed::Unopenable => failed = true,
            }
        }
        unopened += u64::from(failed);
        if moved {
            update = update.col_expr(Column::UpdatedAt, Expr::value(auth.clock.now()));
            resealed += update.exec(&auth.db).await?.rows_affected;
        }
    }
    Ok((resealed, unopened))
}
