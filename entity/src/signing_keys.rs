use sea_orm::entity::prelude::*;

/// A key access tokens are signed with (see the migration for its life).
#[derive(Clone, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "signing_keys")]
pub struct Model {
    /// The RFC 7638 thumbprint of the public key.
    #[sea_orm(primary_key, auto_increment = false)]
    pub kid: String,
    /// `ES256` (or `RS256`).
    pub alg: String,
    pub generation: i32,
    /// The public key as a JWK (what the JWKS publishes).
    pub public_jwk: String,
    /// The private key (PKCS#8), sealed with the server key.
    pub private_key: String,
    pub created_at: DateTimeUtc,
    pub signs_from: DateTimeUtc,
    pub revoked_at: Option<DateTimeUtc>,
}

/// Without the private key, even sealed: key material never reaches a log.
impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("generation", &self.generation)
            .field("created_at", &self.created_at)
            .field("signs_from", &self.signs_from)
            .field("revoked_at", &self.revoked_at)
            .finish_non_exhaustive()
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
