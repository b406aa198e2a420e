//! The GraphQL layer: thin resolvers that validate input, call one service
//! and map the result.

mod codes;
pub mod guard;
mod limits;
mod loaders;
mod mutation;
mod query;
pub mod types;

use async_graphql::{EmptySubscription, Schema, SchemaBuilder};

use crate::{auth::AuthContext, config::Config};

pub use codes::{BAD_REQUEST, ErrorCodes, VALIDATION_FAILED, with_code};
pub use limits::check_shape;
pub use loaders::Loaders;
pub use mutation::MutationRoot;
pub use query::QueryRoot;

pub type AppSchema = Schema<QueryRoot, MutationRoot, EmptySubscription>;

/// The schema without runtime data: enough for its SDL.
fn builder() -> SchemaBuilder<QueryRoot, MutationRoot, EmptySubscription> {
    Schema::build(QueryRoot, MutationRoot::default(), EmptySubscription).extension(ErrorCodes)
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
    builder.finish()
}

/// The SDL checked in as `schema.graphql` (`authgate schema`).
pub fn sdl() -> String {
    builder().finish().sdl()
}
