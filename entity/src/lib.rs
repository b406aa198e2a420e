//! SeaORM entities: one file per table, plain data, no behaviour.
//! These never become API types directly; `src/graphql/types.rs` maps them.

pub mod accounts;
pub mod event_cursors;
pub mod events;
pub mod oauth_flows;
pub mod passkey_challenges;
pub mod passkeys;
pub mod rate_limits;
pub mod recovery_codes;
pub mod sessions;
pub mod sign_in_challenges;
pub mod signing_keys;
pub mod totp_credentials;
pub mod user_roles;
pub mod users;
pub mod verification_tokens;
pub mod webhook_deliveries;
pub mod webhook_endpoints;
