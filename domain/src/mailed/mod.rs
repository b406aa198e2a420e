//! The mailed flows: proving an address (`verification`) and resetting a
//! password (`reset`), both through single-use tokens (`tokens`) queued
//! as mail after the answer.

pub mod reset;
pub mod tokens;
pub mod verification;

use crate::{error::AuthError, jobs::Slot};

/// Queues the mailing of a link the user waits for; a failure is logged.
fn queue_link(
    slot: Slot,
    what: &'static str,
    mail: impl std::future::Future<Output = Result<(), AuthError>> + Send + 'static,
) {
    slot.run(async move {
        if let Err(e) = mail.await {
            e.report();
            tracing::warn!(error = %e, "{what} mail not sent");
        }
    });
}
