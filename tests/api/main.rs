//! One integration-test binary (one link step for CI), in modules.

mod common;

mod abuse;
mod admin;
mod admission;
mod auth;
mod cache;
mod concurrency;
mod contract;
mod contract_flow;
mod docs;
mod email;
mod events;
mod factor_lifecycle;
mod layers;
mod notices;
mod oauth;
mod observability;
mod outage;
mod passkeys;
mod security;
mod sessions;
mod smtp;
mod subscriptions;
mod tcp;
mod tokens;
mod transport;
mod two_factor;
mod verifier;
mod webhooks;
