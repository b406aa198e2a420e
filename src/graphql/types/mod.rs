//! API types, separate from the entities: a row never becomes an API type by
//! accident, so a password hash can never leak through a derive. Every
//! GraphQL object and input lives here, by concern; resolvers live in
//! `query.rs` and `mutation/`.

mod account;
mod admin;
mod events;
mod scalars;
mod sign_in;
mod user;

pub use account::*;
pub use admin::*;
pub use events::*;
pub use scalars::*;
pub use sign_in::*;
pub use user::*;
