//! SeaORM entities: one file per table, plain data, no behaviour.
//! These never become API types directly; `src/graphql/types.rs` maps them.

pub mod accounts;
pub mod oauth_flows;
pub mod rate_limits;
pub mod sessions;
pub mod users;
pub mod verification_tokens;
