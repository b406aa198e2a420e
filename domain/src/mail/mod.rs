//! Mail delivery behind one small trait: SMTP (lettre) in production, an
//! outbox directory of `.eml` files in development. Sending happens in the
//! background with retry and backoff; no log line ever carries a token.

mod outbox;
mod smtp;
pub mod templates;

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use lettre::message::{Mailbox, MultiPart};
pub use outbox::Outbox;
pub use smtp::Smtp;

use crate::config::Config;

/// A message to one recipient, with a plain-text and an HTML part.
#[derive(Clone, Debug)]
pub(crate) struct Email {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum MailError {
    #[error("invalid message: {0}")]
    Build(String),
    #[error("outbox: {0}")]
    Io(#[from] std::io::Error),
    #[error("smtp: {0}")]
    Smtp(String),
}

#[async_trait::async_trait]
pub(crate) trait Mailer: Send + Sync + 'static {
    /// One delivery attempt.
    async fn deliver(&self, email: &Email) -> Result<(), MailError>;
}

/// The RFC 5322 message for `email`.
pub(crate) fn build(from: &Mailbox, email: &Email) -> Result<lettre::Message, MailError> {
    let to: Mailbox = email.to.parse().map_err(|e| MailError::Build(format!("recipient: {e}")))?;
    lettre::Message::builder()
        .from(from.clone())
        .to(to)
        .subject(email.subject.clone())
        .multipart(MultiPart::alternative_plain_html(email.text.clone(), email.html.clone()))
        .map_err(|e| MailError::Build(e.to_string()))
}

/// Hands messages to a `Mailer` in the background, retrying with backoff.
#[derive(Clone)]
pub struct Postman {
    mailer: Arc<dyn Mailer>,
    delivered: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    /// Messages handed over and not yet delivered or given up on.
    in_flight: Arc<AtomicU64>,
}

/// Waits between attempts: 1 s, 4 s, 16 s, then gives up.
fn backoff() -> backon::ExponentialBuilder {
    backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_secs(1))
        .with_factor(4.0)
        .with_max_times(3)
}

impl Postman {
    pub(crate) fn new(mailer: Arc<dyn Mailer>) -> Self {
        Self { mailer, delivered: Arc::default(), failed: Arc::default(), in_flight: Arc::default() }
    }

    /// The configured mailer: SMTP when a host is set, else the outbox.
    pub fn from_config(config: &Config) -> anyhow::Result<Self> {
        let mailer: Arc<dyn Mailer> = match &config.smtp_host {
            Some(host) => Arc::new(Smtp::new(config, host)?),
            None => Arc::new(Outbox::new(config)?),
        };
        Ok(Self::new(mailer))
    }

    /// Queues `email` for delivery and returns at once.
    pub(crate) fn send(&self, email: Email) {
        let this = self.clone();
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        tokio::spawn(async move {
            use backon::Retryable;
            let delivered = (|| this.mailer.deliver(&email))
                .retry(backoff())
                .notify(|e, wait| tracing::warn!(to = %email.to, error = %e, retry_in = ?wait, "mail delivery failed"))
                .await;
            match delivered {
                Ok(()) => this.delivered.fetch_add(1, Ordering::Relaxed),
                Err(e) => {
                    tracing::error!(to = %email.to, subject = %email.subject, error = %e, "mail not delivered; giving up");
                    this.failed.fetch_add(1, Ordering::Relaxed)
                }
            };
            this.in_flight.fetch_sub(1, Ordering::SeqCst);
        });
    }

    #[cfg(any(test, feature = "test-support"))]
    /// Messages handed over and not yet delivered or given up on.
    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::SeqCst)
    }
}
