//! The GraphQL layer: thin resolvers that read their arguments, call one
//! service and map the result. It never imports `crate::http` (checked by
//! `tests/api/layers.rs`): what the HTTP answer must carry, a resolver
//! records as an `effects::Effect`.

pub(crate) mod codes;
mod documents;
pub mod effects;
pub mod guard;
mod loaders;
mod mutation;
mod query;
mod shape;
mod subscription;
pub mod types;

use async_graphql::{Schema, SchemaBuilder};
pub use codes::{ErrorCodes, GqlResult, refusal};
pub use documents::Documents;
use domain::{AuthContext, config::Config};
pub use loaders::Loaders;
pub use mutation::MutationRoot;
pub use query::QueryRoot;
pub use shape::check_shape;
pub use subscription::SubscriptionRoot;

pub type AppSchema = Schema<QueryRoot, MutationRoot, SubscriptionRoot>;

/// The schema without runtime data: enough for its SDL.
fn builder() -> SchemaBuilder<QueryRoot, MutationRoot, SubscriptionRoot> {
    Schema::build(QueryRoot, MutationRoot::default(), SubscriptionRoot)
        .extension(ErrorCodes)
        .extension(documents::CachedValidation)
}

/// The running schema, wired to the services.
pub fn build_schema(auth: AuthContext, config: &Config) -> AppSchema {
    let mut builder = builder()
        .data(auth)
        .limit_depth(config.max_depth)
        .limit_complexity(config.max_complexity)
        .limit_recursive_depth(32)
        .limit_directives(16);
    if !config.introspection_enabled() {
        builder = builder.disable_introspection();
    }
    // "Did you mean …" names fields to someone probing the schema.
    if config.env == domain::config::Environment::Production {
        builder = builder.disable_suggestions();
    }
    builder.finish()
}

/// Every label a request can carry in metrics: `query:<field>` and
/// `mutation:<field>` for each root field the schema has, and nothing a
/// client can invent (their count is fixed by the schema).
pub fn operation_labels() -> std::collections::HashSet<String> {
    use async_graphql::parser::types::{TypeKind, TypeSystemDefinition};
    let mut labels: std::collections::HashSet<String> =
        ["query:__typename", "query:__schema", "query:__type", "mutation:__typename"]
            .into_iter()
            .map(str::to_owned)
            .collect();
    let Ok(document) = async_graphql::parser::parse_schema(sdl()) else { return labels };
    for definition in document.definitions {
        let TypeSystemDefinition::Type(ty) = definition else { continue };
        let kind = match ty.node.name.node.as_str() {
            "QueryRoot" => "query",
            "MutationRoot" => "mutation",
            "SubscriptionRoot" => "subscription",
            _ => continue,
        };
        if let TypeKind::Object(object) = &ty.node.kind {
            labels.extend(object.fields.iter().map(|f| format!("{kind}:{}", f.node.name.node)));
        }
    }
    labels
}

/// The SDL checked in as `schema.graphql` (`authgate schema`).
pub fn sdl() -> String {
    builder().finish().sdl()
}

/// The operations that add, remove or weaken a way in, and so need a
/// session that proved presence recently (step-up; `changePassword`, and
/// `deleteAccount` with a password, need only two factors when two-factor
/// is on). The one list: the docs' lists and the resolvers' descriptions
/// are checked against it (`tests/api/contract.rs`, `tests/api/docs.rs`),
/// and `tests/api/two_factor.rs` drives each with a stale session.
pub const STEP_UP_OPERATIONS: [&str; 10] = [
    "changePassword",
    "deleteAccount",
    "setPassword",
    "linkOAuth",
    "unlinkAccount",
    "startTotpSetup",
    "disableTwoFactor",
    "regenerateRecoveryCodes",
    "startPasskeyRegistration",
    "removePasskey",
];
