//! One integration-test binary (one link step for CI), in modules.

mod common;

mod auth;
mod contract;
mod sessions;
mod tcp;
mod transport;
